"""Periodic jobs: scheduled once per name through RQ's scheduler, and what each sweeps."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rq.registry import ScheduledJobRegistry

from coach.accounts.jobs import sweep_expired_tokens
from coach.platform import periodic
from coach.platform.queues import queue


def _scheduled_names(app) -> list[str]:
    with app.app_context():
        ids = ScheduledJobRegistry(queue=queue("default")).get_job_ids()
    return sorted(job_id.rsplit("-", 1)[0].removeprefix("periodic-") for job_id in ids)


def test_every_periodic_job_is_scheduled_once_however_often_workers_start(app):
    with app.app_context():
        first = periodic.ensure_scheduled()
        second = periodic.ensure_scheduled()
    assert sorted(first) == sorted(periodic.SCHEDULE)
    assert second == []
    assert _scheduled_names(app) == sorted(periodic.SCHEDULE)


def test_a_periodic_run_schedules_its_next_run(app):
    with app.app_context():
        periodic.run("sweep_expired_tokens")
    assert _scheduled_names(app) == ["sweep_expired_tokens"]


def test_expired_signups_and_old_reset_tokens_are_swept(app, owner_db, ctx):
    from tests.factories import make_user

    user = make_user("sweep@example.com")
    past = datetime.now(timezone.utc) - timedelta(days=10)
    owner_db.execute(
        "INSERT INTO pending_signups (id, email, display_name, timezone, password_hash, token_hash, expires_at) "
        "VALUES (gen_random_uuid(), 'late@example.com', 'Late', 'UTC', 'x', 'h1', %s)", [past])
    owner_db.execute(
        "INSERT INTO pending_signups (id, email, display_name, timezone, password_hash, token_hash, expires_at) "
        "VALUES (gen_random_uuid(), 'fresh@example.com', 'Fresh', 'UTC', 'x', 'h2', now() + interval '1 day')")
    owner_db.execute("INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at) "
                     "VALUES (gen_random_uuid(), %s, 'h3', %s)", [user.id, past])
    with app.app_context():
        assert sweep_expired_tokens() == 2
    emails = [r[0] for r in owner_db.execute("SELECT email FROM pending_signups").fetchall()]
    assert emails == ["fresh@example.com"]


def test_old_processed_events_are_swept_across_organizations(app, owner_db, ctx):
    from tests.factories import make_org

    org = make_org()
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(org.id)])
    owner_db.execute("INSERT INTO processed_events (event_id, tenant_id, topic, processed_at) "
                     "VALUES (gen_random_uuid(), %s, 't', now() - interval '40 days'), "
                     "(gen_random_uuid(), %s, 't', now())", [org.id, org.id])
    with app.app_context():
        assert periodic.sweep_processed_events() == 1
    assert owner_db.execute("SELECT count(*) FROM processed_events WHERE tenant_id = %s",
                            [org.id]).fetchone()[0] == 1


def test_a_worker_stops_listening_for_commands_promptly(app):
    """A deploy stops workers with SIGTERM and a short grace: RQ's command listener (a pub/sub
    thread that redis-py ≥ 8.2 waits for on shutdown) must not hold a worker for its minute-long read."""
    import time

    from rq.serializers import JSONSerializer

    from coach.platform.queues import QUEUE_NAMES, redis_conn
    from worker import CoachWorker

    with app.app_context():
        connection = redis_conn()
        worker = CoachWorker([queue(name, connection) for name in QUEUE_NAMES], connection=connection,
                             serializer=JSONSerializer)
        worker.subscribe()
        time.sleep(0.3)  # the listener is now inside its blocking read
        started = time.monotonic()
        worker.pubsub_thread.stop()
        worker.pubsub.close()
        assert not worker.pubsub_thread.is_alive()
        assert time.monotonic() - started < 5, "the command listener took over 5 s to stop"
