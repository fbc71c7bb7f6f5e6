"""Organization settings: the admin's page (each setting saved and audited, bad values refused, admins only),
who may create spaces, the locale on the page, and the nightly retention of chat and the audit trail."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from sqlalchemy import func, select

from coach import tenancy
from coach.chat import service as chat
from coach.chat.models import ConversationRead, Message
from coach.extensions import db
from coach.governance import settings as org_settings
from coach.governance.jobs import sweep_data_retention
from coach.orgs.models import Organization
from coach.orgs.service import membership_for
from coach.platform.models import AuditEvent
from coach.spaces import service as spaces
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_org, make_user

UTC = timezone.utc
SETTINGS = "/o/harbour/admin/settings"
VALID = {"name": "Harbour Rowing", "timezone": "Europe/Lisbon", "locale": "de", "space_creation": "members",
         "listed_publicly": "y", "chat_retention_days": "90",
         "audit_retention_days": "365", "default_cancellation_window_hours": "24",
         "default_late_cancel_policy": "forfeit", "default_late_cancel_fee_percent": "50"}


class World:
    """Harbour Club (``harbour``): Ada (admin), Carl (coach), Ana (athlete)."""

    def __init__(self):
        ada = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(ada, slug="harbour", name="Harbour Club")
        tenancy.activate(self.org.id)
        self.admin = membership_for(self.org, ada)
        self.coach = add_member(self.org, make_user("carl@example.com", "Carl Coach"), "coach")
        self.athlete = add_member(self.org, make_user("ana@example.com", "Ana Alves"), "athlete")
        tenancy.activate(self.org.id)


@pytest.fixture()
def world(ctx):
    return World()


def browser(app, email: str):
    client = app.test_client()
    assert Auth(client).login(email).status_code == 303
    return client


def post_settings(client, **changes):
    token = csrf_from(client.get(SETTINGS).get_data(as_text=True))
    data = {"csrf_token": token, **VALID, **changes}
    return client.post(SETTINGS, data={k: v for k, v in data.items() if v is not None})


def org_row(slug: str = "harbour") -> Organization:
    db.session.rollback()
    return db.session.scalar(select(Organization).where(Organization.slug == slug))


def audit_rows(owner_db, slug: str, action: str) -> list[dict]:
    owner_db.execute("SELECT set_config('app.tenant_id', id::text, false) FROM organizations WHERE slug = %s", [slug])
    return [row[0] for row in owner_db.execute(
        "SELECT details FROM audit_events WHERE action = %s ORDER BY created_at", [action])]


# --- the page ----------------------------------------------------------------------------------------

def test_admin_saves_every_setting_and_the_change_is_audited_with_before_and_after(app, world, owner_db):
    ada = browser(app, "ada@example.com")
    response = post_settings(ada)
    assert response.status_code == 303
    org = org_row()
    assert (org.name, org.timezone, org.locale, org.space_creation) == (
        "Harbour Rowing", "Europe/Lisbon", "de", "members")
    assert org.listed_publicly and not org.require_two_factor
    assert (org.chat_retention_days, org.audit_retention_days) == (90, 365)
    [details] = audit_rows(owner_db, "harbour", "org.settings_changed")
    assert details["name"] == {"before": "Harbour Club", "after": "Harbour Rowing"}
    assert details["locale"] == {"before": "en", "after": "de"}
    assert details["chat_retention_days"] == {"before": None, "after": 90}
    assert details["space_creation"] == {"before": "leaders", "after": "members"}
    page = ada.get(SETTINGS).get_data(as_text=True)
    assert "Settings saved." in page
    # Emptying a retention keeps everything again; unchanged values are not audited a second time.
    assert post_settings(ada, chat_retention_days="").status_code == 303
    assert org_row().chat_retention_days is None
    second = audit_rows(owner_db, "harbour", "org.settings_changed")[-1]
    assert set(second) == {"chat_retention_days"}


def test_admin_requires_two_factor_for_admins_and_coaches(app, world, owner_db):
    ada = browser(app, "ada@example.com")
    assert post_settings(ada, require_two_factor="y").status_code == 303
    assert org_row().require_two_factor
    [details] = audit_rows(owner_db, "harbour", "org.settings_changed")
    assert details["require_two_factor"] == {"before": False, "after": True}


@pytest.mark.parametrize("field, value, message", [
    ("locale", "klingon", "not one of the languages offered"),
    ("timezone", "Mars/Olympus", "Try a city, like Europe/Paris."),
    ("chat_retention_days", "0", "Between 1 and 3,650 days"),
    ("chat_retention_days", "3651", "Between 1 and 3,650 days"),
    ("audit_retention_days", "29", "Between 30 and 3,650 days"),
    ("audit_retention_days", "ten", "Not a valid integer value"),
    ("space_creation", "everyone", "Choose who may create spaces"),
    ("name", "   ", "Enter the organization"),
    ("default_cancellation_window_hours", "721", "Between 0 and 720 hours."),
    ("default_late_cancel_policy", "free", "Choose what a late cancellation costs"),
    ("default_late_cancel_fee_percent", "101", "A fee between 0 and 100 per cent."),
])
def test_a_bad_value_is_refused_with_a_message_and_nothing_changes(app, world, owner_db, field, value, message):
    ada = browser(app, "ada@example.com")
    response = post_settings(ada, **{field: value})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    org = org_row()
    assert (org.name, org.locale, org.timezone, org.chat_retention_days) == ("Harbour Club", "en", "Europe/Berlin",
                                                                             None)
    assert audit_rows(owner_db, "harbour", "org.settings_changed") == []


def test_new_offerings_start_with_the_default_cancellation_policy(app, world, owner_db):
    ada = browser(app, "ada@example.com")
    assert post_settings(ada, default_cancellation_window_hours="48", default_late_cancel_policy="fee",
                         default_late_cancel_fee_percent="30").status_code == 303
    org = org_row()
    assert (org.default_cancellation_window_hours, org.default_late_cancel_policy,
            org.default_late_cancel_fee_percent) == (48, "fee", 30)
    [details] = audit_rows(owner_db, "harbour", "org.settings_changed")
    assert details["default_late_cancel_policy"] == {"before": "forfeit", "after": "fee"}
    form = ada.get(f"/o/harbour/coaches/{world.coach.id}/offerings/new").get_data(as_text=True)
    assert re.search(r'<input[^>]*name="cancellation_window_hours"[^>]*value="48"', form)
    assert re.search(r'<option selected value="fee">', form)
    assert re.search(r'<input[^>]*name="late_cancel_fee_percent"[^>]*value="30"', form)


def test_the_service_refuses_what_the_database_would(world):
    for values in ({"chat_retention_days": 4000}, {"audit_retention_days": 7}, {"locale": "xx"},
                   {"timezone": "Nowhere/Town"}):
        with pytest.raises(org_settings.SettingsError):
            org_settings.save_settings(world.org, values, world.admin)
    with pytest.raises(org_settings.NotAllowed):
        org_settings.save_settings(world.org, {"name": "Mine now"}, world.coach)


def test_only_admins_open_or_change_the_settings(app, world):
    carl = browser(app, "carl@example.com")
    assert carl.get(SETTINGS).status_code == 403
    token = csrf_from(carl.get("/profile").get_data(as_text=True))
    assert carl.post(SETTINGS, data={"csrf_token": token, **VALID}).status_code == 403
    assert org_row().name == "Harbour Club"


def test_the_page_shows_the_currency_and_where_it_is_changed(app, world):
    page = browser(app, "ada@example.com").get(SETTINGS).get_data(as_text=True)
    assert "EUR" in page and 'href="/o/harbour/billing/settings"' in page
    assert 'href="/coaches"' in page and 'href="/o/harbour/admin/taxonomy"' in page  # the directory, its terms


def test_the_organizations_locale_is_the_pages_language_and_its_number_format(app, world):
    ada = browser(app, "ada@example.com")
    assert '<html lang="en">' in ada.get(SETTINGS).get_data(as_text=True)
    post_settings(ada, locale="de")
    assert '<html lang="de">' in ada.get(SETTINGS).get_data(as_text=True)
    with app.test_request_context():
        from flask import g

        from coach.blueprints.templating import format_money
        g.org, g.membership = org_row(), world.admin
        assert format_money(123450, "EUR") == "1.234,50\xa0€"


# --- who may create spaces -------------------------------------------------------------------------

def test_the_space_creation_rule_holds_in_the_service(world):
    org = world.org
    org_settings.save_settings(org, {"space_creation": "admins"}, world.admin)
    db.session.commit()
    with pytest.raises(spaces.NotAllowed, match="Only admins create spaces"):
        spaces.create_space(org, world.coach, "Coaches' corner", "", "open")
    db.session.rollback()
    assert spaces.create_space(org, world.admin, "Admins' room", "", "open").name == "Admins' room"
    org_settings.save_settings(org, {"space_creation": "members"}, world.admin)
    assert spaces.create_space(org, world.athlete, "Athletes' lounge", "", "open").name == "Athletes' lounge"
    db.session.commit()


def test_the_space_creation_rule_holds_on_the_pages(app, world):
    ana = browser(app, "ana@example.com")
    assert "New space" not in ana.get("/o/harbour/spaces").get_data(as_text=True)
    assert ana.get("/o/harbour/spaces/new").status_code == 403
    post_settings(browser(app, "ada@example.com"), space_creation="members")
    assert "New space" in ana.get("/o/harbour/spaces").get_data(as_text=True)
    form = ana.get("/o/harbour/spaces/new")
    assert form.status_code == 200
    made = ana.post("/o/harbour/spaces/new", data={"csrf_token": csrf_from(form.get_data(as_text=True)),
                                                  "name": "Athletes' lounge", "visibility": "open"})
    assert made.status_code == 303
    post_settings(browser(app, "ada@example.com"), space_creation="admins")
    carl = browser(app, "carl@example.com")
    assert "New space" not in carl.get("/o/harbour/spaces").get_data(as_text=True)
    assert carl.get("/o/harbour/spaces/new").status_code == 403


# --- retention --------------------------------------------------------------------------------------

def _club_with_history(slug: str, now: datetime):
    """An organization whose direct conversation has messages 200, 100, 50 and 1 days old, and audit events
    400, 100 and 1 days old (``test.old`` events); its admin has read nothing."""
    admin_user = make_user(f"admin@{slug}.example", "Admin")
    org = make_org(admin_user, slug=slug, name=slug.title())
    tenancy.activate(org.id)
    admin = membership_for(org, admin_user)
    other = add_member(org, make_user(f"member@{slug}.example", "Member"), "coach")
    tenancy.activate(org.id)
    conversation = chat.direct_with(org, admin, other)
    for days in (200, 100, 50, 1):
        chat.send(conversation, other, f"{days} days ago", now=now - timedelta(days=days))
    for days in (400, 100, 1):
        db.session.add(AuditEvent(id=uuid.uuid4(), tenant_id=org.id, action="test.old", details={"days": days},
                                  created_at=now - timedelta(days=days)))
    db.session.commit()
    return org, admin, conversation


def _bodies(org) -> list[str]:
    tenancy.activate(org.id)
    bodies = list(db.session.scalars(select(Message.body).where(Message.tenant_id == org.id).order_by(Message.seq)))
    db.session.rollback()
    return bodies


def _old_events(owner_db, org) -> list[int]:
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(org.id)])
    return sorted(row[0] for row in owner_db.execute(
        "SELECT (details->>'days')::int FROM audit_events WHERE action = 'test.old'"))


def test_retention_deletes_exactly_the_old_rows_of_that_organization_only(app, world, owner_db):
    now = datetime.now(UTC)
    keeps, keeps_admin, _ = _club_with_history("keeps", now)
    trims, trims_admin, conversation = _club_with_history("trims", now)
    tenancy.activate(trims.id)
    org_settings.save_settings(trims, {"chat_retention_days": 90, "audit_retention_days": 365}, trims_admin)
    db.session.commit()

    deleted = sweep_data_retention()

    assert deleted == 3  # two messages, one audit event
    assert _bodies(trims) == ["50 days ago", "1 days ago"]
    assert _old_events(owner_db, trims) == [1, 100]
    # The other organization, with rows just as old and no retention set, keeps everything.
    assert _bodies(keeps) == ["200 days ago", "100 days ago", "50 days ago", "1 days ago"]
    assert _old_events(owner_db, keeps) == [1, 100, 400]
    [chat_run] = audit_rows(owner_db, "trims", "retention.chat_deleted")
    assert chat_run["messages"] == 2 and chat_run["summary"] == "2 messages older than 90 days"
    [audit_run] = audit_rows(owner_db, "trims", "retention.audit_deleted")
    assert audit_run["events"] == 1
    # What nobody can read any more is not unread.
    tenancy.activate(trims.id)
    assert chat.unread_total(trims, trims_admin) == 2
    assert db.session.scalar(select(ConversationRead.last_read_seq).where(
        ConversationRead.conversation_id == conversation.id,
        ConversationRead.membership_id == trims_admin.id)) == 2
    db.session.rollback()
    # A second run finds nothing more and audits nothing more.
    assert sweep_data_retention() == 0
    assert len(audit_rows(owner_db, "trims", "retention.chat_deleted")) == 1


def test_retention_works_through_batches(app, world, owner_db, monkeypatch):
    from coach.governance import retention

    now = datetime.now(UTC)
    trims, admin, _ = _club_with_history("trims", now)
    tenancy.activate(trims.id)
    org_settings.save_settings(trims, {"chat_retention_days": 10}, admin)
    db.session.commit()
    monkeypatch.setattr(retention, "BATCH", 1)
    assert sweep_data_retention() == 3
    assert _bodies(trims) == ["1 days ago"]


def test_the_audit_trail_stays_append_only_for_the_runtime_role(app, world, app_db):
    app_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(world.org.id)])
    app_db.execute("SELECT set_config('coach.audit_expiry', 'on', false)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_db.execute("DELETE FROM audit_events")
    app_db.rollback()
    # The function deletes only what the organization's own retention allows: with none set, nothing.
    app_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(world.org.id)])
    assert app_db.execute("SELECT audit_events_expire(1000)").fetchone()[0] == 0
    app_db.rollback()
    tenancy.activate(world.org.id)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) > 0
