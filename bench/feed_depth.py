"""``feed_depth``: the home feed's first page vs the page 500 pages deep, in an organization of 1,000,000 posts.

Keyset pagination should make a deep page cost what the first one costs: the query seeks to the
cursor's ``(created_at, id)`` in ``ix_posts_feed`` and reads 21 entries. This benchmark checks it
through the production server (``gunicorn --config gunicorn.conf.py``, gevent, ``WEB_CONCURRENCY``
workers):

* one organization of 20 members and five spaces, made through the services; the measured
  athlete joined three of them;
* ``BENCH_DEPTH_POSTS`` posts (default 1,000,000) generated in SQL as the owner role (which is
  under FORCE RLS too, so the transaction sets ``app.tenant_id`` first): spread over the five
  spaces and all members, one every ~30 s going back about a year, every 997th one deleted (not
  in the partial feed indexes); three reactions on each of the newest 40,000 posts; then
  ``VACUUM (ANALYZE) posts`` and ``ANALYZE`` of every table, the state autovacuum keeps a
  database in;
* the deep cursor is the ``(created_at, id)`` of the athlete's 10,000th newest visible post,
  computed in SQL and encoded with ``coach.platform.pagination.encode_cursor``: the page after it
  is page 501 (posts 10,001–10,020), as 500 "Older posts" clicks would reach. Both pages are
  first checked to show exactly the posts SQL says they should.

One logged-in client then requests the first and the deep page alternately, request by request
(sequential, keep-alive, a new connection every 20 requests like :mod:`bench.load`), for
``BENCH_DEPTH_SECONDS`` (default 4 × ``BENCH_SECONDS``, 40 s) after the warm-up: on a shared
machine, other work then falls on both pages alike, which separate runs per page did not give
(their p50s moved by 2x from run to run). A bare Flask route on the same settings is measured once
for scale.

The posts query of both pages, as the app sends it, is captured and run again as the app role
(RLS on) under ``EXPLAIN (ANALYZE, BUFFERS)`` (the second run in the connection, so that planning
time is not catalog cache misses), once with the parameters (the custom plan) and once as a
generic plan: psycopg prepares a statement on its fifth execution in a session, and PostgreSQL may
then keep a plan made without the parameter values. In-process timings of both pages by phase
close the report.

Target: depth_ratio = deep p50 ÷ first p50 <= 1.2. Last line:
``depth_ratio=... first_p50_ms=... deep_p50_ms=...``.
"""
from __future__ import annotations

import asyncio
import os
import re
import time

from bench import harness
from bench.calendar import _log_in
from bench.feed import breakdown, page_facts, print_breakdown

TARGET_RATIO = 1.2
MEMBERS = 20
DEPTH = 10_000  # posts before the deep page: 500 pages of 20
REACTED = 40_000  # the newest posts that get reactions (covers both measured pages)
SPACES = [("Club news", "announcement", "admin"), ("Sprint group", "open", "coach01"),
          ("Distance group", "open", "coach02"), ("Jumps and throws", "open", "coach03"),
          ("Masters", "open", "coach01")]


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _seed_spaces(app, org: harness.Org, viewer_email: str) -> dict:
    """Five spaces through the services; every member joins some, the viewer three. Returns ids."""
    from sqlalchemy import select

    from coach import tenancy
    from coach.extensions import db
    from coach.orgs.models import Membership
    from coach.spaces import service

    with app.app_context():
        tenancy.activate(org.id)
        member = {m.user.email.split("@")[0]: m for m in db.session.scalars(select(Membership).where(
            Membership.tenant_id == org.id))}
        spaces = [service.create_space(org, member[creator], name, f"{name}: bench space", visibility)
                  for name, visibility, creator in SPACES]
        for n, m in enumerate(sorted(member.values(), key=lambda m: m.user.email)):
            for k in range(1 + n % 3):
                service.join(spaces[(n + k) % len(spaces)], m)
        viewer = member[viewer_email.split("@")[0]]
        for space in spaces[:3]:  # the viewer: news and two groups, not the other two
            service.join(space, viewer)
        for space in spaces[3:]:
            if service.space_membership(space, viewer) is not None:
                service.leave(space, viewer)
        db.session.commit()
        return {"spaces": [s.id for s in spaces], "members": [m.id for m in member.values()],
                "viewer_membership": viewer.id, "viewer_user": viewer.user_id}


def _generate(bench, org_id, ids: dict, total: int) -> dict:
    """``total`` posts and reactions on the newest ones in SQL, as the owner; VACUUM ANALYZE. Returns timings."""
    import psycopg

    timings = {}
    with psycopg.connect(_plain(bench.stack.owner_url)) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(org_id),))
        t0 = time.perf_counter()
        # One post every ~30 s (jittered) going back from now; spaces and authors cycle with different
        # strides so that neighbours differ; every 997th post is deleted.
        conn.execute("""
            INSERT INTO posts (id, tenant_id, space_id, author_membership_id, body_source, body_html, created_at,
                               deleted_at, comment_count)
            SELECT gen_random_uuid(), %(org)s, (%(spaces)s::uuid[])[1 + (i * 7) %% cardinality(%(spaces)s::uuid[])],
                   (%(members)s::uuid[])[1 + (i * 13) %% cardinality(%(members)s::uuid[])],
                   'Training note ' || i || ': **tempo** run, 6 x 400 m, then mobility. See you at the track.',
                   '<p>Training note ' || i || ': <strong>tempo</strong> run, 6 x 400 m, then mobility. '
                   || 'See you at the track.</p>',
                   now() - make_interval(secs => i * 30 + random() * 29),
                   CASE WHEN i %% 997 = 0 THEN now() END,
                   (i * 31) %% 7
            FROM generate_series(1, %(total)s) AS i
        """, {"org": org_id, "spaces": ids["spaces"], "members": ids["members"], "total": total})
        timings["insert posts"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # Three reactions from different members (h, h+7, h+14 of the 20, h a hash of the post) on each of the newest posts.
        conn.execute("""
            INSERT INTO reactions (id, tenant_id, post_id, membership_id, kind)
            SELECT gen_random_uuid(), %(org)s, p.id,
                   (%(members)s::uuid[])[1 + (p.h + r * 7) %% cardinality(%(members)s::uuid[])],
                   (ARRAY['like', 'celebrate', 'support', 'insightful', 'funny'])[1 + (p.h + r) %% 5]
            FROM (SELECT id, abs(hashtext(id::text)) AS h FROM posts
                  WHERE tenant_id = %(org)s ORDER BY created_at DESC LIMIT %(reacted)s) AS p,
                 generate_series(0, 2) AS r
        """, {"org": org_id, "members": ids["members"], "reacted": REACTED})
        timings["insert reactions"] = time.perf_counter() - t0
        conn.commit()
    t0 = time.perf_counter()
    with psycopg.connect(_plain(bench.stack.owner_url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) posts")
        # Every table, as autovacuum would have by now: a never-analyzed space_members (40 rows, under
        # autovacuum's threshold of 50 changes) makes the planner guess the feed query wrong (see run()).
        conn.execute("ANALYZE")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('posts')), "
                            "pg_size_pretty(pg_relation_size('ix_posts_feed'))").fetchone()
    timings["vacuum analyze"] = time.perf_counter() - t0
    return {"timings": timings, "posts_size": size[0], "feed_index_size": size[1]}


_VISIBLE_MINE = """
    FROM posts WHERE tenant_id = %(org)s AND deleted_at IS NULL AND hidden_at IS NULL AND removed_at IS NULL
      AND space_id IN (SELECT space_id FROM space_members WHERE tenant_id = %(org)s AND membership_id = %(me)s)
"""


def _expected(bench, org_id, ids: dict) -> dict:
    """What SQL says: the viewer's visible posts, the first page, the 10,000th post and the page after it."""
    import psycopg

    from coach.platform.pagination import encode_cursor

    with psycopg.connect(_plain(bench.stack.owner_url)) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(org_id),))
        args = {"org": org_id, "me": ids["viewer_membership"]}
        visible = conn.execute("SELECT count(*)" + _VISIBLE_MINE, args).fetchone()[0]
        ordered = "SELECT created_at, id" + _VISIBLE_MINE + " ORDER BY created_at DESC, id DESC"
        first = [r[1] for r in conn.execute(ordered + " LIMIT 20", args)]
        at, post_id = conn.execute(ordered + f" OFFSET {DEPTH - 1} LIMIT 1", args).fetchone()
        deep = [r[1] for r in conn.execute(ordered + f" OFFSET {DEPTH} LIMIT 20", args)]
        conn.rollback()
    return {"visible": visible, "first": [str(i) for i in first], "deep": [str(i) for i in deep],
            "cursor": encode_cursor(at, post_id), "cursor_at": at,
            "cursor_id": post_id}


# --- the posts query as the app sends it, under EXPLAIN ------------------------------------------


def _capture_posts_query(app, email: str, password: str, path: str) -> tuple[str, dict]:
    """The feed's posts statement and parameters, as SQLAlchemy hands them to psycopg for ``path``."""
    from sqlalchemy import event

    from coach.extensions import db

    client = app.test_client()
    _log_in(client, email, password)
    seen: list[tuple[str, dict]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"\bFROM posts\b", statement) and "ORDER BY posts.created_at DESC" in statement:
            seen.append((statement, dict(parameters)))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", grab)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    if len(seen) != 1:
        raise RuntimeError(f"expected one posts query for {path}, saw {len(seen)}")
    return seen[0]


def _explain(bench, org_id, user_id, statement: str, params: dict) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) as the app role with the tenant set: custom plan, then the generic plan."""
    import psycopg

    with psycopg.connect(_plain(bench.app_conninfo())) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true), set_config('app.user_id', %s, true)",
                     (str(org_id), str(user_id)))
        conn.execute("EXPLAIN (ANALYZE) " + statement, params)  # once to warm this backend's catalog caches
        custom = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)]
        planning = sorted(float(re.search(r"Planning Time: ([\d.]+)", "\n".join(
            r[0] for r in conn.execute("EXPLAIN (SUMMARY) " + statement, params))).group(1)) for _ in range(9))
        # The same statement prepared with $n parameters and planned without their values.
        names: list[str] = []

        def number(match: re.Match) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        prepared = re.sub(r"%\((\w+)\)s", number, statement).replace("%%", "%")
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE feed_posts AS {prepared}")
        cursor = psycopg.ClientCursor(conn)  # literals in EXECUTE's argument list
        placeholders = ", ".join(["%s"] * len(names))
        values = [params[n] for n in names]
        cursor.execute(f"EXPLAIN (ANALYZE) EXECUTE feed_posts({placeholders})", values)
        generic = [r[0] for r in cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE feed_posts({placeholders})",
                                                values)]
        conn.rollback()
    return {"custom": custom, "generic": generic, "planning_ms": planning[len(planning) // 2]}


def _prepared_plans(app) -> list[tuple[str, int, int]]:
    """How PostgreSQL planned the feed's posts statements psycopg prepared in this process's connections.

    psycopg prepares a statement on its fifth execution; ``pg_prepared_statements`` counts, per
    connection, the executions planned with the values (custom) and with the cached generic plan.
    """
    from sqlalchemy import text

    from coach.extensions import db

    found: dict[str, list[int]] = {}
    with app.app_context():
        pool_size = db.engine.pool.checkedin()
        connections = [db.engine.connect() for _ in range(max(1, pool_size))]  # every idle pooled connection
        try:
            for conn in connections:
                for statement, generic, custom in conn.execute(text(
                        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
                        "WHERE statement LIKE '%FROM posts JOIN memberships%ORDER BY posts.created_at DESC%'")):
                    page = "deep" if "(posts.created_at, posts.id) <" in statement else "first"
                    counts = found.setdefault(page, [0, 0])
                    counts[0] += generic
                    counts[1] += custom
        finally:
            for conn in connections:
                conn.close()
    return [(page, *found[page]) for page in ("first", "deep") if page in found]


def _plan_cost(lines: list[str]) -> float:
    """The estimated total cost of a plan (its top node), what PostgreSQL's plan cache compares."""
    match = re.search(r"cost=[\d.]+\.\.([\d.]+)", lines[0])
    return float(match.group(1)) if match else float("nan")


def _plan_summary(lines: list[str]) -> str:
    """Estimated cost, planning and execution time, and which indexes the plan reads."""
    text = "\n".join(lines)
    planning = re.search(r"Planning Time: ([\d.]+) ms", text)
    execution = re.search(r"Execution Time: ([\d.]+) ms", text)
    indexes = sorted(set(re.findall(r"(?:Index|Index Only) Scan(?: Backward)? using (\w+)", text)))
    return (f"cost {_plan_cost(lines):,.0f}, planning {float(planning.group(1)) if planning else float('nan'):.2f} ms, "
            f"execution {float(execution.group(1)) if execution else float('nan'):.2f} ms; "
            f"indexes: {', '.join(indexes) or 'none'}")


def _sql_text(statement: str, params: dict) -> str:
    """The statement with its parameters written in, for reading."""
    def literal(match: re.Match) -> str:
        value = params[match.group(1)]
        return str(value) if isinstance(value, int) else f"'{value}'"

    return re.sub(r"%\((\w+)\)s", literal, statement).replace("%%", "%")


# --- the measurement: both pages alternately, one client ------------------------------------------


async def _alternate(port: int, login: dict, paths: dict[str, str], seconds: float, warmup: float,
                     meter: dict[str, int]) -> dict:
    """One logged-in keep-alive client requesting the pages in turn for ``warmup + seconds``.

    Returns per page the (time into the measured window, latency ms) of every answer, errors per
    page, and the CPU the watched processes used over the measured window (:class:`harness.CpuMeter`).
    """
    from bench.load import Client, HttpError, log_in

    client = Client(port, per_connection=harness.env_int("BENCH_REQUESTS_PER_CONNECTION", 20))
    await log_in(client, **login)
    names = list(paths)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    errors: dict[str, int] = {}
    cpu = harness.CpuMeter(meter)
    start = time.perf_counter()
    measure_from, measure_to = start + warmup, start + warmup + seconds
    measuring, turn = False, 0
    while time.perf_counter() < measure_to and turn < 1_000_000:
        for name in (names if turn % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            if not measuring and t0 >= measure_from:
                cpu.start()
                measuring = True
            try:
                status, _, _ = await asyncio.wait_for(client.request("GET", paths[name]), 60)
                problem = status != 200
            except (HttpError, OSError, asyncio.TimeoutError):
                client.close()
                problem = True
            t1 = time.perf_counter()
            if measuring and t1 <= measure_to:
                if problem:
                    errors[name] = errors.get(name, 0) + 1
                else:
                    samples[name].append((t0 - measure_from, (t1 - t0) * 1000))
        turn += 1
    result = cpu.stop() if measuring else {"cores": {}, "others": float("nan")}
    client.close()
    return {"samples": samples, "errors": errors, "cpu": result}


def _quarter_ratios(samples: dict[str, list[tuple[float, float]]], seconds: float) -> list[float]:
    """deep p50 ÷ first p50 in each quarter of the measured window: how steady the ratio is."""
    ratios = []
    for q in range(4):
        lo, hi = q * seconds / 4, (q + 1) * seconds / 4
        first = sorted(ms for at, ms in samples["first"] if lo <= at < hi)
        deep = sorted(ms for at, ms in samples["deep"] if lo <= at < hi)
        p50 = harness.percentile(first, 50)
        ratios.append(harness.percentile(deep, 50) / p50 if first and deep else float("nan"))
    return ratios


# --- the benchmark -------------------------------------------------------------------------------


def run() -> str:
    seconds = harness.env_float("BENCH_DEPTH_SECONDS", 4 * harness.bench_seconds())
    total = harness.env_int("BENCH_DEPTH_POSTS", 1_000_000)
    harness.header("feed_depth")
    with harness.running_stack() as bench:
        os.environ.update({k: bench.env[k] for k in ("RATELIMIT_ENABLED", "SESSION_COOKIE_SECURE")})
        app = harness.make_app()
        harness.say(f"seeding one organization of {MEMBERS} members and five spaces through the services")
        org = harness.seed_org(app, slug="bench-depth", members=MEMBERS, coaches=3)
        viewer = next(email for email, role in org.members if role == "athlete")
        ids = _seed_spaces(app, org, viewer)
        harness.say(f"generating {total:,} posts in SQL as the owner role, then VACUUM (ANALYZE)")
        t0 = time.perf_counter()
        generated = _generate(bench, org.id, ids, total)
        generate_seconds = time.perf_counter() - t0
        expected = _expected(bench, org.id, ids)
        first_path = f"/o/{org.slug}/feed"
        deep_path = f"{first_path}?after={expected['cursor']}"

        harness.say("checking both pages in this process against SQL")
        checks = {}
        for name, path in (("first", first_path), ("deep", deep_path)):
            client = app.test_client()
            _log_in(client, viewer, org.password)
            response = client.get(path)
            facts = page_facts(response.get_data(as_text=True))
            checks[name] = {"status": response.status_code, "match": facts["ids"] == expected[name],
                            "posts": facts["posts"], "older": facts["older"], "own": facts["own"],
                            "bytes": len(response.get_data())}
            if not checks[name]["match"]:
                raise RuntimeError(f"the {name} page does not show the expected posts: {checks[name]}")

        harness.say("capturing the posts query of both pages; EXPLAIN (ANALYZE, BUFFERS) as the app role")
        plans = {}
        for name, path in (("first", first_path), ("deep", deep_path)):
            statement, params = _capture_posts_query(app, viewer, org.password, path)
            plans[name] = {"statement": statement, "params": params,
                           **_explain(bench, org.id, ids["viewer_user"], statement, params)}

        login = {"email": viewer, "password": org.password}
        baseline = bench.start_gunicorn("baseline", "bench.baseline_app:app", ready_path="/")
        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        harness.say("baseline GET / with 1 client")
        base = harness.run_load(port=baseline.port, path="/", clients=1,
                                meter={"server": baseline.process.pid, **services})
        harness.say(f"first and deep page alternately, one logged-in client, {seconds:g} s after "
                    f"{harness.warmup_seconds():g} s warm-up")
        pages = asyncio.run(_alternate(web.port, login, {"first": first_path, "deep": deep_path}, seconds,
                                       harness.warmup_seconds(), {"server": web.process.pid, **services}))
        bench.stop_all()
        harness.say("in-process breakdown of both pages")
        details = {name: breakdown(app, viewer, org.password, path, requests=100, profile=False)
                   for name, path in (("first", first_path), ("deep", deep_path))}
        prepared = _prepared_plans(app)

    print()
    print(f"data: {total:,} posts generated in SQL in {generate_seconds:.0f} s ("
          + ", ".join(f"{k} {v:.1f} s" for k, v in generated["timings"].items())
          + f"); posts with indexes {generated['posts_size']}, ix_posts_feed {generated['feed_index_size']}; "
          f"{REACTED:,} newest posts with 3 reactions each")
    print(f"viewer {viewer}: member of 3 of 5 spaces, {expected['visible']:,} visible posts in the home feed")
    print(f"first page: {first_path}")
    print(f"deep page:  {first_path}?after=<cursor of post #{DEPTH:,}: {expected['cursor_at'].isoformat()} "
          f"{expected['cursor_id']}>")
    for name in ("first", "deep"):
        c = checks[name]
        print(f"  {name}: status {c['status']}, {c['posts']} posts, the expected ones: {c['match']}, "
              f"{c['own']} own reactions pressed, older-posts link {'present' if c['older'] else 'MISSING'}, "
              f"{c['bytes']:,} bytes")
    print()
    cpu = pages["cpu"]
    served = sum(len(pages["samples"][name]) for name in ("first", "deep"))
    page_cpu_ms = sum(cpu["cores"].get(k, 0.0) for k in ("server", "postgres", "valkey")) * 1000 * seconds / served \
        if served else float("nan")
    base_cpu_ms = sum(base["cpu"]["cores"].get(k, 0.0) for k in ("server", "postgres", "valkey")) * 1000 \
        / base["req_per_s"]
    rows = [["baseline GET / (bare Flask), alone", base["requests"], sum(base["errors"].values()), base["p50_ms"],
             base["p95_ms"], base["p99_ms"], f"{base['cpu']['others']:.2f}", f"{base_cpu_ms:.2f}"]]
    for name, label in (("first", "first page"), ("deep", "page 501 (after post #10,000)")):
        values = sorted(ms for _, ms in pages["samples"][name])
        rows.append([label, len(values), pages["errors"].get(name, 0), harness.percentile(values, 50),
                     harness.percentile(values, 95), harness.percentile(values, 99), f"{cpu['others']:.2f}",
                     f"{page_cpu_ms:.2f}"])
    harness.print_table(["requests", "n", "errors", "p50 ms", "p95 ms", "p99 ms", "others", "CPU ms/req"], rows)
    print(f"One client, closed loop, the two pages alternating request by request (which goes first alternates "
          f"too), so that\nother work on the machine falls on both alike. 'others' is CPU (in cores of "
          f"{os.cpu_count()}) that no process of this benchmark used; 'CPU ms/req' is gunicorn + PostgreSQL + "
          "Valkey\nCPU per request (both pages together: they share the measured window).")
    quarters = _quarter_ratios(pages["samples"], seconds)
    print("deep p50 / first p50 in each quarter of the window: " + ", ".join(f"{q:.2f}" for q in quarters))

    for name in ("first", "deep"):
        plan = plans[name]
        print(f"\nThe {name} page's posts query, as the app sends it (parameters written in):")
        print(_sql_text(plan["statement"], plan["params"]))
        print(f"\nEXPLAIN (ANALYZE, BUFFERS), app role, custom plan: {_plan_summary(plan['custom'])} "
              f"(planning alone, median of 9 more: {plan['planning_ms']:.2f} ms)")
        print("\n".join(plan["custom"]))
        print(f"\nGeneric plan (plan_cache_mode = force_generic_plan): {_plan_summary(plan['generic'])}")
        print("\n".join(plan["generic"]))
        generic, custom = _plan_cost(plan["generic"]), _plan_cost(plan["custom"])
        verdict = ("would keep planning it with the values (custom plans)" if generic > custom
                   else "could switch to the generic plan")
        print(f"Plan cache: generic cost {generic:,.0f} vs custom {custom:,.0f}: were the statement prepared, "
              f"PostgreSQL {verdict}.")

    if prepared:
        print("\nAs the app ran them (pg_prepared_statements of this process's pooled connections, after the "
              "in-process requests below): " + "; ".join(f"{page} page posts query: {generic} generic-plan, "
                                                         f"{custom} custom-plan executions"
                                                         for page, generic, custom in prepared))
    else:
        print("\nAs the app runs them: no feed statement was ever prepared in this process's pooled connections "
              "(pg_prepared_statements, after 200+ in-process requests). A GET ends its transaction with a "
              "ROLLBACK when\nthe pool takes the connection back, psycopg forgets its per-statement counts on "
              "every rollback, and no statement runs 5 times (prepare_threshold) in one request: every execution "
              "is\nplanned with its values, as the custom plans above, and pays the planning time each time.")

    for name in ("first", "deep"):
        print_breakdown(details[name], f"In this process, the {name} page", statements=name == "first")

    first = sorted(ms for _, ms in pages["samples"]["first"])
    deep = sorted(ms for _, ms in pages["samples"]["deep"])
    first_p50, deep_p50 = harness.percentile(first, 50), harness.percentile(deep, 50)
    ratio = deep_p50 / first_p50 if first_p50 else float("nan")
    met = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"\nfirst page p50 {first_p50:.1f} ms, page 501 p50 {deep_p50:.1f} ms: depth ratio {ratio:.3f} "
          f"(target <= {TARGET_RATIO}: {met})")
    return harness.key_values(depth_ratio=ratio, first_p50_ms=first_p50, deep_p50_ms=deep_p50,
                              first_p95_ms=harness.percentile(first, 95), deep_p95_ms=harness.percentile(deep, 95))
