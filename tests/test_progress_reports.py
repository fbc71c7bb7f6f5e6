"""Progress reports: asked for on the reports page, built by the real worker in stages the page's poll shows as
a moving bar, stored (HTML and PDF) in media storage, emailed to the athlete and the guardian with a signed
link that opens that one report for a week; another organization sees none of it; bad periods are refused."""
from __future__ import annotations

import re
import threading
import time
import uuid
import zlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from coach import clock, tenancy
from coach.booking.models import Booking, CoachingSession
from coach.extensions import db
from coach.notifications.models import Notification
from coach.platform.models import AuditEvent
from coach.media.storage import get_storage
from coach.orgs.models import ATHLETE, COACH
from coach.progress import pdf as report_pdf
from coach.progress import reports
from coach.progress.models import ProgressReport, TimelineEntry
from tests.booking_support import BookingWorld
from tests.conftest import csrf_from
from tests.factories import PASSWORD, add_member, make_org, make_user, media_row
from tests.progress_support import seed_progress_rows

PROGRESS_RE = re.compile(r'<progress max="100" value="(\d+)"')
LINK_RE = re.compile(r"(http://\S+/link\?token=\S+)")


def login(client, email):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert response.status_code in (302, 303)
    return client


def past_session(world: BookingWorld, days_ago: int = 3):
    """A session of the world's athlete that ended ``days_ago`` days ago, written directly (how a booking gets
    there is the booking domain's business)."""
    tenancy.activate(world.org.id)
    starts_at = (clock.now() - timedelta(days=days_ago)).replace(minute=0, second=0, microsecond=0)
    ends_at = starts_at + timedelta(hours=1)
    session = CoachingSession(tenant_id=world.org.id, coach_membership_id=world.coach.id,
                              offering_id=world.offering.id, starts_at=starts_at, ends_at=ends_at, busy_from=starts_at,
                              busy_until=ends_at, capacity=1, live_seats=0)
    db.session.add(session)
    db.session.flush()
    booking = Booking(tenant_id=world.org.id, session_id=session.id, offering_id=world.offering.id,
                      coach_membership_id=world.coach.id, athlete_membership_id=world.athlete.id,
                      starts_at=starts_at, ends_at=ends_at, status="ended")
    db.session.add(booking)
    db.session.commit()
    tenancy.activate(world.org.id)
    return booking


def seeded_world():
    world = BookingWorld()
    booking = past_session(world)
    tenancy.activate(world.org.id)
    item = media_row(world.org.id, world.coach)
    db.session.flush()
    rows = seed_progress_rows(world.org, world.coach, world.athlete, booking, item, "")
    db.session.commit()
    tenancy.activate(world.org.id)
    return world, rows


def reports_url(world, athlete_id=None):
    return f"/o/{world.org.slug}/progress/athletes/{athlete_id or world.athlete.id}/reports"


def ask(client, world, start, end):
    page = client.get(reports_url(world)).get_data(as_text=True)
    return client.post(reports_url(world), data={"csrf_token": csrf_from(page), "period_start": start.isoformat(),
                                                 "period_end": end.isoformat()})


def the_report(world) -> ProgressReport:
    tenancy.activate(world.org.id)
    db.session.expire_all()
    return db.session.scalars(select(ProgressReport).where(ProgressReport.tenant_id == world.org.id)
                              .order_by(ProgressReport.created_at.desc())).first()


def pdf_text(data: bytes) -> str:
    """The text of a PDF's (deflated) streams, to look for what it says."""
    out = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            out.append(zlib.decompress(match.group(1)).decode("latin-1"))
        except zlib.error:
            out.append(match.group(1).decode("latin-1"))
    return "\n".join(out)


def stored(key: str, tmp_path) -> bytes:
    path = tmp_path / key.replace("/", "_")
    get_storage().download(key, path)
    return path.read_bytes()


def test_a_report_is_built_by_the_worker_with_a_moving_bar_stored_and_emailed(app, job_runner, ctx, mailbox,
                                                                               monkeypatch, tmp_path):
    world, _ = seeded_world()
    monkeypatch.setattr(reports, "STAGE_PAUSE", 0.25)
    coach = login(app.test_client(), world.coach.user.email)
    page = coach.get(reports_url(world))
    assert page.status_code == 200 and "Ask for a report" in page.get_data(as_text=True)
    # The guardian's email, set on the page.
    body = page.get_data(as_text=True)
    saved = coach.post(f"{reports_url(world)}/settings", data={
        "csrf_token": csrf_from(body), "guardian_email": "guardian@example.com", "weekly_report": "y"})
    assert saved.status_code == 303
    today = reports.athlete_today(world.athlete)
    assert ask(coach, world, today - timedelta(days=27), today).status_code == 303
    report = the_report(world)
    status_url = f"/o/{world.org.slug}/progress/reports/{report.id}/status"

    seen, html = [], ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        html = coach.get(status_url, headers={"HX-Request": "true"}).get_data(as_text=True)
        match = PROGRESS_RE.search(html)
        if not match:
            break
        assert 'hx-trigger="every 1s"' in html and "Refresh" in html
        seen.append(int(match.group(1)))
        time.sleep(0.05)
    assert "View report" in html and 'hx-trigger' not in html  # ready: the poll stops
    whole = coach.get(status_url).get_data(as_text=True)  # without htmx: a page of its own
    assert whole.startswith("<!doctype html>") and "View report" in whole
    assert seen == sorted(seen) and len(set(seen)) >= 3, seen  # the bar moved, forward only

    report = the_report(world)
    assert (report.status, report.progress, report.error) == ("ready", 100, None)
    assert report.html_key == f"reports/{world.org.id}/{report.id}/report.html"
    assert report.pdf_key == f"reports/{world.org.id}/{report.id}/report.pdf"
    document = stored(report.pdf_key, tmp_path)
    assert document.startswith(b"%PDF") and len(document) == report.pdf_bytes
    words = pdf_text(document)
    assert "Arno Athlete" in words and "Kick serve" in words and "First serve in" in words
    page_html = stored(report.html_key, tmp_path).decode()
    assert "Arno Athlete" in page_html and "Kick serve" in page_html and "<svg" in page_html
    assert db.session.scalar(select(TimelineEntry.title).where(TimelineEntry.subject_id == report.id)) \
        == "Progress report ready"

    # The page streams the stored HTML under a sandboxing policy; the PDF is a redirect to a signed URL.
    view = coach.get(f"/o/{world.org.slug}/progress/reports/{report.id}")
    assert view.status_code == 200 and "Arno Athlete" in view.get_data(as_text=True)
    assert "sandbox" in view.headers["Content-Security-Policy"]
    download = coach.get(f"/o/{world.org.slug}/progress/reports/{report.id}/pdf")
    assert download.status_code == 303
    assert coach.get(download.headers["Location"]).get_data().startswith(b"%PDF")

    # Emailed to the athlete and to the guardian; the link opens the PDF without logging in.
    to_athlete = mailbox.wait_for(world.athlete.user.email, timeout=10)
    to_guardian = mailbox.wait_for("guardian@example.com", timeout=10)
    assert "Progress report: Arno Athlete" in to_athlete["Subject"]
    guardian_text = to_guardian.get_body(("plain",)).get_content()
    assert "Arno Athlete's progress report" in guardian_text
    link = LINK_RE.search(guardian_text).group(1)
    path = link.split("://", 1)[1].split("/", 1)[1]
    anonymous = app.test_client()
    opened = anonymous.get(f"/{path}")
    assert opened.status_code == 303
    assert anonymous.get(opened.headers["Location"]).get_data().startswith(b"%PDF")
    # A tampered link, or one for another report, opens nothing.
    assert anonymous.get(f"/{path[:-3]}xyz").status_code == 403
    other = path.replace(str(report.id), str(uuid.uuid4()))
    assert anonymous.get(f"/{other}").status_code == 403
    # A tampered storage URL neither.
    assert anonymous.get(opened.headers["Location"].replace("sig=", "sig=0")).status_code == 403
    # A week later the link has expired.
    later = clock.now() + timedelta(days=reports.LINK_DAYS, minutes=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert anonymous.get(f"/{path}").status_code == 403

    # The job running again (a redelivery) builds and sends nothing.
    monkeypatch.undo()
    count = len(mailbox.messages)
    assert reports.build(str(world.org.id), str(report.id)) == "skipped"
    with job_runner.paused():  # nothing of the background round in flight
        job_runner.drain()
    assert len(mailbox.messages) == count
    # In the app, the athlete and the coach who asked are told once each.
    tenancy.activate(world.org.id)
    told = db.session.execute(select(Notification.membership_id, Notification.title).where(
        Notification.kind == "progress_report")).all()
    assert sorted(told) == sorted([(world.athlete.id, "Your progress report is ready"),
                                   (world.coach.id, "Arno Athlete's progress report is ready")])


def test_a_failed_report_says_so_and_can_be_tried_again(app, job_runner, ctx, monkeypatch):
    world, _ = seeded_world()
    athlete = login(app.test_client(), world.athlete.user.email)
    original = report_pdf.render

    def broken(*args):
        raise RuntimeError("font exploded")

    monkeypatch.setattr(report_pdf, "render", broken)
    today = reports.athlete_today(world.athlete)
    assert ask(athlete, world, today - timedelta(days=6), today).status_code == 303
    report = the_report(world)
    deadline = time.monotonic() + 30  # a background worker or thread, on a loaded machine
    while the_report(world).status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
    report = the_report(world)
    assert report.status == "failed" and report.error == reports.FAILED_MESSAGE
    page = athlete.get(reports_url(world)).get_data(as_text=True)
    assert reports.FAILED_MESSAGE in page and "font exploded" not in page and "Try again" in page

    monkeypatch.setattr(report_pdf, "render", original)
    retried = athlete.post(f"/o/{world.org.slug}/progress/reports/{report.id}/retry",
                           data={"csrf_token": csrf_from(page)})
    assert retried.status_code == 303
    deadline = time.monotonic() + 30  # a background worker or thread, on a loaded machine
    while the_report(world).status != "ready" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert the_report(world).status == "ready"
    # A ready report cannot be retried.
    again = athlete.post(f"/o/{world.org.slug}/progress/reports/{report.id}/retry",
                         data={"csrf_token": csrf_from(page)})
    assert again.status_code == 409


@pytest.mark.parametrize("start_days, end_days, message", [
    (-5, 1, "cannot end in the future"),
    (-800, 0, "at most two years"),
    (0, -3, "comes before its first day"),
])
def test_bad_periods_are_refused_with_a_message_and_nothing_written(app, job_runner, ctx, start_days, end_days,
                                                                     message):
    world = BookingWorld()
    coach = login(app.test_client(), world.coach.user.email)
    today = reports.athlete_today(world.athlete)
    answer = ask(coach, world, today + timedelta(days=start_days), today + timedelta(days=end_days))
    assert answer.status_code == 422 and message in answer.get_data(as_text=True)
    assert the_report(world) is None


def test_another_organization_sees_and_asks_nothing(app, job_runner, ctx):
    world, _ = seeded_world()
    tenancy.activate(world.org.id)
    report = reports.request(world.athlete, world.coach, reports.athlete_today(world.athlete),
                             reports.athlete_today(world.athlete))
    db.session.commit()
    athlete_id, report_id, athlete = world.athlete.id, report.id, world.athlete
    other_org = make_org(make_user("other-admin@example.com", "Olga Other"))
    other_coach = add_member(other_org, make_user("other-coach@example.com", "Otto Coach"), COACH)
    outsider = login(app.test_client(), other_coach.user.email)
    # Another organization's athlete id, under its own organization or ours: 404.
    for slug in (other_org.slug, world.org.slug):
        assert outsider.get(f"/o/{slug}/progress/athletes/{athlete_id}/reports").status_code == 404
        for suffix in ("", "/status", "/pdf"):
            assert outsider.get(f"/o/{slug}/progress/reports/{report_id}{suffix}").status_code == 404
    # And the service refuses it too.
    tenancy.activate(world.org.id)
    athlete = db.session.merge(athlete)
    today = reports.athlete_today(athlete)
    db.session.expunge(athlete)  # as read in its own organization
    tenancy.activate(other_org.id)
    with pytest.raises(reports.ProgressError) as refused:
        reports.request(athlete, other_coach, today, today)
    assert refused.value.status == 404
    db.session.rollback()
    # Another athlete of the same organization sees nothing of this one's reports either.
    tenancy.activate(world.org.id)
    sibling = add_member(world.org, make_user("sibling@example.com", "Sid Sibling"), ATHLETE)
    peer = login(app.test_client(), sibling.user.email)
    assert peer.get(reports_url(world)).status_code == 404
    assert peer.get(f"/o/{world.org.slug}/progress/reports/{report_id}/status").status_code == 404


def test_the_guardian_email_is_validated(app, job_runner, ctx):
    world = BookingWorld()
    coach = login(app.test_client(), world.coach.user.email)
    page = coach.get(reports_url(world)).get_data(as_text=True)
    answer = coach.post(f"{reports_url(world)}/settings", data={"csrf_token": csrf_from(page),
                                                                "guardian_email": "not an email"})
    assert answer.status_code == 422 and "Enter a valid email address." in answer.get_data(as_text=True)
    tenancy.activate(world.org.id)
    assert reports.profile_of(world.athlete) is None
    athlete = login(app.test_client(), world.athlete.user.email)
    page = athlete.get(reports_url(world)).get_data(as_text=True)
    assert 'name="guardian_email" value=""' in page and "set by your coaches" in page
    saved = athlete.post(f"{reports_url(world)}/settings", data={"csrf_token": csrf_from(page),
                                                                 "guardian_email": ""})
    assert saved.status_code == 303
    tenancy.activate(world.org.id)
    profile = reports.profile_of(world.athlete)
    assert profile.guardian_email is None and profile.weekly_report is False  # the box was left unticked


def test_a_name_outside_latin_1_does_not_break_the_pdf(app, ctx):
    data = reports.ReportData("Клуб Łódź", "Zoë Łukasz 王小明", clock.now().date() - timedelta(days=6),
                              clock.now().date(), clock.now().date(), "on_demand")
    document = report_pdf.render(data, reports.draw(data))
    assert document.startswith(b"%PDF") and "Zo\xeb Lukasz ???" in pdf_text(document)


def test_the_reports_page_is_a_fixed_number_of_statements(app, job_runner, ctx):
    from tests.querycount import statements_for

    world = BookingWorld()
    coach = login(app.test_client(), world.coach.user.email)
    today = reports.athlete_today(world.athlete)

    def add(n):
        tenancy.activate(world.org.id)
        for _ in range(n):
            db.session.add(ProgressReport(tenant_id=world.org.id, athlete_membership_id=world.athlete.id,
                                          period_start=today, period_end=today, status="ready", progress=100,
                                          pdf_bytes=1000, emailed_at=clock.now()))
        db.session.commit()

    with job_runner.paused():
        add(2)
        coach.get(reports_url(world))
        small = statements_for(app, coach, reports_url(world))
        add(4)
        large = statements_for(app, coach, reports_url(world))
    assert small == large <= 6, (small, large)


def test_two_workers_on_one_report_build_it_once(app, job_runner, ctx, mailbox):
    world, _ = seeded_world()
    with job_runner.paused():
        tenancy.activate(world.org.id)
        report = reports.request(world.athlete, world.coach, reports.athlete_today(world.athlete),
                                 reports.athlete_today(world.athlete))
        db.session.commit()
        results = []

        tenant_id, report_id = str(world.org.id), str(report.id)

        def run():
            with app.app_context():
                results.append(reports.build(tenant_id, report_id))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results) == ["ready", "skipped"]
    with job_runner.paused():  # nothing of the background round in flight
        job_runner.drain()
    mailbox.wait_for(world.athlete.user.email, timeout=10)
    time.sleep(0.3)
    assert len(mailbox.to(world.athlete.user.email)) == 1


def test_at_most_three_reports_of_an_athlete_are_made_at_once(app, job_runner, ctx):
    world = BookingWorld()
    with job_runner.paused():
        coach = login(app.test_client(), world.coach.user.email)
        today = reports.athlete_today(world.athlete)
        for _ in range(reports.MAX_BUILDING):
            assert ask(coach, world, today, today).status_code == 303
        refused = ask(coach, world, today, today)
        assert refused.status_code == 429 and "being made already" in refused.get_data(as_text=True)
        tenancy.activate(world.org.id)
        assert db.session.scalar(select(func.count()).select_from(ProgressReport)
                                 .where(ProgressReport.tenant_id == world.org.id)) == reports.MAX_BUILDING


def test_the_guardian_is_set_by_staff_audited_and_kept_from_the_athlete(app, job_runner, ctx):
    world = BookingWorld()
    coach = login(app.test_client(), world.coach.user.email)
    page = coach.get(reports_url(world)).get_data(as_text=True)
    assert coach.post(f"{reports_url(world)}/settings", data={
        "csrf_token": csrf_from(page), "guardian_email": "parent@example.com", "weekly_report": "y"}).status_code == 303
    athlete = login(app.test_client(), world.athlete.user.email)
    page = athlete.get(reports_url(world)).get_data(as_text=True)
    refused = athlete.post(f"{reports_url(world)}/settings", data={"csrf_token": csrf_from(page), "guardian_email": ""})
    assert refused.status_code == 403 and "Only your coaches" in refused.get_data(as_text=True)
    # The athlete may still turn the weekly report off, leaving the guardian as it is.
    kept = athlete.post(f"{reports_url(world)}/settings", data={"csrf_token": csrf_from(page),
                                                                "guardian_email": "parent@example.com"})
    assert kept.status_code == 303
    tenancy.activate(world.org.id)
    profile = reports.profile_of(world.athlete)
    assert (profile.guardian_email, profile.weekly_report) == ("parent@example.com", False)
    changes = db.session.scalars(select(AuditEvent.details).where(AuditEvent.action == "progress.guardian_changed")).all()
    assert changes == [{"from": None, "to": "parent@example.com"}]
