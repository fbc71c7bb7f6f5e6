"""The no-login links of booking emails: view, cancel and reschedule one booking, each link once (view: until it
expires), refused clearly otherwise, audited, rate-limited.

Pages are opened by a browser with no session (a fresh test client); rows are checked through the owner
connection, so "nothing changed" means nothing reached PostgreSQL.
"""
from __future__ import annotations

import html
import re
import threading
from urllib.parse import quote
from datetime import datetime, timedelta, timezone

import pytest

from coach import clock, tenancy
from coach.booking import manage_links, service
from coach.extensions import db
from tests.booking_support import BookingWorld
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_user
from tests.test_payments_booking import credit_booking, deliver, paid_booking
from tests.test_payments_credits import PackWorld, money_side, remaining  # noqa: F401 - the fixture

UTC = timezone.utc


# --- helpers ---------------------------------------------------------------------------------------

def text(response) -> str:
    return response.get_data(as_text=True)


def book(world, starts_at=None, athlete=None, offering=None):
    tenancy.activate(world.org.id)
    athlete = athlete or world.athlete
    booking = service.request_booking(offering or world.offering, athlete,
                                      starts_at or world.first_slot().starts_at, "", athlete)
    db.session.commit()
    return booking


def issue(booking, action: str) -> str:
    tenancy.activate(booking.tenant_id)
    token = manage_links.issue(booking, action)
    db.session.commit()
    return token


def coach_does(world, booking, action: str) -> None:
    """The coach cancels or declines the booking in the app meanwhile."""
    tenancy.activate(world.org.id)
    service.transition(booking, action, world.coach)
    db.session.commit()


def rows(owner_db, org, sql: str, *params) -> list[dict]:
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(org.id),))
    cur = owner_db.execute(sql, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def booking_row(owner_db, org, booking_id) -> dict:
    return rows(owner_db, org, "SELECT status, starts_at, calendar_sequence, late_cancellation, "
                               "cancelled_by_membership_id FROM bookings WHERE id = %s", booking_id)[0]


def audit_actions(owner_db, org) -> list[dict]:
    return rows(owner_db, org, "SELECT action, actor_label, target_id, details FROM audit_events "
                               "WHERE action LIKE 'booking%%' ORDER BY created_at")


def csrf_of(browser, url: str) -> str:
    """The session's CSRF token, as the page at ``url`` gives it (every page carries it for htmx)."""
    return re.search(r'"X-CSRFToken": "([^"]+)"', text(browser.get(url))).group(1)


@pytest.fixture()
def world(ctx):
    """Carla Coach (Berlin, 09–17 daily), a 60-minute request-only offering, Arno Athlete (Berlin)."""
    return BookingWorld()


@pytest.fixture()
def stranger(app):
    """A browser with no session, as a mail client opens a link."""
    return app.test_client()


# --- view ------------------------------------------------------------------------------------------

def test_view_link_shows_the_booking_in_the_athletes_zone_without_a_login(world, stranger):
    booking = book(world)
    tenancy.activate(world.org.id)
    world.athlete.user.timezone = "America/New_York"
    db.session.commit()
    token = issue(booking, "view")

    page = stranger.get(f"/b/{token}")

    body = text(page)
    assert page.status_code == 200
    local = booking.starts_at.astimezone(service.zone("America/New_York"))
    assert local.strftime("%A %-d %B %Y") in body and local.strftime("%H:%M") in body
    assert "(America/New York time)" in body
    assert "Technique session" in body and "Carla Coach" in body and "Court 1" in body and "Requested" in body
    assert '<meta name="robots" content="noindex, nofollow">' in body
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "noindex" in page.headers["X-Robots-Tag"]
    assert "Open in the app" not in body and "Log in" in body
    # A view link is not spent by being read.
    assert stranger.get(f"/b/{token}").status_code == 200


def test_times_are_on_the_athletes_own_clock(world, stranger):
    booking = book(world)
    tenancy.activate(world.org.id)
    world.athlete.user.hour_cycle = 12
    db.session.commit()
    local = booking.starts_at.astimezone(service.zone("Europe/Berlin"))
    twelve = f"{local.hour % 12 or 12}:{local.minute:02d} {'am' if local.hour < 12 else 'pm'}"

    assert twelve in text(stranger.get(f"/b/{issue(booking, 'view')}"))
    week = text(stranger.get(f"/b/{issue(booking, 'reschedule')}/reschedule"))
    assert re.search(r'data-start="[^"]+">\d{1,2}:\d\d [ap]m', week)


def test_the_athlete_signed_in_is_offered_the_app_and_the_link_still_works(app, world):
    booking = book(world)
    token = issue(booking, "view")
    browser = app.test_client()
    assert Auth(browser).login(world.athlete.user.email).status_code == 303

    body = text(browser.get(f"/b/{token}"))

    assert "Open in the app" in body
    assert f'href="/o/{world.org.slug}/bookings/{booking.id}"' in body


def test_someone_else_signed_in_still_gets_the_page_but_no_way_into_the_app(app, world, owner_db):
    booking = book(world)
    token = issue(booking, "cancel")
    browser = app.test_client()
    assert Auth(browser).login(world.coach.user.email).status_code == 303

    page = browser.get(f"/b/{token}/cancel")
    assert page.status_code == 200 and "Open in the app" not in text(page)
    assert browser.post(f"/b/{token}/cancel",
                        data={"csrf_token": csrf_of(browser, f"/b/{token}/cancel")}).status_code == 303
    # Whoever holds the link acts as the booking's athlete, not as the person signed in.
    assert booking_row(owner_db, world.org, booking.id)["cancelled_by_membership_id"] == world.athlete.id


def test_a_tampered_or_made_up_token_is_a_404(world, stranger):
    booking = book(world)
    token = issue(booking, "cancel")

    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "nonsense", "x" * 300,
                token.replace(".", "")):
        for url in (f"/b/{bad}", f"/b/{bad}/cancel", f"/b/{bad}/reschedule"):
            answer = stranger.get(url)
            assert answer.status_code == 404, url
            assert "This link is not valid" in text(answer)


def test_a_link_does_only_its_own_action(world, stranger, owner_db):
    booking = book(world)
    view, cancel = issue(booking, "view"), issue(booking, "cancel")

    assert stranger.get(f"/b/{view}/cancel").status_code == 403
    # The view link posted to the cancel form: refused, nothing cancelled.
    token = csrf_of(stranger, f"/b/{cancel}/cancel")
    answer = stranger.post(f"/b/{view}/cancel", data={"csrf_token": token})
    assert answer.status_code == 403
    assert "only lets you view this booking" in text(answer)
    # A cancel link cannot reschedule.
    answer = stranger.post(f"/b/{cancel}/reschedule", data={"csrf_token": token,
                                                            "start": world.first_slot(3).starts_at.isoformat()})
    assert answer.status_code == 403
    assert booking_row(owner_db, world.org, booking.id)["status"] == "requested"


# --- cancel ----------------------------------------------------------------------------------------

def test_cancel_link_asks_first_then_cancels_once_and_is_refused_after(world, stranger, owner_db):
    booking = book(world)
    token = issue(booking, "cancel")

    confirm = stranger.get(f"/b/{token}/cancel")
    assert confirm.status_code == 200
    assert "Cancel this session?" in text(confirm)
    # Opening it (a mail scanner does) changed nothing.
    stranger.get(f"/b/{token}/cancel")
    assert booking_row(owner_db, world.org, booking.id)["status"] == "requested"

    done = stranger.post(f"/b/{token}/cancel", data={"csrf_token": csrf_of(stranger, f"/b/{token}/cancel")})
    assert done.status_code == 303
    after = stranger.get(done.headers["Location"])
    assert "Cancelled" in text(after)
    row = booking_row(owner_db, world.org, booking.id)
    assert row["status"] == "cancelled"
    assert row["cancelled_by_membership_id"] == world.athlete.id

    again = stranger.get(f"/b/{token}/cancel")
    assert again.status_code == 410
    assert "This link was already used" in text(again)
    csrf = csrf_from(text(stranger.get("/login")))
    assert stranger.post(f"/b/{token}/cancel", data={"csrf_token": csrf}).status_code == 410

    trail = audit_actions(owner_db, world.org)
    used = [a for a in trail if a["action"] == "booking_link.used"]
    assert len(used) == 1 and used[0]["details"]["action"] == "cancel"
    assert used[0]["actor_label"] == world.athlete.user.email
    assert any(a["action"] == "booking.cancelled" for a in trail)
    refused = [a for a in trail if a["action"] == "booking_link.refused"]
    assert refused and refused[0]["details"]["why"] == "used"
    assert all(token not in str(a["details"]) for a in trail)


def test_a_used_expired_or_mismatched_link_says_so_in_words_and_leads_to_the_booking_in_the_app(world, stranger,
                                                                                                  monkeypatch):
    booking = book(world)
    view, cancel = issue(booking, "view"), issue(booking, "cancel")
    in_app = f"/o/{world.org.slug}/bookings/{booking.id}"
    stranger.post(f"/b/{cancel}/cancel", data={"csrf_token": csrf_of(stranger, f"/b/{cancel}/cancel")})

    used = stranger.get(f"/b/{cancel}/cancel")
    page = html.unescape(text(used))
    assert used.status_code == 410 and "<h1>Link already used</h1>" in page
    assert "410" not in page.split("<main", 1)[1] and "Gone" not in page  # words, not a status code
    assert f'href="/login?next={quote(in_app, safe="")}"' in text(used) or f"next={in_app}" in page

    wrong = stranger.get(f"/b/{view}/cancel")
    assert wrong.status_code == 403 and "<h1>A link for something else</h1>" in html.unescape(text(wrong))

    monkeypatch.setattr(clock, "now", lambda: booking.ends_at + timedelta(days=3))
    expired = stranger.get(f"/b/{view}")
    assert expired.status_code == 410 and "<h1>Link expired</h1>" in html.unescape(text(expired))
    assert "See the booking in" in text(expired)

    made_up = stranger.get("/b/not-a-token")
    assert made_up.status_code == 404 and "This link is not valid" in text(made_up)
    assert "See the booking in" not in text(made_up)


def test_the_same_cancel_link_posted_twice_at_once_cancels_once(app, world, owner_db):
    booking = book(world)
    token = issue(booking, "cancel")
    browsers = [app.test_client() for _ in range(2)]
    tokens = [csrf_of(b, f"/b/{token}/cancel") for b in browsers]
    start = threading.Barrier(2)
    statuses: list[int] = []

    def post(browser, csrf):
        start.wait()
        statuses.append(browser.post(f"/b/{token}/cancel", data={"csrf_token": csrf}).status_code)

    threads = [threading.Thread(target=post, args=pair) for pair in zip(browsers, tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(statuses) == [303, 410]
    assert booking_row(owner_db, world.org, booking.id)["status"] == "cancelled"
    cancels = [a for a in audit_actions(owner_db, world.org) if a["action"] == "booking.cancelled"]
    assert len(cancels) == 1


def test_a_cancel_post_without_its_csrf_token_changes_nothing(world, stranger, owner_db):
    booking = book(world)
    token = issue(booking, "cancel")

    answer = stranger.post(f"/b/{token}/cancel", data={})

    assert answer.status_code == 400
    assert booking_row(owner_db, world.org, booking.id)["status"] == "requested"
    assert stranger.get(f"/b/{token}/cancel").status_code == 200  # not spent


def test_an_expired_link_is_refused_with_410(world, stranger, owner_db, monkeypatch):
    booking = book(world)
    view, cancel = issue(booking, "view"), issue(booking, "cancel")
    later = booking.ends_at + timedelta(days=3)
    monkeypatch.setattr(clock, "now", lambda: later)

    for url in (f"/b/{view}", f"/b/{cancel}/cancel"):
        answer = stranger.get(url)
        assert answer.status_code == 410
        assert "This link has expired" in text(answer)
    monkeypatch.undo()
    assert booking_row(owner_db, world.org, booking.id)["status"] == "requested"


def test_cancel_link_of_a_booking_the_coach_already_cancelled_says_so_with_409(world, stranger, owner_db):
    booking = book(world)
    token = issue(booking, "cancel")
    coach_does(world, booking, "cancel")

    page = stranger.get(f"/b/{token}/cancel")
    assert page.status_code == 409
    assert "This booking is cancelled: there is nothing to cancel any more." in html.unescape(text(page))
    assert "Cancel the session" not in text(page)

    answer = stranger.post(f"/b/{token}/cancel", data={"csrf_token": csrf_of(stranger, f"/b/{token}/cancel")})
    assert answer.status_code == 409
    assert "cannot be cancelled" in text(answer)
    # Refused, so not spent either.
    assert rows(owner_db, world.org, "SELECT used_at FROM booking_links WHERE action = 'cancel'")[0]["used_at"] is None


def test_a_late_cancellation_is_said_before_and_recorded_after(ctx, app, owner_db):
    world = BookingWorld(auto_confirm=True, cancellation_window_hours=48)
    booking = book(world, world.first_slot(1).starts_at)
    token = issue(booking, "cancel")
    stranger = app.test_client()

    page = text(stranger.get(f"/b/{token}/cancel"))
    assert "counts as a late cancellation" in page

    stranger.post(f"/b/{token}/cancel", data={"csrf_token": csrf_of(stranger, f"/b/{token}/cancel")})
    row = booking_row(owner_db, world.org, booking.id)
    assert row["status"] == "cancelled" and row["late_cancellation"] is True


def test_another_bookings_token_cannot_touch_this_booking(world, stranger, owner_db):
    mine = book(world)
    other_athlete = add_member(world.org, make_user("bea@example.com", "Bea Athlete"), "athlete")
    theirs = book(world, world.first_slot(3).starts_at, athlete=other_athlete)
    token = issue(theirs, "cancel")

    stranger.post(f"/b/{token}/cancel", data={"csrf_token": csrf_of(stranger, f"/b/{token}/cancel"),
                                              "booking_id": str(mine.id)})

    assert booking_row(owner_db, world.org, mine.id)["status"] == "requested"
    assert booking_row(owner_db, world.org, theirs.id)["status"] == "cancelled"


def test_a_token_of_organization_b_never_reads_organization_a(ctx, app, owner_db):
    a, b = BookingWorld(), BookingWorld()
    booking_a = book(a)
    booking_b = book(b)
    token_b = issue(booking_b, "view")
    stranger = app.test_client()

    body = text(stranger.get(f"/b/{token_b}"))

    assert b.org.name in body and a.org.name not in body
    # A's link row re-signed as B's tenant is a made-up token: refused, not found in B.
    tenancy.activate(a.org.id)
    token_a = issue(booking_a, "view")
    with app.test_request_context():
        _, secret = manage_links._serializer().loads(token_a)
        forged = manage_links._serializer().dumps([b.org.id.hex, secret])
    assert stranger.get(f"/b/{forged}").status_code == 404


# --- reschedule ------------------------------------------------------------------------------------

def slot_links(body: str) -> list[tuple[str, str]]:
    return [(html.unescape(h), s) for h, s in re.findall(r'<a class="slot[^"]*" href="([^"]+)" data-start="([^"]+)"',
                                                         body)]


def test_reschedule_link_shows_free_times_then_moves_once(world, stranger, owner_db):
    booking = book(world)
    token = issue(booking, "reschedule")

    page = stranger.get(f"/b/{token}/reschedule")
    body = text(page)
    assert page.status_code == 200
    assert "Times in <strong>Europe/Berlin</strong>" in body
    slots = slot_links(body)
    assert slots
    # The booking's own time is shown as "current", not offered as a move.
    own = booking.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert own not in [start for _, start in slots] and '<small>current</small>' in body
    target_start = datetime.fromisoformat(world.first_slot(3).starts_at.isoformat())
    iso = target_start.strftime("%Y-%m-%dT%H:%M:%SZ")

    chosen = stranger.get(f"/b/{token}/reschedule?start={iso}")
    assert chosen.status_code == 200 and "Move it to" in text(chosen)
    assert booking_row(owner_db, world.org, booking.id)["status"] == "requested"  # GET changed nothing

    done = stranger.post(f"/b/{token}/reschedule", data={"csrf_token": csrf_from_form(text(chosen)), "start": iso})
    assert done.status_code == 303
    moved = rows(owner_db, world.org, "SELECT id, status, starts_at, calendar_sequence FROM bookings "
                                      "WHERE rescheduled_from_id = %s", booking.id)
    assert len(moved) == 1 and moved[0]["starts_at"] == target_start and moved[0]["status"] == "requested"
    assert booking_row(owner_db, world.org, booking.id)["status"] == "cancelled"
    after = text(stranger.get(done.headers["Location"]))
    assert "Moved" in after

    assert stranger.get(f"/b/{token}/reschedule").status_code == 410
    used = [a for a in audit_actions(owner_db, world.org) if a["action"] == "booking_link.used"]
    assert used[0]["details"]["action"] == "reschedule"
    assert used[0]["details"]["moved_to"] == str(moved[0]["id"])


def csrf_from_form(body: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)


def test_reschedule_to_a_taken_time_says_so_and_leaves_the_booking_and_link_as_they_were(world, stranger, owner_db):
    booking = book(world)
    token = issue(booking, "reschedule")
    other = add_member(world.org, make_user("bea@example.com", "Bea Athlete"), "athlete")
    taken = world.first_slot(3).starts_at
    iso = taken.strftime("%Y-%m-%dT%H:%M:%SZ")
    chosen = text(stranger.get(f"/b/{token}/reschedule?start={iso}"))
    book(world, taken, athlete=other)  # someone else takes it meanwhile

    answer = stranger.post(f"/b/{token}/reschedule", data={"csrf_token": csrf_from_form(chosen), "start": iso})

    assert answer.status_code == 409
    assert "This time was just taken" in text(answer) and "Nothing was changed" in text(answer)
    row = booking_row(owner_db, world.org, booking.id)
    assert row["status"] == "requested" and row["starts_at"] == booking.starts_at
    assert stranger.get(f"/b/{token}/reschedule").status_code == 200  # the link still works


@pytest.mark.parametrize("start", ["", "tomorrow", "2026-13-01T10:00:00Z", "2026-12-01T10:00:00",
                                   "9999-12-31T23:59:59Z", "\x00"])
def test_reschedule_with_a_bad_time_is_a_400_and_changes_nothing(world, stranger, owner_db, start):
    booking = book(world)
    token = issue(booking, "reschedule")
    csrf = csrf_of(stranger, f"/b/{token}/reschedule")

    answer = stranger.post(f"/b/{token}/reschedule", data={"csrf_token": csrf, "start": start})

    assert answer.status_code == 400
    assert booking_row(owner_db, world.org, booking.id)["status"] == "requested"
    if start:
        assert stranger.get(f"/b/{token}/reschedule?start={start}").status_code == 400


def test_reschedule_link_of_a_declined_booking_says_it_cannot_move(world, stranger):
    booking = book(world)
    token = issue(booking, "reschedule")
    coach_does(world, booking, "decline")

    page = stranger.get(f"/b/{token}/reschedule")

    assert page.status_code == 409
    assert "This booking is declined: it can no longer be moved." in text(page)
    assert "data-start" not in text(page)


def test_reschedule_page_pages_through_weeks_as_a_fragment_for_htmx(world, stranger):
    booking = book(world)
    token = issue(booking, "reschedule")
    body = text(stranger.get(f"/b/{token}/reschedule"))
    next_href = html.unescape(re.search(r'href="([^"]+)"[^>]*>Next week', body).group(1))

    fragment = stranger.get(next_href, headers={"HX-Request": "true", "HX-Target": "manage"})

    assert fragment.status_code == 200
    assert "<html" not in text(fragment) and 'id="manage"' in text(fragment)
    assert "Previous week" in text(fragment)


# --- rate limit ------------------------------------------------------------------------------------

def test_the_links_are_rate_limited_per_address(app, world, owner_db):
    booking = book(world)
    token = issue(booking, "view")
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = "203.0.113.50"
    limit = int(app.config["RATELIMIT_BOOKING_LINKS"].split()[0])

    statuses = [browser.get(f"/b/{token}").status_code for _ in range(limit)]
    refused = browser.get(f"/b/{token}/cancel")

    assert set(statuses) == {200}
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "203.0.113.51"
    assert other.get(f"/b/{token}").status_code == 200


# --- the payments' rules run as in the app -------------------------------------------------------------------

@pytest.fixture()
def pack_world(ctx, money_side, quiet):  # noqa: F811 - the imported fixture
    """An auto-confirm offering of 50 EUR and a paid 2-pack of Arno's; the worker stands still."""
    return PackWorld()


def test_cancelling_a_credit_booking_by_link_gives_the_credit_back(pack_world, app, owner_db):
    world = pack_world
    grant = world.pack(credits_count=2)
    booking = credit_booking(world, grant, world.slots(1, days_ahead=3)[0])
    token = issue(booking, "cancel")
    stranger = app.test_client()

    page = text(stranger.get(f"/b/{token}/cancel"))
    assert "The credit goes back to the pack." in page and "late cancellation" not in page
    assert stranger.post(f"/b/{token}/cancel",
                         data={"csrf_token": csrf_of(stranger, f"/b/{token}/cancel")}).status_code == 303
    deliver(booking, "cancelled")

    tenancy.activate(world.org.id)
    assert remaining(grant) == 2


def test_a_card_paid_session_cannot_be_moved_by_link_but_a_credit_one_moves_with_its_credit(pack_world, app):
    world = pack_world
    grant = world.pack(credits_count=2)
    first, second, third, fourth = world.slots(4, days_ahead=3)
    by_card, _ = paid_booking(world, first)
    stranger = app.test_client()

    refused = stranger.get(f"/b/{issue(by_card, 'reschedule')}/reschedule")
    assert refused.status_code == 409 and "A session paid by card cannot be moved" in text(refused)

    by_credit = credit_booking(world, grant, third)
    token = issue(by_credit, "reschedule")
    moved = stranger.post(f"/b/{token}/reschedule", data={
        "csrf_token": csrf_of(stranger, f"/b/{token}/reschedule"), "start": fourth.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert moved.status_code == 303
    assert "Moved: the new time is confirmed." in text(stranger.get(moved.headers["Location"]))
    tenancy.activate(world.org.id)
    assert remaining(grant) == 1
