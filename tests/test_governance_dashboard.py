"""The organization admin's dashboard: the right figures for data with known dates, another organization's
rows never counted, a fixed number of statements, charts with their tables, admins only."""
from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach import clock, tenancy
from coach.accounts.models import UserSession
from coach.booking.models import Booking, CoachingSession
from coach.chat import service as chat
from coach.extensions import db
from coach.governance import dashboard
from coach.orgs.models import Membership
from coach.orgs.service import membership_for
from coach.spaces import service as spaces
from coach.spaces.models import Post
from coach.chat.models import Message
from tests.booking_support import make_offering
from tests.conftest import Auth
from tests.factories import add_member, make_org, make_user, media_row
from tests.querycount import statements_for

BERLIN = ZoneInfo("Europe/Berlin")
DASHBOARD = "/o/harbour/admin/dashboard"
W = dashboard.WEEKS


def this_monday() -> date:
    today = clock.now().astimezone(BERLIN).date()
    return today - timedelta(days=today.weekday())


def weeks_ago(k: int, day: int = 0, hour: int = 12) -> datetime:
    """Noon (Berlin) on the ``day``-th day of the week ``k`` weeks before this one."""
    return datetime.combine(this_monday() - timedelta(weeks=k) + timedelta(days=day), time(hour), BERLIN)


def index_of(k: int) -> int:
    """Where the week ``k`` weeks back is in the dashboard's lists (oldest first, this week last)."""
    return W - 1 - k


class Club:
    """One organization's people, bookings, posts, messages and a video, at known dates."""

    def __init__(self, slug: str, name: str, label: str):
        self.label = label
        self.admin_user = make_user(f"admin@{slug}.example", f"{label} Admin")
        self.org = make_org(self.admin_user, slug=slug, name=name)
        self.admin = membership_for(self.org, self.admin_user)
        self.coach = add_member(self.org, make_user(f"cora@{slug}.example", f"Cora {label}"), "coach")
        self.coach2 = add_member(self.org, make_user(f"carl@{slug}.example", f"Carl {label}"), "coach")
        self.abe = add_member(self.org, make_user(f"abe@{slug}.example", f"Abe {label}"))
        self.bea = add_member(self.org, make_user(f"bea@{slug}.example", f"Bea {label}"))
        self.offerings = {self.coach.id: make_offering(self.coach), self.coach2.id: make_offering(self.coach2)}
        self.act()
        self.space = spaces.create_space(self.org, self.coach, f"{label} news", "", "open")
        db.session.commit()

    def act(self):
        tenancy.activate(self.org.id)

    def joined(self, member: Membership, at: datetime):
        self.act()
        db.session.get(Membership, member.id).created_at = at
        db.session.commit()

    def session(self, coach: Membership, starts: datetime) -> CoachingSession:
        self.act()
        offering = self.offerings[coach.id]
        row = CoachingSession(tenant_id=self.org.id, coach_membership_id=coach.id, offering_id=offering.id,
                              starts_at=starts, ends_at=starts + timedelta(hours=1), busy_from=starts,
                              busy_until=starts + timedelta(hours=1), capacity=4, live_seats=0)
        db.session.add(row)
        db.session.flush()
        return row

    def booking(self, session: CoachingSession, athlete: Membership, created: datetime, status: str,
                changed: datetime | None = None) -> Booking:
        self.act()
        row = Booking(tenant_id=self.org.id, session_id=session.id, offering_id=session.offering_id,
                      coach_membership_id=session.coach_membership_id, athlete_membership_id=athlete.id,
                      booked_by_membership_id=athlete.id, starts_at=session.starts_at, ends_at=session.ends_at,
                      status=status, created_at=created, status_changed_at=changed or session.ends_at,
                      confirmed_at=created if status == "ended" else None,
                      cancelled_by_membership_id=athlete.id if status == "cancelled" else None)
        db.session.add(row)
        db.session.commit()
        return row

    def post(self, at: datetime, body: str):
        self.act()
        post = spaces.create_post(self.space, self.coach, body)
        db.session.flush()
        db.session.get(Post, post.id).created_at = at
        db.session.commit()

    def message(self, at: datetime, body: str):
        self.act()
        conversation = chat.direct_with(self.org, self.coach, self.abe)
        message = chat.send(conversation, self.coach, body, now=at)
        db.session.flush()
        db.session.get(Message, message.id).created_at = at
        db.session.commit()


def seen(user_id, at: datetime):
    """A signed-in session of ``user_id`` last seen at ``at``."""
    db.session.add(UserSession(id=uuid.uuid4(), user_id=user_id, created_at=at - timedelta(hours=1),
                               last_seen_at=at, user_agent="test", ip="127.0.0.1"))
    db.session.commit()


def seed(club: Club, text: str):
    """The same shape of data in each organization (the second one's must never count in the first's)."""
    club.joined(club.bea, weeks_ago(40))  # before the window: counts from the first week on
    club.joined(club.abe, weeks_ago(10))
    club.joined(club.coach, weeks_ago(3))
    club.joined(club.coach2, weeks_ago(3))
    # Booked 5 weeks ago: Cora's 1:1 and Carl's group session (two athletes), both delivered 4 weeks ago.
    one = club.session(club.coach, weeks_ago(4))
    club.booking(one, club.abe, weeks_ago(5), "ended")
    group = club.session(club.coach2, weeks_ago(4, day=1))
    club.booking(group, club.abe, weeks_ago(5, day=1), "ended")
    club.booking(group, club.bea, weeks_ago(5, day=2), "ended")
    # Booked 3 weeks ago, delivered 2 weeks ago (Cora again).
    club.booking(club.session(club.coach, weeks_ago(2)), club.bea, weeks_ago(3), "ended")
    # Booked 2 weeks ago, cancelled last week.
    club.booking(club.session(club.coach, weeks_ago(0, day=0, hour=0) + timedelta(weeks=2)), club.abe,
                 weeks_ago(2), "cancelled", changed=weeks_ago(1))
    # Long ago: outside every window.
    club.booking(club.session(club.coach2, weeks_ago(28)), club.abe, weeks_ago(30), "ended")
    # Posts: two 2 weeks ago, one last week; messages: three last week.
    club.post(weeks_ago(2), f"{text} post one")
    club.post(weeks_ago(2, day=3), f"{text} post two")
    club.post(weeks_ago(1), f"{text} post three")
    for n in range(3):
        club.message(weeks_ago(1, day=n), f"{text} message {n}")
    club.act()
    media_row(club.org.id, club.coach, title=f"{text} video")
    db.session.commit()


@pytest.fixture()
def world(ctx):
    rival = Club("rival", "Rival Rowing", "Rival")
    seed(rival, "RIVAL-SECRET")
    # Rival's people are busy; none of them is a member of Harbour.
    now = clock.now()
    for member in (rival.abe, rival.bea, rival.coach):
        seen(member.user_id, now - timedelta(days=1))
    harbour = Club("harbour", "Harbour Rowing", "Harbour")
    seed(harbour, "Harbour")
    seen(harbour.abe.user_id, now - timedelta(days=2))
    seen(harbour.coach.user_id, now - timedelta(days=20))
    seen(harbour.coach.user_id, now - timedelta(days=25))  # a second, older session: still one person
    seen(harbour.bea.user_id, now - timedelta(days=40))
    harbour.act()
    return {"harbour": harbour, "rival": rival}


def browser_of(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def page(browser, path: str = DASHBOARD) -> str:
    response = browser.get(path)
    assert response.status_code == 200
    return response.get_data(as_text=True)


# -- the figures ------------------------------------------------------------------------------------------

def test_members_over_time_are_cumulative_by_week(world):
    board = dashboard.build(world["harbour"].org)

    counts = [n for _, n in board.member_rows]
    assert len(counts) == W and board.weeks[-1] == this_monday()
    # Bea (joined before the window) from the first week, Abe 10 weeks ago, both coaches 3 weeks ago, Ada now.
    assert counts[:index_of(10)] == [1] * index_of(10)
    assert counts[index_of(10):index_of(3)] == [2] * 7
    assert counts[index_of(3):index_of(0)] == [4] * 3
    assert counts[-1] == 5 == board.members_total


def test_active_members_are_those_seen_in_the_window(world):
    board = dashboard.build(world["harbour"].org)

    # Abe (2 days ago) in both; Cora (20 days ago) in 30 days only; Bea (40 days) in neither; Rival's never.
    assert (board.active_7, board.active_30) == (1, 2)


def test_bookings_per_week_count_booked_delivered_and_cancelled(world):
    board = dashboard.build(world["harbour"].org)
    rows = {week: (booked, delivered, cancelled) for week, booked, delivered, cancelled in board.booking_rows}
    week = {k: board.weeks[index_of(k)] for k in range(6)}

    assert rows[week[5]] == (3, 0, 0)  # three bookings made
    assert rows[week[4]] == (0, 2, 0)  # the 1:1 and the group session (two athletes): two sessions
    assert rows[week[3]] == (1, 0, 0)
    assert rows[week[2]] == (1, 1, 0)
    assert rows[week[1]] == (0, 0, 1)
    assert sum(b for b, _, _ in rows.values()) == 5  # the booking of 30 weeks ago is outside
    assert [s.key for s in board.bookings] == ["booked", "delivered", "cancelled"]


def test_posts_and_messages_per_week(world):
    board = dashboard.build(world["harbour"].org)
    rows = {week: (posts, messages) for week, posts, messages in board.writing_rows}

    assert rows[board.weeks[index_of(2)]] == (2, 0)
    assert rows[board.weeks[index_of(1)]] == (1, 3)
    assert sum(p for p, _ in rows.values()) == 3 and sum(m for _, m in rows.values()) == 3


def test_storage_and_top_coaches(world, app):
    board = dashboard.build(world["harbour"].org)

    assert board.storage.used == 10  # this organization's video only
    assert board.storage.quota == app.config["MEDIA_QUOTA_BYTES"]
    # Sessions delivered in the last 90 days: Cora 2, Carl 1 (the group session once); 28 weeks ago is out.
    assert board.top_coaches == [("Cora Harbour", 2), ("Carl Harbour", 1)]


# -- the page ---------------------------------------------------------------------------------------------

def test_admin_sees_charts_with_their_tables(app, world):
    html = page(browser_of(app, "admin@harbour.example"))

    for chart in ("members-chart", "bookings-chart", "writing-chart", "storage-chart", "coaches-chart"):
        figure = html.split(f'id="{chart}"', 1)[1].split("</figure>", 1)[0]
        assert '<svg class="chart-svg' in figure and 'role="img"' in figure
        assert f'<title id="{chart}-title">' in figure and f'<desc id="{chart}-desc">' in figure
        assert "<details class=\"chart-data\">" in figure and "<table" in figure
    assert "style=" not in html.split("<main", 1)[1]
    assert 'href="/o/harbour/admin/dashboard"' in html  # the admin's navigation links here
    assert re.search(r'id="active-7"><span class="stat-n">2<', html)  # Abe, and Ada signed in just now
    assert "Cora Harbour" in html and "<td>2</td>" in html.split('id="coaches-chart"', 1)[1]
    assert "RIVAL" not in html and "Rival" not in html


@pytest.mark.parametrize("email", ["cora@harbour.example", "abe@harbour.example"])
def test_coaches_and_athletes_are_refused(app, world, email):
    browser = browser_of(app, email)

    assert browser.get(DASHBOARD).status_code == 403
    assert 'href="/o/harbour/admin/dashboard"' not in page(browser, "/o/harbour/")


def test_another_organizations_admin_cannot_open_it(app, world):
    assert browser_of(app, "admin@rival.example").get(DASHBOARD).status_code == 404


def test_the_page_sends_a_fixed_number_of_statements(app, world):
    harbour = world["harbour"]
    browser = browser_of(app, "admin@harbour.example")
    page(browser)  # warm: the first request of a connection prepares what it needs
    dashboard.forget(harbour.org.id)  # counted, not read from Valkey
    before = statements_for(app, browser, DASHBOARD)

    # Much more of everything: members, coaches, sessions, posts, messages.
    with app.test_request_context():
        for n in range(6):
            coach = add_member(harbour.org, make_user(f"extra-coach{n}@harbour.example", f"Extra {n}"), "coach")
            harbour.offerings[coach.id] = make_offering(coach)
            athlete = add_member(harbour.org, make_user(f"extra{n}@harbour.example"))
            harbour.booking(harbour.session(coach, weeks_ago(3, day=n % 7)), athlete, weeks_ago(4), "ended")
            harbour.post(weeks_ago(n % 5), f"more {n}")
            harbour.message(weeks_ago(n % 5, day=4), f"more {n}")
            seen(athlete.user_id, clock.now() - timedelta(days=n))

    dashboard.forget(harbour.org.id)
    assert statements_for(app, browser, DASHBOARD) == before


def test_the_figures_are_kept_a_minute(app, world):
    harbour = world["harbour"]
    browser = browser_of(app, "admin@harbour.example")
    page(browser)
    dashboard.forget(harbour.org.id)
    counted = statements_for(app, browser, DASHBOARD)
    now = clock.now().astimezone(BERLIN)

    # Kept: the six statements are not sent again, and a new post shows up only once the figures are counted anew.
    assert statements_for(app, browser, DASHBOARD) == counted - 6
    with app.test_request_context():
        harbour.post(weeks_ago(0), "one more")
    html = page(browser)
    assert re.search(r'id="figures-as-of">Figures as of \d\d:\d\d ', html)
    assert now.strftime("%H:%M") in html or (now + timedelta(minutes=1)).strftime("%H:%M") in html
    posts = lambda board: sum(p for _, p, _ in board.writing_rows)  # noqa: E731
    with app.test_request_context():
        tenancy.activate(harbour.org.id)
        assert posts(dashboard.shown(harbour.org)) == posts(dashboard.build(harbour.org)) - 1
        dashboard.forget(harbour.org.id)
        assert posts(dashboard.shown(harbour.org)) == posts(dashboard.build(harbour.org))


def test_old_figures_are_shown_while_one_request_counts_them_again(app, world):
    harbour = world["harbour"]
    with app.test_request_context():
        tenancy.activate(harbour.org.id)
        kept = dashboard.shown(harbour.org)
        harbour.post(weeks_ago(0), "one more")
        posts = sum(p for _, p, _ in kept.writing_rows)
        later = clock.now() + timedelta(seconds=dashboard.FIGURES_TTL + 1)
        lock = f"coach:admin-dashboard:{harbour.org.id}:counting"
        from coach.platform.queues import redis_conn

        redis_conn().set(lock, 1)  # another request is counting: the old figures, with their time
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(clock, "now", lambda: later)
            again = dashboard.shown(harbour.org)
            assert sum(p for _, p, _ in again.writing_rows) == posts and again.as_of == kept.as_of
            redis_conn().delete(lock)  # nobody is: this request counts
            fresh = dashboard.shown(harbour.org)
        assert sum(p for _, p, _ in fresh.writing_rows) == posts + 1 and fresh.as_of == later
        assert not redis_conn().exists(lock)
