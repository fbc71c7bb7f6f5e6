"""The transactional outbox end to end: emit, relay, RQ, idempotent consumers, dead letters.

The session's background relay and worker are paused (``quiet``) wherever a test
delivers events itself; the test consumers live in tests/fault_consumers.py and
leave one audit row per effect.
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
import redis
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

import tests.fault_consumers  # noqa: F401  (registers the test.* consumers)
from coach import tenancy
from coach.extensions import db
from coach.platform import relay
from coach.platform.jobs import handle_event
from coach.platform.outbox import emit
from coach.platform.queues import queue, redis_conn
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_org, make_user
from tests.outbox_support import closed_port, effects, fetch_job, other_app, outbox_row, processed, wait_until

HANDLER = "coach.platform.jobs.handle_event"


@pytest.fixture()
def org(ctx):
    return make_org(make_user("ada@example.com", "Ada Admin"), slug="harbour", name="Harbour Rowing")


def committed(topic: str, payload: dict, tenant_id=None):
    event_id = emit(topic, payload, tenant_id=tenant_id).id
    db.session.commit()
    return event_id


def queued_ids(name: str) -> list[str]:
    return queue(name, redis_conn()).job_ids


def in_threads(app, func, *args, n: int = 2) -> list:
    """Run ``func(*args)`` in ``n`` threads started together, each in its own app context."""
    results, errors = [], []
    barrier = threading.Barrier(n)

    def run():
        try:
            with app.app_context():
                barrier.wait(timeout=5)
                results.append(func(*args))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(results) == n, "a thread did not finish"
    return results


# -- emit -----------------------------------------------------------------------------------------

def test_an_event_exists_only_if_its_transaction_commits(quiet, org, owner_db):
    rolled_back = emit("test.count", {"mark": "rolled-back"}, tenant_id=org.id).id
    db.session.rollback()
    assert outbox_row(owner_db, rolled_back) is None

    kept = committed("test.count", {"mark": "kept"}, org.id)
    row = outbox_row(owner_db, kept)
    assert row["topic"] == "test.count" and row["payload"] == {"mark": "kept"}
    assert row["tenant_id"] == org.id and row["attempts"] == 0 and row["dead_at"] is None


def test_the_event_emit_returns_stays_readable_after_commit(quiet, org):
    """Neither a platform event (insert-only under RLS) nor one the relay already took can be read back."""
    with tenancy.acting_for(None):
        platform = emit("mail.send", {"mark": "platform"})
        db.session.commit()
    assert platform.tenant_id is None and platform.topic == "mail.send"

    delivered = emit("test.count", {"mark": "gone"}, tenant_id=org.id)
    db.session.commit()
    assert relay.relay_once() == 2
    assert delivered.payload == {"mark": "gone"} and queued_ids("default") == [f"event-{delivered.id}"]


# -- relay ----------------------------------------------------------------------------------------

def test_relay_moves_every_due_event_to_its_queue_and_deletes_it(quiet, org, owner_db):
    # Each topic runs on the queue its declaration names; media.* events run on default (only the
    # processing jobs they enqueue go on the media queue); an undeclared topic runs on default.
    expected = {"mail.send": "mail", "media.uploaded": "default", "test.notify": "notifications",
                "test.count": "default", "test.undeclared": "default"}
    ids = {topic: committed(topic, {"mark": topic}, org.id) for topic in expected}
    with tenancy.acting_for(None):
        platform_event = committed("mail.send", {"mark": "platform"})  # no organization
    later = committed("test.count", {"mark": "later"}, org.id)
    owner_db.execute("UPDATE outbox_events SET available_at = now() + interval '1 hour' WHERE id = %s", [str(later)])
    dead = committed("test.count", {"mark": "dead"}, org.id)
    owner_db.execute("UPDATE outbox_events SET dead_at = now() WHERE id = %s", [str(dead)])

    assert relay.relay_once() == 6

    connection = redis_conn()
    for topic, name in expected.items():
        assert queued_ids(name).count(f"event-{ids[topic]}") == 1
        job = fetch_job(connection, ids[topic])
        assert job.origin == name and job.func_name == HANDLER
        assert job.timeout == relay.JOB_TIMEOUT and job.retries_left == relay.JOB_RETRY.max
        event = job.args[0]
        assert event["id"] == str(ids[topic]) and event["topic"] == topic
        assert event["tenant_id"] == str(org.id) and event["payload"] == {"mark": topic}
        assert outbox_row(owner_db, ids[topic]) is None
    assert fetch_job(connection, platform_event).args[0]["tenant_id"] is None
    assert queued_ids("mail") == [f"event-{ids['mail.send']}", f"event-{platform_event}"]
    # Not due yet, and dead: both stay where they are.
    assert outbox_row(owner_db, later) is not None and outbox_row(owner_db, dead) is not None
    assert f"event-{later}" not in queued_ids("default") and f"event-{dead}" not in queued_ids("default")
    assert relay.relay_once() == 0


def test_a_batch_for_several_queues_is_enqueued_in_one_round_trip(quiet, org, owner_db, stack):
    ids = [committed(topic, {"mark": f"{topic}-{n}"}, org.id)
           for n in range(5) for topic in ("mail.send", "test.notify", "test.count")]
    redis_conn().info("server")  # RQ reads the server's version once per connection, not per batch
    seen: list[str] = []
    watcher = redis.Redis.from_url(stack.redis_url)

    def watch():
        with watcher.monitor() as monitor:
            for command in monitor.listen():
                seen.append(command["command"])
                if command["command"] == "ECHO batch-end":
                    return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    wait_until(lambda: redis_conn().echo("batch-start") and "ECHO batch-start" in seen, 5, "the monitor to listen")
    assert relay.relay_once() == 15
    redis_conn().echo("batch-end")
    thread.join(timeout=5)
    start = len(seen) - seen[::-1].index("ECHO batch-start")  # after the last of the monitor's probes
    batch = seen[start:seen.index("ECHO batch-end")]
    # Sent together (MULTI ... EXEC is one write and one read): nothing before or after, no second pipeline.
    assert batch[0] == "MULTI" and batch[-1] == "EXEC" and batch.count("MULTI") == 1, batch[:5]
    assert {len(queued_ids(name)) for name in ("mail", "notifications", "default")} == {5}  # for three queues
    assert all(outbox_row(owner_db, event_id) is None for event_id in ids)


def test_the_claim_reads_a_burst_in_index_order_without_sorting_it(quiet, owner_db):
    """Right after a burst (statistics not yet updated by autovacuum), the claim must not sort the backlog:
    docs/PERFORMANCE.md measured 26 ms per batch for that sort at 30,000 events."""
    owner_db.execute("INSERT INTO outbox_events (id, topic, available_at, created_at) "
                     "SELECT gen_random_uuid(), 'test.count', now() - interval '1 second' * n, now() "
                     "FROM generate_series(1, 30000) AS n")
    claim, settings = owner_db.execute("SELECT prosrc, proconfig FROM pg_proc WHERE proname = 'outbox_claim'").fetchone()
    claim = claim.replace("p_limit", "500")
    with owner_db.transaction():  # the function's body, planned with the function's own settings
        for name, value in (setting.split("=", 1) for setting in settings):
            owner_db.execute("SELECT set_config(%s, %s, true)", [name, value])
        plan = owner_db.execute(f"EXPLAIN (FORMAT JSON) {claim}").fetchone()[0][0]["Plan"]
        started = time.perf_counter()
        owner_db.execute(claim)
        elapsed = time.perf_counter() - started

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    scans = [(n["Node Type"], n.get("Index Name")) for n in nodes(plan)]
    assert ("Index Scan", "ix_outbox_events_claim") in scans, scans
    assert not any("Sort" in node_type for node_type, _ in scans), scans
    assert elapsed < 0.5


def test_two_relays_at_once_enqueue_each_event_exactly_once(app, quiet, org, owner_db):
    ids = {str(emit("test.count", {"mark": f"bulk-{i}"}, tenant_id=org.id).id) for i in range(500)}
    db.session.commit()

    def relay_all() -> int:
        moved = 0
        while n := relay.relay_once(batch=10):
            moved += n
        return moved

    per_relay = in_threads(app, relay_all)

    assert sum(per_relay) == 500
    assert all(per_relay), f"one relay did all the work ({per_relay}): they did not run side by side"
    job_ids = queued_ids("default")
    assert len(job_ids) == 500 and set(job_ids) == {f"event-{i}" for i in ids}
    assert owner_db.execute("SELECT count(*) FROM outbox_events").fetchone()[0] == 0


def test_enqueue_failures_back_off_then_the_dead_letter_can_be_retried_from_the_system_page(
        app, quiet, org, owner_db):
    event_id = committed("test.count", {"mark": "stubborn"}, org.id)
    with other_app(app, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0", OUTBOX_MAX_ATTEMPTS=3) as no_redis:
        with no_redis.app_context():
            waits = []
            for attempt in (1, 2, 3):
                assert relay.relay_once() == 0
                row = outbox_row(owner_db, event_id)
                assert row["attempts"] == attempt and "ConnectionError" in row["last_error"]
                waits.append(row["due_in"].total_seconds())
                if attempt < 3:
                    assert row["dead_at"] is None
                    assert relay.relay_once() == 0 and outbox_row(owner_db, event_id)["attempts"] == attempt
                    owner_db.execute("UPDATE outbox_events SET available_at = now() WHERE id = %s", [str(event_id)])
    assert 0 < waits[0] < waits[1] < waits[2]  # 1 s, 2 s, 4 s
    assert outbox_row(owner_db, event_id)["dead_at"] is not None
    owner_db.execute("UPDATE outbox_events SET available_at = now() WHERE id = %s", [str(event_id)])
    assert relay.relay_once() == 0  # dead: the working relay leaves it alone

    coach = make_user("cora@example.com", "Cora Coach")
    add_member(org, coach, "coach")
    coach_browser = app.test_client()
    Auth(coach_browser).login("cora@example.com")
    assert coach_browser.get("/o/harbour/admin/system").status_code == 403

    admin = app.test_client()
    Auth(admin).login("ada@example.com")
    page = admin.get("/o/harbour/admin/system")
    html = page.get_data(as_text=True)
    retry_path = f"/o/harbour/admin/system/dead-letters/{event_id}/retry"
    assert page.status_code == 200
    assert "test.count" in html and "3 attempts" in html and "ConnectionError" in html and retry_path in html

    response = admin.post(retry_path, data={"csrf_token": csrf_from(html)})
    assert response.status_code == 303
    row = outbox_row(owner_db, event_id)
    assert row["dead_at"] is None and row["attempts"] == 0
    assert "No dead letters." in admin.get("/o/harbour/admin/system").get_data(as_text=True)

    quiet.drain()
    assert outbox_row(owner_db, event_id) is None
    assert len(effects(owner_db, org.id, "stubborn")) == 1


# -- consumers ------------------------------------------------------------------------------------

def test_an_event_handled_twice_at_the_same_time_takes_effect_once(app, quiet, org, owner_db):
    event_id = committed("test.count", {"mark": "twice"}, org.id)
    relay.relay_once()
    event = fetch_job(redis_conn(), event_id).args[0]

    assert sorted(in_threads(app, handle_event, event)) == ["done", "duplicate"]
    assert handle_event(event) == "duplicate"
    assert len(effects(owner_db, org.id, "twice")) == 1
    assert processed(owner_db, org.id) == 1


def test_a_failing_consumer_leaves_nothing_behind_and_its_retry_applies_it(quiet, org, owner_db, tmp_path):
    switch = tmp_path / "fail"
    switch.touch()
    event_id = committed("test.flaky", {"mark": "flaky", "fail_while": str(switch)}, org.id)
    quiet.drain()

    connection = redis_conn()
    job = fetch_job(connection, event_id)
    scheduled = ScheduledJobRegistry(queue=queue("default", connection))
    assert job.get_status() == "scheduled" and job.id in scheduled.get_job_ids()
    # The first retry is immediate (and failed too); the second waits its 30 s in the scheduled registry.
    assert relay.JOB_RETRY.intervals[0] == 0 and job.retries_left == relay.JOB_RETRY.max - 2
    assert effects(owner_db, org.id, "flaky") == [] and processed(owner_db, org.id) == 0

    # The cause goes away and the retry comes due (brought forward from its 30 s interval).
    switch.unlink()
    scheduled.schedule(job, datetime.now(timezone.utc))
    scheduler = RQScheduler([queue("default", connection)], connection=connection, serializer=JSONSerializer)
    scheduler.acquire_locks()
    try:
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()
    quiet.drain()

    assert job.get_status() == "finished"
    assert len(effects(owner_db, org.id, "flaky")) == 1 and processed(owner_db, org.id) == 1


def test_a_password_reset_sends_one_email_however_often_its_event_is_handled(app, client, quiet, mailbox,
                                                                               owner_db, ctx):
    make_user("reset-me@example.com")
    response = client.post("/password/forgot", data={"csrf_token": csrf_from(client.get("/password/forgot")
                                                                              .get_data(as_text=True)),
                                                      "email": "reset-me@example.com"})
    assert response.status_code == 303
    assert relay.relay_once() == 1
    [job_id] = queued_ids("mail")
    event = fetch_job(redis_conn(), job_id.removeprefix("event-")).args[0]
    assert event["topic"] == "mail.send" and event["tenant_id"] is None
    assert event["request_id"] == response.headers["X-Request-ID"]

    assert sorted(in_threads(app, handle_event, event)) == ["done", "duplicate"]
    quiet.drain()  # the RQ job itself: a third delivery
    assert handle_event(event) == "duplicate"

    [message] = mailbox.to("reset-me@example.com")
    assert message["Subject"] == "Reset your Coach password"
    sent = owner_db.execute("SELECT sent_at IS NOT NULL, body_text FROM emails").fetchall()
    assert sent == [(True, "")]  # one email, delivered, its one-time link no longer stored


def test_a_job_carries_its_request_id_and_runs_for_its_organization(app, quiet, org, owner_db, mailbox):
    admin = app.test_client()
    Auth(admin).login("ada@example.com")
    token = csrf_from(admin.get("/o/harbour/admin/members").get_data(as_text=True))
    response = admin.post("/o/harbour/admin/invitations", data={"csrf_token": token, "email": "nina@example.com",
                                                               "role": "coach"})
    assert response.status_code == 303
    assert relay.relay_once() == 1
    [job_id] = queued_ids("mail")
    event = fetch_job(redis_conn(), job_id.removeprefix("event-")).args[0]
    assert event["request_id"] == response.headers["X-Request-ID"]
    assert event["tenant_id"] == str(org.id)
    quiet.drain()
    assert len(mailbox.to("nina@example.com")) == 1

    # What a consumer sees: the organization set for RLS and the causing request's id.
    from flask import g

    g.request_id = "req-" + uuid.uuid4().hex
    tenancy.activate(org.id)
    committed("test.whoami", {"mark": "whoami"})
    quiet.drain()
    [seen] = effects(owner_db, org.id, "whoami")
    assert seen == {"tenant_setting": str(org.id), "request_id": g.request_id}
    act = owner_db.execute("SELECT request_id FROM audit_events WHERE target_id = 'whoami'").fetchone()
    assert act[0] == g.request_id
