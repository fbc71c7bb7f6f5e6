"""Session records: written by the session's coach (or an admin) once it has ended, levels checked against the
framework's scale, draft → sign-off, locked once signed (service 409, database trigger), amendments as new
versions, the athlete's current levels (latest session wins), the timeline, the audit, the athlete's notice;
the pages (editor without JavaScript, the athlete's view, versions), the booking page's link, another
organization seeing nothing, and a fixed number of statements for the record page and the matrix."""
from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest
from sqlalchemy import select

from coach import clock, tenancy
from coach.booking import service as booking_service
from coach.extensions import db
from coach.notifications.models import Notification
from coach.orgs.models import ADMIN, ATHLETE, COACH, Membership
from coach.platform.models import AuditEvent, OutboxEvent
from coach.progress import frameworks, proficiency, records
from coach.progress.access import ProgressError
from coach.progress.models import AthleteSkillLevel, RecordMedia, SessionRecord, TimelineEntry
from tests.booking_support import BookingWorld
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_user, media_row
from tests.querycount import statements_for


class World(BookingWorld):
    """An organization with its admin, the session's coach, a second coach, the athlete and a second athlete, a
    framework (Serve: Flat 3, Kick 2; Movement: Split step) on a 4-level scale, and bookings moved into the
    past on demand."""

    def __init__(self, app, owner_db):
        super().__init__()
        tenancy.activate(self.org.id)
        self.app, self.owner_db = app, owner_db
        self.admin = db.session.scalar(select(Membership).where(Membership.tenant_id == self.org.id,
                                                                Membership.role == ADMIN))
        self.other_coach = add_member(self.org, make_user(f"coach2-{id(self)}@example.com", "Otto Other"), COACH)
        self.other_athlete = add_member(self.org, make_user(f"ath2-{id(self)}@example.com", "Bea Bystander"),
                                        ATHLETE)
        tenancy.activate(self.org.id)
        self.framework = frameworks.create_framework(self.org.id, self.admin, "Tennis", "",
                                                     "Introduced\nPractised\nCompetent\nProficient")
        serve = frameworks.add_area(self.framework, self.admin, "Serve")
        move = frameworks.add_area(self.framework, self.admin, "Movement")
        self.flat = frameworks.add_skill(self.framework, serve, self.admin, "Flat serve", "", "3")
        self.kick = frameworks.add_skill(self.framework, serve, self.admin, "Kick serve", "", "2")
        self.split = frameworks.add_skill(self.framework, move, self.admin, "Split step", "", "")
        db.session.commit()
        self.slug = self.org.slug
        self._day = 2

    def booking(self, days_ago: int = 3, status: str = "ended", athlete=None):
        """A booking of the coach's offering, moved ``days_ago`` into the past with ``status``."""
        tenancy.activate(self.org.id)
        slot = self.first_slot(self._day)
        self._day += 1
        made = booking_service.request_booking(self.offering, athlete or self.athlete, slot.starts_at, "",
                                               athlete or self.athlete)
        booking_service.transition(made, "confirm", self.coach)
        db.session.commit()
        shift = timedelta(days=self._day - 1 + days_ago)
        self.sql("UPDATE bookings SET status = %s, starts_at = starts_at - %s, ends_at = ends_at - %s "
                              "WHERE id = %s", (status, shift, shift, made.id))
        db.session.expire_all()
        tenancy.activate(self.org.id)
        return booking_service.get_booking(self.org, made.id)

    def sql(self, statement: str, params=()) -> None:
        """A statement as the schema owner, inside this organization (RLS is forced for the owner too)."""
        self.owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(self.org.id),))
        self.owner_db.execute(statement, params)

    def client(self, member):
        browser = self.app.test_client()
        Auth(browser).login(member.user.email)
        return browser

    def url(self, path: str) -> str:
        return f"/o/{self.slug}/progress{path}"

    def signed(self, booking, levels: dict, actor=None, notes: str = "Good session") -> SessionRecord:
        tenancy.activate(self.org.id)
        actor = actor or self.coach
        record = records.start(booking, actor, self.framework.id)
        records.save_draft(record, actor, framework_id=self.framework.id,
                           levels={str(k.id): str(v) for k, v in levels.items()}, notes_md=notes)
        records.sign(record, actor)
        db.session.commit()
        return record


@pytest.fixture()
def w(ctx, app, owner_db):
    return World(app, owner_db)


def current_levels(w) -> dict:
    tenancy.activate(w.org.id)
    rows = db.session.scalars(select(AthleteSkillLevel).where(AthleteSkillLevel.tenant_id == w.org.id,
                                                              AthleteSkillLevel.athlete_membership_id == w.athlete.id))
    return {r.skill_id: r.level for r in rows}


# --- the service -----------------------------------------------------------------------------------------

def test_coach_writes_signs_and_the_athlete_has_the_levels_a_timeline_entry_an_audit_and_an_event(w, quiet):
    booking = w.booking()
    record = records.start(booking, w.coach, w.framework.id)
    records.save_draft(record, w.coach, framework_id=w.framework.id,
                       levels={str(w.flat.id): "2", str(w.kick.id): "3", str(w.split.id): ""},
                       notes_md="Toss **higher**<script>alert(1)</script>", homework_md="- 50 serves")
    db.session.commit()
    assert current_levels(w) == {}  # a draft changes nothing yet
    records.sign(record, w.coach)
    db.session.commit()
    assert "<strong>higher</strong>" in record.notes_html and "<script" not in record.notes_html
    assert current_levels(w) == {w.flat.id: 2, w.kick.id: 3}
    assert records.for_booking(booking).id == record.id
    entry = db.session.scalar(select(TimelineEntry).where(TimelineEntry.tenant_id == w.org.id,
                                                          TimelineEntry.kind == "record"))
    assert entry.athlete_membership_id == w.athlete.id and "2 skill levels" in entry.detail
    assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.tenant_id == w.org.id,
                                                             AuditEvent.action == "progress.record_signed"))
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.tenant_id == w.org.id,
                                                        OutboxEvent.topic == "progress.record_signed"))
    assert event.payload["record_id"] == str(record.id)


def test_the_athlete_is_notified_with_a_link_to_the_record(w, app):
    booking = w.booking()
    record = w.signed(booking, {w.flat: 3})
    import time
    deadline = time.time() + 10
    notice = None
    while time.time() < deadline and notice is None:
        db.session.rollback()
        tenancy.activate(w.org.id)
        notice = db.session.scalar(select(Notification).where(Notification.tenant_id == w.org.id,
                                                              Notification.membership_id == w.athlete.id,
                                                              Notification.kind == "session_record"))
        time.sleep(0.1)
    assert notice is not None, "the athlete should be told"
    assert notice.url == f"/o/{w.slug}/progress/records/{record.id}"
    assert "Carla Coach" in notice.title


@pytest.mark.parametrize("level", ["0", "5", "-1", "2.5", "x", "99999999999"])
def test_a_level_outside_the_scale_is_refused_and_nothing_is_written(w, level):
    record = records.start(w.booking(), w.coach, w.framework.id)
    db.session.commit()
    with pytest.raises(ProgressError) as refused:
        records.save_draft(record, w.coach, framework_id=w.framework.id, levels={str(w.flat.id): level})
    assert refused.value.status == 422 and "1 to 4" in str(refused.value)


def test_a_level_for_a_skill_of_another_framework_is_refused(w):
    other = frameworks.create_framework(w.org.id, w.admin, "Padel", "", "Low\nHigh")
    area = frameworks.add_area(other, w.admin, "Volley")
    skill = frameworks.add_skill(other, area, w.admin, "Bandeja")
    record = records.start(w.booking(), w.coach, w.framework.id)
    with pytest.raises(ProgressError, match="not in this framework"):
        records.save_draft(record, w.coach, framework_id=w.framework.id, levels={str(skill.id): "1"})


@pytest.mark.parametrize("status,days_ago", [("confirmed", -5), ("cancelled", 3), ("no_show", 3), ("active", -0)])
def test_no_record_for_a_session_that_has_not_ended(w, status, days_ago):
    booking = w.booking(days_ago=days_ago, status=status)
    if status == "active":  # in progress now: it ends in the future
        w.sql("UPDATE bookings SET starts_at = now() - interval '10 minutes', "
                           "ends_at = now() + interval '50 minutes' WHERE id = %s", (booking.id,))
        db.session.expire_all()
        tenancy.activate(w.org.id)
        booking = booking_service.get_booking(w.org, booking.id)
    with pytest.raises(ProgressError) as refused:
        records.start(booking, w.coach, w.framework.id)
    assert refused.value.status == 409 and "ended" in str(refused.value)


def test_an_active_session_past_its_end_counts_as_ended(w):
    booking = w.booking(days_ago=1, status="active")
    assert records.start(booking, w.coach).status == "draft"


def test_only_the_sessions_coach_or_an_admin_writes_it(w):
    booking = w.booking()
    for member in (w.other_coach, w.athlete, w.scheduler):
        with pytest.raises(ProgressError) as refused:
            records.start(booking, member, w.framework.id)
        assert refused.value.status == 403
    record = records.start(booking, w.admin, w.framework.id)
    with pytest.raises(ProgressError) as refused:
        records.save_draft(record, w.other_coach, notes_md="Not mine")
    assert refused.value.status == 403


def test_a_signed_record_is_locked_in_the_service_with_a_409(w):
    booking = w.booking()
    record = w.signed(booking, {w.flat: 2})
    for attempt in (lambda: records.save_draft(record, w.coach, notes_md="changed"),
                    lambda: records.sign(record, w.coach),
                    lambda: records.add_media(record, w.coach, "00000000-0000-0000-0000-000000000000"),
                    lambda: records.discard(record, w.coach),
                    lambda: records.start(booking, w.coach)):
        with pytest.raises(ProgressError) as refused:
            attempt()
        assert refused.value.status == 409
        db.session.rollback()


def test_the_database_refuses_a_direct_update_of_a_signed_record(w, stack):
    record = w.signed(w.booking(), {w.flat: 2})
    url = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(w.org.id),))
        with pytest.raises(psycopg.errors.CheckViolation) as refused:
            conn.execute("UPDATE session_records SET notes_md = 'rewritten' WHERE id = %s", (record.id,))
        assert refused.value.diag.constraint_name == "session_record_locked"
        conn.rollback()
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(w.org.id),))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE record_skill_levels SET level = 4 WHERE record_id = %s", (record.id,))


def test_amendment_is_a_new_version_that_supersedes_the_signed_one_once_signed(w):
    booking = w.booking()
    first = w.signed(booking, {w.flat: 2, w.kick: 1})
    with pytest.raises(ProgressError, match="why"):
        records.amend(first, w.coach, "  ")
    second = records.amend(first, w.coach, "Kick serve was better than noted")
    assert (second.version, second.status, second.supersedes_id) == (2, "draft", first.id)
    with pytest.raises(ProgressError) as twice:
        records.amend(first, w.coach, "again")
    assert twice.value.status == 409
    records.save_draft(second, w.coach, framework_id=w.framework.id, levels={str(w.flat.id): "2"},
                       notes_md=first.notes_md)
    db.session.commit()
    assert records.for_booking(booking).id == first.id  # the draft does not count yet
    assert current_levels(w) == {w.flat.id: 2, w.kick.id: 1}
    records.sign(second, w.coach)
    db.session.commit()
    assert records.for_booking(booking).id == second.id
    assert current_levels(w) == {w.flat.id: 2}  # the amendment no longer observes the kick serve
    actions = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.tenant_id == w.org.id, AuditEvent.action.like("progress.record%")).order_by(AuditEvent.created_at)))
    assert actions == ["progress.record_signed", "progress.record_amended", "progress.record_signed"]
    page = records.page(second)
    assert page.changes[w.kick.id].before == 1 and page.changes[w.kick.id].after is None
    entries = db.session.scalars(select(TimelineEntry).where(TimelineEntry.tenant_id == w.org.id,
                                                             TimelineEntry.kind == "record")).all()
    assert len(entries) == 1 and "version 2" in entries[0].title and entries[0].subject_id == second.id


def test_amending_an_older_session_does_not_overwrite_a_newer_sessions_level(w):
    old = w.signed(w.booking(days_ago=10), {w.flat: 1})
    w.signed(w.booking(days_ago=2), {w.flat: 3})
    assert current_levels(w) == {w.flat.id: 3}
    fix = records.amend(old, w.coach, "Typo")
    records.save_draft(fix, w.coach, framework_id=w.framework.id, levels={str(w.flat.id): "2"}, notes_md="x")
    records.sign(fix, w.coach)
    db.session.commit()
    assert current_levels(w) == {w.flat.id: 3}
    history = proficiency.history(w.athlete, w.flat.id)
    assert [level for _, level, _ in history] == [2, 3]


def test_media_links_need_a_visible_item_and_a_moment_within_the_video(w):
    record = records.start(w.booking(), w.coach, w.framework.id)
    video = media_row(w.org.id, w.coach, duration_ms=60_000)
    hidden = media_row(w.org.id, w.other_coach, status="failed")  # only its owner sees a failed upload
    hidden.failure_reason = "Unreadable"
    db.session.flush()
    link = records.add_media(record, w.coach, video.id, "0:42", "Toss")
    assert link.at_ms == 42_000
    with pytest.raises(ProgressError, match="past the end"):
        records.add_media(record, w.coach, video.id, "1:01")
    with pytest.raises(ProgressError, match="1:23"):
        records.add_media(record, w.coach, video.id, "soon")
    with pytest.raises(ProgressError) as refused:
        records.add_media(record, w.coach, hidden.id)
    assert refused.value.status == 404


def test_changes_over_a_period_and_the_matrix(w):
    w.signed(w.booking(days_ago=20), {w.flat: 1, w.kick: 2})
    w.signed(w.booking(days_ago=2), {w.flat: 3, w.kick: 2, w.split: 1})
    today = clock.now().date()
    changed = proficiency.changes(w.athlete, today - timedelta(days=7), today)
    assert sorted((c.skill_title, c.old_level, c.new_level, c.label) for c in changed) == [
        ("Flat serve", 1, 3, "3 · Competent"), ("Split step", None, 1, "1 · Introduced")]
    [fm] = proficiency.matrix(w.athlete)
    assert fm.ready and fm.to_go == 0
    assert [a.title for a in fm.areas] == ["Serve", "Movement"]
    assert proficiency.matrix(w.other_athlete)[0].to_go == 2  # the only framework shows, nothing observed


# --- the pages -------------------------------------------------------------------------------------------

def form_of(browser, path):
    page = browser.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    return page.get_data(as_text=True)


def test_coach_writes_a_record_without_javascript_and_the_athlete_reads_it(w):
    booking = w.booking()
    coach = w.client(w.coach)
    html = form_of(coach, w.url(f"/records/booking/{booking.id}"))
    assert "Start the record" in html
    started = coach.post(w.url(f"/records/booking/{booking.id}"),
                         data={"csrf_token": csrf_from(html), "framework_id": str(w.framework.id)})
    assert started.status_code == 303
    editor = form_of(coach, started.headers["Location"])
    assert f'name="level-{w.flat.id}"' in editor and 'type="radio"' in editor
    record_url = started.headers["Location"]
    saved = coach.post(record_url, data={"csrf_token": csrf_from(editor), "framework_id": str(w.framework.id),
                                         f"level-{w.flat.id}": "3", f"level-{w.kick.id}": "",
                                         "notes_md": "Nice *toss*", "homework_md": "", "action": "sign"})
    assert saved.status_code == 303
    athlete = w.client(w.athlete)
    view = form_of(athlete, record_url)
    assert "<em>toss</em>" in view and "3 · Competent" in view and "Amend" not in view
    assert form_of(athlete, w.url(f"/records/booking/{booking.id}")) and \
        athlete.get(w.url(f"/records/booking/{booking.id}")).status_code == 200


def test_a_level_outside_the_scale_in_the_form_is_a_422_with_the_message(w):
    booking = w.booking()
    record = records.start(booking, w.coach, w.framework.id)
    db.session.commit()
    coach = w.client(w.coach)
    path = w.url(f"/records/{record.id}")
    html = form_of(coach, path)
    answer = coach.post(path, data={"csrf_token": csrf_from(html), "framework_id": str(w.framework.id),
                                    f"level-{w.flat.id}": "7", "notes_md": "x"})
    assert answer.status_code == 422
    assert "1 to 4" in answer.get_data(as_text=True)


def test_athletes_never_see_drafts_and_others_see_no_record(w):
    booking = w.booking()
    record = records.start(booking, w.coach, w.framework.id)
    records.save_draft(record, w.coach, notes_md="draft words")
    db.session.commit()
    athlete = w.client(w.athlete)
    assert athlete.get(w.url(f"/records/{record.id}")).status_code == 404
    answer = athlete.get(w.url(f"/records/booking/{booking.id}"))
    assert answer.status_code == 404 and "draft words" not in answer.get_data(as_text=True)
    assert w.client(w.other_athlete).get(w.url(f"/records/booking/{booking.id}")).status_code == 404
    assert w.client(w.scheduler).get(w.url(f"/records/{record.id}")).status_code in (403, 404)


def test_another_coach_cannot_write_the_record_and_editing_a_signed_one_is_a_409(w):
    booking = w.booking()
    other = w.client(w.other_coach)
    html = form_of(other, w.url(f"/records/booking/{booking.id}"))
    assert "Start the record" not in html
    token = csrf_from(form_of(other, w.url("/frameworks")))
    refused = other.post(w.url(f"/records/booking/{booking.id}"),
                         data={"csrf_token": token, "framework_id": str(w.framework.id)})
    assert refused.status_code == 403
    record = w.signed(booking, {w.flat: 2})
    coach = w.client(w.coach)
    html = form_of(coach, w.url(f"/records/{record.id}"))
    answer = coach.post(w.url(f"/records/{record.id}"), data={"csrf_token": csrf_from(html), "notes_md": "x"})
    assert answer.status_code == 409 and "locked" in answer.get_data(as_text=True)


def test_amend_through_the_page_and_each_version_is_viewable(w):
    booking = w.booking()
    record = w.signed(booking, {w.flat: 2})
    coach = w.client(w.coach)
    html = form_of(coach, w.url(f"/records/{record.id}"))
    assert "Amend" in html
    missing = coach.post(w.url(f"/records/{record.id}/amend"), data={"csrf_token": csrf_from(html), "reason": ""})
    assert missing.status_code == 422
    made = coach.post(w.url(f"/records/{record.id}/amend"),
                      data={"csrf_token": csrf_from(html), "reason": "Wrong level"})
    assert made.status_code == 303
    versions = form_of(coach, w.url(f"/records/booking/{booking.id}/versions"))
    assert "Version 2" in versions and "Version 1" in versions and "Wrong level" in versions


def test_another_organization_sees_nothing(w, app, owner_db):
    record = w.signed(w.booking(), {w.flat: 2})
    record_id, booking_id, framework_id = record.id, record.booking_id, w.framework.id
    stranger_world = World(app, owner_db)
    stranger = stranger_world.client(stranger_world.admin)
    for path in (f"/records/{record_id}", f"/records/booking/{booking_id}", f"/records/booking/{booking_id}/versions",
                 f"/frameworks/{framework_id}", f"/frameworks/{framework_id}/export.csv"):
        assert stranger.get(f"/o/{stranger_world.slug}/progress{path}").status_code == 404
    html = form_of(stranger, f"/o/{stranger_world.slug}/progress/frameworks")
    answer = stranger.post(f"/o/{stranger_world.slug}/progress/records/{record_id}/amend",
                           data={"csrf_token": csrf_from(html), "reason": "x"})
    assert answer.status_code == 404


def test_booking_page_links_to_the_record(w):
    booking = w.booking()
    coach = w.client(w.coach)
    page = form_of(coach, f"/o/{w.slug}/bookings/{booking.id}")
    assert f"/progress/records/booking/{booking.id}" in page
    athlete_page = form_of(w.client(w.athlete), f"/o/{w.slug}/bookings/{booking.id}")
    assert f"/progress/records/booking/{booking.id}" not in athlete_page  # nothing signed yet
    w.signed(booking, {w.flat: 2})
    athlete_page = form_of(w.client(w.athlete), f"/o/{w.slug}/bookings/{booking.id}")
    assert f"/progress/records/booking/{booking.id}" in athlete_page


def test_record_page_and_matrix_use_a_fixed_number_of_statements(w, app):
    small = w.signed(w.booking(), {w.flat: 2})
    coach = w.client(w.coach)
    before = statements_for(app, coach, w.url(f"/records/{small.id}"))
    # A bigger framework, more levels, media, and more versions.
    tenancy.activate(w.org.id)
    area = frameworks.add_area(w.framework, w.admin, "Return")
    extra = [frameworks.add_skill(w.framework, area, w.admin, f"Return {i}", "", "2") for i in range(6)]
    video = media_row(w.org.id, w.coach, duration_ms=60_000)
    db.session.commit()
    big = w.signed(w.booking(), {s: 2 for s in extra} | {w.flat: 3})
    fix = records.amend(big, w.coach, "more")
    records.add_media(fix, w.coach, video.id, "0:10", "Toss")
    records.add_media(fix, w.coach, video.id, "", "All")
    records.sign(fix, w.coach)
    db.session.commit()
    after = statements_for(app, coach, w.url(f"/records/{fix.id}"))
    assert after == before
    matrix_small = _matrix_statements(w, w.other_athlete)
    matrix_big = _matrix_statements(w, w.athlete)
    assert matrix_small == matrix_big <= 3


def _matrix_statements(w, athlete) -> int:
    from sqlalchemy import event
    import threading
    me, seen = threading.get_ident(), []

    def count(*args):
        if threading.get_ident() == me:  # not the background worker's statements
            seen.append(1)
    db.session.expire_all()
    tenancy.activate(w.org.id)
    member = db.session.get(Membership, athlete.id)
    _ = member.user.timezone
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert proficiency.matrix(member)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def test_changes_use_the_athletes_dates(w):
    assert proficiency.changes(w.athlete, date(2020, 1, 1), date(2020, 1, 2)) == []


def test_record_media_rule_lets_the_athlete_see_linked_media(w):
    from coach.media import service as media
    video = media_row(w.org.id, w.other_coach, audience="staff", duration_ms=60_000)
    db.session.commit()
    booking = w.booking()
    record = records.start(booking, w.admin, w.framework.id)
    records.add_media(record, w.admin, video.id, "0:05", "Here")
    db.session.commit()
    assert not media.can_view(video, w.athlete)
    records.save_draft(record, w.admin, notes_md="See the clip")
    records.sign(record, w.admin)
    db.session.commit()
    assert media.can_view(video, w.athlete) and not media.can_view(video, w.other_athlete)
    assert db.session.scalar(select(RecordMedia.at_ms).where(RecordMedia.record_id == record.id)) == 5000


def test_a_record_whose_booking_is_gone_stays_readable_and_can_no_longer_change(w):
    booking = w.booking()
    record = w.signed(booking, {w.flat: 2})
    record_id = record.id
    w.sql("DELETE FROM bookings WHERE id = %s", (booking.id,))
    db.session.expire_all()
    tenancy.activate(w.org.id)
    record = records.get_record(w.org.id, record_id)
    assert record.booking_id is None and record.status == "signed"
    assert current_levels(w) == {w.flat.id: 2}  # the athlete's level stays
    with pytest.raises(ProgressError) as refused:
        records.amend(record, w.admin, "Too late")
    assert refused.value.status == 409
    page = form_of(w.client(w.athlete), w.url(f"/records/{record_id}"))
    assert "the booking is gone" in page and "2 · Practised" in page


def test_a_signed_amendment_shows_what_changed_in_levels_and_text(w):
    first = w.signed(w.booking(), {w.flat: 2, w.kick: 1}, notes="Toss in front\nBend the knees")
    second = records.amend(first, w.coach, "Knees were fine")
    records.save_draft(second, w.coach, framework_id=w.framework.id,
                       levels={str(w.flat.id): "3", str(w.kick.id): "1"}, notes_md="Toss in front\nLoad the legs")
    records.sign(second, w.coach)
    db.session.commit()
    page = form_of(w.client(w.athlete), w.url(f"/records/{second.id}"))
    assert "What changed since version 1" in page
    assert "Removed: </span>- Bend the knees" in page and "Added: </span>+ Load the legs" in page
    assert "version 1: 2 · Practised" in page  # the flat serve's level before
    assert "Knees were fine" in page
    old = form_of(w.client(w.athlete), w.url(f"/records/{first.id}"))
    assert "A newer version replaces this one" in old


def test_a_start_racing_another_finds_its_draft_instead_of_failing(w):
    booking = w.booking()
    # A second writer's draft lands between our check and our insert: ours is the same draft, not a 500.
    original = records.draft_for
    calls = []

    def late_draft(b):
        calls.append(1)
        if len(calls) == 1:
            rival = SessionRecord(tenant_id=w.org.id, booking_id=b.id, athlete_membership_id=b.athlete_membership_id,
                                  coach_membership_id=w.admin.id, session_at=b.starts_at)
            db.session.add(rival)
            db.session.flush()
            db.session.expunge(rival)
            return None
        return original(b)

    records.draft_for = late_draft
    try:
        draft = records.start(booking, w.coach, w.framework.id)
    finally:
        records.draft_for = original
    assert draft.coach_membership_id == w.admin.id  # the rival's draft, found again
    assert len(records.versions(w.org.id, booking.id)) == 1
