"""``calendar``: an athlete's week calendar of an offering (``GET /o/<slug>/offerings/<id>?week=``) vs a bare route.

Both are served by ``gunicorn --config gunicorn.conf.py`` (gevent, ``WEB_CONCURRENCY`` workers) in
the same run, like ``dashboard``. The organization has 50 members; the coach whose offering is shown
keeps realistic data, all made through the services:

* Europe/Berlin, 10 weekly intervals (two on Monday, Wednesday and Friday, one on the other days),
  3 date overrides (one closed day and one shorter day in the measured week, one in the week after)
  and one afternoon of time off;
* a 60-minute offering (the page measured) and a 45-minute one, ~50 bookings of both in the
  measured week and the two weeks after it, about half confirmed, a few cancelled.

The page is the week after the current one (``?week=`` its Monday), requested by 16 logged-in
athletes (``BENCH_CLIENTS``), each with its own session. Baseline and page take turns for
``BENCH_ROUNDS`` rounds (default 2).

Afterwards the same page is requested in this process through Flask's test client (no server):
timed per phase (SQL, loading the slot rules, computing slots, rendering the templates) and once
under cProfile, to show where a request's time goes.

Target: ratio = page req/s ÷ baseline req/s >= 0.5. Last line: ``ratio=... p95_ms=...`` (the page's
latency, all rounds pooled) plus p50 and both req/s.
"""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from bench import harness
from bench.load import CSRF_RE

TARGET_RATIO = 0.5
MEMBERS = 50
LOGGED_IN = 16
ZONE = ZoneInfo("Europe/Berlin")
BOOKINGS = 50
PROFILE_REQUESTS = 50

# weekday → (start, end) in minutes, Berlin: ten intervals.
WEEKLY = [(0, 8 * 60, 12 * 60), (0, 14 * 60, 18 * 60), (1, 9 * 60, 17 * 60), (2, 7 * 60, 11 * 60),
          (2, 15 * 60, 20 * 60), (3, 10 * 60, 18 * 60), (4, 8 * 60, 12 * 60), (4, 13 * 60, 16 * 60),
          (5, 9 * 60, 13 * 60), (6, 16 * 60, 19 * 60)]
OFFERING = dict(description="Technique, video analysis and a plan for the week.", price_minor=6000, currency="EUR",
                location="Court 1", meeting_url="", capacity=1, auto_confirm=False, buffer_before_minutes=0,
                buffer_after_minutes=0, min_notice_minutes=120, max_per_day=None, horizon_days=60,
                cancellation_window_hours=24)


def next_monday() -> date:
    """The Monday after this week in the athletes' zone (Europe/Berlin), as the page's ``parse_week`` sees it."""
    today = datetime.now(timezone.utc).astimezone(ZONE).date()
    return today - timedelta(days=today.weekday()) + timedelta(days=7)


def _seed(app, org: harness.Org) -> tuple[str, dict]:
    """The coach's calendar, offerings and bookings; returns the measured offering's id and counts."""
    from sqlalchemy import select

    from coach import tenancy
    from coach.booking import service
    from coach.booking.models import Booking
    from coach.extensions import db
    from coach.orgs.models import Membership

    monday = next_monday()
    with app.app_context():
        tenancy.activate(org.id)
        members = {m.user.email: m for m in db.session.scalars(select(Membership).where(
            Membership.tenant_id == org.id))}
        coach = members[f"coach01@{org.slug}.example"]
        athletes = [members[e] for e, role in org.members if role == "athlete"]
        service.set_coach_timezone(coach, "Europe/Berlin", coach)
        for weekday, start, end in WEEKLY:
            service.add_rule(coach, weekday, start, end, coach)
        service.set_override(coach, monday + timedelta(days=3), [], coach)  # Thursday closed
        service.set_override(coach, monday + timedelta(days=1), [(10 * 60, 14 * 60)], coach)  # short Tuesday
        service.set_override(coach, monday + timedelta(days=8), [(12 * 60, 20 * 60)], coach)
        afternoon = datetime.combine(monday + timedelta(days=9), datetime.min.time(), ZONE)
        service.add_time_off(coach, afternoon + timedelta(hours=13), afternoon + timedelta(hours=17), "Physio", coach)
        hour = service.save_offering(coach, {**OFFERING, "title": "Private session", "duration_minutes": 60}, coach)
        short = service.save_offering(coach, {**OFFERING, "title": "Video review", "duration_minutes": 45}, coach)
        db.session.commit()

        # ~50 bookings over the measured week and the two after it: every other free slot, alternating offerings.
        made, confirmed, cancelled = 0, 0, 0
        weeks = [monday + timedelta(days=7 * n) for n in range(3)]
        for n in range(BOOKINGS * 4):
            if made >= BOOKINGS:
                break
            week = weeks[n % len(weeks)]
            offering = hour if n % 2 == 0 else short
            free = service.available_slots(offering, *service.week_window(week, "Europe/Berlin"))
            if not free:
                continue
            slot = free[(n * 7) % len(free)]
            athlete = athletes[made % len(athletes)]
            booking = service.request_booking(offering, athlete, slot.starts_at, "Looking forward to it", athlete)
            if made % 2 == 0:
                service.transition(booking, "confirm", coach)
                confirmed += 1
            elif made % 9 == 0:
                service.transition(booking, "cancel", athlete)
                cancelled += 1
            db.session.commit()
            made += 1
        lo, hi = service.week_window(monday, "Europe/Berlin")
        in_week = len(db.session.scalars(select(Booking.id).where(
            Booking.coach_membership_id == coach.id, Booking.starts_at >= lo, Booking.starts_at < hi)).all())
        counts = {"bookings": made, "confirmed": confirmed, "cancelled": cancelled, "in_week": in_week}
        return str(hour.id), counts


# --- in-process breakdown ------------------------------------------------------------------------


class _Phases:
    """Wall and CPU time per phase of a request, and SQL statements with the phase they ran in.

    CPU time (``time.process_time``) is this process's own work; wall time adds waiting for
    PostgreSQL and, on a busy machine, for a core.
    """

    def __init__(self):
        self.current = "other"
        self.wall = defaultdict(float)
        self.cpu = defaultdict(float)
        self.sql_wall = defaultdict(float)
        self.sql_cpu = defaultdict(float)
        self.sql_n = defaultdict(int)
        self._sql_started = (0.0, 0.0)

    def wrap(self, module, name: str, phase: str):
        original = getattr(module, name)

        def timed(*args, **kwargs):
            outer, self.current = self.current, phase
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.wall[phase] += (time.perf_counter() - w0) * 1000
                self.cpu[phase] += (time.process_time() - c0) * 1000
                self.current = outer

        setattr(module, name, timed)
        return lambda: setattr(module, name, original)

    def before_sql(self, *args):
        self._sql_started = (time.perf_counter(), time.process_time())

    def after_sql(self, *args):
        w0, c0 = self._sql_started
        self.sql_wall[self.current] += (time.perf_counter() - w0) * 1000
        self.sql_cpu[self.current] += (time.process_time() - c0) * 1000
        self.sql_n[self.current] += 1


def _log_in(client, email: str, password: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    if response.status_code != 303:
        raise RuntimeError(f"in-process login as {email}: status {response.status_code}")


def _breakdown(app, email: str, password: str, path: str) -> dict:
    """Time ``PROFILE_REQUESTS`` requests of ``path`` in this process, by phase; then profile as many."""
    from sqlalchemy import event

    import coach.htmx
    from coach.booking import service
    from coach.booking import slots as slotlib
    from coach.extensions import db

    client = app.test_client()
    _log_in(client, email, password)
    for _ in range(5):  # warm: templates compiled, connections open
        assert client.get(path).status_code == 200
    body = client.get(path).get_data(as_text=True)

    phases = _Phases()
    undo = [phases.wrap(service, "slot_rules", "slot_rules"), phases.wrap(slotlib, "compute_slots", "compute_slots"),
            phases.wrap(coach.htmx, "render_template", "render")]
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", phases.before_sql)
    event.listen(engine, "after_cursor_execute", phases.after_sql)
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(PROFILE_REQUESTS):
            assert client.get(path).status_code == 200
        total_wall = (time.perf_counter() - w0) * 1000 / PROFILE_REQUESTS
        total_cpu = (time.process_time() - c0) * 1000 / PROFILE_REQUESTS
    finally:
        event.remove(engine, "before_cursor_execute", phases.before_sql)
        event.remove(engine, "after_cursor_execute", phases.after_sql)
        for restore in undo:
            restore()

    profiler = cProfile.Profile(time.process_time)  # CPU time: not skewed by other work on the machine
    profiler.enable()
    for _ in range(PROFILE_REQUESTS):
        client.get(path)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(16)

    def per(values: dict) -> dict:
        return {k: v / PROFILE_REQUESTS for k, v in values.items()}

    return {"wall": total_wall, "cpu": total_cpu, "phase_wall": per(phases.wall), "phase_cpu": per(phases.cpu),
            "sql_wall": per(phases.sql_wall), "sql_cpu": per(phases.sql_cpu), "sql_n": per(phases.sql_n),
            "slots": body.count('class="slot"'), "bytes": len(body.encode()), "profile": out.getvalue()}


def _profile_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), None)
    if start is None:
        return lines
    return [line.replace(str(harness.ROOT) + "/", "") for line in lines[start:] if line.strip()]


# --- the benchmark -------------------------------------------------------------------------------


def run() -> str:
    clients = harness.env_int("BENCH_CLIENTS", 16)
    rounds = max(1, harness.env_int("BENCH_ROUNDS", 2))
    harness.header("calendar")
    runs: list[tuple[str, int, dict]] = []
    with harness.running_stack() as bench:
        # The in-process app (seeding, then the breakdown) gets the servers' settings for the limiter and cookies.
        os.environ.update({k: bench.env[k] for k in ("RATELIMIT_ENABLED", "SESSION_COOKIE_SECURE")})
        app = harness.make_app()
        harness.say(f"seeding one organization of {MEMBERS} members and a coach's calendar through the services")
        org = harness.seed_org(app, slug="bench-calendar", members=MEMBERS, coaches=5)
        offering_id, counts = _seed(app, org)
        athletes = [email for email, role in org.members if role == "athlete"][:LOGGED_IN]
        logins = [{"email": email, "password": org.password} for email in athletes]
        week = next_monday()
        path = f"/o/{org.slug}/offerings/{offering_id}?week={week.isoformat()}"
        baseline = bench.start_gunicorn("baseline", "bench.baseline_app:app", ready_path="/")
        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        for n in range(1, rounds + 1):
            harness.say(f"round {n}/{rounds}: baseline GET / with {clients} clients")
            runs.append(("baseline", n, harness.run_load(port=baseline.port, path="/", clients=clients,
                                                         meter={"server": baseline.process.pid, **services})))
            harness.say(f"round {n}/{rounds}: app GET {path} with {clients} logged-in athletes")
            runs.append(("app", n, harness.run_load(port=web.port, path=path, clients=clients, logins=logins,
                                                    meter={"server": web.process.pid, **services})))
        bench.stop_all()  # the in-process breakdown has the machine to itself
        harness.say(f"in-process breakdown: {PROFILE_REQUESTS} timed requests, then {PROFILE_REQUESTS} under cProfile")
        detail = _breakdown(app, athletes[0], org.password, path)

    rows = []
    for name, n, r in runs:
        label = f"{name} {'GET / (bare Flask)' if name == 'baseline' else 'GET week calendar'} #{n}"
        cores = r["cpu"]["cores"]
        ms_per_request = sum(cores.get(k, 0.0) for k in ("server", "postgres", "valkey")) * 1000 / r["req_per_s"]
        rows.append([label, r["requests"], sum(r["errors"].values()), r["req_per_s"], r["p50_ms"], r["p95_ms"],
                     r["p99_ms"], "/".join(f"{s:.2f}" for s in r["cpu"]["processes"].get("server", [])),
                     f"{cores.get('postgres', 0.0):.2f}", f"{cores.get('loader', 0.0):.2f}",
                     f"{r['cpu']['others']:.2f}", f"{ms_per_request:.2f}"])
    print()
    print(f"page: {path}")
    print(f"coach data: {len(WEEKLY)} weekly intervals, 3 overrides, 1 time off; {counts['bookings']} bookings "
          f"({counts['confirmed']} confirmed, {counts['cancelled']} cancelled), {counts['in_week']} in the measured "
          f"week; the page shows {detail['slots']} free slots, {detail['bytes']:,} bytes")
    print()
    harness.print_table(["run", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "gunicorn CPU",
                         "postgres", "loader", "others", "CPU ms/req"], rows)
    print(f"CPU columns are cores over the measured window ({os.cpu_count()} cores in all); 'others' is CPU "
          "no process of this benchmark used; 'CPU ms/req' is gunicorn + PostgreSQL + Valkey CPU per request.")
    for name, n, r in runs:
        if r["errors"]:
            print(f"{name} #{n} errors: {r['errors']}")

    wall, cpu = detail["wall"], detail["cpu"]
    pw, pc = detail["phase_wall"], detail["phase_cpu"]
    sw, sc, sn = detail["sql_wall"], detail["sql_cpu"], detail["sql_n"]
    print(f"\nIn this process (Flask test client, no server, {PROFILE_REQUESTS} requests): {wall:.1f} ms wall, "
          f"{cpu:.1f} ms CPU per request; {sum(sn.values()):.0f} SQL statements, {sum(sw.values()):.1f} ms wall "
          f"(of which {sum(sc.values()):.1f} ms CPU in this process)")
    names = [("slot_rules", "loading slot rules (service.slot_rules)"),
             ("compute_slots", "computing slots (slots.compute_slots)"),
             ("render", "rendering templates (render_template)")]
    rows = [[label, pw.get(key, 0.0), pc.get(key, 0.0), sn.get(key, 0), sw.get(key, 0.0)] for key, label in names]
    rows.append(["everything else (auth, org, session, view)", wall - sum(pw.values()), cpu - sum(pc.values()),
                 sn.get("other", 0), sw.get("other", 0.0)])
    rows.append(["total", wall, cpu, sum(sn.values()), sum(sw.values())])
    harness.print_table(["phase", "wall ms", "CPU ms", "SQL statements", "SQL wall ms"],
                        [[r[0], f"{r[1]:.2f}", f"{r[2]:.2f}", f"{r[3]:.0f}", f"{r[4]:.2f}"] for r in rows])
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
    print(f"\nbaseline {base_rps:,.0f} req/s, week calendar {app_rps:,.1f} req/s: ratio {ratio:.3f} "
          f"(target >= {TARGET_RATIO}: {met})")
    return harness.key_values(ratio=ratio, p95_ms=p95, p50_ms=p50, app_rps=app_rps, baseline_rps=base_rps,
                              cpu_ms_per_req=harness.cpu_ms_per_request([r for side, _, r in runs if side == "app"]),
                              baseline_cpu_ms_per_req=harness.cpu_ms_per_request(
                                  [r for side, _, r in runs if side == "baseline"]))
