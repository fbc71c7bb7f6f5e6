"""Deleting an account and closing an organization: the grace period (signing in cancels a deletion), the
erasure once due (what goes, what stays as "Deleted member", what is pseudonymised), its idempotence, a deletion
asked twice, and an organization closed for good: no row of it in any table, no object in storage, its
neighbours untouched."""
from __future__ import annotations

import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from coach import clock, tenancy
from coach.accounts.models import SecurityEvent, User, UserSession
from coach.booking.models import Booking, CoachingSession
from coach.chat import service as chat
from coach.extensions import db
from coach.media.storage import LocalStorage, get_storage
from coach.orgs import service as orgs
from coach.orgs.models import ADMIN, ATHLETE
from coach.payments import invoices
from coach.payments.models import Invoice, LedgerEntry
from coach.platform.models import Email
from coach.privacy import closing, deletion
from coach.progress import frameworks, habits, records
from coach.progress.models import Habit, SessionRecord
from coach.spaces import service as spaces
from coach.spaces.models import Post
from tests.conftest import Auth, csrf_from
from tests.test_audit import superuser_db  # noqa: F401  (a fixture: platform events are the superuser's to read)
from tests.factories import add_member, make_org, media_row
from tests.media_support import aws_credentials, moto_server, s3_storage  # noqa: F401  (fixtures)
from tests.test_payments_earnings import paid_session, priced_world


def _later(monkeypatch, days: int = 15):
    """Move the clock on (the tests that do hold the background runner still: its sweeps would run too)."""
    later = clock.now() + timedelta(days=days)
    monkeypatch.setattr(clock, "now", lambda: later)
    return later


def _store(key: str, data: bytes = b"video bytes") -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file"
        path.write_bytes(data)
        get_storage().upload_file(path, key, "video/mp4")
    assert _exists(key)


def _exists(key: str) -> bool:
    return get_storage().size_of(key) is not None


def _user(user_id) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


def _signed_out(client) -> bool:
    response = client.get("/account/privacy")
    return response.status_code in (302, 303) and "/login" in response.headers["Location"]


def _page(client, url: str) -> str:
    return client.get(url).get_data(as_text=True)


def _post_form(client, page_url: str, action: str, **data):
    html = _page(client, page_url)
    return client.post(action, data={"csrf_token": csrf_from(html), "idempotency_key": uuid.uuid4().hex, **data})


class Club:
    """A priced booking world with a space, a post and a comment by the athlete, a chat with the coach, a video
    the athlete uploaded (its file in storage), a paid session still to come with its receipt, a habit; and a
    second organization that must not change."""

    def __init__(self):
        world = priced_world()
        self.world, self.org, self.athlete, self.coach = world, world.org, world.athlete, world.coach
        tenancy.activate(self.org.id)
        admin = orgs.members_with_role(self.org, ADMIN)[0]
        space = spaces.create_space(self.org, admin, "Court", "", "open")
        spaces.join(space, self.athlete)
        self.post = spaces.create_post(space, self.athlete, "My serve is finally **fast**")
        spaces.add_comment(self.post, self.athlete, "Thanks coach")
        self.conversation = chat.direct_with(self.org, self.athlete, self.coach)
        chat.send(self.conversation, self.athlete, "See you on Tuesday")
        self.video = media_row(self.org.id, self.athlete, title="Serve")
        self.habit = habits.create_habit(self.athlete, self.athlete, {"title": "Stretch", "frequency": "daily"})
        db.session.commit()
        self.video_key = self.video.original_key
        _store(self.video_key)
        self.record = self._signed_record()
        self.booking, self.payment, _ = paid_session(world, days_ahead=20)
        tenancy.activate(self.org.id)
        self.receipt = invoices.issue(self.payment)
        db.session.commit()
        self.athlete_user, self.coach_user = self.athlete.user, self.coach.user
        self.athlete_email = self.athlete_user.email
        # Another organization the athlete is not in, with its own member and object.
        self.other = make_org(slug=f"other-{uuid.uuid4().hex[:6]}")
        self.other_member = add_member(self.other, role=ATHLETE)
        tenancy.activate(self.other.id)
        self.other_video = media_row(self.other.id, self.other_member, title="Other")
        db.session.commit()
        self.other_video_key = self.other_video.original_key
        _store(self.other_video_key)


    def _signed_record(self):
        """A session three days ago (written directly: the booking rules only book the future) with a signed, so
        locked, record of the athlete's levels."""
        tenancy.activate(self.org.id)
        starts = (clock.now() - timedelta(days=3)).replace(microsecond=0)
        ends = starts + timedelta(minutes=self.world.offering.duration_minutes)
        session = CoachingSession(tenant_id=self.org.id, coach_membership_id=self.coach.id,
                                  offering_id=self.world.offering.id, starts_at=starts, ends_at=ends, busy_from=starts,
                                  busy_until=ends, capacity=1, live_seats=0)
        db.session.add(session)
        db.session.flush()
        past = Booking(tenant_id=self.org.id, session_id=session.id, offering_id=self.world.offering.id,
                       coach_membership_id=self.coach.id, athlete_membership_id=self.athlete.id,
                       booked_by_membership_id=self.athlete.id, starts_at=starts, ends_at=ends, status="ended",
                       confirmed_at=starts - timedelta(days=2), status_changed_at=ends)
        db.session.add(past)
        db.session.flush()
        tennis = frameworks.seed_examples(self.org)[0]
        skill = [s for area in frameworks.structure(tennis).areas for s in area.skills][0]
        record = records.start(past, self.coach, tennis.id)
        records.save_draft(record, self.coach, framework_id=tennis.id, notes_md="Serve steadier.",
                           levels={str(skill.id): "2"})
        records.sign(record, self.coach)
        db.session.commit()
        return record.id


@pytest.fixture()
def club(ctx):
    return Club()


# --- asking, the grace period, signing in ------------------------------------------------------------------------


def test_asking_schedules_deletion_in_14_days_emails_the_date_and_signs_out_other_sessions(app, client, club):
    elsewhere = app.test_client()
    Auth(elsewhere).login(club.athlete_email)
    Auth(client).login(club.athlete_email)
    page = _page(client, "/account/privacy")
    assert "Delete my account" in page and "erase_content" in page
    response = _post_form(client, "/account/privacy", "/account/privacy/deletion", erase_content="y")
    assert response.status_code == 303
    page = _page(client, "/account/privacy")
    user = _user(club.athlete_user.id)
    due = user.deletion_due_at
    assert due - user.deletion_requested_at == timedelta(days=14) and user.deletion_erase_content
    assert "will be deleted on" in page and "Keep my account" in page
    assert deletion.due_label(user) in page
    # The other browser's session ended; this one goes on.
    assert _signed_out(elsewhere)
    assert client.get("/account/privacy").status_code == 200
    email = db.session.scalar(select(Email).where(Email.to_address == club.athlete_email,
                                                  Email.subject == "Your Coach account will be deleted"))
    assert email is not None
    assert [e.action for e in db.session.scalars(select(SecurityEvent).where(
        SecurityEvent.user_id == user.id, SecurityEvent.action.like("deletion.%")))] == ["deletion.requested"]


def test_signing_in_during_the_grace_period_cancels_the_deletion_and_says_so(client, club):
    deletion.request_deletion(club.athlete_user, erase_content=False)
    db.session.commit()
    auth = Auth(client)
    response = auth.login(club.athlete_email)
    assert response.status_code in (302, 303)
    landing = client.get(response.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert "cancelled the deletion of your account" in landing
    user = _user(club.athlete_user.id)
    assert user.deletion_due_at is None and user.deletion_requested_at is None
    actions = [e.action for e in db.session.scalars(select(SecurityEvent).where(
        SecurityEvent.user_id == user.id, SecurityEvent.action.like("deletion.%")).order_by(SecurityEvent.created_at))]
    assert actions == ["deletion.requested", "deletion.cancelled"]
    assert db.session.scalar(select(Email).where(Email.to_address == club.athlete_email,
                                                 Email.subject == "Your Coach account will not be deleted"))


def test_deletion_asked_twice_says_it_is_already_scheduled_and_changes_nothing(client, club):
    Auth(client).login(club.athlete_email)
    assert _post_form(client, "/account/privacy", "/account/privacy/deletion").status_code == 303
    first = _user(club.athlete_user.id).deletion_due_at
    again = _post_form(client, "/account/privacy", "/account/privacy/deletion", erase_content="y")
    assert again.status_code == 409
    assert "already scheduled for deletion" in again.get_data(as_text=True)
    user = _user(club.athlete_user.id)
    assert user.deletion_due_at == first and not user.deletion_erase_content
    assert db.session.query(SecurityEvent).filter_by(user_id=user.id, action="deletion.requested").count() == 1


def test_asking_needs_a_recent_sign_in(client, club):
    Auth(client).login(club.athlete_email)
    db.session.execute(update(UserSession).where(UserSession.user_id == club.athlete_user.id)
                       .values(reauthenticated_at=clock.now() - timedelta(hours=1)))
    db.session.commit()
    response = _post_form(client, "/account/privacy", "/account/privacy/deletion")
    assert response.status_code == 303 and "next=" in response.headers["Location"]
    assert _user(club.athlete_user.id).deletion_due_at is None


def test_the_keep_button_cancels(client, club):
    Auth(client).login(club.athlete_email)
    _post_form(client, "/account/privacy", "/account/privacy/deletion")
    assert _post_form(client, "/account/privacy", "/account/privacy/deletion/cancel").status_code == 303
    assert _user(club.athlete_user.id).deletion_due_at is None
    assert "Delete my account" in _page(client, "/account/privacy")


# --- the erasure ---------------------------------------------------------------------------------------------------


def test_nothing_is_erased_before_the_day(club):
    deletion.request_deletion(club.athlete_user, erase_content=True)
    db.session.commit()
    assert deletion.erase_due_accounts() == 0
    assert _user(club.athlete_user.id).erased_at is None


def test_once_due_the_account_is_erased_and_its_conversations_stay_as_deleted_member(app, client, club, monkeypatch,
                                                                                     superuser_db, quiet):
    Auth(client).login(club.athlete_email)
    assert _post_form(client, "/account/privacy", "/account/privacy/deletion", erase_content="y").status_code == 303
    keys = "SELECT count(*) FROM idempotency_keys WHERE user_id = %s"
    assert superuser_db.execute(keys, [club.athlete_user.id]).fetchone()[0] == 1
    _later(monkeypatch)
    assert deletion.erase_due_accounts() == 1

    user = _user(club.athlete_user.id)
    assert user.erased_at is not None and user.display_name == "Deleted member"
    assert user.email == f"deleted-{user.id.hex}@erased.invalid"
    # Sessions dead, login impossible (old email, and no password verifies).
    assert _signed_out(client)
    assert db.session.query(UserSession).filter_by(user_id=user.id).count() == 0
    assert Auth(app.test_client()).login(club.athlete_email).status_code == 422
    assert db.session.query(SecurityEvent).filter_by(user_id=user.id).count() == 0

    tenancy.activate(club.org.id)
    # The post stays, by "Deleted member", its text removed; the comment and message too.
    coach_client = app.test_client()
    Auth(coach_client).login(club.coach_user.email)
    post_page = _page(coach_client, f"/o/{club.org.slug}/posts/{club.post.id}")
    assert "Deleted member" in post_page and "(removed by its author)" in post_page
    assert "finally" not in post_page and "Thanks coach" not in post_page
    chat_page = _page(coach_client, f"/o/{club.org.slug}/chat/{club.conversation.id}")
    assert "(removed by its author)" in chat_page and "See you on Tuesday" not in chat_page
    # The video's file and row are gone; the other organization's file stays.
    assert not _exists(club.video_key) and _exists(club.other_video_key)
    # The session still to come was cancelled; the receipt kept its amount, the buyer pseudonymised.
    db.session.expire_all()
    assert db.session.get(Booking, club.booking.id).status == "cancelled"
    receipt = db.session.get(Invoice, club.receipt.id)
    assert (receipt.buyer_name, receipt.total_minor) == ("Deleted member", club.receipt.total_minor)
    assert club.athlete_email not in receipt.buyer_email
    assert db.session.query(LedgerEntry).filter_by(tenant_id=club.org.id).count() > 0
    # Progress data about the athlete is deleted; the membership stays, out of the member lists.
    assert db.session.query(Habit).filter_by(tenant_id=club.org.id).count() == 0
    assert db.session.get(SessionRecord, club.record) is None  # signed (locked), yet theirs to erase
    assert club.athlete.id not in {m.id for m in orgs.members(club.org)}
    assert "Deleted member" not in _page(coach_client, f"/o/{club.org.slug}/admin/members")
    # The coach and the other organization are untouched.
    assert _user(club.coach_user.id).display_name == "Carla Coach"
    tenancy.activate(club.other.id)
    assert len(orgs.members(club.other)) == 2
    # Every step is in the organization's audit trail.
    from coach.platform.models import AuditEvent
    tenancy.activate(club.org.id)
    actions = {a for a in db.session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == club.org.id))}
    assert {"account.erasure.media", "account.erasure.bookings", "account.erasure.content",
            "account.erasure.payments", "account.erasure.progress", "account.erasure.membership"} <= actions
    # And the erasure as a platform event, naming the organizations.
    event = superuser_db.execute("SELECT details FROM audit_events WHERE tenant_id IS NULL AND action = "
                                 "'account.erased' AND target_id = %s", [str(user.id)]).fetchone()
    assert event and event[0]["organizations"] == [str(club.org.id)]
    # The stored answers to their requests (idempotency keys) went too.
    assert superuser_db.execute(keys, [user.id]).fetchone()[0] == 0


def test_erasing_twice_is_harmless_and_text_stays_when_not_chosen(club, monkeypatch, quiet):
    deletion.request_deletion(club.athlete_user, erase_content=False)
    db.session.commit()
    _later(monkeypatch)
    assert deletion.erase_due_accounts() == 1
    assert deletion.erase_due_accounts() == 0
    assert deletion.erase_account(club.athlete_user.id) is False
    db.session.commit()
    tenancy.activate(club.org.id)
    post = db.session.get(Post, club.post.id)
    assert "finally" in post.body_source and post.author.user.display_name == "Deleted member"


# --- closing an organization ---------------------------------------------------------------------------------------


def _admin_client(app, club):
    admin = orgs.members_with_role(club.org, ADMIN)[0]
    client = app.test_client()
    Auth(client).login(admin.user.email)
    return client, admin


def test_closing_needs_the_address_typed_and_shows_a_banner_admins_can_cancel(app, club):
    tenancy.activate(club.org.id)
    client, admin = _admin_client(app, club)
    url = f"/o/{club.org.slug}/privacy"
    wrong = _post_form(client, url, f"{url}/closing", slug="not-it")
    assert wrong.status_code == 422 and f"Type the organization&#39;s address, {club.org.slug}" in \
        wrong.get_data(as_text=True)
    db.session.expire_all()
    assert orgs.org_by_slug(club.org.slug).closing_due_at is None
    assert _post_form(client, url, f"{url}/closing", slug=club.org.slug.upper()).status_code == 303
    db.session.expire_all()
    org = orgs.org_by_slug(club.org.slug)
    assert org.closing_due_at - org.closing_requested_at == timedelta(days=14)
    # Every member was emailed; every page shows the banner; only admins get the button.
    told = set(db.session.scalars(select(Email.to_address).where(Email.subject.like(f"{org.name} closes on %"))))
    assert club.athlete_email in told and admin.user.email in told
    assert "closes on" in _page(client, f"/o/{club.org.slug}/spaces") and "Cancel closing" in \
        _page(client, f"/o/{club.org.slug}/spaces")
    athlete = app.test_client()
    Auth(athlete).login(club.athlete_email)
    home = _page(athlete, f"/o/{club.org.slug}/spaces")
    assert "closes on" in home and "Cancel closing" not in home
    # Asked again: already closing.
    assert _post_form(client, url, f"{url}/closing", slug=club.org.slug).status_code == 409
    # Cancelled from the banner.
    assert _post_form(client, f"/o/{club.org.slug}/spaces", f"{url}/closing/cancel").status_code == 303
    db.session.expire_all()
    assert orgs.org_by_slug(club.org.slug).closing_due_at is None
    assert "closes on" not in _page(athlete, f"/o/{club.org.slug}/spaces")


def _rows_of(owner_db, tenant_id) -> dict[str, int]:
    tables = [r[0] for r in owner_db.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = "
        "'tenant_id' AND table_name IN (SELECT tablename FROM pg_tables WHERE schemaname = 'public')").fetchall()]
    assert len(tables) > 60
    counts = {}
    with owner_db.transaction():
        # As the owner acting for the organization, the tenant policies show its rows (platform rows need no
        # setting: they have no tenant).
        owner_db.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
        for table in tables:
            n = owner_db.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", [tenant_id]).fetchone()[0]
            if n:
                counts[table] = n
    return counts


def test_a_closed_organization_leaves_no_row_in_any_table_and_no_object(app, club, owner_db, superuser_db,
                                                                        monkeypatch, quiet):
    report_key = f"reports/{club.org.id}/{uuid.uuid4()}/report.pdf"
    _store(report_key)
    tenancy.activate(club.org.id)
    admin = orgs.members_with_role(club.org, ADMIN)[0]
    closing.request_closing(club.org, admin.user, club.org.slug)
    db.session.commit()
    before = _rows_of(owner_db, club.org.id)
    assert {"memberships", "posts", "messages", "ledger_entries", "invoices", "audit_events", "session_records",
            "record_skill_levels"} <= set(before)
    assert closing.erase_due_organizations() == 0  # not due yet
    _later(monkeypatch)
    assert closing.erase_due_organizations() == 1
    assert closing.erase_due_organizations() == 0  # twice: harmless
    assert _rows_of(owner_db, club.org.id) == {}
    assert owner_db.execute("SELECT count(*) FROM organizations WHERE id = %s", [club.org.id]).fetchone()[0] == 0
    assert not _exists(club.video_key) and not _exists(report_key)
    # The closing is on record as a platform event.
    facts = superuser_db.execute("SELECT details FROM audit_events WHERE tenant_id IS NULL AND action = "
                             "'organization.erased' AND target_id = %s", [str(club.org.id)]).fetchone()
    assert facts and facts[0]["slug"] == club.org.slug and facts[0]["objects"] >= 2
    # The other organization is untouched, and the people keep their accounts.
    assert _rows_of(owner_db, club.other.id).get("memberships") == 2
    assert _exists(club.other_video_key)
    assert _user(club.athlete_user.id).erased_at is None
    # A live organization's audit trail still refuses deletes, even the owner's.
    with pytest.raises(Exception, match="append-only"), owner_db.transaction():
        owner_db.execute("SELECT set_config('app.tenant_id', %s, true)", [str(club.other.id)])
        owner_db.execute("DELETE FROM audit_events WHERE tenant_id = %s", [club.other.id])


def test_the_closing_page_needs_an_admin(app, club):
    client = app.test_client()
    Auth(client).login(club.athlete_email)
    assert client.get(f"/o/{club.org.slug}/privacy").status_code == 403
    token = csrf_from(_page(client, "/profile"))
    response = client.post(f"/o/{club.org.slug}/privacy/closing", data={"csrf_token": token, "slug": club.org.slug})
    assert response.status_code == 403



# --- storage: everything under an organization's folder ------------------------------------------------------------


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_delete_prefix_removes_a_folder_of_objects_and_nothing_beside_it(backend, request, tmp_path):
    if backend == "s3":
        storage = request.getfixturevalue("s3_storage")
    else:
        storage = LocalStorage(tmp_path, "secret")
    source = tmp_path / "bytes"
    source.write_bytes(b"x")
    for key in ("org-a/1/original", "org-a/branding/logo.png", "org-ab/1/original", "reports/org-a/r/report.pdf"):
        storage.upload_file(source, key, "application/octet-stream")
    assert storage.delete_prefix("org-a/") == 2
    assert storage.size_of("org-a/1/original") is None and storage.size_of("org-a/branding/logo.png") is None
    assert storage.size_of("org-ab/1/original") == 1 and storage.size_of("reports/org-a/r/report.pdf") == 1
    assert storage.delete_prefix("org-a/") == 0  # twice: nothing left, no error
