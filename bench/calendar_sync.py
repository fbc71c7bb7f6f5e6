"""``calendar_sync``: what two-way calendar sync costs (issue 19): reading a coach's real calendar from a CalDAV
server, the week calendar with the busy time it leaves, and previewing a 500-occurrence series.

1. **Sync.** A real Radicale server on 127.0.0.1 (started as ``tests/radicale_support.py`` does) holds one coach's
   calendar of realistic size, one resource per event (written into Radicale's storage folder: PUT one by one
   takes Radicale minutes at this size): ``EVENTS`` (1,500) over a year around today,
   150 of them weekly RRULEs (open, COUNT or UNTIL, some every two weeks) with 3 EXDATEs each and some with a moved
   instance (RECURRENCE-ID), 50 all-day events (half transparent), ~8% of the single events transparent, a few
   cancelled, in Europe/Berlin with its VTIMEZONE (a few in UTC). The coach connects it through
   :func:`coach.calsync.service.connect` and :func:`coach.calsync.sync.run` runs in this process, as the RQ job
   would: the discovery (listing the account's calendars), the first full read of the chosen calendar, an
   incremental read (sync-token) after 10 changes on the server (4 new events, 3 moved, an EXDATE added to a
   series, 2 deleted), and a read with nothing changed. Each: wall time, this process's CPU (``time.process_time``:
   XML, iCalendar parsing, RRULE expansion, the SQL client side) and the CPU of Radicale and PostgreSQL over it
   (``/proc``). Then a full read again (token dropped) under cProfile, to show where our CPU goes.
2. **The week calendar with synced busy time.** Two coaches of one organization with the same calendar as
   ``bench/calendar.py`` seeds (10 weekly intervals, 3 overrides, time off, two offerings, ~40 bookings each,
   made through the services before any sync): coach01 has the Radicale calendar above synced (thousands of
   ``external_busy`` rows), coach02 has none. Through ``gunicorn --config gunicorn.conf.py``, per round: the bare
   route, coach02's week page, coach01's week page, each requested by 16 logged-in athletes. Statements per page
   counted in-process (``tests/querycount.py``), with each page's CPU per request in-process and that of its slots
   alone (``availability.week_slots``); the page's one statement that reads ``external_busy``
   (:func:`coach.booking.availability._calendar_statement`) runs under ``EXPLAIN (ANALYZE, BUFFERS)`` as the app's
   role under RLS (second of two runs reported) and must use ``ix_external_busy_coach_time``.
3. **Series preview.** In this process, the coach's preview of a weekly series of 500 occurrences of a free
   offering with a 730-day horizon (``GET /o/<slug>/offerings/<id>/series?...&count=500``, the Flask test client)
   for coach01 (busy time synced) and coach02 (none): CPU ms per preview (``time.process_time``), the service call
   :func:`coach.booking.series.plan` alone, and the statements (``tests/querycount.py``).

Last line: ``sync_full_ms=... sync_incremental_ms=... events_per_s=... week_cpu_ms_per_req=...
week_busy_cpu_ms_per_req=... ratio=... series500_cpu_ms=... series500_statements=...``: the first full sync's wall
ms, the incremental's, events read per second of the full sync's wall time, CPU ms/req (gunicorn + PostgreSQL +
Valkey) of the week page without and with busy time, ratio = the busy page's req/s ÷ the bare route's, and the
500-occurrence preview of the coach with busy time (page, CPU of this process) and its statements.
"""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import random
import re
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bench import harness
from bench.calendar import OFFERING, WEEKLY, ZONE, _log_in, _profile_lines, next_monday

UTC = timezone.utc
MEMBERS = 50
LOGGED_IN = 16
EVENTS = 1500
RECURRING = 150
ALL_DAY = 50
BOOKINGS = 40
SERIES_COUNT = 500
PAGE_REQUESTS = 40
SERIES_REQUESTS = 3
INDEX = "ix_external_busy_coach_time"

VTIMEZONE = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
             "TZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
             "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\n"
             "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")


# --- the coach's calendar on the CalDAV server -------------------------------------------------------------


_T0 = time.monotonic()


def _say(message: str) -> None:
    harness.say(f"{time.monotonic() - _T0:6.1f}s {message}")


def _local(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _vevent(uid: str, start: datetime, minutes: int, extra: str = "", utc: bool = False) -> str:
    if utc:
        times = (f"DTSTART:{start.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}\r\n"
                 f"DTEND:{(start + timedelta(minutes=minutes)).astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}\r\n")
    else:
        times = (f"DTSTART;TZID=Europe/Berlin:{_local(start)}\r\n"
                 f"DTEND;TZID=Europe/Berlin:{_local(start + timedelta(minutes=minutes))}\r\n")
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T080000Z\r\n{times}SUMMARY:Private {uid[:6]}\r\n"
            f"{extra}END:VEVENT\r\n")


def _calendar(*vevents: str) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench phone//EN\r\n" + VTIMEZONE + "".join(vevents) + \
        "END:VCALENDAR\r\n"


def _wall(day: date, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=ZONE)


def calendar_events(today: date, rng: random.Random) -> dict[str, str]:
    """``{uid: VCALENDAR text}``: the coach's calendar (see the module's docstring)."""
    events: dict[str, str] = {}
    durations = (30, 45, 60, 60, 90, 120)

    def start_minute() -> int:
        return rng.randrange(7 * 60, 19 * 60, 15)

    for n in range(RECURRING):
        uid = f"weekly-{n:03d}-{uuid.uuid4().hex[:8]}"
        first = today - timedelta(days=rng.randint(0, 300))
        minute, minutes = start_minute(), rng.choice(durations)
        interval = 2 if n % 5 == 0 else 1
        rule = f"FREQ=WEEKLY;INTERVAL={interval}" if interval > 1 else "FREQ=WEEKLY"
        if n % 3 == 1:
            rule += ";COUNT=40"
        elif n % 3 == 2:
            until = today + timedelta(days=rng.randint(30, 365))
            rule += f";UNTIL={until.strftime('%Y%m%d')}T225959Z"
        # Three skipped weeks among the coming ones (some fall across the daylight-saving change in March).
        ahead = [first + timedelta(weeks=interval * k) for k in range(120)]
        ahead = [d for d in ahead if today - timedelta(days=7) <= d <= today + timedelta(days=180)]
        exdates = rng.sample(ahead, min(3, len(ahead)))
        extra = f"RRULE:{rule}\r\n" + "".join(f"EXDATE;TZID=Europe/Berlin:{_local(_wall(d, minute))}\r\n"
                                             for d in sorted(exdates))
        if n % 7 == 0:
            extra += "TRANSP:TRANSPARENT\r\n"
        parts = [_vevent(uid, _wall(first, minute), minutes, extra)]
        if n % 15 == 3 and len(ahead) > 4:  # one instance moved two hours later
            moved = [d for d in ahead if d not in exdates][2]
            parts.append(_vevent(uid, _wall(moved, minute + 120 if minute < 20 * 60 else minute - 120), minutes,
                                 f"RECURRENCE-ID;TZID=Europe/Berlin:{_local(_wall(moved, minute))}\r\n"))
        events[uid] = _calendar(*parts)
    for n in range(ALL_DAY):
        uid = f"allday-{n:03d}-{uuid.uuid4().hex[:8]}"
        day = today + timedelta(days=rng.randint(-182, 182))
        days = rng.choice((1, 1, 1, 2, 3))
        extra = "TRANSP:TRANSPARENT\r\n" if n % 2 else ""
        events[uid] = _calendar(
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T080000Z\r\nDTSTART;VALUE=DATE:{day.strftime('%Y%m%d')}\r\n"
            f"DTEND;VALUE=DATE:{(day + timedelta(days=days)).strftime('%Y%m%d')}\r\nSUMMARY:Away\r\n{extra}"
            "END:VEVENT\r\n")
    for n in range(EVENTS - RECURRING - ALL_DAY):
        uid = f"single-{n:04d}-{uuid.uuid4().hex[:8]}"
        day = today + timedelta(days=rng.randint(-182, 182))
        extra = "TRANSP:TRANSPARENT\r\n" if n % 12 == 5 else "STATUS:CANCELLED\r\n" if n % 97 == 11 else ""
        events[uid] = _calendar(_vevent(uid, _wall(day, start_minute()), rng.choice(durations), extra,
                                        utc=n % 10 == 0))
    return events


def store(folder: Path, acct, events: dict[str, str]) -> dict[str, str]:
    """Write every event as its own resource (``<uid>.ics``) into the calendar's folder of Radicale's storage,
    which Radicale reads as if PUT (its item cache is keyed by content). PUT one by one takes Radicale ~5 minutes
    at this size (each PUT checks the UID against the whole collection): set-up, not what is measured. The caller
    then lists the calendar once, so Radicale's cache is as warm as after PUTs. ``{uid: href}``."""
    from urllib.parse import urlsplit

    path = urlsplit(acct.calendar_url).path.strip("/")
    collection = folder / "collections" / "collection-root" / path
    if not collection.is_dir():
        raise RuntimeError(f"no Radicale collection at {collection}")
    base = acct.calendar_url.rstrip("/") + "/"
    hrefs = {}
    for uid, text in events.items():
        (collection / f"{uid}.ics").write_bytes(text.encode())
        hrefs[uid] = f"{base}{uid}.ics"
    return hrefs


def warm(acct) -> int:
    """One sync-collection REPORT (no token, ETags only): Radicale parses and caches each item and records its
    sync history once, as PUTs would have. Cold, that takes longer than a sync's timeout (10 s) here. How many
    events it listed."""
    import requests

    body = ('<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:"><d:sync-token/>'
            "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>")
    response = requests.request("REPORT", acct.calendar_url, data=body, auth=(acct.username, acct.password),
                                headers={"Depth": "1", "Content-Type": 'application/xml; charset="utf-8"'},
                                timeout=600)
    response.raise_for_status()
    return response.text.count("<getetag>")


def ten_changes(acct, events: dict[str, str], hrefs: dict[str, str], today: date, rng: random.Random) -> list[str]:
    """Ten changes on the server, as the coach's phone would make them: 4 new events in the coming two weeks, 3
    single events moved, one series given another EXDATE, 2 events deleted. What was done, in words."""
    import requests

    session = requests.Session()
    session.auth = (acct.username, acct.password)
    base = acct.calendar_url.rstrip("/") + "/"
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    done = []
    for n in range(4):
        uid = f"new-{n}-{uuid.uuid4().hex[:8]}"
        text = _calendar(_vevent(uid, _wall(today + timedelta(days=7 + 2 * n), 10 * 60 + 60 * n), 60))
        session.put(f"{base}{uid}.ics", data=text.encode(), headers=headers, timeout=30).raise_for_status()
        events[uid], hrefs[uid] = text, f"{base}{uid}.ics"
        done.append("new")
    singles = [uid for uid in events if uid.startswith("single-") and "TRANSP" not in events[uid]
               and "CANCELLED" not in events[uid]]
    for uid in singles[:3]:
        day = today + timedelta(days=rng.randint(1, 30))
        text = _calendar(_vevent(uid, _wall(day, 16 * 60), 90))
        session.put(hrefs[uid], data=text.encode(), headers=headers, timeout=30).raise_for_status()
        events[uid] = text
        done.append("moved")
    series = next(uid for uid in events if uid.startswith("weekly-") and "COUNT" not in events[uid]
                  and "TRANSP" not in events[uid] and "RECURRENCE-ID" not in events[uid])
    text = events[series]
    start = re.search(r"DTSTART;TZID=Europe/Berlin:(\d{8}T\d{6})", text).group(1)
    first = datetime.strptime(start, "%Y%m%dT%H%M%S").date()
    weeks = ((today - first).days // 7) + 2
    skipped = datetime.strptime(start, "%Y%m%dT%H%M%S") + timedelta(weeks=weeks * (2 if "INTERVAL=2" in text else 1))
    text = text.replace("RRULE:", f"EXDATE;TZID=Europe/Berlin:{skipped.strftime('%Y%m%dT%H%M%S')}\r\nRRULE:", 1)
    session.put(hrefs[series], data=text.encode(), headers=headers, timeout=30).raise_for_status()
    events[series] = text
    done.append("exdate")
    for uid in (singles[10], next(u for u in events if u.startswith("weekly-") and u != series)):
        session.delete(hrefs[uid], timeout=30).raise_for_status()
        del events[uid]
        done.append("deleted")
    return done


# --- the coaches in the database ---------------------------------------------------------------------------


def _seed_coach(app, org: harness.Org, coach_email: str, athletes_from: int) -> dict:
    """``bench/calendar.py``'s calendar for one coach, plus a free weekly offering for series; ~40 bookings."""
    from sqlalchemy import select

    from coach import tenancy
    from coach.booking import service
    from coach.extensions import db
    from coach.orgs.models import Membership

    monday = next_monday()
    with app.app_context():
        tenancy.activate(org.id)
        members = {m.user.email: m for m in db.session.scalars(select(Membership).where(
            Membership.tenant_id == org.id))}
        coach = members[coach_email]
        athletes = [members[e] for e, role in org.members if role == "athlete"][athletes_from:athletes_from + 20]
        service.set_coach_timezone(coach, "Europe/Berlin", coach)
        for weekday, start, end in WEEKLY:
            service.add_rule(coach, weekday, start, end, coach)
        service.set_override(coach, monday + timedelta(days=3), [], coach)
        service.set_override(coach, monday + timedelta(days=1), [(10 * 60, 14 * 60)], coach)
        service.set_override(coach, monday + timedelta(days=8), [(12 * 60, 20 * 60)], coach)
        afternoon = datetime.combine(monday + timedelta(days=9), datetime.min.time(), ZONE)
        service.add_time_off(coach, afternoon + timedelta(hours=13), afternoon + timedelta(hours=17), "Physio", coach)
        hour = service.save_offering(coach, {**OFFERING, "title": "Private session", "duration_minutes": 60}, coach)
        short = service.save_offering(coach, {**OFFERING, "title": "Video review", "duration_minutes": 45}, coach)
        weekly = service.save_offering(coach, {**OFFERING, "title": "Weekly training", "duration_minutes": 60,
                                               "price_minor": 0, "horizon_days": 730, "min_notice_minutes": 60},
                                       coach)
        db.session.commit()
        made = 0
        weeks = [monday + timedelta(days=7 * n) for n in range(3)]
        for n in range(BOOKINGS * 4):
            if made >= BOOKINGS:
                break
            offering = hour if n % 2 == 0 else short
            free = service.available_slots(offering, *service.week_window(weeks[n % 3], "Europe/Berlin"))
            if not free:
                continue
            athlete = athletes[made % len(athletes)]
            booking = service.request_booking(offering, athlete, free[(n * 7) % len(free)].starts_at, "", athlete)
            if made % 2 == 0:
                service.transition(booking, "confirm", coach)
            db.session.commit()
            made += 1
        return {"coach_id": coach.id, "hour": str(hour.id), "weekly": str(weekly.id), "bookings": made,
                "series_athlete": str(athletes[-1].id)}


def _process_cpu(pid: int) -> float:
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rfind(")") + 2:].split()
    return sum(int(v) for v in fields[11:15]) / harness.CLOCK_TICKS


def _timed_sync(app, org_id, connection_id, radicale_pid: int, postgres_pid: int, discover: bool = False,
                profile: bool = False) -> dict:
    from coach import tenancy
    from coach.calsync import sync
    from coach.extensions import db

    meter = harness.CpuMeter({"postgres": postgres_pid})
    profiler = cProfile.Profile(time.process_time) if profile else None
    with app.app_context():
        tenancy.activate(org_id)
        rad0 = _process_cpu(radicale_pid)
        meter.start()
        w0, c0 = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        outcome = sync.run(org_id, connection_id, discover)
        if profiler:
            profiler.disable()
        wall, cpu = (time.perf_counter() - w0) * 1000, (time.process_time() - c0) * 1000
        used = meter.stop()
        rad = (_process_cpu(radicale_pid) - rad0) * 1000
        db.session.rollback()
    if outcome != "synced":
        raise RuntimeError(f"sync ended {outcome!r}")
    result = {"wall_ms": wall, "cpu_ms": cpu, "radicale_cpu_ms": rad,
              "postgres_cpu_ms": used["cores"]["postgres"] * wall, "others": used["others"]}
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(22)
        result["profile"] = out.getvalue()
    return result


def _busy_rows(app, org_id, coach_id) -> int:
    from sqlalchemy import func, select

    from coach import tenancy
    from coach.booking.models import ExternalBusy
    from coach.extensions import db

    with app.app_context():
        tenancy.activate(org_id)
        count = db.session.scalar(select(func.count()).select_from(ExternalBusy).where(
            ExternalBusy.tenant_id == org_id, ExternalBusy.coach_membership_id == coach_id))
        db.session.rollback()
        return count


def _explain(app, org_id, offering_id: str, week: date) -> list[str]:
    """The week page's calendar statement (the one that reads external_busy) under EXPLAIN (ANALYZE, BUFFERS),
    with the page's parameters, as the app's role under RLS; the second of two runs."""
    from coach import tenancy
    from coach.booking import availability, service
    from coach.booking.models import Offering
    from coach.extensions import db

    with app.app_context():
        tenancy.activate(org_id)
        offering = db.session.get(Offering, uuid.UUID(offering_id))
        window_start, window_end = service.week_window(week, "Europe/Berlin")
        pad = timedelta(days=1, minutes=240)  # as slot_rules widens the window
        lo, hi = window_start - pad, window_end + pad
        compiled = availability._calendar_statement(True).compile(dialect=db.engine.dialect)
        params = compiled.construct_params({
            "tenant_id": offering.tenant_id, "coach_id": offering.coach_membership_id, "lo": lo, "hi": hi,
            "first_day": lo.date() - timedelta(days=1), "last_day": hi.date() + timedelta(days=1)})
        connection = db.session.connection()
        for _ in range(2):
            plan = [row[0] for row in connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled),
                                                                 params)]
        db.session.rollback()
        return plan


def _analyze(bench) -> None:
    """ANALYZE as the owner (autovacuum would after a sync of this size; the plan should not depend on luck)."""
    import psycopg

    with psycopg.connect(bench.stack.owner_url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:
        conn.execute("ANALYZE")


# --- in-process: statements and CPU of the pages -----------------------------------------------------------


def _page_in_process(app, org_id, email: str, password: str, paths: dict[str, str], offerings: dict[str, str],
                     week: date) -> dict:
    """Per page: statements, bytes, free slots, CPU per request (test client); and the slots alone
    (``availability.week_slots``: the calendar statement, its rows read, compute_slots), CPU per call."""
    from coach import tenancy
    from coach.booking import service
    from coach.booking.models import Offering
    from coach.extensions import db
    from tests.querycount import statements_for

    client = app.test_client()
    _log_in(client, email, password)
    found = {}
    for name, path in paths.items():
        statements_for(app, client, path)
        queries = statements_for(app, client, path)
        body = client.get(path).get_data(as_text=True)
        c0 = time.process_time()
        for _ in range(PAGE_REQUESTS):
            assert client.get(path).status_code == 200
        found[name] = {"queries": queries, "bytes": len(body.encode()), "slots": body.count('class="slot"'),
                       "cpu_ms": (time.process_time() - c0) * 1000 / PAGE_REQUESTS}
        with app.app_context():
            tenancy.activate(org_id)
            offering = db.session.get(Offering, uuid.UUID(offerings[name]))
            window = service.week_window(week, "Europe/Berlin")
            service.week_slots(offering, *window)
            c0 = time.process_time()
            for _ in range(PAGE_REQUESTS):
                service.week_slots(offering, *window)
            found[name]["slots_cpu_ms"] = (time.process_time() - c0) * 1000 / PAGE_REQUESTS
            db.session.rollback()
    return found


def _series_path(org: harness.Org, seeded: dict) -> str:
    first = seeded["series_first"].astimezone(ZONE)
    return (f"/o/{org.slug}/offerings/{seeded['weekly']}/series?athlete={seeded['series_athlete']}"
            f"&first_date={first.date().isoformat()}&first_time={first.strftime('%H:%M')}&every=1&ends=count"
            f"&count={SERIES_COUNT}")


def _series_in_process(app, org: harness.Org, coach_email: str, seeded: dict) -> dict:
    """The 500-occurrence preview as the coach: statements, CPU per page, CPU of the service call alone, and a
    profile of one preview."""
    from coach import tenancy
    from coach.booking import series
    from coach.booking.models import Offering
    from coach.extensions import db
    from coach.orgs.models import Membership
    from tests.querycount import statements_for

    from coach.booking import service

    with app.app_context():  # the first session: the coach's first free hour in the week after the measured one
        tenancy.activate(org.id)
        weekly = db.session.get(Offering, uuid.UUID(seeded["weekly"]))
        seeded["series_first"] = service.available_slots(weekly, *service.week_window(
            next_monday() + timedelta(days=7), "Europe/Berlin"))[0].starts_at
        db.session.rollback()
    path = _series_path(org, seeded)
    client = app.test_client()
    _log_in(client, coach_email, org.password)
    response = client.get(path)
    body = response.get_data(as_text=True)
    if response.status_code != 200:
        errors = re.findall(r'class="[^"]*(?:error|flash)[^"]*"[^>]*>([^<]+)<', body)
        raise RuntimeError(f"series preview {path}: {response.status_code} {errors or body[:2000]}")
    queries = statements_for(app, client, path)
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(SERIES_REQUESTS):
        assert client.get(path).status_code == 200
    page_cpu = (time.process_time() - c0) * 1000 / SERIES_REQUESTS
    page_wall = (time.perf_counter() - w0) * 1000 / SERIES_REQUESTS
    with app.app_context():
        tenancy.activate(org.id)
        offering = db.session.get(Offering, uuid.UUID(seeded["weekly"]))
        athlete = db.session.get(Membership, uuid.UUID(seeded["series_athlete"]))
        coach = offering.coach
        c0 = time.process_time()
        for _ in range(SERIES_REQUESTS):
            planned = series.plan(offering, athlete, seeded["series_first"], 1, count=SERIES_COUNT, actor=coach)
        plan_cpu = (time.process_time() - c0) * 1000 / SERIES_REQUESTS
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        series.plan(offering, athlete, seeded["series_first"], 1, count=SERIES_COUNT, actor=coach)
        profiler.disable()
        db.session.rollback()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    reasons: dict[str, int] = {}
    for occurrence in planned.occurrences:
        key = (occurrence.conflict or "free").split(":")[0].split("(")[0].strip()
        reasons[key] = reasons.get(key, 0) + 1
    return {"queries": queries, "page_cpu_ms": page_cpu, "page_wall_ms": page_wall, "plan_cpu_ms": plan_cpu,
            "occurrences": len(planned.occurrences), "bookable": len(planned.bookable), "reasons": reasons,
            "bytes": len(body.encode()), "profile": out.getvalue()}


# --- the benchmark -------------------------------------------------------------------------------------------


def run() -> str:
    from tests.radicale_support import Radicale, _start

    global _T0
    _T0 = time.monotonic()
    clients = harness.env_int("BENCH_CLIENTS", LOGGED_IN)
    rounds = max(1, harness.env_int("BENCH_ROUNDS", 2))
    harness.header("calendar_sync")
    rng = random.Random(19)
    runs: list[tuple[str, int, dict]] = []
    syncs: dict[str, dict] = {}
    radicale_folder = Path(__import__("tempfile").mkdtemp(prefix="coach-bench-radicale-"))
    radicale_proc = None
    with harness.running_stack() as bench:
        os.environ.update({k: bench.env[k] for k in ("RATELIMIT_ENABLED", "SESSION_COOKIE_SECURE")})
        os.environ["CALSYNC_ALLOW_PRIVATE_ADDRESSES"] = "true"  # Radicale listens on 127.0.0.1
        try:
            app = harness.make_app()
            _say(f"seeding one organization of {MEMBERS} members and two coaches' calendars")
            org = harness.seed_org(app, slug="bench-calsync", members=MEMBERS, coaches=5)
            busy_email, none_email = f"coach01@{org.slug}.example", f"coach02@{org.slug}.example"
            busy = _seed_coach(app, org, busy_email, athletes_from=0)
            none = _seed_coach(app, org, none_email, athletes_from=20)

            radicale_proc, port = _start(radicale_folder)
            radicale = Radicale(radicale_folder, port)
            acct = radicale.account("Personal")
            today = datetime.now(UTC).astimezone(ZONE).date()
            events = calendar_events(today, rng)
            _say(f"writing {len(events)} events into Radicale's storage")
            hrefs = store(radicale_folder, acct, events)
            listed = warm(acct)
            if listed != len(events):
                raise RuntimeError(f"Radicale lists {listed} events of {len(events)}")

            from coach import tenancy
            from coach.calsync import service as calsync
            from coach.calsync.models import CalendarSource
            from coach.extensions import db
            from coach.orgs.models import Membership

            with app.app_context():
                tenancy.activate(org.id)
                coach = db.session.get(Membership, busy["coach_id"])
                connection = calsync.connect(coach, acct.server_url, acct.username, acct.password, "Phone", coach)
                db.session.commit()
                connection_id = connection.id
            postgres_pid = bench.service_pids()["postgres"]
            _say("sync: discovery (list the account's calendars)")
            syncs["discovery"] = _timed_sync(app, org.id, connection_id, radicale_proc.pid, postgres_pid,
                                             discover=True)
            with app.app_context():
                tenancy.activate(org.id)
                coach = db.session.get(Membership, busy["coach_id"])
                connection = calsync.get_connection(coach, connection_id)
                calsync.choose_calendars(connection, {s.id for s in calsync.sources_of(connection)}, None, coach)
                db.session.commit()
            _say("sync: first full read")
            syncs["full"] = _timed_sync(app, org.id, connection_id, radicale_proc.pid, postgres_pid)
            rows_full = _busy_rows(app, org.id, busy["coach_id"])
            _say("10 changes on the server, then an incremental read")
            changes = ten_changes(acct, events, hrefs, today, rng)
            syncs["incremental"] = _timed_sync(app, org.id, connection_id, radicale_proc.pid, postgres_pid)
            rows_incremental = _busy_rows(app, org.id, busy["coach_id"])
            syncs["unchanged"] = _timed_sync(app, org.id, connection_id, radicale_proc.pid, postgres_pid)
            with app.app_context():  # drop the token: a full read again, under cProfile
                tenancy.activate(org.id)
                for source in db.session.query(CalendarSource).filter_by(connection_id=connection_id):
                    source.sync_token, source.last_synced_at = None, None
                db.session.commit()
            _say("sync: a full read again (token dropped), under cProfile")
            syncs["full again (cProfile)"] = _timed_sync(app, org.id, connection_id, radicale_proc.pid, postgres_pid,
                                                         profile=True)
            rows_again = _busy_rows(app, org.id, busy["coach_id"])
            if rows_again != rows_incremental:
                raise RuntimeError(f"a full read gave {rows_again} busy rows, the incremental {rows_incremental}")
        finally:
            if radicale_proc is not None:
                radicale_proc.terminate()
                try:
                    radicale_proc.wait(30)
                except __import__("subprocess").TimeoutExpired:
                    radicale_proc.kill()
                    radicale_proc.wait(10)
            __import__("shutil").rmtree(radicale_folder, ignore_errors=True)

        _analyze(bench)
        week = next_monday()
        plan = _explain(app, org.id, busy["hour"], week)
        if not any(INDEX in line for line in plan):
            raise RuntimeError(f"the calendar statement does not use {INDEX}:\n" + "\n".join(plan))

        athletes = [email for email, role in org.members if role == "athlete"][:clients]
        logins = [{"email": email, "password": org.password} for email in athletes]
        paths = {"none": f"/o/{org.slug}/offerings/{none['hour']}?week={week.isoformat()}",
                 "busy": f"/o/{org.slug}/offerings/{busy['hour']}?week={week.isoformat()}"}
        baseline = bench.start_gunicorn("baseline", "bench.baseline_app:app", ready_path="/")
        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        for n in range(1, rounds + 1):
            _say(f"round {n}/{rounds}: baseline GET / with {clients} clients")
            runs.append(("baseline", n, harness.run_load(port=baseline.port, path="/", clients=clients,
                                                         meter={"server": baseline.process.pid, **services})))
            for name in ("none", "busy"):
                _say(f"round {n}/{rounds}: week calendar ({name}) with {clients} logged-in athletes")
                runs.append((name, n, harness.run_load(port=web.port, path=paths[name], clients=clients,
                                                       logins=logins, meter={"server": web.process.pid, **services})))
        bench.stop_all()  # the in-process parts have the machine to themselves
        _say("in-process: statements and CPU of both week pages, then the 500-occurrence series previews")
        pages = _page_in_process(app, org.id, athletes[0], org.password, paths,
                                 {"none": none["hour"], "busy": busy["hour"]}, week)
        series_busy = _series_in_process(app, org, busy_email, busy)
        series_none = _series_in_process(app, org, none_email, none)

    # --- report ---
    print()
    print(f"Radicale calendar: {EVENTS:,} events ({RECURRING} weekly RRULEs with EXDATEs, "
          f"{ALL_DAY} all-day, the rest single; some transparent or cancelled); sync window "
          f"now-1d..now+180d (CALSYNC_HORIZON_DAYS)")
    print(f"external_busy rows of coach01: {rows_full:,} after the full read, {rows_incremental:,} after "
          f"{len(changes)} changes ({', '.join(changes)}), {rows_again:,} after a full read again")
    print()
    rows = []
    for name, s in syncs.items():
        per_s = EVENTS / (s["wall_ms"] / 1000) if name.startswith("full") else float("nan")
        rows.append([name, f"{s['wall_ms']:.0f}", f"{s['cpu_ms']:.0f}", f"{s['radicale_cpu_ms']:.0f}",
                     f"{s['postgres_cpu_ms']:.0f}", "" if per_s != per_s else f"{per_s:,.0f}", f"{s['others']:.2f}"])
    harness.print_table(["sync (in this process, as the RQ job)", "wall ms", "our CPU ms", "Radicale CPU ms",
                         "postgres CPU ms", "events/s", "others"], rows)
    print("'our CPU' is time.process_time of this process (XML, iCalendar, RRULE expansion, SQL client); "
          "'others' is the machine's CPU no watched process used, in cores.")
    print("\ncProfile of the full read again (this process's CPU), by cumulative time:")
    print("\n".join(_profile_lines(syncs["full again (cProfile)"]["profile"])))

    print("\nEXPLAIN (ANALYZE, BUFFERS) of the week page's calendar statement (coach01, the measured week), "
          "second run:")
    print("\n".join("  " + line for line in plan))
    print(f"uses {INDEX}: yes")

    print()
    print(f"pages: none = {paths['none']} (coach02, no busy rows), busy = {paths['busy']} (coach01)")
    table = []
    for name, n, r in runs:
        label = {"baseline": "bare route GET /", "none": "week calendar, no busy rows",
                 "busy": f"week calendar, {rows_again:,} busy rows"}[name]
        cores = r["cpu"]["cores"]
        ms = sum(cores.get(k, 0.0) for k in ("server", "postgres", "valkey")) * 1000 / r["req_per_s"]
        q = pages.get(name, {})
        table.append([f"{label} #{n}", q.get("queries", "-"), q.get("slots", "-"), r["requests"],
                      sum(r["errors"].values()), r["req_per_s"], r["p50_ms"], r["p95_ms"],
                      f"{cores.get('server', 0.0):.2f}", f"{cores.get('postgres', 0.0):.2f}",
                      f"{r['cpu']['others']:.2f}", f"{ms:.2f}"])
    harness.print_table(["run", "queries", "slots", "requests", "errors", "req/s", "p50 ms", "p95 ms", "gunicorn",
                         "postgres", "others", "CPU ms/req"], table)
    for name, n, r in runs:
        if r["errors"]:
            print(f"{name} #{n} errors: {r['errors']}")

    def pooled(name: str) -> dict:
        chosen = [r for side, _, r in runs if side == name]
        latencies = sorted(v for r in chosen for v in r["latencies_ms"])
        return {"rps": sum(r["requests"] for r in chosen) / sum(r["seconds"] for r in chosen),
                "cpu": harness.cpu_ms_per_request(chosen), "p50": harness.percentile(latencies, 50),
                "p95": harness.percentile(latencies, 95)}

    base, free, held = pooled("baseline"), pooled("none"), pooled("busy")
    ratio = held["rps"] / base["rps"] if base["rps"] else float("nan")
    print(f"\npooled: bare route {base['rps']:,.0f} req/s, {base['cpu']:.2f} CPU ms/req; week page without busy "
          f"rows {free['rps']:,.1f} req/s, {free['cpu']:.2f} CPU ms/req, p50 {free['p50']:.1f} p95 {free['p95']:.1f} "
          f"ms (ratio {free['rps'] / base['rps']:.3f}); with busy rows {held['rps']:,.1f} req/s, "
          f"{held['cpu']:.2f} CPU ms/req, p50 {held['p50']:.1f} p95 {held['p95']:.1f} ms (ratio {ratio:.3f}); "
          f"busy ÷ none CPU {held['cpu'] / free['cpu']:.2f}")
    print(f"in-process (test client, {PAGE_REQUESTS} requests each): none {pages['none']['cpu_ms']:.1f} ms CPU, "
          f"{pages['none']['queries']} statements, {pages['none']['bytes']:,} bytes; busy "
          f"{pages['busy']['cpu_ms']:.1f} ms CPU, {pages['busy']['queries']} statements, "
          f"{pages['busy']['bytes']:,} bytes; the slots alone (availability.week_slots: the statement, its rows, "
          f"compute_slots): none {pages['none']['slots_cpu_ms']:.2f} ms, busy {pages['busy']['slots_cpu_ms']:.2f} ms")

    print(f"\nseries preview, weekly x {SERIES_COUNT} (free offering, horizon 730 days), as the coach, in this process:")
    srows = []
    for label, s in (("coach01 (busy rows)", series_busy), ("coach02 (none)", series_none)):
        srows.append([label, s["queries"], f"{s['page_cpu_ms']:.0f}", f"{s['page_wall_ms']:.0f}",
                      f"{s['plan_cpu_ms']:.0f}", s["bookable"], f"{s['bytes']:,}",
                      ", ".join(f"{k} {v}" for k, v in sorted(s["reasons"].items(), key=lambda kv: -kv[1]))])
    harness.print_table(["coach", "statements", "page CPU ms", "page wall ms", "plan() CPU ms", "bookable",
                         "bytes", "occurrences"], srows)
    print("\ncProfile of one plan() of coach01 (CPU), by own time:")
    print("\n".join(_profile_lines(series_busy["profile"])))

    return harness.key_values(sync_full_ms=syncs["full"]["wall_ms"], sync_incremental_ms=syncs["incremental"]["wall_ms"],
                              events_per_s=EVENTS / (syncs["full"]["wall_ms"] / 1000),
                              week_cpu_ms_per_req=free["cpu"], week_busy_cpu_ms_per_req=held["cpu"], ratio=ratio,
                              series500_cpu_ms=series_busy["page_cpu_ms"], series500_statements=series_busy["queries"])
