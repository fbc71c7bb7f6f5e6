"""Athlete development in Chromium, as issue 17's "Done when" describes: a coach builds a framework and a
program and assigns it, writes and signs off a session record; the athlete logs today's workout, checks in
and ticks a habit; the coach's athlete page shows it all; a PDF report is built by the worker with a visible
progress bar, downloaded and emailed. A second test does the athlete's and coach's daily steps without
JavaScript (plain forms that post and 303).

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``progress-*.png`` (1280 and 390 px wide).
"""
from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from coach import clock, tenancy
from coach.booking.models import Booking, CoachingSession
from coach.extensions import db
from coach.progress import habits
from coach.progress.athletes import local_today
from tests.booking_support import BookingWorld
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in, watch_csp
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

snap = screenshots("progress")
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def shoot(page: Page, name: str, dark: bool = False) -> None:
    """Full-page screenshots at a laptop's width and a phone's (390 px), in the dark colour scheme too if
    ``dark``; then back to the laptop in light."""
    for scheme in ("light", "dark") if dark else ("light",):
        page.emulate_media(color_scheme=scheme)
        suffix = "-dark" if scheme == "dark" else ""
        page.set_viewport_size({"width": 1280, "height": 900})
        snap(page, f"{name}-1280{suffix}")
        page.set_viewport_size({"width": 390, "height": 844})
        snap(page, f"{name}-390{suffix}")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 900})


def open_org(page: Page, live_server: str, slug: str, email: str) -> None:
    page.goto(f"{live_server}/login?next=/o/{slug}/progress")
    log_in(page, email, PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/{slug}/progress")


def ended_session(world: BookingWorld, hours_ago: int = 26) -> Booking:
    """An ended session of the past with the coach, written directly (booking only books the future), as
    ``coach/cli.py``'s demo data does."""
    tenancy.activate(world.org.id)
    offering = world.offering
    starts_at = clock.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)
    ends_at = starts_at + timedelta(minutes=offering.duration_minutes)
    session = CoachingSession(tenant_id=world.org.id, coach_membership_id=world.coach.id, offering_id=offering.id,
                              starts_at=starts_at, ends_at=ends_at, busy_from=starts_at, busy_until=ends_at,
                              capacity=1, live_seats=0)
    db.session.add(session)
    db.session.flush()
    booking = Booking(tenant_id=world.org.id, session_id=session.id, offering_id=offering.id,
                      coach_membership_id=world.coach.id, athlete_membership_id=world.athlete.id,
                      booked_by_membership_id=world.athlete.id, starts_at=starts_at, ends_at=ends_at,
                      status="ended", confirmed_at=starts_at - timedelta(days=2), status_changed_at=ends_at)
    db.session.add(booking)
    db.session.commit()
    return booking


@pytest.fixture()
def world(ctx):
    return BookingWorld()


def wait_for_email(mailbox, address: str, needle: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in mailbox.to(address) if needle in mailbox.text(m)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def build_framework(page: Page, base: str) -> None:
    page.goto(f"{base}/frameworks/new")
    page.get_by_label("Title", exact=True).fill("Tennis basics")
    page.get_by_role("button", name="Create framework").click()
    expect(page.get_by_role("heading", name="Tennis basics")).to_be_visible()
    page.get_by_label("Area", exact=True).fill("Serve")
    page.get_by_role("button", name="Add area").click()
    area = page.locator("section.framework-area", has=page.get_by_role("heading", name="Serve"))
    expect(area).to_be_visible()
    for skill, required in (("Kick serve", "3"), ("Flat serve", "2")):
        details = area.locator("details.framework-add")
        if not details.evaluate("d => d.open"):
            area.locator("summary", has_text="Add a skill to Serve").click()
        area.get_by_label("Skill", exact=True).fill(skill)
        area.get_by_label("Required level", exact=True).select_option(required)
        area.get_by_role("button", name="Add skill").click()
        area = page.locator("section.framework-area", has=page.get_by_role("heading", name="Serve"))
        expect(area.get_by_role("rowheader", name=skill)).to_be_visible()


def build_program(page: Page, base: str, weekday: str) -> None:
    page.goto(f"{base}/exercises")
    page.get_by_label("Title", exact=True).fill("Split squat")
    page.get_by_role("button", name="Add to the library").click()
    expect(page.locator("main")).to_contain_text("Split squat")

    page.goto(f"{base}/programs")
    page.get_by_label("Title", exact=True).fill("Pre-season strength")
    page.get_by_label("Weeks", exact=True).fill("2")
    page.get_by_role("button", name="Create program").click()
    expect(page.get_by_role("heading", name="Pre-season strength")).to_be_visible()
    week = page.locator("#week-1")
    week.locator("summary", has_text="Add a workout to week 1").click()
    week.get_by_label("Day", exact=True).select_option(label=weekday)
    week.get_by_label("Title", exact=True).fill("Legs")
    week.get_by_role("button", name="Add workout").click()
    workout = page.locator("article.workout", has=page.get_by_role("heading", name="Legs"))
    expect(workout).to_be_visible()
    workout.get_by_label("Add an exercise").select_option(label="Split squat")
    workout.get_by_label("Sets", exact=True).fill("3")
    workout.get_by_label("Reps", exact=True).fill("8")
    workout.get_by_role("button", name="Add exercise").click()
    expect(page.locator("article.workout").get_by_role("rowheader", name="Split squat")).to_be_visible()


def test_coach_and_athlete_go_through_a_week_of_development_and_a_report_is_emailed(
        browser, page, live_server, world, job_runner, mailbox):
    slug, athlete = world.org.slug, world.athlete
    base = f"{live_server}/o/{slug}/progress"
    tenancy.activate(world.org.id)
    today = local_today(athlete)
    booking = ended_session(world)
    coach_csp = watch_csp(page)
    open_org(page, live_server, slug, world.coach.user.email)
    page.on("dialog", lambda dialog: dialog.accept())

    # The coach builds a framework (an area, two skills with required levels) and a program.
    build_framework(page, base)
    build_program(page, base, WEEKDAYS[today.weekday()])
    shoot(page, "program-builder")

    # ... assigns it to the athlete from this week (day 1 = this week's Monday).
    page.get_by_role("link", name="Assign").click()
    page.get_by_label("Starts the week of").fill(today.isoformat())
    page.get_by_label("Arno Athlete").check()
    page.get_by_role("button", name="Assign").click()
    expect(page.locator("main")).to_contain_text("Arno Athlete")

    # ... and writes the record of yesterday's session: levels observed, notes, signed off.
    page.goto(f"{base}/records/booking/{booking.id}")
    page.get_by_label("Framework").select_option(label="Tennis basics")
    page.get_by_role("button", name="Start the record").click()
    expect(page.get_by_role("heading", name=re.compile("^Session record"))).to_be_visible()
    page.get_by_label(re.compile(r"^Kick serve: 3 ")).check()
    page.get_by_label(re.compile(r"^Flat serve: 2 ")).check()
    page.get_by_label("Notes", exact=True).fill("Toss **in front**; kick serves landing in.")
    page.get_by_label("Homework").fill("50 kick serves twice a week.")
    shoot(page, "record-editor")
    page.get_by_role("button", name="Sign off").click()
    expect(page.locator("main")).to_contain_text("Levels observed · Tennis basics")
    expect(page.get_by_role("button", name="Sign off")).to_have_count(0)

    # A habit for the athlete.
    page.goto(f"{base}/athletes/{athlete.id}/habits/new")
    page.get_by_label("Habit", exact=True).fill("Stretch for 10 minutes")
    page.get_by_role("button", name="Add habit").click()
    expect(page.locator("main")).to_contain_text("Stretch for 10 minutes")

    # The athlete, on their phone's "Today": the workout, the readiness check-in, the habit.
    athlete_context = browser.new_context()
    try:
        me = athlete_context.new_page()
        athlete_csp = watch_csp(me)
        open_org(me, live_server, slug, athlete.user.email)
        expect(me.get_by_role("heading", name="Today", exact=True)).to_be_visible()
        shoot(me, "today")
        today_workouts = me.locator("#today-workouts")
        expect(today_workouts).to_contain_text("Legs")
        today_workouts.get_by_role("link", name="Log it").click()
        expect(me.get_by_role("heading", name="Legs")).to_be_visible()
        me.get_by_label("Done", exact=True).check()
        me.get_by_label("Sets of Split squat").fill("3")
        me.get_by_label("Reps of Split squat").fill("8")
        me.get_by_label("Effort (RPE 1–10)").select_option("7")
        shoot(me, "workout-log")
        me.get_by_role("button", name="Log workout").click()
        me.goto(base)
        checkin = me.locator("#readiness-form")
        checkin.get_by_label("Sleep last night (hours)").fill("7.5")
        for name, value in (("energy", "4"), ("mood", "4"), ("stress", "2"), ("soreness", "2")):
            checkin.locator(f"input[name={name}][value='{value}']").check()
        checkin.get_by_role("button", name="Check in").click()
        expect(me.locator("#readiness-form")).to_contain_text(re.compile("done today", re.I))
        me.get_by_role("button", name="Tick for today: Stretch for 10 minutes").click()
        expect(me.get_by_role("button", name=re.compile("Done today, untick: Stretch"))).to_be_visible()
        shoot(me, "today-done", dark=True)
        assert athlete_csp == []
    finally:
        athlete_context.close()

    # The coach's list and the athlete's page: the level, this week's compliance, readiness and the timeline.
    page.goto(base)
    expect(page.get_by_role("heading", name="Athletes")).to_be_visible()
    row = page.locator(f"#athlete-{athlete.id}")
    expect(row).to_contain_text("Arno Athlete")
    expect(row).to_contain_text("100")
    shoot(page, "athletes")
    row.get_by_role("link", name="Arno Athlete").click()
    expect(page.get_by_role("heading", name="Arno Athlete")).to_be_visible()
    matrix = page.locator("#matrix")
    expect(matrix.get_by_role("row", name=re.compile("Kick serve"))).to_contain_text("Competent")
    compliance = page.locator("#compliance")
    expect(compliance.locator("svg")).to_be_visible()
    expect(compliance).to_contain_text("100")
    readiness_chart = page.locator("#readiness svg")
    expect(readiness_chart).to_be_visible()
    expect(page.locator("#readiness")).to_contain_text("4.1")  # 7.5 h, energy 4, mood 4, stress 2, soreness 2
    timeline = page.locator("#timeline-list")
    for text in ("Legs", "Readiness", "Technique session"):
        expect(timeline).to_contain_text(text)
    shoot(page, "athlete", dark=True)

    # A report of the last four weeks: the bar shows while it waits for the worker, then moves to ready.
    page.get_by_role("link", name=re.compile("Reports")).first.click()
    expect(page.get_by_role("heading", name=re.compile("Progress reports"))).to_be_visible()
    page.get_by_label("First day").fill((today - timedelta(days=27)).isoformat())
    page.get_by_label("Last day").fill(today.isoformat())
    with job_runner.paused():
        page.get_by_role("button", name="Make the report").click()
        bar = page.locator("#reports progress")
        expect(bar).to_be_visible()
        expect(page.locator("#reports .report-stage")).to_contain_text("Waiting for a worker")
        shoot(page, "reports-building")
    expect(page.locator("#reports").get_by_role("link", name="View report")).to_be_visible(timeout=30_000)
    expect(page.locator("#reports progress")).to_have_count(0)
    shoot(page, "reports", dark=True)
    pdf_href = page.locator("#reports").get_by_role("link", name=re.compile("Download PDF")).get_attribute("href")
    response = page.request.get(f"{live_server}{pdf_href}")
    assert response.ok and response.body().startswith(b"%PDF")

    # The athlete's email arrives with the link to the report.
    emails = wait_for_email(mailbox, athlete.user.email, "/link?token=")
    assert emails, [mailbox.text(m) for m in mailbox.to(athlete.user.email)]
    link = re.search(r"https?://\S+/reports/[0-9a-f-]{36}/link\?token=\S+", mailbox.text(emails[-1]))
    assert link, mailbox.text(emails[-1])
    assert coach_csp == []


def test_without_javascript_the_athlete_ticks_and_checks_in_and_the_coach_adds_a_note(
        browser, live_server, world):
    slug, athlete = world.org.slug, world.athlete
    base = f"{live_server}/o/{slug}/progress"
    tenancy.activate(world.org.id)
    habits.create_habit(athlete, world.coach, dict(title="Drink 2 litres of water", frequency="daily"))
    db.session.commit()

    context = browser.new_context(java_script_enabled=False)
    try:
        me = context.new_page()
        open_org(me, live_server, slug, athlete.user.email)
        me.get_by_role("button", name="Tick for today: Drink 2 litres of water").click()
        expect(me).to_have_url(f"{base}")
        expect(me.get_by_role("button", name="Done today, untick: Drink 2 litres of water")).to_be_visible()
        checkin = me.locator("#readiness-form")
        checkin.get_by_label("Sleep last night (hours)").fill("6")
        for name, value in (("energy", "3"), ("mood", "4"), ("stress", "3"), ("soreness", "2")):
            checkin.locator(f"input[name={name}][value='{value}']").check()
        checkin.get_by_role("button", name="Check in").click()
        expect(me.locator("#readiness-form")).to_contain_text(re.compile("done today", re.I))
    finally:
        context.close()

    context = browser.new_context(java_script_enabled=False)
    try:
        coach = context.new_page()
        open_org(coach, live_server, slug, world.coach.user.email)
        coach.goto(f"{base}/athletes/{athlete.id}")
        expect(coach.locator("#habits")).to_contain_text("Drink 2 litres of water")
        expect(coach.locator("#timeline-list")).to_contain_text("Readiness")
        coach.get_by_label("New note").fill("Sleeps less before exams: keep Thursdays light.")
        coach.get_by_role("button", name="Save note").click()
        expect(coach.locator("#notes")).to_contain_text("keep Thursdays light")
        coach.reload()
        expect(coach.locator("#notes")).to_contain_text("keep Thursdays light")
    finally:
        context.close()
