"""``admin_dashboard``: the organization admin's dashboard (``GET /o/<slug>/admin/dashboard``) of a large
organization, through the production server, against a bare route in the same run; and the plan and timing of
each of its six statements at that size.

Two organizations of the same size in one database (tenants share one in production), each with, written in
SQL as the owner role (under FORCE RLS too, so the transaction sets ``app.tenant_id``), rows as the services
would write them:

========================================================================  ==========
data (per organization)                                                   rows
========================================================================  ==========
members (16 admins, 50 coaches, athletes), joined over the last 26 weeks  5,000
signed-in sessions (three members in five, last seen within 30 days)      3,000
coaches' sessions, one athlete each, every 10 hours going back 26 weeks   20,000
(a few ahead; ~11% cancelled, ~4% no-shows, the past rest ended)
posts in one space, spread evenly over 26 weeks                           100,000
direct messages (2,000 conversations of 100), spread over 26 weeks        200,000
media items (two per member: a video and a PDF)                           10,000
========================================================================  ==========

then ``VACUUM (ANALYZE)``. Each organization, its first admin and its space are made through the services.

Measured (``gunicorn --config gunicorn.conf.py``, gevent, ``WEB_CONCURRENCY`` workers): per round the bare
route (``bench/baseline_app.py``) and the dashboard of the first organization, each a closed-loop run of
``BENCH_CLIENTS`` (16) clients logged in as its 16 admins, ``BENCH_ROUNDS`` rounds (default 2). The page shows
figures kept in Valkey (:func:`coach.governance.dashboard.shown`); each dashboard round starts with them older
than ``FIGURES_TTL``, so every window holds one recount (the product has one a minute per organization), by the
request that takes the lock while the others show the kept figures. ``CPU ms/req`` is gunicorn + PostgreSQL +
Valkey CPU per request (:func:`bench.harness.cpu_ms_per_request`). Statements: one request in this process
(``tests/querycount.py``) after one to warm up, with the figures forgotten (``counted_queries``: the six counted)
and then kept (``queries``); ``tests/test_governance_dashboard.py`` holds both fixed. Before the load, each of the six statements runs under ``EXPLAIN (ANALYZE, BUFFERS)``
as the app's role with the organization's RLS, twice (the second run reported: warm cache), with the scans it
chose.

Last line: ``ratio=... p50_ms=... p95_ms=... queries=... counted_queries=... cpu_ms_per_req=...`` (the
dashboard's; ratio = its req/s ÷ the bare route's), then ``baseline_cpu_ms_per_req`` and ``sql_ms`` (the six statements' execution time
summed, warm).
"""
from __future__ import annotations

import os
import re
import time
import uuid

from bench import harness
from bench.calendar import _log_in

MEMBERS = 5000
ADMINS = 16
COACHES = 50
SESSIONS_PER_COACH = 400  # every 10 hours: ~167 days
POSTS = 100_000
CONVERSATIONS, MESSAGES_EACH = 2000, 100
DAYS = 182  # 26 weeks
SCAN_RE = re.compile(r"((?:Parallel )?Seq Scan on \w+|(?:Index Only Scan|Index Scan|Bitmap Index Scan)"
                     r"(?: Backward)? (?:using|on) \w+(?: on \w+)?)")


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _people(slug: str) -> list[tuple[str, str, str]]:
    people = [(f"admin{i:02d}@{slug}.example", f"Admin {i:02d}", "admin") for i in range(2, ADMINS + 1)]
    people += [(f"coach{i:02d}@{slug}.example", f"Coach {i:02d}", "coach") for i in range(1, COACHES + 1)]
    people += [(f"athlete{i:04d}@{slug}.example", f"Athlete {i:04d}", "athlete")
               for i in range(1, MEMBERS - ADMINS - COACHES + 1)]
    return people


def seed(app, owner_url: str, slug: str) -> tuple[harness.Org, dict, float]:
    """One large organization (see the module's docstring); returns it, its row counts and the seconds taken."""
    import psycopg

    from coach import tenancy
    from coach.accounts.service import create_user
    from coach.extensions import db
    from coach.orgs.service import create_organization, membership_for
    from coach.spaces import service as spaces

    started = time.perf_counter()
    password = uuid.uuid4().hex[:16]
    with app.app_context():
        admin = create_user(f"admin@{slug}.example", password, "Admin 01", "Europe/Berlin")
        org = create_organization(admin, f"Bench {slug}", slug, "Europe/Berlin")
        org_id, password_hash = org.id, admin.password_hash
        tenancy.activate(org_id)
        space = spaces.create_space(org, membership_for(org, admin), "Club news", "Everything", "open")
        space_id = space.id
        db.session.commit()
    people = _people(slug)
    ids = [uuid.uuid4() for _ in people]
    args = {"org": org_id, "space": space_id, "days": DAYS, "per_coach": SESSIONS_PER_COACH, "posts": POSTS,
            "conversations": CONVERSATIONS, "each": MESSAGES_EACH}
    with psycopg.connect(_plain(owner_url)) as conn:
        conn.execute("""
            INSERT INTO users (id, email, password_hash, display_name, timezone)
            SELECT u.id, u.email, %(hash)s, u.name, 'Europe/Berlin'
            FROM unnest(%(ids)s::uuid[], %(emails)s::text[], %(names)s::text[]) AS u(id, email, name)
        """, {"hash": password_hash, "ids": ids, "emails": [p[0] for p in people], "names": [p[1] for p in people]})
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(org_id),))
        # Staff joined before the window; athletes one after another over its 26 weeks.
        conn.execute("""
            INSERT INTO memberships (id, tenant_id, user_id, role, created_at)
            SELECT gen_random_uuid(), %(org)s, u.id, u.role,
                   CASE WHEN u.role = 'athlete'
                        THEN now() - make_interval(secs => (%(n)s - u.n) * (%(days)s * 86400.0 / %(n)s) + 60)
                        ELSE now() - interval '300 days' END
            FROM unnest(%(ids)s::uuid[], %(roles)s::text[]) WITH ORDINALITY AS u(id, role, n)
        """, {**args, "ids": ids, "roles": [p[2] for p in people], "n": len(people)})
        conn.execute("""
            INSERT INTO user_sessions (id, user_id, created_at, last_seen_at, user_agent, ip)
            SELECT gen_random_uuid(), m.user_id, now() - interval '40 days',
                   now() - make_interval(secs => abs(hashtext(m.id::text)::bigint) %% (30 * 86400)), 'bench', ''
            FROM memberships m WHERE m.tenant_id = %(org)s AND abs(hashtext(m.user_id::text)::bigint) %% 5 < 3
        """, args)
        # Coaches' sessions, one athlete each, 10 hours apart (the first few still ahead).
        conn.execute("""
            INSERT INTO offerings (id, tenant_id, coach_membership_id, title, description, duration_minutes)
            SELECT gen_random_uuid(), %(org)s, m.id, 'Private session', 'One to one.', 60
            FROM memberships m WHERE m.tenant_id = %(org)s AND m.role = 'coach'
        """, args)
        conn.execute("""
            CREATE TEMP TABLE bench_sessions ON COMMIT DROP AS
            SELECT gen_random_uuid() AS id, o.coach_membership_id AS coach, o.id AS offering, c.n AS coach_n, g,
                   date_trunc('hour', now()) + make_interval(hours => 40 - g * 10 + (c.n %% 10)::int) AS starts_at
            FROM (SELECT id, coach_membership_id, row_number() OVER (ORDER BY id) AS n FROM offerings
                  WHERE tenant_id = %(org)s) AS c
            JOIN offerings o ON o.id = c.id, generate_series(1, %(per_coach)s) AS g
        """, args)
        conn.execute("""
            INSERT INTO coaching_sessions (id, tenant_id, coach_membership_id, offering_id, starts_at, ends_at,
                                           busy_from, busy_until, capacity, live_seats, created_at)
            SELECT id, %(org)s, coach, offering, starts_at, starts_at + interval '1 hour', starts_at,
                   starts_at + interval '1 hour', 1, CASE WHEN starts_at > now() THEN 1 ELSE 0 END,
                   starts_at - interval '10 days'
            FROM bench_sessions
        """, args)
        conn.execute("""
            INSERT INTO bookings (id, tenant_id, session_id, offering_id, coach_membership_id, athlete_membership_id,
                                  booked_by_membership_id, starts_at, ends_at, status, note, late_cancellation,
                                  cancelled_by_membership_id, confirmed_at, status_changed_at, created_at)
            SELECT gen_random_uuid(), %(org)s, p.id, p.offering, p.coach, a.id, a.id, p.starts_at,
                   p.starts_at + interval '1 hour', s.status, '', false,
                   CASE WHEN s.status = 'cancelled' THEN a.id END,
                   CASE WHEN s.status <> 'cancelled' THEN p.starts_at - interval '2 days' END,
                   CASE WHEN s.status = 'cancelled' THEN p.starts_at - interval '1 day'
                        WHEN s.status = 'confirmed' THEN p.starts_at - interval '2 days'
                        ELSE p.starts_at + interval '1 hour' END,
                   p.starts_at - make_interval(days => 3 + (p.g %% 10)::int)
            FROM bench_sessions AS p,
                 (SELECT array_agg(id ORDER BY id) AS ids FROM memberships
                  WHERE tenant_id = %(org)s AND role = 'athlete') AS m,
                 LATERAL (SELECT m.ids[1 + (p.g * 13 + p.coach_n * 7) %% cardinality(m.ids)] AS id) AS a,
                 LATERAL (SELECT CASE WHEN p.g %% 9 = 0 THEN 'cancelled' WHEN p.starts_at > now() THEN 'confirmed'
                                      WHEN p.g %% 23 = 0 THEN 'no_show' ELSE 'ended' END AS status) AS s
        """, args)
        conn.execute("""
            INSERT INTO posts (id, tenant_id, space_id, author_membership_id, body_source, body_html, created_at,
                               comment_count, flag_count)
            SELECT gen_random_uuid(), %(org)s, %(space)s, m.ids[1 + (i * 7) %% cardinality(m.ids)],
                   'Great session today, well done everyone.', '<p>Great session today, well done everyone.</p>',
                   now() - make_interval(secs => 60 + (i - 1) * (%(days)s * 86400.0 / %(posts)s)), 0, 0
            FROM (SELECT array_agg(id ORDER BY id) AS ids FROM memberships WHERE tenant_id = %(org)s) AS m,
                 generate_series(1, %(posts)s) AS i
        """, args)
        conn.execute("""
            UPDATE spaces SET last_post_at = now() - interval '1 minute' WHERE tenant_id = %(org)s
        """, args)
        conn.execute("""
            CREATE TEMP TABLE bench_direct ON COMMIT DROP AS
            SELECT gen_random_uuid() AS id, least(m.ids[c], m.ids[c + 1]) AS low,
                   greatest(m.ids[c], m.ids[c + 1]) AS high, c
            FROM (SELECT array_agg(id ORDER BY id) AS ids FROM memberships WHERE tenant_id = %(org)s) AS m,
                 generate_series(1, %(conversations)s) AS c
        """, args)
        conn.execute("""
            INSERT INTO conversations (id, tenant_id, kind, member_low_id, member_high_id, last_seq, last_message_at,
                                       created_at)
            SELECT id, %(org)s, 'direct', low, high, %(each)s, now() - interval '1 hour', now() - interval '200 days'
            FROM bench_direct
        """, args)
        # Each conversation's messages in order, all of them spread over the 26 weeks.
        conn.execute("""
            INSERT INTO messages (id, tenant_id, conversation_id, seq, author_membership_id, body, created_at)
            SELECT gen_random_uuid(), %(org)s, d.id, s, CASE WHEN s %% 2 = 1 THEN d.low ELSE d.high END,
                   'See you at the track at 6? ' || s,
                   now() - make_interval(secs => 60 + ((%(each)s::int - s) * %(conversations)s::int + d.c)
                                                       * (%(days)s * 86400.0 / (%(each)s::int * %(conversations)s::int)))
            FROM bench_direct AS d, generate_series(1, %(each)s) AS s
        """, args)
        conn.execute("""
            INSERT INTO media_items (id, tenant_id, owner_membership_id, audience, kind, title, filename, content_type,
                                     status, declared_bytes, size_bytes, derived_bytes, counted_bytes, part_bytes,
                                     part_count, original_key, derived_keys, width, height, duration_ms,
                                     processing_attempts, created_at, upload_expires_at, uploaded_at, ready_at)
            SELECT id, %(org)s, owner, 'staff', kind, 'My ' || kind, 'file.' || ext, ctype, 'ready',
                   2000000, 2000000, 0, 2000000, 2000000, 1, %(org)s || '/' || id || '/original', '{}'::jsonb,
                   NULL, NULL, CASE WHEN kind = 'video' THEN 42000 END, 1, at, at, at, at
            FROM (SELECT gen_random_uuid() AS id, m.id AS owner,
                         CASE WHEN n = 1 THEN 'video' ELSE 'pdf' END AS kind,
                         CASE WHEN n = 1 THEN 'mp4' ELSE 'pdf' END AS ext,
                         CASE WHEN n = 1 THEN 'video/mp4' ELSE 'application/pdf' END AS ctype,
                         now() - make_interval(days => n * 3) AS at
                  FROM memberships m, generate_series(1, 2) AS n WHERE m.tenant_id = %(org)s) AS x
        """, args)
        counts = {table: conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %(org)s", args).fetchone()[0]
                  for table in ("memberships", "bookings", "posts", "messages", "media_items")}
        counts["user_sessions"] = conn.execute(
            "SELECT count(*) FROM user_sessions s JOIN memberships m ON m.user_id = s.user_id "
            "WHERE m.tenant_id = %(org)s", args).fetchone()[0]
        conn.commit()
    org = harness.Org(id=org_id, slug=slug, password=password,
                      members=[(f"admin@{slug}.example", "admin"), *((e, r) for e, _, r in people)])
    return org, counts, time.perf_counter() - started


def _statements(org) -> list[tuple[str, object, dict]]:
    """The dashboard's six statements with the parameters :func:`coach.governance.dashboard.build` gives them."""
    from datetime import timedelta

    from sqlalchemy import text

    from coach import clock
    from coach.governance import dashboard as d

    now = clock.now()
    zone, weeks, start, end = d._window(org, now)
    common = {"tenant_id": org.id, "tz": zone.key}
    window = {**common, "since": start, "until": end}
    usage = text("SELECT coalesce(sum(media_items.counted_bytes), 0) FROM media_items "
                 "WHERE media_items.tenant_id = :tenant_id")
    return [
        ("members by week", d._MEMBERS, {**common, "first_week": weeks[0]}),
        ("active members", d._ACTIVE, {"tenant_id": org.id, "since_7": now - timedelta(days=7),
                                       "since_30": now - timedelta(days=30)}),
        ("bookings by week", d._BOOKINGS, window),
        ("posts and messages by week", d._WRITING, window),
        ("storage (media.usage)", usage, {"tenant_id": org.id}),
        ("top coaches", d._TOP_COACHES, {"tenant_id": org.id, "since": now - timedelta(days=d.TOP_COACH_DAYS),
                                         "until": now, "limit": d.TOP_COACHES}),
    ]


def explain(app, org_id) -> list[dict]:
    """Each statement under ``EXPLAIN (ANALYZE, BUFFERS)`` as the app's role under the organization's RLS (the
    second of two runs), with its execution time, buffers and scans."""
    from sqlalchemy import text

    from coach import tenancy
    from coach.extensions import db
    from coach.orgs.models import Organization

    found = []
    with app.app_context():
        tenancy.activate(org_id)
        org = db.session.get(Organization, org_id)
        for label, statement, params in _statements(org):
            sql = text("EXPLAIN (ANALYZE, BUFFERS) " + statement.text)
            for _ in range(2):
                plan = [row[0] for row in db.session.execute(sql, params)]
            total = next(float(line.split()[-2]) for line in plan if line.startswith("Execution Time"))
            planning = next(float(line.split()[-2]) for line in plan if line.startswith("Planning Time"))
            top = next((line for line in plan if "Buffers:" in line), "")  # the top node's: the statement's
            hits, reads = re.search(r"shared hit=(\d+)", top), re.search(r"read=(\d+)", top)
            found.append({"label": label, "ms": total, "planning_ms": planning, "plan": plan,
                          "buffers": int(hits.group(1)) if hits else 0, "read": int(reads.group(1)) if reads else 0,
                          "scans": sorted(set(SCAN_RE.findall("\n".join(plan))))})
        db.session.rollback()
    return found


def _in_process(app, email: str, password: str, path: str) -> dict:
    """Statements and bytes of one request of the dashboard (after one to warm up), checked for its charts."""
    from tests.querycount import statements_for

    from coach.governance import dashboard

    client = app.test_client()
    _log_in(client, email, password)
    statements_for(app, client, path)
    with app.app_context():
        org_id = db_org_id(path)
        dashboard.forget(org_id)
    t0 = time.perf_counter()
    counted = statements_for(app, client, path)
    counted_ms = (time.perf_counter() - t0) * 1000
    queries = statements_for(app, client, path)
    response = client.get(path)
    body = response.get_data(as_text=True)
    if response.status_code != 200 or "Top coaches" not in body and "top coaches" not in body.lower():
        raise RuntimeError(f"{path}: status {response.status_code}, no dashboard")
    times = []
    for _ in range(9):
        t0 = time.process_time()
        client.get(path)
        times.append((time.process_time() - t0) * 1000)
    return {"queries": queries, "counted_queries": counted, "counted_app_cpu_ms": counted_ms, "bytes": len(body),
            "app_cpu_ms": sorted(times)[4]}


def _age(dashboard, org_id) -> None:
    """Make the kept figures of ``org_id`` older than :data:`coach.governance.dashboard.FIGURES_TTL`."""
    import json
    from datetime import datetime, timedelta

    from coach.platform.queues import redis_conn

    key = dashboard._key(org_id)
    figures = json.loads(redis_conn().get(key))
    figures["as_of"] = (datetime.fromisoformat(figures["as_of"]) - timedelta(seconds=2 * dashboard.FIGURES_TTL)
                        ).isoformat()
    redis_conn().set(key, json.dumps(figures), ex=dashboard.FIGURES_KEPT)


def db_org_id(path: str):
    from sqlalchemy import select

    from coach.extensions import db
    from coach.orgs.models import Organization

    return db.session.scalar(select(Organization.id).where(Organization.slug == path.split("/")[2]))


def run() -> str:
    clients = harness.env_int("BENCH_CLIENTS", 16)
    rounds = max(1, harness.env_int("BENCH_ROUNDS", 2))
    harness.header("admin_dashboard")
    runs: list[tuple[str, dict]] = []
    with harness.running_stack() as bench:
        os.environ.update({k: bench.env[k] for k in ("RATELIMIT_ENABLED", "SESSION_COOKIE_SECURE")})
        app = harness.make_app()
        seeded = []
        for slug in ("bench-large", "bench-other"):
            harness.say(f"seeding {slug}: {MEMBERS:,} members, {COACHES * SESSIONS_PER_COACH:,} bookings, "
                        f"{POSTS:,} posts, {CONVERSATIONS * MESSAGES_EACH:,} messages over 26 weeks")
            seeded.append(seed(app, bench.stack.owner_url, slug))
        import psycopg

        from coach.governance import dashboard
        with psycopg.connect(_plain(bench.stack.owner_url), autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        org, counts, seconds = seeded[0]
        path = f"/o/{org.slug}/admin/dashboard"
        admins = [email for email, role in org.members if role == "admin"]
        plans = explain(app, org.id)
        found = _in_process(app, admins[0], org.password, path)
        logins = [{"email": email, "password": org.password} for email in admins]
        baseline = bench.start_gunicorn("baseline", "bench.baseline_app:app", ready_path="/")
        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        for n in range(1, rounds + 1):
            harness.say(f"round {n}/{rounds}: baseline GET / with {clients} clients")
            runs.append(("baseline", harness.run_load(port=baseline.port, path="/", clients=clients,
                                                      meter={"server": baseline.process.pid, **services})))
            # Each round starts with the kept figures out of date: one recount in every window (the request that
            # takes the lock; the others show the kept figures meanwhile), where the product has one a minute.
            with app.app_context():
                _age(dashboard, org.id)
            harness.say(f"round {n}/{rounds}: dashboard GET {path} with {clients} admin clients (figures aged)")
            runs.append(("dashboard", harness.run_load(port=web.port, path=path, clients=clients, logins=logins,
                                                       meter={"server": web.process.pid, **services})))

    def pooled(name: str) -> dict:
        results = [r for side, r in runs if side == name]
        requests = sum(r["requests"] for r in results)
        seconds_ = sum(r["seconds"] for r in results)
        latencies = sorted(v for r in results for v in r["latencies_ms"])
        return {"requests": requests, "rps": requests / seconds_ if seconds_ else float("nan"),
                "p50": harness.percentile(latencies, 50), "p95": harness.percentile(latencies, 95),
                "cpu": harness.cpu_ms_per_request(results), "errors": sum(sum(r["errors"].values()) for r in results),
                "others": sum(r["cpu"].get("others", 0.0) for r in results) / max(1, len(results))}

    figures = {name: pooled(name) for name in ("baseline", "dashboard")}
    base, page = figures["baseline"], figures["dashboard"]
    print()
    print("data per organization (two in the database): " + ", ".join(f"{v:,} {k}" for k, v in counts.items())
          + f"; each seeded in {seconds:.0f} s")
    print()
    harness.print_table(["statement", "exec ms", "plan ms", "buffers hit", "read", "scans"],
                        [[p["label"], f"{p['ms']:.2f}", f"{p['planning_ms']:.2f}", p["buffers"], p["read"],
                          "; ".join(p["scans"])] for p in plans])
    print()
    rows = []
    for name, label in (("baseline", "bare route GET / (baseline)"), ("dashboard", "admin dashboard (16 admins)")):
        f = figures[name]
        rows.append([label, found["queries"] if name == "dashboard" else "-",
                     f"{found['bytes'] / 1024:.0f}" if name == "dashboard" else "-", f["requests"], f["rps"],
                     f["rps"] / base["rps"] if base["rps"] else float("nan"), f["p50"], f["p95"], f"{f['cpu']:.2f}",
                     f["errors"], f"{f['others']:.2f}"])
    harness.print_table(["page", "queries", "KB", "requests", "req/s", "ratio", "p50 ms", "p95 ms", "CPU ms/req",
                         "errors", "others"], rows)
    print(f"'ratio': the page's req/s / the bare route's; 'CPU ms/req': gunicorn + PostgreSQL + Valkey CPU per "
          f"request; 'others': CPU no process of this benchmark used (cores of {os.cpu_count()}, mean of the "
          f"runs): read it before trusting a figure. In-process app CPU per request (median of 9, test client, "
          f"PostgreSQL's time not included): {found['app_cpu_ms']:.1f} ms with the figures kept, "
          f"{found['counted_app_cpu_ms']:.0f} ms (wall: PostgreSQL included) and {found['counted_queries']} statements "
          f"when it counts them.")
    return harness.key_values(
        ratio=page["rps"] / base["rps"], p50_ms=page["p50"], p95_ms=page["p95"], queries=found["queries"],
        counted_queries=found["counted_queries"], cpu_ms_per_req=page["cpu"], baseline_cpu_ms_per_req=base["cpu"], sql_ms=sum(p["ms"] for p in plans))
