"""The operators' console (/platform): granted by the CLI, invisible to everyone else, every organization's
figures and the platform's background work, never a tenant's content."""
from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from rq.registry import FailedJobRegistry

from coach import tenancy
from coach.accounts.models import SecurityEvent
from coach.chat import service as chat
from coach.extensions import db
from coach.orgs.service import membership_for
from coach.platform.queues import queue
from coach.spaces import service as spaces
from tests.conftest import Auth, _plain, csrf_from
from tests.factories import add_member, make_org, make_user, media_row

CONSOLE = "/platform/"
POST_BODY = "Harbour secret training plan: row at dawn"
MESSAGE_BODY = "Rival private message about the regatta"


def browser_of(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def body(response) -> str:
    return response.get_data(as_text=True)


def cli(app, *args):
    return app.test_cli_runner().invoke(args=["platform-admin", *args])


@pytest.fixture()
def superuser_db(stack, app):
    """The cluster superuser: the only way to read platform events (of no organization)."""
    socket_dir = _plain(stack.owner_url).split("host=", 1)[1]
    with psycopg.connect(f"postgresql://postgres@/coach?host={socket_dir}", autocommit=True) as conn:
        yield conn


@pytest.fixture()
def world(ctx):
    """Harbour Rowing (3 members, a post, a 10-byte video) and Rival Rowing (2 members, a chat message);
    Olga runs the platform and belongs to neither."""
    make_user("olga@ops.example", "Olga Operator")
    ada = make_user("ada@example.com", "Ada Admin")
    harbour = make_org(ada, slug="harbour", name="Harbour Rowing")
    coach = add_member(harbour, make_user("cora@example.com", "Cora Coach"), "coach")
    add_member(harbour, make_user("abe@example.com", "Abe Athlete"))
    tenancy.activate(harbour.id)
    space = spaces.create_space(harbour, coach, "Squad", "", "open")
    spaces.create_post(space, coach, POST_BODY)
    media_row(harbour.id, coach, title="Harbour video")
    db.session.commit()
    otto = make_user("otto@example.com", "Otto Rival")
    rival = make_org(otto, slug="rival", name="Rival Rowing")
    rita = add_member(rival, make_user("rita@example.com", "Rita Rival"))
    tenancy.activate(rival.id)
    conversation = chat.direct_with(rival, membership_for(rival, otto), rita)
    chat.send(conversation, membership_for(rival, otto), MESSAGE_BODY)
    db.session.commit()
    return {"harbour": harbour.id, "rival": rival.id}


@pytest.fixture()
def operator(app, world):
    assert cli(app, "grant", "olga@ops.example").exit_code == 0
    return browser_of(app, "olga@ops.example")


def fail_a_job(app, tenant_id, topic: str = "mail.send") -> str:
    """A job of ``tenant_id``'s event that the background worker fails (its email id is not a uuid)."""
    event_id = uuid.uuid4()
    job_id = f"event-{event_id}"
    event = {"id": str(event_id), "tenant_id": str(tenant_id), "topic": topic,
             "payload": {"email_id": "not-a-uuid", "text": POST_BODY}, "request_id": None,
             "created_at": time.time()}
    with app.app_context():
        q = queue("mail")
        q.enqueue("coach.platform.jobs.handle_event", event, job_id=job_id, job_timeout=30, failure_ttl=3600,
                  description=f"handle {MESSAGE_BODY}")
        registry = FailedJobRegistry(queue=q)
        deadline = time.monotonic() + 30  # a background worker or thread, on a loaded machine
        while job_id not in registry.get_job_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job_id in registry.get_job_ids(), "the job did not fail in time"
    return job_id


def add_outbox_event(owner_db, tenant_id, age_seconds: float, dead: bool = False):
    owner_db.execute(
        "INSERT INTO outbox_events (id, tenant_id, topic, payload, created_at, available_at, attempts, dead_at) "
        "VALUES (%s, %s, 'mail.send', %s, %s, now() + interval '1 hour', 0, %s)",
        [uuid.uuid4(), tenant_id, '{"text": "%s"}' % MESSAGE_BODY,
         datetime.now(timezone.utc) - timedelta(seconds=age_seconds), datetime.now(timezone.utc) if dead else None])


# -- the CLI ---------------------------------------------------------------------------------------------

def test_cli_grants_lists_and_revokes(app, world, superuser_db):
    granted = cli(app, "grant", "OLGA@ops.example")
    assert granted.exit_code == 0 and "olga@ops.example is a platform admin." in granted.output
    assert cli(app, "grant", "olga@ops.example").output.strip().endswith("(unchanged).")
    assert cli(app, "list").output.split() == ["olga@ops.example"]

    revoked = cli(app, "revoke", "olga@ops.example")
    assert revoked.exit_code == 0 and "olga@ops.example is not a platform admin." in revoked.output
    listed = cli(app, "list")
    assert listed.exit_code == 0 and "olga@ops.example" not in listed.output

    events = superuser_db.execute(
        "SELECT action, tenant_id, actor_label, details->>'email' FROM audit_events "
        "WHERE action LIKE 'platform_admin.%%' ORDER BY created_at").fetchall()
    assert events == [("platform_admin.granted", None, "cli", "olga@ops.example"),
                      ("platform_admin.revoked", None, "cli", "olga@ops.example")]
    with app.app_context():
        actions = [e.action for e in db.session.query(SecurityEvent).order_by(SecurityEvent.created_at)]
    assert actions == ["platform_admin.granted", "platform_admin.revoked"]


def test_cli_refuses_an_unknown_email(app, world):
    result = cli(app, "grant", "nobody@example.com")

    assert result.exit_code == 1
    assert "No account has the email address 'nobody@example.com'." in result.output


# -- who may see it ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("email", [None, "ada@example.com", "abe@example.com", "olga@ops.example"])
def test_everyone_but_platform_admins_gets_a_404(app, world, email):
    browser = browser_of(app, email) if email else app.test_client()

    for path in (CONSOLE, "/platform"):
        response = browser.get(path)
        assert response.status_code == 404 and "Operators" not in body(response)
    # Even a POST without a CSRF token is a 404, not a 400 that would give the console away.
    assert browser.post("/platform/jobs/event-1/retry").status_code == 404
    if email:
        assert 'href="/platform/"' not in body(browser.get("/profile"))


def test_a_revoked_admin_loses_the_console_on_the_next_request(app, operator):
    assert operator.get(CONSOLE).status_code == 200
    cli(app, "revoke", "olga@ops.example")

    assert operator.get(CONSOLE).status_code == 404


def test_platform_admins_see_the_link_in_the_account_menu(operator):
    assert 'href="/platform/">Platform</a>' in body(operator.get("/profile"))


# -- what it shows ----------------------------------------------------------------------------------------

def test_console_lists_every_organization_with_its_figures(operator, world):
    page = body(operator.get(CONSOLE))

    harbour = page.split('id="org-harbour"', 1)[1].split("</tr>", 1)[0]
    rival = page.split('id="org-rival"', 1)[1].split("</tr>", 1)[0]
    assert "Harbour Rowing" in harbour and "/o/harbour" in harbour
    assert re.findall(r'<td class="num">(\d+)</td>', harbour)[0] == "3"
    assert "10 B" in harbour or "10 bytes" in harbour
    assert "Rival Rowing" in rival and re.findall(r'<td class="num">(\d+)</td>', rival)[0] == "2"
    assert '<span class="stat-n">2</span><span class="stat-l">organizations' in page


def test_console_never_shows_a_tenants_content(app, operator, world, owner_db):
    fail_a_job(app, world["harbour"])
    add_outbox_event(owner_db, world["rival"], age_seconds=30)

    page = body(operator.get(CONSOLE))

    for secret in (POST_BODY, MESSAGE_BODY, "Harbour video", "Cora Coach", "Abe Athlete", "Rita Rival",
                   "ada@example.com", "not-a-uuid"):
        assert secret not in page
    assert "ValueError" in page  # the failed job's exception type, without its message


def test_outbox_lag_is_shown_overall_and_per_organization(operator, world, owner_db, job_runner):
    with job_runner.paused():
        job_runner.drain()  # the world's own events delivered: only these three wait
    add_outbox_event(owner_db, world["rival"], age_seconds=120)
    add_outbox_event(owner_db, world["rival"], age_seconds=5, dead=True)
    add_outbox_event(owner_db, world["harbour"], age_seconds=10)

    page = body(operator.get(CONSOLE))

    lag = float(re.search(r'id="outbox-lag"><span class="stat-n">([\d.]+) s', page).group(1))
    assert 120 <= lag < 180
    assert '<span class="stat-n">2</span><span class="stat-l">outbox events waiting' in page
    rival = page.split('id="org-rival"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">1 / 1</td>' in rival


def test_slowest_routes_come_from_the_metrics(operator):
    for _ in range(3):
        operator.get("/o/harbour/")

    routes = body(operator.get(CONSOLE)).split('id="slow-routes"', 1)[1]

    assert "GET /o/&lt;slug&gt;/" in routes
    assert "the web process that answered this page" in routes


def test_retrying_a_failed_job_of_any_organization(app, operator, world, superuser_db):
    job_id = fail_a_job(app, world["rival"])
    page = body(operator.get(CONSOLE))
    row = page.split(f'id="job-{job_id}"', 1)[1].split("</tr>", 1)[0]
    assert "rival" in row and "mail.send" in row

    response = operator.post(f"/platform/jobs/{job_id}/retry", data={"csrf_token": csrf_from(page)})

    assert response.status_code == 303
    assert "Job queued again." in body(operator.get(CONSOLE))
    assert superuser_db.execute("SELECT tenant_id, actor_label FROM audit_events WHERE action = "
                                "'platform.job_retry' AND target_id = %s", [job_id]).fetchall() == [
        (None, "olga@ops.example")]


def test_deleting_a_failed_job(app, operator, world):
    job_id = fail_a_job(app, world["harbour"])
    token = csrf_from(body(operator.get(CONSOLE)))

    assert operator.post(f"/platform/jobs/{job_id}/delete", data={"csrf_token": token}).status_code == 303

    page = body(operator.get(CONSOLE))
    assert "Job deleted." in page and job_id not in page
    with app.app_context():
        assert job_id not in FailedJobRegistry(queue=queue("mail")).get_job_ids()
    # Gone: a second delete (a stale page) is a 404, not a 500.
    assert operator.post(f"/platform/jobs/{job_id}/delete", data={"csrf_token": token}).status_code == 404


def test_job_actions_need_the_csrf_token(app, operator, world):
    job_id = fail_a_job(app, world["harbour"])

    assert operator.post(f"/platform/jobs/{job_id}/delete").status_code == 400
    assert operator.post(f"/platform/jobs/{job_id}/explode", data={
        "csrf_token": csrf_from(body(operator.get(CONSOLE)))}).status_code == 404
    with app.app_context():
        assert job_id in FailedJobRegistry(queue=queue("mail")).get_job_ids()


def test_console_keeps_working_when_redis_is_away(app, operator, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")

    response = operator.get(CONSOLE)

    assert response.status_code == 200
    page = body(response)
    assert "Redis does not answer: queues and failed jobs cannot be shown right now." in page
    assert 'id="org-harbour"' in page
