"""Operating the app: request ids, one JSON log line per request, Prometheus metrics, the admin System page."""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from rq.registry import FailedJobRegistry

from coach.accounts.service import find_user_by_email
from coach.config import load_config
from coach.platform.observability import JsonFormatter
from coach.platform.queues import QUEUE_NAMES, queue
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_org, make_user

OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}
SYSTEM = "/o/harbour/admin/system"
HEX_ID = re.compile(r"[0-9a-f]{32}")


# -- helpers ---------------------------------------------------------------------------------------

def browser_of(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def body(response) -> str:
    return response.get_data(as_text=True)


def request_lines(caplog) -> list[dict]:
    """The fields of every access-log line captured so far."""
    return [r.fields for r in caplog.records if r.name == "coach.request"]


def metric(text: str, name: str, **labels) -> float | None:
    """The value of one sample in Prometheus text, or ``None`` when it is not there."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def see_org(owner_db, slug: str) -> None:
    owner_db.execute("SELECT set_config('app.tenant_id', id::text, false) FROM organizations WHERE slug = %s",
                     [slug])


def add_outbox_event(owner_db, tenant_id, *, age_seconds: float = 0, dead: bool = False,
                     topic: str = "mail.send", error: str | None = None) -> uuid.UUID:
    """An outbox event waiting (not due for an hour, so the relay leaves it) or dead."""
    event_id = uuid.uuid4()
    created = datetime.now(timezone.utc) - timedelta(seconds=age_seconds)
    owner_db.execute(
        "INSERT INTO outbox_events (id, tenant_id, topic, payload, created_at, available_at, attempts, "
        "last_error, dead_at) VALUES (%s, %s, %s, '{}', %s, now() + interval '1 hour', %s, %s, %s)",
        [event_id, tenant_id, topic, created, 8 if dead else 0, error, datetime.now(timezone.utc) if dead else None])
    return event_id


def fail_a_job(app, tenant_id, description: str) -> str:
    """Queue a job for ``tenant_id`` whose event cannot be handled; the background worker fails it."""
    event_id = uuid.uuid4()
    job_id = f"event-{event_id}"
    event = {"id": str(event_id), "tenant_id": str(tenant_id), "topic": "mail.send",
             "payload": {"email_id": "not-a-uuid"}, "request_id": None, "created_at": time.time()}
    with app.app_context():
        q = queue("mail")
        q.enqueue("coach.platform.jobs.handle_event", event, job_id=job_id, description=description,
                  job_timeout=30, failure_ttl=3600)
        registry = FailedJobRegistry(queue=q)
        deadline = time.monotonic() + 30  # a background worker or thread, on a loaded machine
        while job_id not in registry.get_job_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job_id in registry.get_job_ids(), "the job did not fail in time"
    return job_id


@pytest.fixture()
def club(ctx):
    """Harbour Rowing (Ada admin, Cora coach) and Rival Rowing (Otto admin)."""
    ada = make_user("ada@example.com", "Ada Admin")
    harbour = make_org(ada, slug="harbour", name="Harbour Rowing")
    add_member(harbour, make_user("cora@example.com", "Cora Coach"), "coach")
    rival = make_org(make_user("otto@example.com", "Otto"), slug="rival", name="Rival Rowing")
    return {"harbour": harbour.id, "rival": rival.id}


@pytest.fixture()
def admin(app, club):
    return browser_of(app, "ada@example.com")


# -- request ids ------------------------------------------------------------------------------------

def test_every_response_carries_a_generated_request_id(client):
    first, second = client.get("/login"), client.get("/login")

    assert HEX_ID.fullmatch(first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_a_sane_incoming_request_id_is_echoed(client):
    response = client.get("/login", headers={"X-Request-ID": "lb-7f3a.42:edge-1"})

    assert response.headers["X-Request-ID"] == "lb-7f3a.42:edge-1"


@pytest.mark.parametrize("forged", [
    "abc\r\nSet-Cookie: session=stolen",
    "trailing-newline\n",
    "x" * 10 * 1024,
    "spaces are not allowed",
    "",
], ids=["header-injection", "trailing-newline", "10KB", "spaces", "empty"])
def test_a_forged_request_id_is_replaced_by_a_fresh_one(client, forged):
    response = client.get("/login", environ_overrides={"HTTP_X_REQUEST_ID": forged})

    assert response.status_code == 200
    assert HEX_ID.fullmatch(response.headers["X-Request-ID"])
    assert "stolen" not in response.headers.get("Set-Cookie", "")


def test_refused_form_post_still_carries_the_request_id(client):
    response = client.post("/login", data={"email": "a@example.com"}, headers={"X-Request-ID": "csrf-refused-1"})

    assert response.status_code == 400
    assert response.headers["X-Request-ID"] == "csrf-refused-1"


def test_unknown_organization_404_still_carries_the_request_id(admin):
    response = admin.get("/o/no-such-club/", headers={"X-Request-ID": "lost-visitor-1"})

    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "lost-visitor-1"


def test_unmatched_path_404_carries_a_request_id(client):
    assert HEX_ID.fullmatch(client.get("/no/such/page").headers["X-Request-ID"])


# -- the access log ----------------------------------------------------------------------------------

def test_one_log_line_per_request_with_route_rule_user_and_organization(admin, club, caplog):
    caplog.set_level(logging.INFO, logger="coach.request")
    ada_id = str(find_user_by_email("ada@example.com").id)

    response = admin.get("/o/harbour/", headers={"X-Request-ID": "home-visit-1"})

    lines = request_lines(caplog)
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == response.headers["X-Request-ID"] == "home-visit-1"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/o/<slug>/", 200)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert line["user_id"] == ada_id
    assert line["org_id"] == str(club["harbour"])


def test_log_line_is_json_with_the_request_id(client, caplog):
    caplog.set_level(logging.INFO, logger="coach.request")

    response = client.get("/login")

    record = next(r for r in caplog.records if r.name == "coach.request")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == response.headers["X-Request-ID"]
    assert entry["logger"] == "coach.request" and entry["level"] == "info"
    assert entry["route"] == "/login" and entry["status"] == 200
    assert entry["user_id"] is None and entry["org_id"] is None


def test_log_line_of_a_refused_request_has_its_request_id_and_duration(client, caplog):
    caplog.set_level(logging.INFO, logger="coach.request")

    response = client.post("/login", data={})

    line = request_lines(caplog)[-1]
    assert line["status"] == 400
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert line["duration_ms"] > 0


def test_unmatched_paths_are_logged_under_one_route(client, caplog):
    caplog.set_level(logging.INFO, logger="coach.request")

    client.get("/wp-admin/setup.php")

    line = request_lines(caplog)[-1]
    assert (line["route"], line["status"]) == ("<unmatched>", 404)


# -- /metrics -------------------------------------------------------------------------------------------

def test_metrics_answer_prometheus_text_from_this_machine(client):
    client.get("/login")

    response = client.get("/metrics")
    text = body(response)

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert metric(text, "coach_http_requests_total", method="GET", route="/login", status="200") >= 1
    assert metric(text, "coach_outbox_pending") is not None
    for name in QUEUE_NAMES:
        assert metric(text, "coach_queue_depth", queue=name) is not None


def test_metrics_count_by_route_rule_not_by_raw_path(admin, club):
    before = metric(body(admin.get("/metrics")), "coach_http_requests_total", method="GET", route="/o/<slug>/",
                    status="200") or 0

    admin.get("/o/harbour/")
    admin.get("/o/harbour/")
    text = body(admin.get("/metrics"))

    assert metric(text, "coach_http_requests_total", method="GET", route="/o/<slug>/", status="200") == before + 2
    assert 'route="/o/harbour/"' not in text


def test_metrics_show_waiting_outbox_events_and_their_age(client, club, owner_db):
    add_outbox_event(owner_db, club["harbour"], age_seconds=120)
    add_outbox_event(owner_db, None, age_seconds=5)
    add_outbox_event(owner_db, club["rival"], dead=True)

    text = body(client.get("/metrics"))

    assert metric(text, "coach_outbox_pending") == 2
    assert metric(text, "coach_outbox_dead") == 1
    assert metric(text, "coach_outbox_lag_seconds") >= 120


def test_metrics_from_another_machine_are_forbidden(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-secret-token")

    assert client.get("/metrics", environ_base=OUTSIDE).status_code == 403
    assert client.get("/metrics", environ_base=OUTSIDE,
                      headers={"Authorization": "Bearer wrong-token"}).status_code == 403
    assert client.get("/metrics", environ_base=OUTSIDE,
                      headers={"Authorization": "scrape-secret-token"}).status_code == 403


def test_metrics_from_another_machine_with_the_token(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-secret-token")

    response = client.get("/metrics", environ_base=OUTSIDE,
                          headers={"Authorization": "Bearer scrape-secret-token"})

    assert response.status_code == 200
    assert "coach_http_requests_total" in body(response)


def test_without_a_configured_token_no_bearer_opens_metrics(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "")

    for value in ("Bearer ", "Bearer", "Bearer None"):
        assert client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": value}).status_code == 403


def test_metrics_token_is_read_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "from-the-environment")
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@/y")

    assert load_config(tmp_path, {"COACH_ENV": "testing", "SECRET_KEY": "k"})["METRICS_TOKEN"] == "from-the-environment"


# -- the System page -------------------------------------------------------------------------------------

def test_system_page_shows_this_organizations_outbox_and_no_platform_figures(admin, club, owner_db):
    add_outbox_event(owner_db, club["harbour"], age_seconds=90)
    # Another organization's backlog is not this admin's business (nor is it evidence of their size).
    for _ in range(3):
        add_outbox_event(owner_db, club["rival"], age_seconds=600)
    add_outbox_event(owner_db, club["rival"], dead=True, error="theirs")

    response = admin.get(SYSTEM)
    page = body(response)

    assert response.status_code == 200 and "<html" in page
    for name in QUEUE_NAMES:
        assert f"<td>{name}</td>" not in page
    lag = float(re.search(r'<span class="stat-n">([\d.]+) s</span><span class="stat-l">outbox lag', page).group(1))
    assert 90 <= lag < 150
    assert re.search(r'<span class="stat-n">1</span><span class="stat-l">events waiting', page)
    assert re.search(r'<span class="stat-n">0</span><span class="stat-l">dead letters', page)


def test_system_page_lists_this_organizations_dead_letters_only(admin, club, owner_db):
    add_outbox_event(owner_db, club["harbour"], dead=True, topic="mail.send", error="SMTPRecipientsRefused: ours")
    add_outbox_event(owner_db, club["rival"], dead=True, topic="mail.send", error="SMTPDataError: theirs")

    section = body(admin.get(SYSTEM)).split('id="dead-letters"', 1)[1]

    assert "SMTPRecipientsRefused: ours" in section
    assert "theirs" not in section
    assert section.count("8 attempts") == 1


def test_retrying_a_dead_letter_puts_it_back_in_line_and_is_audited(admin, club, owner_db):
    event_id = add_outbox_event(owner_db, club["harbour"], dead=True, error="boom")
    token = csrf_from(body(admin.get("/o/harbour/admin/members")))

    response = admin.post(f"{SYSTEM}/dead-letters/{event_id}/retry", data={"csrf_token": token})

    assert response.status_code == 303
    page = body(admin.get(SYSTEM))
    assert "The event will be delivered again." in page
    assert "boom" not in page.split('id="dead-letters"', 1)[1]
    see_org(owner_db, "harbour")
    assert owner_db.execute("SELECT actor_label, target_id FROM audit_events WHERE action = 'outbox.retried'"
                            ).fetchall() == [("ada@example.com", str(event_id))]


def test_another_organizations_dead_letter_cannot_be_retried(admin, club, owner_db):
    event_id = add_outbox_event(owner_db, club["rival"], dead=True, error="theirs")
    token = csrf_from(body(admin.get("/o/harbour/admin/members")))

    response = admin.post(f"{SYSTEM}/dead-letters/{event_id}/retry", data={"csrf_token": token})

    assert response.status_code == 404
    assert owner_db.execute("SELECT dead_at IS NOT NULL FROM outbox_events WHERE id = %s",
                            [event_id]).fetchone() == (True,)
    see_org(owner_db, "harbour")
    assert owner_db.execute("SELECT count(*) FROM audit_events WHERE action = 'outbox.retried'").fetchone()[0] == 0


def test_system_page_lists_this_organizations_failed_jobs_only(app, admin, club):
    fail_a_job(app, club["harbour"], "mail.send harbour-welcome")
    fail_a_job(app, club["rival"], "mail.send rival-newsletter")

    section = body(admin.get(SYSTEM)).split('id="failed-jobs"', 1)[1].split('id="dead-letters"', 1)[0]

    assert "mail.send harbour-welcome" in section
    assert "rival-newsletter" not in section
    assert "ValueError" in section


def test_discarding_a_failed_job_removes_it_and_is_audited(app, admin, club, owner_db):
    job_id = fail_a_job(app, club["harbour"], "mail.send harbour-welcome")
    token = csrf_from(body(admin.get("/o/harbour/admin/members")))

    response = admin.post(f"{SYSTEM}/jobs/{job_id}/discard", data={"csrf_token": token})

    assert response.status_code == 303
    page = body(admin.get(SYSTEM))
    assert "Job discarded." in page and "harbour-welcome" not in page
    with app.app_context():
        assert job_id not in FailedJobRegistry(queue=queue("mail")).get_job_ids()
    see_org(owner_db, "harbour")
    assert owner_db.execute("SELECT target_id FROM audit_events WHERE action = 'job.discard'").fetchall() == [
        (job_id,)]


def test_retrying_a_failed_job_queues_it_again_and_is_audited(app, admin, club, owner_db):
    job_id = fail_a_job(app, club["harbour"], "mail.send harbour-welcome")
    token = csrf_from(body(admin.get("/o/harbour/admin/members")))

    response = admin.post(f"{SYSTEM}/jobs/{job_id}/retry", data={"csrf_token": token})

    assert response.status_code == 303
    assert "Job queued again." in body(admin.get(SYSTEM))
    see_org(owner_db, "harbour")
    assert owner_db.execute("SELECT target_id FROM audit_events WHERE action = 'job.retry'").fetchall() == [
        (job_id,)]


def test_another_organizations_failed_job_cannot_be_touched(app, admin, club, owner_db):
    job_id = fail_a_job(app, club["rival"], "mail.send rival-newsletter")
    token = csrf_from(body(admin.get("/o/harbour/admin/members")))

    for action in ("retry", "discard"):
        assert admin.post(f"{SYSTEM}/jobs/{job_id}/{action}", data={"csrf_token": token}).status_code == 404

    with app.app_context():
        assert job_id in FailedJobRegistry(queue=queue("mail")).get_job_ids()


def test_system_page_is_for_admins_only(app, club):
    cora = browser_of(app, "cora@example.com")

    assert cora.get(SYSTEM).status_code == 403
    assert "Not allowed" in body(cora.get(SYSTEM))


def test_system_page_keeps_working_when_redis_is_away(app, admin, club, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")

    response = admin.get(SYSTEM)

    assert response.status_code == 200
    assert "Redis does not answer: failed jobs cannot be listed right now." in body(response)
