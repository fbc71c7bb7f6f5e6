"""One athlete's timeline: keyset pages newest first (no duplicates or gaps, ties broken by id, a tampered cursor
is a 400), coaches-only entries hidden from the athlete, the consumers that put ended sessions and video reviews
on it, and a fixed number of statements for the athlete page and the timeline's page 50 at two data sizes."""
from __future__ import annotations

import base64
import re
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from coach import clock, tenancy
from coach.booking.events import BOOKING_ENDED
from coach.extensions import db
from coach.media.events import MEDIA_REVIEW_COMMENTED
from coach.media.models import MediaComment
from coach.platform import jobs
from coach.platform.pagination import encode_cursor
from coach.progress import athletes
from coach.progress.access import ProgressError
from coach.progress.models import (CoachNote, Goal, GoalValue, Habit, HabitCheckin, TimelineEntry)
from tests.factories import media_row
from tests.progress_support import seed_progress_rows
from tests.querycount import statements_for
from tests.test_progress_athletes import (ENTRY_RE, assign_program, browser, ended_booking, make_world,
                                          readiness_days, timeline_entries, url)

UTC = timezone.utc


@pytest.fixture()
def world(ctx):
    return make_world()


def _ids(entries) -> list[uuid.UUID]:
    return [entry.id for entry in entries]


def _all_pages(viewer, athlete, limit: int) -> list[list[TimelineEntry]]:
    pages, cursor = [], None
    while True:
        page = athletes.timeline_page(viewer, athlete, cursor, limit=limit)
        pages.append(page.rows)
        cursor = page.next_cursor
        if cursor is None:
            return pages


# --- keyset pages -----------------------------------------------------------------------------------------------


def test_pages_walk_every_entry_once_newest_first_with_ties_broken_by_id(app, world):
    w = world
    timeline_entries(w.athlete, 37)
    same = clock.now() - timedelta(hours=5, minutes=30)  # six entries at the very same instant
    db.session.execute(insert(TimelineEntry), [
        {"id": uuid.uuid4(), "tenant_id": w.org.id, "athlete_membership_id": w.athlete.id, "occurred_at": same,
         "kind": "workout", "subject_id": uuid.uuid4(), "title": f"Tie {i}", "coaches_only": False}
        for i in range(6)])
    timeline_entries(w.athlete2, 5)  # someone else's: never on Ali's pages
    db.session.commit()
    expected = [entry.id for entry in db.session.scalars(
        select(TimelineEntry).where(TimelineEntry.athlete_membership_id == w.athlete.id)
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc()))]
    assert len(expected) == 43
    for limit in (1, 5, 7, 20, 43, 100):
        pages = _all_pages(w.coach, w.athlete, limit)
        walked = [entry_id for page in pages for entry_id in _ids(page)]
        assert walked == expected, limit  # no duplicate, no gap, in order
        assert all(len(page) == limit for page in pages[:-1])


def test_the_athlete_walks_their_timeline_without_the_coaches_only_entries(app, world):
    w = world
    timeline_entries(w.athlete, 30, coaches_only_every=3)
    staff = [e for page in _all_pages(w.coach, w.athlete, 7) for e in page]
    own = [e for page in _all_pages(w.athlete, w.athlete, 7) for e in page]
    assert len(staff) == 30 and len(own) == 20
    assert not any(entry.coaches_only for entry in own)
    assert _ids(own) == [entry.id for entry in staff if not entry.coaches_only]


def test_the_more_link_pages_through_without_javascript_and_with_htmx(app, world):
    w = world
    timeline_entries(w.athlete, 45)
    client = browser(app, w.coach)
    html = client.get(url(w, f"/athletes/{w.athlete.id}")).get_data(as_text=True)
    seen = re.findall(r'id="entry-([0-9a-f-]{36})"', html)
    assert len(seen) == athletes.PAGE_SIZE
    more = re.search(r'<a class="button" href="([^"]+)" hx-get="([^"]+)"', html)
    assert more and more.group(1) == more.group(2)
    second = client.get(more.group(1).replace("&amp;", "&"))  # no JavaScript: a page of its own
    page2 = second.get_data(as_text=True)
    assert second.status_code == 200 and "<html" in page2 and "Timeline of Ali Athlete" in page2
    fragment = client.get(more.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and fragment.lstrip().startswith("<li")  # swapped in for the "More" item
    seen2 = re.findall(r'id="entry-([0-9a-f-]{36})"', fragment)
    assert len(seen2) == athletes.PAGE_SIZE and not set(seen) & set(seen2)
    last = re.search(r'hx-get="([^"]+)"', fragment).group(1).replace("&amp;", "&")
    third = client.get(last, headers={"HX-Request": "true"}).get_data(as_text=True)
    seen3 = re.findall(r'id="entry-([0-9a-f-]{36})"', third)
    assert len(seen3) == 5 and 'id="timeline-more"' not in third  # the end: no "More"
    assert len(set(seen) | set(seen2) | set(seen3)) == 45


# Fixed unknown ids, not uuid4(): every xdist worker collects the same test names.
@pytest.mark.parametrize("cursor", [
    "garbage", "%00", "x" * 500, base64.urlsafe_b64encode(b"2026-01-01|not-a-uuid").decode(),
    base64.urlsafe_b64encode(b"yesterday|9b1d4c3e-2f6a-4e8b-b7d5-0a3e6c8f1d24").decode(),
    base64.urlsafe_b64encode(b"2026-01-01T00:00:00|3e7a9c1f-5b2d-4f60-8e4a-d9c2b6f0a713").decode().rstrip("="),  # no zone
])
def test_a_tampered_cursor_is_a_400_never_a_500(app, world, cursor):
    w = world
    client = browser(app, w.coach)
    answer = client.get(url(w, f"/athletes/{w.athlete.id}/timeline"), query_string={"before": cursor})
    assert answer.status_code == 400
    assert "does not exist" in answer.get_data(as_text=True)
    tenancy.activate(w.org.id)
    with pytest.raises(ProgressError):
        athletes.timeline_page(w.coach, w.athlete, cursor)


def test_a_valid_cursor_of_another_athlete_shows_only_this_athletes_entries(app, world):
    w = world
    timeline_entries(w.athlete, 3)
    timeline_entries(w.athlete2, 3)
    other = db.session.scalars(select(TimelineEntry).where(TimelineEntry.athlete_membership_id == w.athlete2.id))
    cursor = encode_cursor(clock.now() + timedelta(days=1), next(iter(other)).id)
    page = athletes.timeline_page(w.coach, w.athlete, cursor)
    assert {entry.athlete_membership_id for entry in page.rows} == {w.athlete.id} and len(page.rows) == 3


# --- consumers ------------------------------------------------------------------------------------------------


def _deliver(org, topic, payload) -> str:
    """The event through the job runtime (its consumers, in one transaction, once)."""
    return jobs.handle_event({"id": str(uuid.uuid4()), "tenant_id": str(org.id), "topic": str(topic),
                              "payload": payload})


def _entries(w, kind: str) -> list[TimelineEntry]:
    tenancy.activate(w.org.id)
    db.session.rollback()
    return list(db.session.scalars(select(TimelineEntry).where(TimelineEntry.tenant_id == w.org.id,
                                                               TimelineEntry.kind == kind)))


def _ended(booking) -> dict:
    """The payload booking emits when a booking ends (``coach.booking.events.BOOKING_CHANGE``)."""
    return {"booking_id": str(booking.id), "from": "active", "to": "ended",
            "coach_membership_id": str(booking.coach_membership_id),
            "athlete_membership_id": str(booking.athlete_membership_id), "actor_membership_id": None,
            "starts_at": booking.starts_at.isoformat(), "ends_at": booking.ends_at.isoformat(), "expires_at": None}


def test_an_ended_session_lands_on_the_athletes_timeline_once(app, world, quiet):
    w = world
    starts = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
    booking = ended_booking(w, w.athlete, starts, minutes=45)
    assert athletes.session_on_timeline in jobs.consumers_of(BOOKING_ENDED)
    payload = _ended(booking)
    assert _deliver(w.org, BOOKING_ENDED, payload) == "done"
    _deliver(w.org, BOOKING_ENDED, payload)  # a second delivery (another event id): still one entry
    (entry,) = _entries(w, "session")
    assert entry.athlete_membership_id == w.athlete.id and entry.subject_id == booking.id
    assert entry.occurred_at == starts and entry.title == "Session: Technique session"
    assert entry.detail == "45 min with Cora Coach" and not entry.coaches_only
    html = browser(app, w.athlete).get(url(w, f"/athletes/{w.athlete.id}")).get_data(as_text=True)
    assert "Session: Technique session" in html
    assert f'href="/o/{w.org.slug}/bookings/{booking.id}"' in html


def test_every_timeline_kind_and_the_athletes_other_pages_are_linked(app, world):
    """The rules the page links to are registered (a renamed route would silently drop the links)."""
    from coach.blueprints.progress.athletes import ENTRY_RULES, _entry_endpoints  # noqa: PLC0415 - the view's helper

    with app.test_request_context():
        assert set(_entry_endpoints()) == set(ENTRY_RULES)
    html = browser(app, world.coach).get(url(world, f"/athletes/{world.athlete.id}")).get_data(as_text=True)
    base = f"/o/{world.org.slug}/progress"
    for link in (f"{base}/athletes/{world.athlete.id}/goals", f"{base}/athletes/{world.athlete.id}/habits",
                 f"{base}/athletes/{world.athlete.id}/readiness", f"{base}/workouts/calendar?athlete_id={world.athlete.id}",
                 f"{base}/athletes/{world.athlete.id}/reports"):
        assert f'href="{link}"' in html, link


def test_a_session_that_did_not_end_writes_nothing(app, world, quiet):
    w = world
    booking = ended_booking(w, w.athlete, datetime(2026, 5, 4, 9, tzinfo=UTC), status="cancelled")
    _deliver(w.org, BOOKING_ENDED, _ended(booking))
    _deliver(w.org, BOOKING_ENDED, {**_ended(booking), "booking_id": str(uuid.uuid4())})  # gone meanwhile
    assert _entries(w, "session") == []


def _comment(w, item, author, body: str, at: datetime, at_ms: int = 65_000) -> MediaComment:
    tenancy.activate(w.org.id)
    comment = MediaComment(tenant_id=w.org.id, media_id=item.id, author_membership_id=author.id, at_ms=at_ms,
                           body=body, created_at=at)
    db.session.add(comment)
    db.session.commit()
    return comment


def test_a_review_comment_on_an_athletes_video_is_one_entry_brought_up_to_the_latest(app, world, quiet):
    w = world
    tenancy.activate(w.org.id)
    video = media_row(w.org.id, w.athlete, title="Serve from the side")
    db.session.commit()
    first = _comment(w, video, w.coach, "Toss is *too far* left", datetime(2026, 5, 1, 10, tzinfo=UTC))
    later = _comment(w, video, w.coach, "Better", datetime(2026, 5, 2, 10, tzinfo=UTC), at_ms=5_000)
    payload = lambda c: {"media_id": str(video.id), "comment_id": str(c.id),  # noqa: E731
                         "owner_membership_id": str(w.athlete.id), "author_membership_id": str(w.coach.id)}
    _deliver(w.org, MEDIA_REVIEW_COMMENTED, payload(first))
    (entry,) = _entries(w, "review")
    assert entry.athlete_membership_id == w.athlete.id and entry.subject_id == video.id
    assert entry.title == "Video review: Serve from the side"
    assert entry.detail == "Cora Coach at 1:05: Toss is too far left"
    _deliver(w.org, MEDIA_REVIEW_COMMENTED, payload(later))
    _deliver(w.org, MEDIA_REVIEW_COMMENTED, payload(first))  # arrives late again: the entry stays on the latest
    (entry,) = _entries(w, "review")
    assert entry.occurred_at == datetime(2026, 5, 2, 10, tzinfo=UTC) and entry.detail == "Cora Coach at 0:05: Better"


def test_review_comments_on_a_coachs_video_or_deleted_comments_write_nothing(app, world, quiet):
    w = world
    tenancy.activate(w.org.id)
    coach_video = media_row(w.org.id, w.coach, title="Demo")
    athlete_video = media_row(w.org.id, w.athlete, title="Mine")
    db.session.commit()
    on_demo = _comment(w, coach_video, w.athlete, "Question", datetime(2026, 5, 1, tzinfo=UTC))
    gone = _comment(w, athlete_video, w.coach, "Oops", datetime(2026, 5, 1, tzinfo=UTC))
    gone.deleted_at = datetime(2026, 5, 1, 1, tzinfo=UTC)
    db.session.commit()
    for item, comment in ((coach_video, on_demo), (athlete_video, gone)):
        _deliver(w.org, MEDIA_REVIEW_COMMENTED, {"media_id": str(item.id), "comment_id": str(comment.id)})
    assert _entries(w, "review") == []


# --- a fixed number of statements ------------------------------------------------------------------------------


def grow(w, step: int) -> None:
    """One more step of everything the athlete page shows: readiness check-ins, goals with values, habits with
    check-ins, a program with logs, sessions, notes and 1,100 timeline entries (enough for page 50 and more)."""
    tenancy.activate(w.org.id)
    today = athletes.local_today(w.athlete)
    readiness_days(w.athlete, {1 + ago + 30 * step: 3.5 + (ago % 3) * 0.3 for ago in range(30)})
    for i in range(3):
        goal = Goal(tenant_id=w.org.id, athlete_membership_id=w.athlete.id, title=f"Goal {step}-{i}",
                    target_date=today + timedelta(days=40), metric_unit="kg", metric_start=Decimal(50),
                    metric_target=Decimal(80), direction="up")
        habit = Habit(tenant_id=w.org.id, athlete_membership_id=w.athlete.id, title=f"Habit {step}-{i}")
        db.session.add_all([goal, habit])
        db.session.flush()
        db.session.add_all([GoalValue(tenant_id=w.org.id, goal_id=goal.id, value=Decimal(55 + d),
                                      logged_on=today - timedelta(days=d)) for d in range(5)])
        db.session.add_all([HabitCheckin(tenant_id=w.org.id, habit_id=habit.id, on_date=today - timedelta(days=d))
                            for d in range(4)])
    for i in range(3):
        db.session.add(CoachNote(tenant_id=w.org.id, athlete_membership_id=w.athlete.id,
                                 author_membership_id=w.coach.id, body_md=f"Note {i}", body_html=f"<p>Note {i}</p>"))
    db.session.commit()
    assign_program(w, w.athlete, {ago: "done" for ago in range(1, 10)})
    for i in range(2):
        booking = ended_booking(w, w.athlete, datetime(2026, 1, 1 + i + 3 * step, 9, tzinfo=UTC))
    if step == 0:  # a framework with an observed skill (the matrix's three statements), today's check-in...
        video = media_row(w.org.id, w.athlete, title="Clip")
        db.session.flush()
        seed_progress_rows(w.org, w.coach, w.athlete, booking, video)
        db.session.commit()
    timeline_entries(w.athlete, 1100, start=clock.now() - timedelta(days=400 * step), coaches_only_every=7)


def page_50_path(w) -> str:
    """The timeline's page 50: the cursor of page 49's last entry, as the "More" link would carry it."""
    tenancy.activate(w.org.id)
    last = db.session.execute(
        select(TimelineEntry.occurred_at, TimelineEntry.id)
        .where(TimelineEntry.tenant_id == w.org.id, TimelineEntry.athlete_membership_id == w.athlete.id)
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc())
        .offset(49 * athletes.PAGE_SIZE - 1).limit(1)).one()
    return url(w, f"/athletes/{w.athlete.id}/timeline?before={encode_cursor(*last)}")


def test_the_athlete_page_timeline_page_50_and_today_are_a_fixed_number_of_statements(app, world):
    w = world
    coach = browser(app, w.coach)
    athlete = browser(app, w.athlete)
    page = url(w, f"/athletes/{w.athlete.id}")
    grow(w, 0)
    counts = []
    for step in (1, 2):
        path50 = page_50_path(w)
        for client in (coach, athlete):
            client.get(page)  # warm up
        html = coach.get(path50, headers={"HX-Request": "true"}).get_data(as_text=True)
        assert len(ENTRY_RE.findall(html)) == athletes.PAGE_SIZE
        athlete.get(url(w))
        counts.append((statements_for(app, coach, page), statements_for(app, coach, path50),
                       statements_for(app, athlete, page), statements_for(app, athlete, url(w))))
        grow(w, step)
    assert counts[0] == counts[1], counts
    assert counts[0] == EXPECTED, counts


# The statements of one request (warmed up): the floor (2: the user, organization and membership with the tenant
# settings; the nav's badges), then the page's own: the athlete (1), matrix (3), goals (3: goals, values,
# milestones), readiness trend (1), compliance (1), habits (2), the timeline page (1) and, for staff, the notes (1).
# Timeline page 50: the floor, the athlete, the page. The athlete's Today: the floor, today's workouts (C: 4),
# habits (2), today's check-in (1), goals (3), matrix (3).
EXPECTED = (15, 4, 14, 15)
