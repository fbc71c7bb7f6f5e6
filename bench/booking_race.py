"""``booking_race``: 100 athletes book the same coach at the same moment; exactly one may win each round.

Through the production server (``gunicorn --config gunicorn.conf.py wsgi:app``), one organization
with one coach (Europe/Berlin, 08:00–20:00 every day) and ``BENCH_RACE_ATHLETES`` athletes
(default 200), seeded through the services. Every athlete logs in with its own session before the
race (GET /login, POST /login), then opens the booking page of its time (GET .../book?start=...),
which gives it the CSRF token a browser would post.

* Round 1: ``BENCH_RACE_REQUESTS`` (default 100) athletes post ``POST /o/<slug>/offerings/<id>/book``
  for one and the same slot of a 60-minute offering (capacity 1, confirmed by the coach, no minimum
  notice).
* Round 2: as many fresh athletes post for slots of eight offerings of different durations
  (45–150 minutes) whose slots on another day all contain 12:10–12:20: every pair of requested
  slots overlaps, most only partially (10:10–12:20 against 12:10–13:00, and so on).

Each request goes over its own new connection. All connections are opened and each request is sent
except its last byte; then the last bytes go out in one tight loop, so the server sees the
requests as nearly at once as one client machine can make it. Each request carries its own
idempotency key, as the browser form does.

A 303 is a booking, a 409 a conflict ("just taken"); anything else (5xx, 4xx, timeouts, broken
connections) is an error. Afterwards the database is read as the owner role: each round must
have exactly one live booking, the winner must be the athlete that got the 303, and no two live
sessions of the coach may overlap. The table also gives the latency of each request (from its last
byte to its answer), the CPU the server side spent, and how many requests PostgreSQL stopped with
the exclusion constraint (23P01, counted in its log) after they had passed the slot check.

Target: ``booked=2 conflicts=198 errors=0``. Last line: ``booked=... conflicts=... errors=...``
plus the database's view (``db_live``: live bookings of both rounds, ``db_overlaps``: overlapping
pairs of live sessions).
"""
from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg

from bench import harness
from bench.load import CSRF_RE, HOST, Client, HttpError, log_in

ZONE = ZoneInfo("Europe/Berlin")
HOURS = (8 * 60, 20 * 60)  # the coach's weekly hours, every day
ROUND1_MINUTES = 60
# Round 2: durations whose slots (stepped by the duration from 08:00) containing 12:10 all start at
# different times: 10:10, 10:30, 11:00, 11:20, 11:30, 11:45, 12:00, 12:10. All contain 12:10–12:20.
ROUND2_DURATIONS = (130, 150, 90, 100, 70, 45, 60, 50)
ROUND2_POINT = 12 * 60 + 10
LIVE = ("requested", "confirmed", "active")
TIMEOUT = 60.0
LOGIN_CONCURRENCY = 16
LOCATION_RE = re.compile(r"/bookings/([0-9a-f-]{36})")


@dataclass
class Athlete:
    email: str
    membership_id: str
    client: Client | None = None
    csrf: str = ""


@dataclass
class Attempt:
    athlete: Athlete
    offering_id: str
    starts_at: datetime
    status: int | None = None
    problem: str | None = None
    latency: float = 0.0
    booking_id: str | None = None


@dataclass
class Round:
    name: str
    description: str
    attempts: list[Attempt] = field(default_factory=list)
    send_spread_ms: float = 0.0
    wall_ms: float = 0.0
    cpu: dict = field(default_factory=dict)
    pg_log: dict = field(default_factory=dict)
    day: date | None = None
    db: dict = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(1 for a in self.attempts if _kind(a) == kind)


def _kind(attempt: Attempt) -> str:
    if attempt.problem is None and attempt.status == 303:
        return "booked"
    if attempt.problem is None and attempt.status == 409:
        return "conflict"
    return "error"


def _iso(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wall(day: date, minute: int) -> datetime:
    return datetime.combine(day, datetime.min.time(), ZONE).replace(hour=minute // 60, minute=minute % 60) \
        .astimezone(timezone.utc)


# --- seeding -------------------------------------------------------------------------------------


def _seed(app, athletes: int):
    """One org, one coach with hours and the offerings, ``athletes`` athletes; returns ids and logins."""
    from sqlalchemy import select

    from coach import tenancy
    from coach.booking import service
    from coach.extensions import db
    from coach.orgs.models import Membership

    org = harness.seed_org(app, slug="bench-race", members=athletes + 2, coaches=1)
    base = dict(description="", price_minor=4000, currency="EUR", location="Court 1", meeting_url="", capacity=1,
                auto_confirm=False, buffer_before_minutes=0, buffer_after_minutes=0, min_notice_minutes=0,
                max_per_day=None, horizon_days=60, cancellation_window_hours=24)
    with app.app_context():
        tenancy.activate(org.id)
        members = {m.user.email: m for m in db.session.scalars(select(Membership).where(
            Membership.tenant_id == org.id))}
        coach = next(m for e, m in members.items() if m.role == "coach")
        service.set_coach_timezone(coach, "Europe/Berlin", coach)
        for weekday in range(7):
            service.add_rule(coach, weekday, *HOURS, coach)
        first = service.save_offering(coach, {**base, "title": "Race: one hour", "duration_minutes": ROUND1_MINUTES},
                                      coach)
        others = [service.save_offering(coach, {**base, "title": f"Race: {d} minutes", "duration_minutes": d}, coach)
                  for d in ROUND2_DURATIONS]
        db.session.commit()
        people = [Athlete(email, str(members[email].id)) for email, role in org.members if role == "athlete"]
        return org, str(coach.id), str(first.id), [str(o.id) for o in others], people


def _round2_slots(app, org_id, offering_ids: list[str], day: date) -> list[tuple[str, datetime, datetime]]:
    """For each offering, its offered slot on ``day`` that contains 12:10 (Berlin), checked with the service."""
    from coach import tenancy
    from coach.booking import service
    from coach.booking.models import Offering
    from coach.extensions import db

    point = _wall(day, ROUND2_POINT)
    result = []
    with app.app_context():
        tenancy.activate(org_id)
        for oid in offering_ids:
            offering = db.session.get(Offering, uuid.UUID(oid))
            slots = service.available_slots(offering, point - timedelta(hours=3), point + timedelta(minutes=1))
            chosen = [s for s in slots if s.starts_at <= point < s.ends_at]
            if len(chosen) != 1:
                raise RuntimeError(f"offering {offering.duration_minutes} min offers no slot over 12:10 on {day}")
            result.append((oid, chosen[0].starts_at, chosen[0].ends_at))
    for _, s1, e1 in result:  # every pair overlaps
        for _, s2, e2 in result:
            assert s1 < e2 and s2 < e1
    return result


# --- the clients ---------------------------------------------------------------------------------


async def _prepare(port: int, slug: str, password: str, attempts: list[Attempt]) -> None:
    """Log every athlete in and fetch its booking page (its CSRF token), at most 16 at a time."""
    gate = asyncio.Semaphore(LOGIN_CONCURRENCY)

    async def one(attempt: Attempt) -> None:
        async with gate:
            athlete = attempt.athlete
            athlete.client = Client(port, timeout=TIMEOUT)
            await log_in(athlete.client, athlete.email, password)
            path = f"/o/{slug}/offerings/{attempt.offering_id}/book?start={_iso(attempt.starts_at)}"
            status, _, body = await athlete.client.request("GET", path)
            match = CSRF_RE.search(body.decode("utf-8", "replace"))
            if status != 200 or not match:
                raise HttpError(f"GET {path} as {athlete.email}: status {status}, "
                                f"csrf token {'found' if match else 'missing'}")
            athlete.csrf = match.group(1)
            athlete.client.close()  # the race opens its own connections

    await asyncio.wait_for(asyncio.gather(*(one(a) for a in attempts)), 300)


def _raw_post(port: int, slug: str, attempt: Attempt) -> bytes:
    athlete = attempt.athlete
    body = urlencode({"csrf_token": athlete.csrf, "start": _iso(attempt.starts_at), "reschedule": "",
                      "athlete": athlete.membership_id, "note": "Race benchmark",
                      "idempotency_key": uuid.uuid4().hex}).encode()
    cookies = "; ".join(f"{k}={v}" for k, v in athlete.client.cookies.items())
    head = (f"POST /o/{slug}/offerings/{attempt.offering_id}/book HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"User-Agent: coach-bench\r\nAccept: text/html\r\nConnection: close\r\nCookie: {cookies}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _race(port: int, slug: str, race: Round, meter: harness.CpuMeter) -> None:
    """Open a connection per attempt, send all but the last byte, then every last byte at once.

    ``meter`` measures the CPU from the first last byte until the last answer.
    """
    raws = [_raw_post(port, slug, a) for a in race.attempts]
    conns = await asyncio.wait_for(asyncio.gather(*(asyncio.open_connection(HOST, port) for _ in raws)), TIMEOUT)
    for (_, writer), raw in zip(conns, raws):
        writer.write(raw[:-1])
    await asyncio.gather(*(writer.drain() for _, writer in conns))
    await asyncio.sleep(0.5)  # let both workers accept and start reading every connection

    async def finish(attempt: Attempt, reader, writer, started: float) -> None:
        client = attempt.athlete.client  # its cookie jar and response parser, on this connection
        client.reader, client.writer = reader, writer
        try:
            status, headers, _ = await asyncio.wait_for(client._read_response(), TIMEOUT)
            attempt.status = status
            match = LOCATION_RE.search(headers.get("location", ""))
            attempt.booking_id = match.group(1) if match else None
        except (HttpError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            attempt.problem = type(exc).__name__
        attempt.latency = time.perf_counter() - started
        client.close()

    meter.start()
    t0 = time.perf_counter()
    starts = []
    for (_, writer), raw in zip(conns, raws):
        writer.write(raw[-1:])
        starts.append(time.perf_counter())
    race.send_spread_ms = (starts[-1] - t0) * 1000
    await asyncio.gather(*(finish(a, reader, writer, s)
                           for a, (reader, writer), s in zip(race.attempts, conns, starts)))
    race.wall_ms = (time.perf_counter() - t0) * 1000
    race.cpu = meter.stop()


# --- the database's view -------------------------------------------------------------------------


def _verify(owner_conninfo: str, org_id, coach_id: str, race: Round) -> None:
    lo = datetime.combine(race.day, datetime.min.time(), ZONE)
    hi = lo + timedelta(days=1)
    with psycopg.connect(owner_conninfo, autocommit=True) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(org_id)])
        live = conn.execute(
            "SELECT id::text, athlete_membership_id::text, status FROM bookings WHERE coach_membership_id = %s"
            " AND starts_at >= %s AND starts_at < %s AND status = ANY(%s)", [coach_id, lo, hi, list(LIVE)]).fetchall()
        rows = conn.execute("SELECT count(*) FROM bookings WHERE coach_membership_id = %s AND starts_at >= %s"
                            " AND starts_at < %s", [coach_id, lo, hi]).fetchone()[0]
        sessions = conn.execute("SELECT count(*), coalesce(sum(live_seats), 0) FROM coaching_sessions"
                                " WHERE coach_membership_id = %s AND live_seats > 0 AND starts_at >= %s"
                                " AND starts_at < %s", [coach_id, lo, hi]).fetchone()
    # The one live booking must be the one the 303 pointed to, for the athlete that posted it.
    winners = {(a.booking_id, a.athlete.membership_id) for a in race.attempts if _kind(a) == "booked"}
    race.db = {"live": len(live), "rows": rows, "sessions": sessions[0], "seats": int(sessions[1]),
               "winner_matches": len(live) == 1 and {(live[0][0], live[0][1])} == winners,
               "statuses": sorted({s for _, _, s in live})}


def _overlaps(owner_conninfo: str, org_id, coach_id: str) -> int:
    with psycopg.connect(owner_conninfo, autocommit=True) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(org_id)])
        return conn.execute(
            "SELECT count(*) FROM coaching_sessions a JOIN coaching_sessions b"
            " ON a.tenant_id = b.tenant_id AND a.coach_membership_id = b.coach_membership_id AND a.id < b.id"
            " AND tstzrange(a.busy_from, a.busy_until, '[)') && tstzrange(b.busy_from, b.busy_until, '[)')"
            " WHERE a.coach_membership_id = %s AND a.live_seats > 0 AND b.live_seats > 0", [coach_id]).fetchone()[0]


def _pg_log_counts(workdir) -> dict[str, int]:
    """How often PostgreSQL logged an exclusion violation or a deadlock (when its log is on disk)."""
    counts = {"exclusion": 0, "deadlock": 0}
    pgdata = workdir / "servers" / "postgres"
    for path in [pgdata / "log", *pgdata.rglob("*.log")]:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        counts["exclusion"] += text.count("violates exclusion constraint")
        counts["deadlock"] += text.count("deadlock detected")
    return counts


# --- the benchmark -------------------------------------------------------------------------------


def run() -> str:
    athletes_n = harness.env_int("BENCH_RACE_ATHLETES", 200)
    per_round = harness.env_int("BENCH_RACE_REQUESTS", 100)
    if athletes_n < 2 * per_round:
        raise SystemExit("BENCH_RACE_ATHLETES must be at least twice BENCH_RACE_REQUESTS (fresh athletes per round)")
    harness.header("booking_race")
    rounds: list[Round] = []
    with harness.running_stack() as bench:
        app = harness.make_app()
        harness.say(f"seeding one organization: a coach, 9 offerings, {athletes_n} athletes (through the services)")
        org, coach_id, first_id, round2_ids, people = _seed(app, athletes_n)
        today = datetime.now(ZONE).date()
        day1 = today + timedelta(days=9)
        day2 = day1 + timedelta(days=1)
        slot1 = _wall(day1, 10 * 60)
        r2_slots = _round2_slots(app, org.id, round2_ids, day2)

        r1 = Round("round 1", f"one slot: {ROUND1_MINUTES} min at {slot1.astimezone(ZONE):%a %d %b %H:%M} Berlin",
                   day=day1)
        r1.attempts = [Attempt(p, first_id, slot1) for p in people[:per_round]]
        span = (min(start for _, start, _ in r2_slots), max(end for _, _, end in r2_slots))
        r2 = Round("round 2", f"{len(r2_slots)} pairwise-overlapping slots of {len(r2_slots)} offerings, "
                   f"{day2:%a %d %b} {span[0].astimezone(ZONE):%H:%M}–{span[1].astimezone(ZONE):%H:%M} Berlin",
                   day=day2)
        r2.attempts = [Attempt(p, *r2_slots[i % len(r2_slots)][:2])
                       for i, p in enumerate(people[per_round:2 * per_round])]
        rounds = [r1, r2]

        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        owner = bench.stack.owner_url.replace("postgresql+psycopg://", "postgresql://")

        async def drive() -> None:
            harness.say(f"logging in {2 * per_round} athletes and opening their booking pages")
            t = time.perf_counter()
            await _prepare(web.port, org.slug, org.password, r1.attempts + r2.attempts)
            harness.say(f"ready in {time.perf_counter() - t:.1f}s")
            for race in rounds:
                harness.say(f"{race.name}: {len(race.attempts)} concurrent POSTs, {race.description}")
                meter = harness.CpuMeter({"server": web.process.pid, **services})
                before = _pg_log_counts(bench.workdir)
                await _race(web.port, org.slug, race, meter)
                await asyncio.sleep(0.2)  # PostgreSQL's log is written asynchronously
                after = _pg_log_counts(bench.workdir)
                race.pg_log = {k: after[k] - before[k] for k in after}

        asyncio.run(drive())
        for race in rounds:
            _verify(owner, org.id, coach_id, race)
        overlaps = _overlaps(owner, org.id, coach_id)
        server_log = web.log_path.read_text(errors="replace")

    print()
    for race in rounds:
        latencies = sorted(a.latency * 1000 for a in race.attempts)
        print(f"## {race.name}: {race.description}")
        by_slot: dict[datetime, list[Attempt]] = {}
        for a in race.attempts:
            by_slot.setdefault(a.starts_at, []).append(a)
        rows = []
        for start in sorted(by_slot):
            group = by_slot[start]
            lat = sorted(a.latency * 1000 for a in group)
            rows.append([f"{start.astimezone(ZONE):%H:%M} ({_duration(group[0], round2_ids)} min)", len(group),
                         sum(_kind(a) == "booked" for a in group), sum(_kind(a) == "conflict" for a in group),
                         sum(_kind(a) == "error" for a in group), harness.percentile(lat, 50),
                         harness.percentile(lat, 95), lat[-1]])
        rows.append(["all", len(race.attempts), race.count("booked"), race.count("conflict"), race.count("error"),
                     harness.percentile(latencies, 50), harness.percentile(latencies, 95), latencies[-1]])
        harness.print_table(["slot", "requests", "booked 303", "conflict 409", "errors", "p50 ms", "p95 ms",
                             "max ms"], rows)
        db = race.db
        cores = race.cpu.get("cores", {})
        cpu_s = {k: cores.get(k, 0.0) * race.wall_ms / 1000 for k in ("server", "postgres", "valkey")}
        print(f"last bytes sent within {race.send_spread_ms:.1f} ms; all answers in {race.wall_ms:,.0f} ms; "
              f"CPU used meanwhile: gunicorn {cpu_s['server']:.2f} s, PostgreSQL {cpu_s['postgres']:.2f} s, "
              f"Valkey {cpu_s['valkey']:.2f} s ({sum(cpu_s.values()) * 1000 / len(race.attempts):.0f} ms per "
              f"request), others {race.cpu.get('others', 0.0):.2f} cores")
        print(f"database: {db['live']} live booking(s) {db['statuses']}, {db['rows']} booking row(s) in all, "
              f"{db['sessions']} live session(s) holding {db['seats']} seat(s); winner is the athlete that got "
              f"the 303: {'yes' if db['winner_matches'] else 'NO'}")
        print(f"PostgreSQL logged {race.pg_log.get('exclusion', 0)} exclusion violation(s) (23P01: a request that "
              f"passed the slot check and was stopped by the constraint) and {race.pg_log.get('deadlock', 0)} "
              "deadlock(s)")
        errors: dict[str, int] = {}
        for a in race.attempts:
            if _kind(a) == "error":
                key = a.problem or f"status {a.status}"
                errors[key] = errors.get(key, 0) + 1
        if errors:
            print(f"errors: {errors}")
        print()
    print(f"overlapping pairs of live sessions of the coach: {overlaps}")
    if any(r.count("error") for r in rounds):
        problems = [line for line in server_log.splitlines() if '"level": "error"' in line]
        kinds: dict[str, int] = {}
        for line in problems:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            last = (record.get("exception") or record.get("message") or "").strip().splitlines()[-1:]
            kinds[last[0][:200] if last else "?"] = kinds.get(last[0][:200] if last else "?", 0) + 1
        print(f"server log: {len(problems)} error line(s), by exception:")
        for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"  {n:4d}  {kind}")

    booked = sum(r.count("booked") for r in rounds)
    conflicts = sum(r.count("conflict") for r in rounds)
    errors_n = sum(r.count("error") for r in rounds)
    ok = (booked == len(rounds) and errors_n == 0 and overlaps == 0
          and all(r.db["live"] == 1 and r.db["winner_matches"] for r in rounds))
    print(f"\ntarget booked={len(rounds)} conflicts={sum(len(r.attempts) for r in rounds) - len(rounds)} errors=0, "
          f"one live booking per round, no overlap: {'met' if ok else 'MISSED'}")
    return harness.key_values(booked=booked, conflicts=conflicts, errors=errors_n,
                              db_live=sum(r.db["live"] for r in rounds), db_overlaps=overlaps)


def _duration(attempt: Attempt, round2_ids: list[str]) -> int:
    if attempt.offering_id in round2_ids:
        return ROUND2_DURATIONS[round2_ids.index(attempt.offering_id)]
    return ROUND1_MINUTES
