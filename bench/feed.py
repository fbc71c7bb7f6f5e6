"""``feed``: a member's home feed (``GET /o/<slug>/feed``, the first page of 20 posts) vs a bare Flask route.

Both are served by ``gunicorn --config gunicorn.conf.py`` (gevent, ``WEB_CONCURRENCY`` workers) in
the same run, like ``dashboard``. The organization has 50 members; everything is made through the
services (``coach.spaces.service``):

* six spaces: club news (announcements), four open training groups, a private coaches' room;
  everyone follows the news, athletes joined one to three groups, coaches their groups and the
  coaches' room, so each logged-in member's feed merges three to six spaces;
* ``BENCH_FEED_POSTS`` posts (default 3,000) over the last 120 days by members of each space, Markdown with
  lists, links, emphasis and now and then an ``@mention``;
* on the newest 45 posts of every space (all that a first page can show): reactions from two to
  nine members each (the logged-in members among them, so "my own" reactions show pressed) and
  zero to four comments; then ``ANALYZE`` of every table, the statistics autovacuum keeps.

The page is requested by 16 logged-in members (``BENCH_CLIENTS``; the admin, the five coaches,
ten athletes), each with its own session. Baseline and page take turns for ``BENCH_ROUNDS``
rounds (default 2).

Afterwards the same page is requested in this process through Flask's test client (no server):
timed per phase (``service.feed_page``: posts with authors, reactions, spaces; the posts' articles and
reaction bars from their caches, ``fragments.post_articles``; rendering the templates; the rest: session,
user, organization, membership) with the SQL statements of each, and once under cProfile.

Target: ratio = page req/s ÷ baseline req/s >= 0.5. Last line: ``ratio=... p50_ms=... p95_ms=...``
(the page's latency, all rounds pooled) plus both req/s.
"""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import random
import re
import time
from datetime import datetime, timedelta, timezone

from bench import harness
from bench.calendar import _log_in, _Phases, _profile_lines

TARGET_RATIO = 0.5
MEMBERS = 50
LOGGED_IN = 16
PROFILE_REQUESTS = 50
RECENT_PER_SPACE = 45  # the newest posts of each space get reactions and comments
UTC = timezone.utc

# name, visibility, creator (an email local part), which members join: see _seed.
SPACES = [("Club news", "announcement", "admin"), ("Sprint group", "open", "coach01"),
          ("Distance group", "open", "coach02"), ("Jumps and throws", "open", "coach03"),
          ("Masters", "open", "coach04"), ("Coaches' room", "private", "coach05")]
SPACE_WEIGHTS = [0.06, 0.24, 0.24, 0.18, 0.16, 0.12]

OPENERS = ["Great session today, everyone.", "Quick reminder for the weekend.", "Question for the group:",
           "Results from Saturday are in.", "Here is the plan for next week.", "Thanks for the support!",
           "Video from this morning's drills.", "Recovery tips after the long run."]
MIDDLES = ["We worked on **block starts** and the first ten metres; keep the drive phase low.",
           "Bring spikes *and* flats, the track may be closed for the first hour.",
           "Who is up for an easy 8 km on Sunday? Meeting at the north gate, 9:00.",
           "Splits were 62, 64, 63 — steady, and the last lap felt controlled.",
           "The strength block moves to Thursday because of the hall booking.",
           "Read this before the next session: [pacing guide](https://example.org/pacing).",
           "Hydrate, sleep, and do the mobility routine from the handout.",
           "Three rounds of 4 × 200 m with 90 s rest, then cool-down."]
LISTS = ["\n\n- warm-up 15 min\n- drills 20 min\n- main set\n- stretch",
         "\n\n1. sign up by Friday\n2. pay the entry fee\n3. collect your bib on race day", ""]


def _body(rng: random.Random, handles: list[str]) -> str:
    text = f"{rng.choice(OPENERS)} {rng.choice(MIDDLES)}"
    if rng.random() < 0.5:
        text += " " + rng.choice(MIDDLES)
    text += rng.choice(LISTS)
    if rng.random() < 0.1:
        text += f"\n\n@{rng.choice(handles)} what do you think?"
    return text


def _seed(app, org: harness.Org, posts_total: int, logged_in: list[str]) -> dict:
    """Spaces, memberships, posts, reactions and comments through the services; returns counts."""
    from sqlalchemy import func, select

    from coach import tenancy
    from coach.extensions import db
    from coach.orgs.models import Membership
    from coach.spaces import service
    from coach.spaces.models import REACTIONS, Comment, Post, Reaction, SpaceMember

    rng = random.Random(20261122)
    now = datetime.now(UTC)
    with app.app_context():
        tenancy.activate(org.id)
        by_email = {m.user.email: m for m in db.session.scalars(select(Membership).where(
            Membership.tenant_id == org.id))}
        member = {email.split("@")[0]: by_email[email] for email, _ in org.members}
        coaches = [m for key, m in member.items() if key.startswith("coach")]
        athletes = [m for key, m in member.items() if key.startswith("athlete")]
        handles = [service.handle_of(m.user.display_name) for m in member.values()]

        spaces = [service.create_space(org, member[creator], name, f"{name}: bench space", visibility)
                  for name, visibility, creator in SPACES]
        news, groups, room = spaces[0], spaces[1:5], spaces[5]
        for m in member.values():
            if m is not member["admin"]:
                service.join(news, m)
        for n, coach in enumerate(coaches):
            service.join(groups[n % 4], coach)
            service.join(groups[(n + 1) % 4], coach)
            if coach is not member["coach05"]:
                service.add_member(room, member["coach05"], coach)
        service.add_member(room, member["coach05"], member["admin"])
        for n, athlete in enumerate(athletes):
            for k in range(1 + n % 3):  # one to three groups
                service.join(groups[(n + k) % 4], athlete)
        db.session.commit()

        space_members = {s.id: [sm.member for sm in service.members_of(s)] for s in spaces}
        posters = {s.id: [m for m in space_members[s.id] if service.access(s, m).post] for s in spaces}
        harness.say(f"creating {posts_total} posts through service.create_post")
        times = sorted(now - timedelta(seconds=rng.uniform(60, 120 * 86400)) for _ in range(posts_total))
        for n, at in enumerate(times, 1):
            space = rng.choices(spaces, SPACE_WEIGHTS)[0]
            service.create_post(space, rng.choice(posters[space.id]), _body(rng, handles), now=at)
            if n % 250 == 0:
                db.session.commit()
        db.session.commit()

        harness.say(f"reactions and comments on the newest {RECENT_PER_SPACE} posts of each space")
        me = {by_email[email].id for email in logged_in}
        for space in spaces:
            recent = list(db.session.scalars(select(Post).where(Post.tenant_id == org.id, Post.space_id == space.id)
                                             .order_by(Post.created_at.desc()).limit(RECENT_PER_SPACE)))
            pool = space_members[space.id]
            mine = [m for m in pool if m.id in me]
            for post in recent:
                reactors = rng.sample(pool, min(len(pool), rng.randint(2, 9)))
                if mine and rng.random() < 0.5:
                    extra = rng.choice(mine)
                    if extra not in reactors:
                        reactors.append(extra)
                for m in reactors:
                    for kind in rng.sample(list(REACTIONS), rng.choice((1, 1, 1, 2))):
                        service.toggle_reaction(post, m, kind)
                for _ in range(rng.choice((0, 0, 1, 1, 2, 3, 4))):
                    service.add_comment(post, rng.choice(pool), rng.choice(MIDDLES),
                                        now=post.created_at + timedelta(minutes=rng.randint(1, 600)))
            db.session.commit()

        def count(model) -> int:
            return db.session.scalar(select(func.count()).select_from(model).where(model.tenant_id == org.id))

        joined = {email: db.session.scalar(select(func.count()).select_from(SpaceMember).where(
            SpaceMember.tenant_id == org.id, SpaceMember.membership_id == by_email[email].id))
            for email in logged_in}
        return {"spaces": len(spaces), "posts": count(Post), "reactions": count(Reaction),
                "comments": count(Comment), "joined_min": min(joined.values()), "joined_max": max(joined.values())}


def analyze(bench) -> None:
    """``ANALYZE`` every table as the owner: the statistics autovacuum keeps (it would get there within minutes)."""
    import psycopg

    with psycopg.connect(bench.stack.owner_url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:
        conn.execute("ANALYZE")


# --- in-process breakdown (shared with feed_depth) ----------------------------------------------


def breakdown(app, email: str, password: str, path: str, requests: int = PROFILE_REQUESTS,
              profile: bool = True) -> dict:
    """Time ``requests`` requests of ``path`` in this process by phase, with SQL; then profile as many."""
    from sqlalchemy import event

    import coach.htmx
    from coach.blueprints.spaces import fragments
    from coach.extensions import db
    from coach.spaces import service

    client = app.test_client()
    _log_in(client, email, password)
    for _ in range(5):  # warm: templates compiled, connections open
        assert client.get(path).status_code == 200
    body = client.get(path).get_data(as_text=True)

    phases = _Phases()
    undo = [phases.wrap(service, "feed_page", "feed_page"), phases.wrap(fragments, "post_articles", "articles"),
            phases.wrap(coach.htmx, "render_template", "render"), phases.wrap(coach.htmx, "render_block", "render")]
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", phases.before_sql)
    event.listen(engine, "after_cursor_execute", phases.after_sql)
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(requests):
            assert client.get(path).status_code == 200
        total_wall = (time.perf_counter() - w0) * 1000 / requests
        total_cpu = (time.process_time() - c0) * 1000 / requests
    finally:
        event.remove(engine, "before_cursor_execute", phases.before_sql)
        event.remove(engine, "after_cursor_execute", phases.after_sql)
        for restore in undo:
            restore()

    # One more request, noting each statement (its start) and the phase it ran in.
    statements: list[tuple[str, str]] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        statements.append((phases.current, " ".join(statement.split())[:110]))

    undo = [phases.wrap(service, "feed_page", "feed_page"), phases.wrap(fragments, "post_articles", "articles"),
            phases.wrap(coach.htmx, "render_template", "render"), phases.wrap(coach.htmx, "render_block", "render")]
    event.listen(engine, "before_cursor_execute", note)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", note)
        for restore in undo:
            restore()

    text, inside = "", []
    if profile:
        profiler = cProfile.Profile(time.process_time)  # CPU time: not skewed by other work on the machine
        profiler.enable()
        for _ in range(requests):
            client.get(path)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(16)
        text = out.getvalue()
        inside = _inside_render(stats, requests)

    def per(values: dict) -> dict:
        return {k: v / requests for k, v in values.items()}

    return {"requests": requests, "wall": total_wall, "cpu": total_cpu, "phase_wall": per(phases.wall),
            "phase_cpu": per(phases.cpu), "sql_wall": per(phases.sql_wall), "sql_cpu": per(phases.sql_cpu),
            "sql_n": per(phases.sql_n), "body": body, "bytes": len(body.encode()), "profile": text,
            "inside": inside, "statements": statements}


# Pieces of the page's rendering worth knowing the cost of: (label, file suffix, function).
RENDER_PIECES = [("the posts, from their caches (fragments.post_articles)", "blueprints/spaces/fragments.py",
                  "post_articles"),
                 ("the whole template (render_template)", "flask/templating.py", "render_template"),
                 ("  a CSRF hidden input per reaction form (wtforms field.__html__)", "wtforms/fields/core.py",
                  "__html__"),
                 ("  url_for (post, space, reaction and more links)", "flask/app.py", "url_for"),
                 ("  the localtime filter (post times)", "coach/__init__.py", "_localtime")]


def _inside_render(stats: pstats.Stats, requests: int) -> list[tuple[str, float, float]]:
    """(label, calls per request, cumulative CPU ms per request) of :data:`RENDER_PIECES`, from cProfile."""
    found = []
    for label, suffix, function in RENDER_PIECES:
        calls = cumulative = 0.0
        for (filename, _, name), (_, ncalls, _, ct, _) in stats.stats.items():
            if name == function and filename.endswith(suffix):
                calls += ncalls
                cumulative += ct
        found.append((label, calls / requests, cumulative * 1000 / requests))
    return found


def print_breakdown(detail: dict, title: str, statements: bool = True) -> None:
    wall, cpu = detail["wall"], detail["cpu"]
    pw, pc = detail["phase_wall"], detail["phase_cpu"]
    sw, sc, sn = detail["sql_wall"], detail["sql_cpu"], detail["sql_n"]
    print(f"\n{title} (Flask test client, no server, {detail['requests']} requests): {wall:.1f} ms wall, "
          f"{cpu:.1f} ms CPU per request; {sum(sn.values()):.0f} SQL statements, {sum(sw.values()):.1f} ms wall "
          f"(of which {sum(sc.values()):.1f} ms CPU in this process)")
    names = [("feed_page", "loading the page (service.feed_page)"),
             ("articles", "posts from the article and bar caches (fragments.post_articles)"),
             ("render", "rendering templates (render_template)")]
    rows = [[label, pw.get(key, 0.0), pc.get(key, 0.0), sn.get(key, 0), sw.get(key, 0.0)] for key, label in names]
    rows.append(["everything else (session, user, org, membership)", wall - sum(pw.values()),
                 cpu - sum(pc.values()), sn.get("other", 0), sw.get("other", 0.0)])
    rows.append(["total", wall, cpu, sum(sn.values()), sum(sw.values())])
    harness.print_table(["phase", "wall ms", "CPU ms", "SQL statements", "SQL wall ms"],
                        [[r[0], f"{r[1]:.2f}", f"{r[2]:.2f}", f"{r[3]:.0f}", f"{r[4]:.2f}"] for r in rows])
    if statements:
        print("\nThe statements of one request, in order (phase: start of the SQL):")
        for phase, statement in detail["statements"]:
            print(f"  {phase}: {statement}")


def page_facts(body: str) -> dict:
    """What a rendered feed page shows: posts, pressed (own) reactions, reaction counts, the older-posts link."""
    return {"posts": len(re.findall(r'<article class="card post', body)),
            "own": body.count('aria-pressed="true"'),
            "counted": len(re.findall(r"<span>\d+</span>", body)),  # a reaction's count, shown when not 0
            "older": "Older posts" in body,
            "ids": re.findall(r'<article class="card post[^"]*" id="post-([0-9a-f-]{36})"', body)}


# --- the benchmark -------------------------------------------------------------------------------


def run() -> str:
    clients = harness.env_int("BENCH_CLIENTS", 16)
    rounds = max(1, harness.env_int("BENCH_ROUNDS", 2))
    posts_total = harness.env_int("BENCH_FEED_POSTS", 3000)
    harness.header("feed")
    runs: list[tuple[str, int, dict]] = []
    with harness.running_stack() as bench:
        # The in-process app (seeding, then the breakdown) gets the servers' settings for the limiter and cookies.
        os.environ.update({k: bench.env[k] for k in ("RATELIMIT_ENABLED", "SESSION_COOKIE_SECURE")})
        app = harness.make_app()
        harness.say(f"seeding one organization of {MEMBERS} members and its spaces through the services")
        org = harness.seed_org(app, slug="bench-feed", members=MEMBERS, coaches=5)
        emails = [email for email, _ in org.members[:LOGGED_IN]]  # the admin, five coaches, ten athletes
        t0 = time.perf_counter()
        counts = _seed(app, org, posts_total, emails)
        seed_seconds = time.perf_counter() - t0
        analyze(bench)
        logins = [{"email": email, "password": org.password} for email in emails]
        path = f"/o/{org.slug}/feed"
        baseline = bench.start_gunicorn("baseline", "bench.baseline_app:app", ready_path="/")
        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        for n in range(1, rounds + 1):
            harness.say(f"round {n}/{rounds}: baseline GET / with {clients} clients")
            runs.append(("baseline", n, harness.run_load(port=baseline.port, path="/", clients=clients,
                                                         meter={"server": baseline.process.pid, **services})))
            harness.say(f"round {n}/{rounds}: app GET {path} with {clients} logged-in members")
            runs.append(("app", n, harness.run_load(port=web.port, path=path, clients=clients, logins=logins,
                                                    meter={"server": web.process.pid, **services})))
        bench.stop_all()  # the in-process breakdown has the machine to itself
        harness.say(f"in-process breakdown: {PROFILE_REQUESTS} timed requests, then {PROFILE_REQUESTS} under cProfile")
        detail = breakdown(app, emails[6], org.password, path)  # an athlete

    facts = page_facts(detail["body"])
    rows = []
    for name, n, r in runs:
        label = f"{name} {'GET / (bare Flask)' if name == 'baseline' else 'GET home feed'} #{n}"
        cores = r["cpu"]["cores"]
        ms_per_request = sum(cores.get(k, 0.0) for k in ("server", "postgres", "valkey")) * 1000 / r["req_per_s"]
        rows.append([label, r["requests"], sum(r["errors"].values()), r["req_per_s"], r["p50_ms"], r["p95_ms"],
                     r["p99_ms"], "/".join(f"{s:.2f}" for s in r["cpu"]["processes"].get("server", [])),
                     f"{cores.get('postgres', 0.0):.2f}", f"{cores.get('loader', 0.0):.2f}",
                     f"{r['cpu']['others']:.2f}", f"{ms_per_request:.2f}"])
    print()
    print(f"page: {path}")
    print(f"data (seeded through the services in {seed_seconds:.0f} s): {counts['spaces']} spaces, "
          f"{counts['posts']:,} posts, {counts['reactions']:,} reactions, {counts['comments']:,} comments; "
          f"the logged-in members joined {counts['joined_min']}-{counts['joined_max']} spaces each")
    print(f"the measured athlete's page: {facts['posts']} posts, {facts['counted']} reaction counts shown, "
          f"{facts['own']} of their own reactions pressed, older-posts link {'present' if facts['older'] else 'MISSING'}"
          f"; {detail['bytes']:,} bytes")
    print()
    harness.print_table(["run", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "gunicorn CPU",
                         "postgres", "loader", "others", "CPU ms/req"], rows)
    print(f"CPU columns are cores over the measured window ({os.cpu_count()} cores in all); 'others' is CPU "
          "no process of this benchmark used; 'CPU ms/req' is gunicorn + PostgreSQL + Valkey CPU per request.")
    for name, n, r in runs:
        if r["errors"]:
            print(f"{name} #{n} errors: {r['errors']}")

    print_breakdown(detail, "In this process")
    print("\nInside rendering, from cProfile (CPU, with the profiler's own overhead, so read the shares):")
    whole = detail["inside"][0][2] or float("nan")
    harness.print_table(["piece", "calls/request", "CPU ms/request", "share of rendering"],
                        [[label, f"{calls:.0f}", f"{ms:.1f}", f"{ms / whole:.0%}"]
                         for label, calls, ms in detail["inside"]])
    print("\ncProfile (CPU time), as many requests again, top functions by own time:")
    print("\n".join(_profile_lines(detail["profile"])))

    def total_of(name: str, key: str) -> float:
        return sum(r[key] for side, _, r in runs if side == name)

    base_rps = total_of("baseline", "requests") / total_of("baseline", "seconds")
    app_rps = total_of("app", "requests") / total_of("app", "seconds")
    latencies = sorted(v for side, _, r in runs if side == "app" for v in r["latencies_ms"])
    p50, p95 = harness.percentile(latencies, 50), harness.percentile(latencies, 95)
    ratio = app_rps / base_rps if base_rps else float("nan")
    met = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"\nbaseline {base_rps:,.0f} req/s, home feed {app_rps:,.1f} req/s: ratio {ratio:.3f} "
          f"(target >= {TARGET_RATIO}: {met})")
    return harness.key_values(ratio=ratio, p50_ms=p50, p95_ms=p95, app_rps=app_rps, baseline_rps=base_rps,
                              cpu_ms_per_req=harness.cpu_ms_per_request([r for side, _, r in runs if side == "app"]),
                              baseline_cpu_ms_per_req=harness.cpu_ms_per_request(
                                  [r for side, _, r in runs if side == "baseline"]))
