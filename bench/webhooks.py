"""``webhooks``: 2,000 signed provider deliveries through the production server and a real relay and worker, with
20 % duplicates and 5 % out of order; then whether every event was applied exactly once and the books balance.

Set-up (in this process, through the models): one organization, a coach with a credit pack (EUR 50.00, 5
credits), ``BENCH_WEBHOOK_PAYMENTS`` pending card payments for it (default 1,400), each with a checkout id as the
provider would have. The deliveries (``BENCH_WEBHOOKS``, default 2,000) are Stripe-shaped events signed with
``STRIPE_WEBHOOK_SECRET`` (``t=...,v1=HMAC-SHA256``):

* one ``checkout.session.completed`` per payment (the pack is paid: credits granted, the ledger posted, a
  receipt issued by the invoices' consumer);
* a partial ``charge.refunded`` (EUR 10.00) for some payments; 5 % of the deliveries are such refunds sent
  *before* their payment's completion (out of order: the refund completes the payment from the charge first);
* 20 % are redeliveries of an event already sent (Stripe retries), mixed into the stream.

``BENCH_WEBHOOK_CLIENTS`` (default 16) threads post them to ``gunicorn wsgi:app`` (the Procfile's web entry)
in that order; ``python relay.py`` and ``python worker.py`` (``RQ_QUEUES=default,notifications``: receipts'
emails wait in the mail queue) apply them. The clock runs from the first post until every event is stored,
applied (``payment_events.processed_at``) and the outbox is empty.

Checks: ``lost`` = events not stored or not applied, plus payments not in their expected state (paid, the
refund recorded); ``double_applied`` = payments with more than one credit grant or one paid posting, or more
refunded than was sent, plus the clearing balance off from what the events add up to;
``ledger_balanced`` = :func:`coach.payments.ledger.check`.

Last line: ``events_per_s=... lost=0 double_applied=0 ledger_balanced=1`` (events_per_s: deliveries per second
end to end, received and applied) plus the HTTP side's own rate and latency.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random
import threading
import time
import uuid

from bench import harness

SECRET = "whsec_bench_webhooks"
PRICE, REFUND, CREDITS = 5000, 1000, 5


def _sign(body: bytes) -> str:
    t = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _event(kind: str, obj: dict) -> dict:
    return {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "api_version": "2025-09-30.clover",
            "created": int(time.time()), "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
            "type": kind}


def _seed(app, payments: int):
    """The organization, the pack and ``payments`` pending payments; returns (org, [(payment id, checkout id)])."""
    from coach import tenancy
    from coach.extensions import db
    from coach.orgs.models import Membership
    from coach.payments.models import Payment, Product
    from coach.payments.settings import billing_settings
    from sqlalchemy import select

    org = harness.seed_org(app, slug="bench-webhooks", members=20, coaches=1)
    rows = []
    with app.app_context():
        tenancy.activate(org.id)
        billing_settings(org.id)
        members = db.session.scalars(select(Membership).where(Membership.tenant_id == org.id)).all()
        coach = next(m for m in members if m.role == "coach")
        athletes = [m for m in members if m.role == "athlete"]
        pack = Product(tenant_id=org.id, coach_membership_id=coach.id, kind="pack", title="5-pack",
                       price_minor=PRICE, currency="EUR", credits=CREDITS, validity_days=90)
        db.session.add(pack)
        db.session.flush()
        for n in range(payments):
            pid = uuid.uuid4()
            checkout_id = f"cs_bench_{pid.hex[:20]}"
            db.session.add(Payment(id=pid, tenant_id=org.id, athlete_membership_id=athletes[n % len(athletes)].id,
                                   coach_membership_id=coach.id, purpose="pack", product_id=pack.id,
                                   amount_minor=PRICE, currency="EUR", method="card", status="pending",
                                   provider_checkout_id=checkout_id))
            rows.append((pid, checkout_id))
        db.session.commit()
    return org, rows


def _stream(org_id, rows, total: int, seed: int = 16):
    """The deliveries in sending order, and what they should lead to: {payment id: refunded or 0}."""
    rnd = random.Random(seed)
    duplicates = total // 5
    early = total // 20
    unique = total - duplicates
    refunds = unique - len(rows)
    if refunds < early:
        raise ValueError("BENCH_WEBHOOK_PAYMENTS too high for the out-of-order share")
    expected: dict = {}
    sequence: list[dict] = []
    refunded_ids = {pid for pid, _ in rnd.sample(rows, refunds)}
    early_ids = set(rnd.sample(sorted(refunded_ids, key=str), early))
    for pid, checkout_id in rows:
        meta = {"tenant_id": str(org_id), "payment_id": str(pid)}
        intent = f"pi_bench_{pid.hex[:20]}"
        completed = _event("checkout.session.completed", {
            "id": checkout_id, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
            "status": "complete", "amount_total": PRICE, "currency": "eur", "payment_intent": intent,
            "customer": None, "subscription": None, "metadata": meta})
        expected[pid] = 0
        if pid not in refunded_ids:
            sequence.append(completed)
            continue
        refunded = _event("charge.refunded", {
            "id": f"ch_bench_{pid.hex[:20]}", "object": "charge", "amount": PRICE, "amount_captured": PRICE,
            "amount_refunded": REFUND, "currency": "eur", "payment_intent": intent, "refunded": False,
            "metadata": meta})
        expected[pid] = REFUND
        sequence.extend([refunded, completed] if pid in early_ids else [completed, refunded])
    # Stripe's retries: copies of events already sent, a little later in the stream.
    for _ in range(duplicates):
        n = rnd.randrange(len(sequence))
        sequence.insert(min(len(sequence), n + rnd.randint(1, 50)), sequence[n])
    return sequence, expected, unique


def _deliver(port: int, sequence: list[dict], clients: int) -> tuple[list[float], dict]:
    """Post every delivery (threads taking the next in order); latencies (ms) and status counts."""
    lock = threading.Lock()
    cursor = iter(range(len(sequence)))
    latencies: list[float] = []
    statuses: dict = {}

    def work():
        conn = http.client.HTTPConnection(harness.HOST, port, timeout=30)
        while True:
            with lock:
                n = next(cursor, None)
            if n is None:
                break
            body = json.dumps(sequence[n]).encode()
            started = time.perf_counter()
            for attempt in range(3):
                try:
                    conn.request("POST", "/payments/webhook", body=body, headers={
                        "Content-Type": "application/json", "Stripe-Signature": _sign(body)})
                    answer = conn.getresponse()
                    answer.read()
                    status = answer.status
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(harness.HOST, port, timeout=30)
                    status = "error"
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses


def _applied(app, org_id) -> tuple[int, int]:
    """(events stored, events applied) of the organization."""
    from sqlalchemy import func, select

    from coach import tenancy
    from coach.extensions import db
    from coach.payments.models import PaymentEvent

    with app.app_context():
        tenancy.activate(org_id)
        stored = db.session.scalar(select(func.count()).select_from(PaymentEvent))
        applied = db.session.scalar(select(func.count()).select_from(PaymentEvent)
                                    .where(PaymentEvent.processed_at.is_not(None)))
        db.session.rollback()
        return stored, applied


def _verify(app, org_id, expected: dict, unique: int) -> dict:
    from sqlalchemy import func, select

    from coach import tenancy
    from coach.extensions import db
    from coach.payments import ledger
    from coach.payments.models import CreditGrant, LedgerTransaction, Payment, PaymentEvent

    with app.app_context():
        tenancy.activate(org_id)
        payments = {p.id: p for p in db.session.scalars(select(Payment).where(Payment.tenant_id == org_id))}
        grants = dict(db.session.execute(select(CreditGrant.payment_id, func.count()).where(
            CreditGrant.tenant_id == org_id).group_by(CreditGrant.payment_id)).all())
        paid_posts = dict(db.session.execute(select(LedgerTransaction.payment_id, func.count()).where(
            LedgerTransaction.tenant_id == org_id, LedgerTransaction.idempotency_key.like("paid:%"))
            .group_by(LedgerTransaction.payment_id)).all())
        unapplied = db.session.scalar(select(func.count()).select_from(PaymentEvent).where(
            PaymentEvent.tenant_id == org_id, PaymentEvent.processed_at.is_(None)))
        stored = db.session.scalar(select(func.count()).select_from(PaymentEvent).where(
            PaymentEvent.tenant_id == org_id))
        lost = (unique - stored) + unapplied
        double = 0
        for pid, refund in expected.items():
            p = payments[pid]
            if p.status != "paid" or p.refunded_minor < refund or grants.get(pid, 0) < 1:
                lost += 1
            if grants.get(pid, 0) > 1 or paid_posts.get(pid, 0) > 1 or p.refunded_minor > refund:
                double += 1
        clearing = ledger.balance(org_id, "provider_clearing", "EUR")
        if clearing != sum(PRICE - r for r in expected.values()):
            double += 1
        check = ledger.check(org_id)
        db.session.rollback()
        return {"lost": lost, "double_applied": double, "ledger_balanced": int(check.ok), "check": str(check)}


def run(argv: list[str] | None = None) -> str:
    total = harness.env_int("BENCH_WEBHOOKS", 2000)
    payments = harness.env_int("BENCH_WEBHOOK_PAYMENTS", 1400)
    clients = harness.env_int("BENCH_WEBHOOK_CLIENTS", 16)
    harness.header("webhooks")
    with harness.running_stack() as bench:
        bench.env.update(STRIPE_WEBHOOK_SECRET=SECRET, STRIPE_SECRET_KEY="sk_test_bench_unused",
                         STRIPE_API_BASE="http://127.0.0.1:9", PAYMENT_HOLD_MINUTES="30")
        import os
        os.environ.update({k: bench.env[k] for k in ("STRIPE_WEBHOOK_SECRET", "STRIPE_SECRET_KEY",
                                                      "STRIPE_API_BASE")})
        app = harness.make_app()
        org, rows = _seed(app, payments)
        sequence, expected, unique = _stream(org.id, rows, total)
        harness.say(f"{len(sequence)} deliveries ({unique} events, {len(sequence) - unique} duplicates) for "
                    f"{len(rows)} payments")
        web = bench.start_gunicorn("web", "wsgi:app", "/health")
        bench.spawn("relay", [harness.PYTHON, "relay.py"])
        bench.spawn("worker", [harness.PYTHON, "worker.py"], {"RQ_QUEUES": "default,notifications"})
        started = time.perf_counter()
        latencies, statuses = _deliver(web.port, sequence, clients)
        sent = time.perf_counter() - started
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            stored, applied = _applied(app, org.id)
            if stored >= unique and applied >= stored:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        verdict = _verify(app, org.id, expected, unique)
    latencies.sort()
    harness.print_table(
        ["deliveries", "events", "duplicates", "http s", "applied s", "http/s", "p50 ms", "p95 ms", "statuses"],
        [[len(sequence), unique, len(sequence) - unique, sent, elapsed, len(sequence) / sent,
          harness.percentile(latencies, 50), harness.percentile(latencies, 95),
          " ".join(f"{k}:{v}" for k, v in sorted(statuses.items(), key=str))]])
    if not verdict["ledger_balanced"]:
        harness.say(f"ledger check: {verdict['check']}")
    return harness.key_values(events_per_s=len(sequence) / elapsed, lost=verdict["lost"],
                              double_applied=verdict["double_applied"], ledger_balanced=verdict["ledger_balanced"],
                              http_per_s=len(sequence) / sent, p95_ms=harness.percentile(latencies, 95))
