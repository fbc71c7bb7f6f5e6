"""``athlete_page``: the coach's page of one athlete with two years of history, and that athlete's timeline at
page 50, through the production server, against a bare route in the same run.

The athlete (:func:`seed_athlete`, which ``bench report`` reuses) has, written in SQL as the owner role (under
FORCE RLS too, so the transaction sets ``app.tenant_id``), rows as the services would write them:

=========================================================  ==========
data                                                       rows
=========================================================  ==========
daily readiness check-ins (two years, a few days skipped)  ~700
ended sessions (one every ~2.4 days), each with a signed   300
session record of 10 skill levels (a 20-skill framework)   3,000 levels
current proficiency (latest signed level per skill)        20
goals with a metric, ~40 logged values and 3 milestones    5
habits with a year of check-ins                            2
programs (8 weeks x 5 days x 4 exercises) assigned, one    2
finished and one under way, with logged workouts           ~90 logs
private coach notes                                        20
timeline entries (one per session, record, check-in,       ~1,500
logged workout, goal reached, milestone, program, note)
=========================================================  ==========

then ``VACUUM (ANALYZE)``. The organization (admin, two coaches, athletes) is made through the services.

Measured (``gunicorn --config gunicorn.conf.py``, gevent, ``WEB_CONCURRENCY`` workers): per round the bare
route (``bench/baseline_app.py``), the athlete page ``/o/<slug>/progress/athletes/<id>`` and the timeline's page
50 ``.../timeline?before=<cursor>`` (the cursor of page 49's last entry, as 49 "Older entries" clicks reach it),
each a closed-loop run of ``BENCH_CLIENTS`` (16) clients logged in as the organization's staff (the admin and
both coaches), ``BENCH_ROUNDS`` rounds (default 2). ``CPU ms/req`` is gunicorn + PostgreSQL + Valkey CPU per
request (:func:`bench.harness.cpu_ms_per_request`). Statements per page: one request of each in this process
(``tests/querycount.py``) after one to warm up; ``tests/test_progress_timeline.py`` holds both to fixed counts.

Last line: ``ratio=... p95_ms=... queries=...`` for the athlete page (ratio = its req/s ÷ the bare route's), then
the same for the timeline's page 50 (``timeline_*``) and CPU per request.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

from bench import harness
from bench.calendar import _log_in

ENTRY_RE = re.compile(r'<li class="timeline-entry ')
DAYS = 730
SESSIONS = 300
SKILLS_PER_RECORD = 10


@dataclass
class AthleteSeed:
    """What :func:`seed_athlete` made: the organization, the athlete and the staff who open the page."""

    org: harness.Org
    athlete_id: object
    athlete_email: str
    coach_id: object
    coach_email: str
    staff_emails: list[str]
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def seed_athlete(app, org: harness.Org, owner_url: str | None = None):
    """Two years of history for ``athlete01`` of ``org`` (made by :func:`bench.harness.seed_org`), coached by
    ``coach01``, in SQL as the owner role (``owner_url``, by default ``DATABASE_OWNER_URL`` as
    :func:`bench.harness.running_stack` sets it); a few seconds. Returns the athlete's membership id. See the
    module's docstring for what is written."""
    return _seed_history(app, org, owner_url or os.environ["DATABASE_OWNER_URL"])[0]


def _seed_history(app, org: harness.Org, owner_url: str) -> tuple:
    import psycopg
    from sqlalchemy import select

    from coach import tenancy
    from coach.extensions import db
    from coach.orgs.models import Membership

    with app.app_context():
        tenancy.activate(org.id)
        members = {m.user.email: m.id for m in db.session.scalars(select(Membership).where(
            Membership.tenant_id == org.id))}
    athlete, coach = members[f"athlete01@{org.slug}.example"], members[f"coach01@{org.slug}.example"]
    args = {"org": org.id, "athlete": athlete, "coach": coach, "days": DAYS, "sessions": SESSIONS,
            "per_record": SKILLS_PER_RECORD}
    with psycopg.connect(_plain(owner_url)) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(org.id),))
        for statement in _SEED:
            conn.execute(statement, args)
        counts = {table: conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %(org)s", args).fetchone()[0]
                  for table in ("readiness_checkins", "bookings", "session_records", "record_skill_levels", "goals",
                                "goal_values", "habit_checkins", "workout_logs", "coach_notes", "timeline_entries")}
        conn.commit()
    with psycopg.connect(_plain(owner_url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return athlete, coach, counts


def seed(app, owner_url: str, slug: str = "bench-athlete") -> AthleteSeed:
    """The organization (through the services: an admin, two coaches, athletes) and the athlete's history."""
    started = time.perf_counter()
    org = harness.seed_org(app, slug=slug, members=12, coaches=2)
    athlete, coach, counts = _seed_history(app, org, owner_url)
    staff = [email for email, role in org.members if role in ("admin", "coach")]
    return AthleteSeed(org, athlete, f"athlete01@{slug}.example", coach, f"coach01@{slug}.example", staff, counts,
                       time.perf_counter() - started)


# The athlete's local "today" (Europe/Berlin, as seed_org makes every member) and their history, oldest first.
_SEED = [
    # A framework of 4 areas x 5 skills on a 4-level scale.
    """INSERT INTO skill_frameworks (id, tenant_id, title, description, scale)
       VALUES (gen_random_uuid(), %(org)s, 'Tennis', 'Strokes, serve, movement and match play.',
               '["Introduced", "Practised", "Competent", "Proficient"]')""",
    """INSERT INTO skill_areas (id, tenant_id, framework_id, title, position)
       SELECT gen_random_uuid(), %(org)s, f.id, a.title, a.n
       FROM skill_frameworks f, unnest(ARRAY['Serve', 'Forehand', 'Backhand', 'Movement']) WITH ORDINALITY a(title, n)
       WHERE f.tenant_id = %(org)s""",
    """INSERT INTO skills (id, tenant_id, framework_id, area_id, title, required_level, position)
       SELECT gen_random_uuid(), %(org)s, a.framework_id, a.id, a.title || ' ' || s, 3, s
       FROM skill_areas a, generate_series(1, 5) s WHERE a.tenant_id = %(org)s""",
    # 300 ended sessions of coach01 with the athlete, one every ~2.4 days going back two years.
    """INSERT INTO offerings (id, tenant_id, coach_membership_id, title, description, duration_minutes)
       VALUES (gen_random_uuid(), %(org)s, %(coach)s, 'Private session', 'One to one.', 60)""",
    """CREATE TEMP TABLE bench_sessions ON COMMIT DROP AS
       SELECT gen_random_uuid() AS session_id, gen_random_uuid() AS booking_id, gen_random_uuid() AS record_id, n,
              date_trunc('hour', now()) - make_interval(hours => (n * %(days)s * 24 / %(sessions)s)::int + 30)
                AS starts_at
       FROM generate_series(1, %(sessions)s) n""",
    """INSERT INTO coaching_sessions (id, tenant_id, coach_membership_id, offering_id, starts_at, ends_at, busy_from,
                                      busy_until, capacity, live_seats)
       SELECT s.session_id, %(org)s, %(coach)s, o.id, s.starts_at, s.starts_at + interval '1 hour', s.starts_at,
              s.starts_at + interval '1 hour', 1, 0
       FROM bench_sessions s, offerings o WHERE o.tenant_id = %(org)s""",
    """INSERT INTO bookings (id, tenant_id, session_id, offering_id, coach_membership_id, athlete_membership_id,
                             booked_by_membership_id, starts_at, ends_at, status, confirmed_at, status_changed_at,
                             created_at)
       SELECT s.booking_id, %(org)s, s.session_id, o.id, %(coach)s, %(athlete)s, %(athlete)s, s.starts_at,
              s.starts_at + interval '1 hour', 'ended', s.starts_at - interval '2 days',
              s.starts_at + interval '1 hour', s.starts_at - interval '3 days'
       FROM bench_sessions s, offerings o WHERE o.tenant_id = %(org)s""",
    # Each session's record: written as a draft with 10 levels, then signed (the lock allows that order only).
    """INSERT INTO session_records (id, tenant_id, booking_id, athlete_membership_id, coach_membership_id, framework_id,
                                    notes_md, notes_html, homework_md, homework_html, session_at, created_at,
                                    updated_at)
       SELECT s.record_id, %(org)s, s.booking_id, %(athlete)s, %(coach)s, f.id,
              'Worked on the **toss** and the split step.', '<p>Worked on the <strong>toss</strong> and the split step.</p>',
              '3 x 20 serves to the T.', '<p>3 x 20 serves to the T.</p>', s.starts_at,
              s.starts_at + interval '1 hour', s.starts_at + interval '1 hour'
       FROM bench_sessions s, skill_frameworks f WHERE f.tenant_id = %(org)s""",
    """INSERT INTO record_skill_levels (id, tenant_id, record_id, skill_id, level, note)
       SELECT gen_random_uuid(), %(org)s, s.record_id, k.id,
              least(4, 1 + ((%(sessions)s - s.n) * 3 / %(sessions)s) + (k.rank + s.n) %% 2), ''
       FROM bench_sessions s
       JOIN (SELECT id, (row_number() OVER (ORDER BY position, title)) - 1 AS rank FROM skills
             WHERE tenant_id = %(org)s) k ON (k.rank - s.n * 7 %% 20 + 20) %% 20 < %(per_record)s""",
    """UPDATE session_records SET status = 'signed', signed_at = session_at + interval '2 hours',
              signed_by_membership_id = coach_membership_id
       WHERE tenant_id = %(org)s AND athlete_membership_id = %(athlete)s""",
    """INSERT INTO athlete_skill_levels (id, tenant_id, athlete_membership_id, skill_id, level, record_id, observed_at)
       SELECT DISTINCT ON (l.skill_id) gen_random_uuid(), %(org)s, %(athlete)s, l.skill_id, l.level, r.id, r.session_at
       FROM record_skill_levels l JOIN session_records r ON r.tenant_id = l.tenant_id AND r.id = l.record_id
       WHERE l.tenant_id = %(org)s ORDER BY l.skill_id, r.session_at DESC""",
    # Two years of daily readiness (every 23rd day skipped), a weekly rhythm and some noise.
    """INSERT INTO readiness_checkins (id, tenant_id, athlete_membership_id, on_date, sleep_hours, energy, mood, stress,
                                       soreness, note, score, created_at, updated_at)
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, d, 6 + (d - DATE '2000-01-01') %% 4 * 0.5,
              2 + (d - DATE '2000-01-01') %% 4, 3 + (d - DATE '2000-01-01') %% 3, 1 + (d - DATE '2000-01-01') %% 3,
              1 + (d - DATE '2000-01-01') %% 4, CASE WHEN extract(dow FROM d) = 1 THEN 'Heavy legs after the weekend.'
              ELSE '' END,
              round((3.2 + ((d - DATE '2000-01-01') %% 7) * 0.2 - ((d - DATE '2000-01-01') %% 3) * 0.15)::numeric, 2),
              d + time '07:30', d + time '07:30'
       FROM generate_series((now() AT TIME ZONE 'Europe/Berlin')::date - %(days)s + 1,
                            (now() AT TIME ZONE 'Europe/Berlin')::date, interval '1 day') AS g(d0),
            LATERAL (SELECT g.d0::date AS d) x
       WHERE (d - DATE '2000-01-01') %% 23 <> 0""",
    # Five goals over the two years, two of them done, each with weekly values and three milestones.
    """INSERT INTO goals (id, tenant_id, athlete_membership_id, created_by_membership_id, title, description,
                          target_date, metric_unit, metric_start, metric_target, direction, status, completed_at,
                          created_at)
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, %(coach)s, t.title, 'Measured in training.',
              (now() AT TIME ZONE 'Europe/Berlin')::date + (t.n * 40 - 100), t.unit, t.start, t.target,
              CASE WHEN t.target > t.start THEN 'up' ELSE 'down' END,
              CASE WHEN t.n <= 2 THEN 'done' ELSE 'active' END,
              CASE WHEN t.n <= 2 THEN now() - make_interval(days => 200 / t.n) END,
              now() - make_interval(days => 700 - t.n * 100)
       FROM (VALUES (1, 'First serve in', '%%', 45, 65), (2, 'Squat', 'kg', 60, 100), (3, '5 km run', 'min', 28, 23),
                    (4, 'Serve speed', 'km/h', 140, 170), (5, 'Rally length', 'shots', 6, 15))
            AS t(n, title, unit, start, target)""",
    """INSERT INTO goal_values (id, tenant_id, goal_id, value, logged_on, logged_by_membership_id, created_at)
       SELECT gen_random_uuid(), %(org)s, g.id,
              round(g.metric_start + (g.metric_target - g.metric_start) * w / 60.0 + (w %% 3) * 0.5, 2),
              g.created_at::date + w * 7, %(athlete)s, g.created_at + make_interval(days => w * 7)
       FROM goals g, generate_series(0, 39) w
       WHERE g.tenant_id = %(org)s AND g.created_at + make_interval(days => w * 7) < now()""",
    """INSERT INTO goal_milestones (id, tenant_id, goal_id, title, position, due_date, completed_at)
       SELECT gen_random_uuid(), %(org)s, g.id, 'Step ' || m, m, g.target_date - (3 - m) * 30,
              CASE WHEN m = 1 OR g.status = 'done' THEN g.created_at + make_interval(days => m * 40) END
       FROM goals g, generate_series(1, 3) m WHERE g.tenant_id = %(org)s""",
    # Two habits ticked most days of the last year.
    """INSERT INTO habits (id, tenant_id, athlete_membership_id, created_by_membership_id, title, frequency,
                           times_per_week, reminder_minute, created_at)
       VALUES (gen_random_uuid(), %(org)s, %(athlete)s, %(coach)s, 'Stretch 10 minutes', 'daily', NULL, 1200,
               now() - interval '365 days'),
              (gen_random_uuid(), %(org)s, %(athlete)s, %(coach)s, 'Shadow swings', 'weekly', 3, NULL,
               now() - interval '365 days')""",
    """INSERT INTO habit_checkins (id, tenant_id, habit_id, on_date, created_at)
       SELECT gen_random_uuid(), %(org)s, h.id, d::date, d + time '20:00'
       FROM habits h, generate_series((now() AT TIME ZONE 'Europe/Berlin')::date - 364,
                                      (now() AT TIME ZONE 'Europe/Berlin')::date - 1, interval '1 day') d
       WHERE h.tenant_id = %(org)s AND ((d::date - DATE '2000-01-01') %% 5 <> 0)
         AND (h.frequency = 'daily' OR (d::date - DATE '2000-01-01') %% 2 = 0)""",
    # Ten exercises; two 8-week programs (Monday to Friday, four exercises a day); the first assigned 16 weeks
    # ago (finished), the second 3 weeks ago (under way); most past workouts logged.
    """INSERT INTO exercises (id, tenant_id, title, created_by_membership_id)
       SELECT gen_random_uuid(), %(org)s, t, %(coach)s
       FROM unnest(ARRAY['Back squat', 'Deadlift', 'Split squat', 'Box jump', 'Med ball throw', 'Pull-up',
                         'Row 500 m', 'Plank', 'Band external rotation', 'Sprint 30 m']) t""",
    """INSERT INTO programs (id, tenant_id, title, description, weeks, created_by_membership_id)
       VALUES (gen_random_uuid(), %(org)s, 'Base block', 'Strength base.', 8, %(coach)s),
              (gen_random_uuid(), %(org)s, 'Power block', 'Speed and power.', 8, %(coach)s)""",
    """INSERT INTO program_workouts (id, tenant_id, program_id, week, day, position, title)
       SELECT gen_random_uuid(), %(org)s, p.id, w, d, 0, p.title || ' W' || w || 'D' || d
       FROM programs p, generate_series(1, 8) w, generate_series(1, 5) d WHERE p.tenant_id = %(org)s""",
    """INSERT INTO workout_exercises (id, tenant_id, workout_id, exercise_id, position, sets, reps, load_kg, rest_s)
       SELECT gen_random_uuid(), %(org)s, pw.id, e.id, e.rank, 4, 6 + pw.week, 40 + pw.week * 2.5, 120
       FROM program_workouts pw
       JOIN (SELECT id, (row_number() OVER (ORDER BY title)) - 1 AS rank FROM exercises WHERE tenant_id = %(org)s) e
         ON (e.rank - pw.day * 2 + 20) %% 10 < 4
       WHERE pw.tenant_id = %(org)s""",
    """INSERT INTO program_assignments (id, tenant_id, program_id, athlete_membership_id, start_date,
                                        assigned_by_membership_id, created_at)
       SELECT gen_random_uuid(), %(org)s, p.id, %(athlete)s,
              date_trunc('week', now() AT TIME ZONE 'Europe/Berlin')::date
                - CASE WHEN p.title = 'Base block' THEN 112 ELSE 21 END,
              %(coach)s, now() - CASE WHEN p.title = 'Base block' THEN interval '113 days' ELSE interval '22 days' END
       FROM programs p WHERE p.tenant_id = %(org)s""",
    """INSERT INTO workout_logs (id, tenant_id, assignment_id, workout_id, athlete_membership_id, scheduled_on, status,
                                 rpe, note, logged_at, updated_at)
       SELECT gen_random_uuid(), %(org)s, a.id, pw.id, %(athlete)s, x.on_date,
              CASE WHEN x.h %% 10 < 7 THEN 'done' WHEN x.h %% 10 < 9 THEN 'partial' ELSE 'skipped' END,
              5 + x.h %% 4, '', x.on_date + time '18:30', x.on_date + time '18:30'
       FROM program_assignments a
       JOIN program_workouts pw ON pw.tenant_id = a.tenant_id AND pw.program_id = a.program_id,
            LATERAL (SELECT a.start_date + (pw.week - 1) * 7 + (pw.day - 1) AS on_date,
                            abs(hashtext(pw.id::text)) AS h) x
       WHERE a.tenant_id = %(org)s AND x.on_date < (now() AT TIME ZONE 'Europe/Berlin')::date AND x.h %% 20 <> 0""",
    # Twenty private notes.
    """INSERT INTO coach_notes (id, tenant_id, athlete_membership_id, author_membership_id, body_md, body_html,
                                created_at)
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, %(coach)s, 'Note ' || n || ': watch the **left knee**.',
              '<p>Note ' || n || ': watch the <strong>left knee</strong>.</p>', now() - make_interval(days => n * 35)
       FROM generate_series(1, 20) n""",
    # The timeline: one entry per thing, as each domain writes it.
    """INSERT INTO timeline_entries (id, tenant_id, athlete_membership_id, occurred_at, kind, subject_id, title, detail,
                                     coaches_only)
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, starts_at, 'session', id, 'Session: Private session',
              '60 min with Coach 01', false
       FROM bookings WHERE tenant_id = %(org)s AND athlete_membership_id = %(athlete)s
       UNION ALL
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, signed_at, 'record', id, 'Session record signed',
              '10 skills observed', false
       FROM session_records WHERE tenant_id = %(org)s AND athlete_membership_id = %(athlete)s
       UNION ALL
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, created_at, 'readiness', id, 'Readiness ' || score, note, false
       FROM readiness_checkins WHERE tenant_id = %(org)s AND athlete_membership_id = %(athlete)s
       UNION ALL
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, l.logged_at, 'workout', l.id, 'Workout: ' || w.title,
              initcap(l.status) || ', RPE ' || l.rpe, false
       FROM workout_logs l JOIN program_workouts w ON w.tenant_id = l.tenant_id AND w.id = l.workout_id
       WHERE l.tenant_id = %(org)s
       UNION ALL
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, completed_at, 'goal', id, 'Goal reached: ' || title, '', false
       FROM goals WHERE tenant_id = %(org)s AND status = 'done'
       UNION ALL
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, m.completed_at, 'milestone', m.id, 'Milestone: ' || m.title,
              g.title, false
       FROM goal_milestones m JOIN goals g ON g.tenant_id = m.tenant_id AND g.id = m.goal_id
       WHERE m.tenant_id = %(org)s AND m.completed_at IS NOT NULL
       UNION ALL
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, a.created_at, 'program', a.id, 'Program assigned: ' || p.title,
              '8 weeks', false
       FROM program_assignments a JOIN programs p ON p.tenant_id = a.tenant_id AND p.id = a.program_id
       WHERE a.tenant_id = %(org)s
       UNION ALL
       SELECT gen_random_uuid(), %(org)s, %(athlete)s, created_at, 'note', id, 'Note by Coach 01',
              'Watch the left knee.', true
       FROM coach_notes WHERE tenant_id = %(org)s""",
]


def _page_50(owner_url: str, seeded: AthleteSeed) -> str:
    """The timeline's page 50 as staff reach it: after the cursor of entry 980 (page 49's last)."""
    import psycopg

    from coach.platform.pagination import encode_cursor
    from coach.progress.athletes import PAGE_SIZE

    with psycopg.connect(_plain(owner_url)) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(seeded.org.id),))
        at, entry_id = conn.execute(
            "SELECT occurred_at, id FROM timeline_entries WHERE tenant_id = %s AND athlete_membership_id = %s "
            "ORDER BY occurred_at DESC, id DESC OFFSET %s LIMIT 1",
            (seeded.org.id, seeded.athlete_id, 49 * PAGE_SIZE - 1)).fetchone()
    return encode_cursor(at, entry_id)


def _in_process(app, seeded: AthleteSeed, paths: dict[str, str]) -> dict:
    """Statements and bytes of one request of each page (after one to warm up), checked for what it shows."""
    from coach.progress.athletes import PAGE_SIZE
    from tests.querycount import statements_for

    client = app.test_client()
    _log_in(client, seeded.coach_email, seeded.org.password)
    found = {}
    for name, path in paths.items():
        statements_for(app, client, path)
        queries = statements_for(app, client, path)
        body = client.get(path).get_data(as_text=True)
        entries = len(ENTRY_RE.findall(body))
        if entries != PAGE_SIZE:
            raise RuntimeError(f"{name} shows {entries} timeline entries, not {PAGE_SIZE}")
        found[name] = {"queries": queries, "bytes": len(body)}
    return found


def run() -> str:
    clients = harness.env_int("BENCH_CLIENTS", 16)
    rounds = max(1, harness.env_int("BENCH_ROUNDS", 2))
    harness.header("athlete_page")
    runs: list[tuple[str, dict]] = []
    with harness.running_stack() as bench:
        os.environ.update({k: bench.env[k] for k in ("RATELIMIT_ENABLED", "SESSION_COOKIE_SECURE")})
        app = harness.make_app()
        harness.say("seeding the athlete: two years of check-ins, 300 sessions with signed records, goals, programs")
        seeded = seed(app, bench.stack.owner_url)
        page = f"/o/{seeded.org.slug}/progress/athletes/{seeded.athlete_id}"
        paths = {"athlete": page, "timeline50": f"{page}/timeline?before={_page_50(bench.stack.owner_url, seeded)}"}
        found = _in_process(app, seeded, paths)
        logins = [{"email": email, "password": seeded.org.password} for email in seeded.staff_emails]
        baseline = bench.start_gunicorn("baseline", "bench.baseline_app:app", ready_path="/")
        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        for n in range(1, rounds + 1):
            harness.say(f"round {n}/{rounds}: baseline GET / with {clients} clients")
            runs.append(("baseline", harness.run_load(port=baseline.port, path="/", clients=clients,
                                                      meter={"server": baseline.process.pid, **services})))
            for name, path in paths.items():
                harness.say(f"round {n}/{rounds}: {name} GET {path[:90]} with {clients} staff clients")
                runs.append((name, harness.run_load(port=web.port, path=path, clients=clients, logins=logins,
                                                    meter={"server": web.process.pid, **services})))

    def pooled(name: str) -> dict:
        results = [r for side, r in runs if side == name]
        requests = sum(r["requests"] for r in results)
        seconds = sum(r["seconds"] for r in results)
        latencies = sorted(v for r in results for v in r["latencies_ms"])
        return {"requests": requests, "rps": requests / seconds if seconds else float("nan"),
                "p50": harness.percentile(latencies, 50), "p95": harness.percentile(latencies, 95),
                "cpu": harness.cpu_ms_per_request(results), "errors": sum(sum(r["errors"].values()) for r in results),
                "others": sum(r["cpu"].get("others", 0.0) for r in results) / max(1, len(results))}

    figures = {name: pooled(name) for name in ("baseline", *paths)}
    base = figures["baseline"]
    print()
    print("data: " + ", ".join(f"{v:,} {k}" for k, v in seeded.counts.items()) + f"; seeded in {seeded.seconds:.0f} s")
    print()
    labels = {"baseline": "bare route GET / (baseline)", "athlete": "athlete page (coach)",
              "timeline50": "timeline page 50 (coach)"}
    rows = []
    for name, f in figures.items():
        rows.append([labels[name], found.get(name, {}).get("queries", "-"),
                     f"{found[name]['bytes'] / 1024:.0f}" if name in found else "-", f["requests"], f["rps"],
                     f["rps"] / base["rps"] if base["rps"] else float("nan"), f["p50"], f["p95"], f"{f['cpu']:.2f}",
                     f["errors"], f"{f['others']:.2f}"])
    harness.print_table(["page", "queries", "KB", "requests", "req/s", "ratio", "p50 ms", "p95 ms", "CPU ms/req",
                         "errors", "others"], rows)
    print(f"'ratio': the page's req/s / the bare route's; 'CPU ms/req': gunicorn + PostgreSQL + Valkey CPU per "
          f"request; 'others': CPU no process of this benchmark used (cores of {os.cpu_count()}, mean of the "
          f"runs): read it before trusting a figure.")
    athlete, deep = figures["athlete"], figures["timeline50"]
    return harness.key_values(
        ratio=athlete["rps"] / base["rps"], p95_ms=athlete["p95"], queries=found["athlete"]["queries"],
        cpu_ms_per_req=athlete["cpu"], timeline_ratio=deep["rps"] / base["rps"], timeline_p95_ms=deep["p95"],
        timeline_queries=found["timeline50"]["queries"], timeline_cpu_ms_per_req=deep["cpu"],
        baseline_cpu_ms_per_req=base["cpu"])
