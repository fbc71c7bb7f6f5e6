"""``credits_race``: a credit can never be spent twice, whatever arrives at once, through the production server.

One organization (``gunicorn --config gunicorn.conf.py wsgi:app``) with one coach (Europe/Berlin, 08:00–20:00
every day), a 60-minute offering that confirms at once (price 40.00 EUR), and packs bought and paid (the
payment rows as a completed checkout leaves them; the grants through ``credits.grant_for_payment``):

* Round 1: one athlete holding a 3-credit pack sends 100 concurrent ``POST .../book`` with
  ``pay=credit:<pack>`` for 100 different free slots (no slot contention: only the credits are contended).
  Exactly 3 may be booked (303); the others get the "no credits left" page (409).
* Round 2: 100 athletes, each with a 1-credit pack, post for one and the same slot with their own pack.
  Exactly 1 may be booked; the others get "just taken" (409) and keep their credit.

Each request goes over its own new connection; all are sent but their last byte, then the last bytes go out in
one tight loop (as ``booking_race`` does). A 303 is a booking, a 409 or 422 a refusal; a 5xx, another status
or a transport failure is an error. Afterwards the database is read as the owner role: credits spent (total
minus remaining over all grants), overspent (a grant with more unreturned uses than credits, or a cached
count that disagrees with its uses), and the ledger check (:func:`coach.payments.ledger.check`).

Target: ``spent=4 overspent=0 errors=0`` (and ``ledger_balanced=1``).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import psycopg

from bench import harness
from bench.booking_race import HOURS, ZONE, _iso, _wall
from bench.load import CSRF_RE, HOST, Client, HttpError, log_in

TIMEOUT = 60.0
LOGIN_CONCURRENCY = 16


@dataclass
class Racer:
    email: str
    membership_id: str
    grant_id: str
    cookies: dict | None = None
    csrf: str = ""


@dataclass
class Attempt:
    racer: Racer
    starts_at: datetime
    status: int | None = None
    problem: str | None = None
    latency: float = 0.0


def _kind(attempt: Attempt) -> str:
    if attempt.problem is None and attempt.status == 303:
        return "booked"
    if attempt.problem is None and attempt.status in (409, 422):
        return "refused"
    return "error"


# --- seeding -------------------------------------------------------------------------------------


def _seed(app, crowd: int):
    """The organization, the coach's hours and offering, a 3-credit pack for the first athlete and a 1-credit
    pack for each of ``crowd`` others; returns the org, the offering id, the lone athlete and the crowd."""
    from sqlalchemy import select

    from coach import clock, tenancy
    from coach.booking import service
    from coach.extensions import db
    from coach.orgs.models import Membership
    from coach.payments import credits
    from coach.payments.models import Payment, Product, ProductOffering
    from coach.payments.settings import billing_settings

    org = harness.seed_org(app, slug="bench-credits", members=crowd + 4, coaches=1)
    with app.app_context():
        tenancy.activate(org.id)
        billing_settings(org.id)
        members = {m.user.email: m for m in db.session.scalars(select(Membership).where(
            Membership.tenant_id == org.id))}
        coach = next(m for m in members.values() if m.role == "coach")
        service.set_coach_timezone(coach, "Europe/Berlin", coach)
        for weekday in range(7):
            service.add_rule(coach, weekday, *HOURS, coach)
        offering = service.save_offering(coach, dict(
            title="Race: one hour", description="", duration_minutes=60, price_minor=4000, currency="EUR",
            location="Court 1", meeting_url="", capacity=1, auto_confirm=True, buffer_before_minutes=0,
            buffer_after_minutes=0, min_notice_minutes=0, max_per_day=None, horizon_days=60,
            cancellation_window_hours=24), coach)

        def pack(credits_count: int, price: int) -> Product:
            product = Product(tenant_id=org.id, coach_membership_id=coach.id, kind="pack",
                              title=f"{credits_count}-pack", price_minor=price, currency="EUR",
                              credits=credits_count, validity_days=90)
            db.session.add(product)
            db.session.flush()
            db.session.add(ProductOffering(tenant_id=org.id, product_id=product.id, offering_id=offering.id))
            return product

        def bought(product: Product, athlete: Membership) -> str:
            payment = Payment(tenant_id=org.id, athlete_membership_id=athlete.id, coach_membership_id=coach.id,
                              purpose="pack", product_id=product.id, amount_minor=product.price_minor,
                              currency="EUR", method="card", status="paid", paid_at=clock.now(),
                              provider_payment_id=f"pi_bench_{uuid.uuid4().hex}")
            db.session.add(payment)
            db.session.flush()
            return str(credits.grant_for_payment(payment).id)

        three, one = pack(3, 12000), pack(1, 4000)
        athletes = [members[email] for email, role in org.members if role == "athlete"]
        lone = Racer(athletes[0].user.email, str(athletes[0].id), bought(three, athletes[0]))
        racers = [Racer(a.user.email, str(a.id), bought(one, a)) for a in athletes[1:crowd + 1]]
        db.session.commit()
        return org, str(offering.id), lone, racers


def _free_slots(app, org_id, offering_id: str, first_day, n: int) -> list[datetime]:
    from coach import tenancy
    from coach.booking import service
    from coach.booking.models import Offering
    from coach.extensions import db

    with app.app_context():
        tenancy.activate(org_id)
        offering = db.session.get(Offering, uuid.UUID(offering_id))
        start = _wall(first_day, 0)
        slots = service.available_slots(offering, start, start + timedelta(days=20))
        return [s.starts_at for s in slots[:n]]


# --- the clients ---------------------------------------------------------------------------------


async def _prepare(port: int, slug: str, password: str, offering_id: str, attempts: list[Attempt]) -> None:
    """Log each racer in once and open a booking page (its CSRF token), at most 16 at a time."""
    gate = asyncio.Semaphore(LOGIN_CONCURRENCY)
    first: dict[str, Attempt] = {}
    for a in attempts:
        first.setdefault(a.racer.email, a)

    async def one(attempt: Attempt) -> None:
        async with gate:
            client = Client(port, timeout=TIMEOUT)
            await log_in(client, attempt.racer.email, password)
            path = f"/o/{slug}/offerings/{offering_id}/book?start={_iso(attempt.starts_at)}"
            status, _, body = await client.request("GET", path)
            match = CSRF_RE.search(body.decode("utf-8", "replace"))
            if status != 200 or not match:
                raise HttpError(f"GET {path} as {attempt.racer.email}: status {status}")
            attempt.racer.csrf, attempt.racer.cookies = match.group(1), dict(client.cookies)
            client.close()

    await asyncio.wait_for(asyncio.gather(*(one(a) for a in first.values())), 300)


def _raw_post(port: int, slug: str, offering_id: str, attempt: Attempt) -> bytes:
    racer = attempt.racer
    body = urlencode({"csrf_token": racer.csrf, "start": _iso(attempt.starts_at), "reschedule": "",
                      "athlete": racer.membership_id, "note": "", "pay": f"credit:{racer.grant_id}",
                      "idempotency_key": uuid.uuid4().hex}).encode()
    cookies = "; ".join(f"{k}={v}" for k, v in (racer.cookies or {}).items())
    head = (f"POST /o/{slug}/offerings/{offering_id}/book HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"User-Agent: coach-bench\r\nAccept: text/html\r\nConnection: close\r\nCookie: {cookies}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _read_status(reader: asyncio.StreamReader) -> int:
    line = await reader.readline()
    parts = line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {line[:80]!r}")
    await reader.read()  # the rest, until the server closes (Connection: close)
    return int(parts[1])


async def _race(port: int, slug: str, offering_id: str, attempts: list[Attempt], meter: harness.CpuMeter) -> dict:
    raws = [_raw_post(port, slug, offering_id, a) for a in attempts]
    conns = await asyncio.wait_for(asyncio.gather(*(asyncio.open_connection(HOST, port) for _ in raws)), TIMEOUT)
    for (_, writer), raw in zip(conns, raws):
        writer.write(raw[:-1])
    await asyncio.gather(*(writer.drain() for _, writer in conns))
    await asyncio.sleep(0.5)

    async def finish(attempt: Attempt, reader, writer, started: float) -> None:
        try:
            attempt.status = await asyncio.wait_for(_read_status(reader), TIMEOUT)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            attempt.problem = type(exc).__name__
        attempt.latency = time.perf_counter() - started
        writer.close()

    meter.start()
    t0 = time.perf_counter()
    starts = []
    for (_, writer), raw in zip(conns, raws):
        writer.write(raw[-1:])
        starts.append(time.perf_counter())
    await asyncio.gather(*(finish(a, r, w, s) for a, (r, w), s in zip(attempts, conns, starts)))
    return {"wall_ms": (time.perf_counter() - t0) * 1000, "cpu": meter.stop()}


# --- the database's view -------------------------------------------------------------------------


def _books(owner_conninfo: str, app, org_id) -> dict:
    with psycopg.connect(owner_conninfo, autocommit=True) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(org_id)])
        spent = conn.execute("SELECT coalesce(sum(credits_total - credits_remaining), 0) FROM credit_grants"
                             ).fetchone()[0]
        overspent = conn.execute(
            "SELECT count(*) FROM credit_grants g LEFT JOIN LATERAL (SELECT count(*) AS n FROM credit_uses u "
            "WHERE u.tenant_id = g.tenant_id AND u.grant_id = g.id AND u.returned_at IS NULL) uses ON true "
            "WHERE uses.n > g.credits_total OR uses.n <> g.credits_total - g.credits_remaining").fetchone()[0]
        live = conn.execute("SELECT count(*) FROM bookings WHERE status IN ('requested', 'confirmed')").fetchone()[0]
    from coach import tenancy
    from coach.payments import ledger

    with app.app_context():
        tenancy.activate(org_id)
        check = ledger.check(org_id)
    return {"spent": int(spent), "overspent": int(overspent), "live": int(live), "ledger": check}


# --- the benchmark -------------------------------------------------------------------------------


def run() -> str:
    n = harness.env_int("BENCH_CREDITS_REQUESTS", 100)
    harness.header("credits_race")
    with harness.running_stack() as bench:
        app = harness.make_app()
        harness.say(f"seeding: a coach, a 60-minute offering, a 3-credit pack and {n} 1-credit packs")
        org, offering_id, lone, racers = _seed(app, n)
        first_day = datetime.now(ZONE).date() + timedelta(days=2)
        free = _free_slots(app, org.id, offering_id, first_day, n + 1)
        if len(free) < n + 1:
            raise SystemExit(f"only {len(free)} free slots in 20 days")
        round1 = [Attempt(lone, start) for start in free[:n]]
        round2 = [Attempt(r, free[n]) for r in racers]
        rounds = [("round 1", f"one athlete, 3 credits, {n} different slots", round1, 3),
                  ("round 2", f"{n} athletes, 1 credit each, one slot", round2, 1)]
        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        owner = bench.stack.owner_url.replace("postgresql+psycopg://", "postgresql://")
        figures: dict[str, dict] = {}

        async def drive() -> None:
            harness.say(f"logging in {1 + len(racers)} athletes and opening a booking page each")
            await _prepare(web.port, org.slug, org.password, offering_id, round1 + round2)
            for name, what, attempts, _ in rounds:
                harness.say(f"{name}: {len(attempts)} concurrent POSTs ({what})")
                meter = harness.CpuMeter({"server": web.process.pid, **services})
                figures[name] = await _race(web.port, org.slug, offering_id, attempts, meter)

        asyncio.run(drive())
        books = _books(owner, app, org.id)

    print()
    rows = []
    for name, what, attempts, allowed in rounds:
        lat = sorted(a.latency * 1000 for a in attempts)
        rows.append([f"{name}: {what}", len(attempts), sum(_kind(a) == "booked" for a in attempts), allowed,
                     sum(_kind(a) == "refused" for a in attempts), sum(_kind(a) == "error" for a in attempts),
                     harness.percentile(lat, 50), harness.percentile(lat, 95), lat[-1],
                     figures[name]["wall_ms"]])
    harness.print_table(["round", "requests", "booked 303", "may book", "refused 409/422", "errors", "p50 ms",
                         "p95 ms", "max ms", "all answered ms"], rows)
    problems: dict[str, int] = {}
    for _, _, attempts, _ in rounds:
        for a in attempts:
            if _kind(a) == "error":
                key = a.problem or f"status {a.status}"
                problems[key] = problems.get(key, 0) + 1
    if problems:
        print(f"errors: {problems}")
    print(f"database: {books['spent']} credit(s) spent, {books['live']} live booking(s), "
          f"{books['overspent']} grant(s) whose uses disagree with their credits; ledger: {books['ledger']}")
    errors = sum(problems.values())
    booked = sum(_kind(a) == "booked" for _, _, attempts, _ in rounds for a in attempts)
    ok = books["spent"] == 4 and booked == 4 and books["overspent"] == 0 and errors == 0 and books["ledger"].ok
    print(f"\ntarget spent=4 overspent=0 errors=0, the ledger balanced: {'met' if ok else 'MISSED'}")
    print(f"booked={booked} ledger_balanced={int(books['ledger'].ok)}")
    return harness.key_values(spent=books["spent"], overspent=books["overspent"], errors=errors)
