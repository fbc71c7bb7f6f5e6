"""Reviews, the pages: the review form (write, edit, refused with a clear 403/409/422), the booking page's link,
reply, flag, helpful and moderation, a coach's reviews a page at a time (full page and htmx fragment), and the
ask sent once when a session ends."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from coach import clock, tenancy
from coach.booking import lifecycle
from coach.directory import reviews
from coach.directory.models import Review
from coach.extensions import db
from coach.notifications.models import Notification
from coach.platform.models import Email
from tests.conftest import Auth, csrf_from
from tests.directory_support import DirectoryWorld
from tests.factories import PASSWORD
from tests.querycount import statements_for

HX = {"HX-Request": "true"}


@pytest.fixture()
def world(ctx):
    return DirectoryWorld()


def log_in(client, email: str):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


def form_url(w, booking=None) -> str:
    return f"/o/river/bookings/{(booking or w.ended).id}/review"


def post_review(client, w, stars, body="", booking=None, headers=None):
    page = client.get(form_url(w, booking))
    token = csrf_from(page.get_data(as_text=True)) if page.status_code == 200 else csrf_from(
        client.get("/o/river/feed").get_data(as_text=True))
    return client.post(form_url(w, booking), data={"csrf_token": token, "stars": stars, "body": body},
                       headers=headers or {})


def the_review(w) -> Review | None:
    db.session.expire_all()
    tenancy.activate(w.org.id)
    return db.session.scalar(select(Review).where(Review.booking_id == w.ended.id))


def write(w, stars=5, body="Great session."):
    review = reviews.write_review(w.ended, w.ana, stars, body)
    db.session.commit()
    return review


# --- the form -------------------------------------------------------------------------------------------------

def test_the_athlete_writes_a_review_from_the_booking_page(client, world):
    w = world
    log_in(client, "ana@example.com")
    booking_page = client.get(f"/o/river/bookings/{w.ended.id}").get_data(as_text=True)
    assert "Review this session" in booking_page and form_url(w) in booking_page
    form = client.get(form_url(w)).get_data(as_text=True)
    assert 'type="radio"' in form and 'name="stars"' in form and "How was your session?" in form
    assert 'maxlength="5000"' in form and "<legend>Your rating</legend>" in form
    response = post_review(client, w, "5", "Fixed my crosshair placement.\nThank you!")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/bookings/{w.ended.id}")
    assert the_review(w).stars == 5
    after = client.get(f"/o/river/bookings/{w.ended.id}").get_data(as_text=True)
    assert "Your review is published" in after or "your review is published" in after
    assert "Edit your review" in after


@pytest.mark.parametrize("stars", ["0", "6", "abc", "", "4.5"])
def test_bad_stars_show_a_message_and_write_nothing(client, world, stars):
    w = world
    log_in(client, "ana@example.com")
    response = post_review(client, w, stars, "Hmm")
    assert response.status_code == 422
    assert "Choose between 1 and 5 stars." in response.get_data(as_text=True)
    assert the_review(w) is None


def test_a_text_of_twenty_thousand_characters_is_refused_with_the_form_kept(client, world):
    w = world
    log_in(client, "ana@example.com")
    response = post_review(client, w, "4", "x" * 20_000, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "at most 5,000 characters" in html
    assert "<html" not in html  # the form block alone for htmx
    assert the_review(w) is None


def test_someone_elses_booking_is_403_or_404_and_another_org_is_404(client, world):
    w = world
    log_in(client, "maria@example.com")  # the coach sees the booking but may not review it
    response = client.get(form_url(w))
    assert response.status_code == 403 and "Only the athlete" in response.get_data(as_text=True)
    Auth(client).logout()
    log_in(client, "ben@example.com")  # another athlete does not even see the booking
    assert client.get(form_url(w)).status_code == 404
    Auth(client).logout()
    log_in(client, "zed@example.com")
    assert client.get(f"/o/hill/bookings/{w.ended.id}/review").status_code == 404
    assert client.get(form_url(w)).status_code == 404


def test_a_session_not_ended_is_409(client, world):
    w = world
    upcoming = w.write_booking(w.maria, w.aim, w.ana, clock.now().replace(microsecond=0) + timedelta(days=3),
                               "confirmed")
    db.session.commit()
    log_in(client, "ana@example.com")
    response = client.get(form_url(w, upcoming))
    assert response.status_code == 409 and "once it has ended" in response.get_data(as_text=True)
    assert "Review this session" not in client.get(f"/o/river/bookings/{upcoming.id}").get_data(as_text=True)


def test_the_author_edits_then_not_after_fourteen_days(client, world, monkeypatch):
    w = world
    write(w, 3, "OK")
    log_in(client, "ana@example.com")
    form = client.get(form_url(w)).get_data(as_text=True)
    assert "Edit your review" in form and 'value="3" checked' in form and ">OK</textarea>" in form
    assert post_review(client, w, "4", "Better than OK").status_code == 303
    assert the_review(w).stars == 4
    later = clock.now() + timedelta(days=15)
    monkeypatch.setattr(clock, "now", lambda: later)
    response = client.get(form_url(w))
    assert response.status_code == 409 and "can no longer be changed" in response.get_data(as_text=True)
    assert "Your review" in client.get(f"/o/river/bookings/{w.ended.id}").get_data(as_text=True)


def test_a_second_review_from_a_stale_tab_is_a_clear_conflict(client, world):
    w = world
    log_in(client, "ana@example.com")
    token = csrf_from(client.get(form_url(w)).get_data(as_text=True))
    first = client.post(form_url(w), data={"csrf_token": token, "stars": "5", "body": "One"})
    assert first.status_code == 303
    review = the_review(w)
    reviews.edit_review(review, w.ana, 5, "One")  # nothing changes: still one review
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Review)) == 1


# --- acting on a review ----------------------------------------------------------------------------------------

def test_the_coach_replies_on_her_reviews_page_and_once_only(client, world):
    w = world
    review = write(w, 5, "<b>Great</b> coach")
    log_in(client, "maria@example.com")
    page = client.get(f"/o/river/coaches/{w.maria.id}/reviews")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "&lt;b&gt;Great&lt;/b&gt; coach" in html  # escaped, never markup
    assert "Reply publicly" in html and "Ana Alves" in html
    assert 'role="img"' in html and "<title" in html  # the chart
    token = csrf_from(html)
    fragment = client.post(f"/o/river/reviews/{review.id}/reply", headers=HX,
                           data={"csrf_token": token, "body": "Thanks Ana, see you soon!"})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body and "Reply from Maria Santos" in body
    assert "Reply publicly" not in body
    again = client.post(f"/o/river/reviews/{review.id}/reply", data={"csrf_token": token, "body": "Twice"})
    assert again.status_code == 409 and "replied to this review already" in again.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Review, review.id).reply_body == "Thanks Ana, see you soon!"


def test_an_athlete_flags_and_votes_but_not_their_own(client, world):
    w = world
    review = write(w)
    log_in(client, "ben@example.com")
    page = client.get(f"/o/river/coaches/{w.maria.id}/reviews").get_data(as_text=True)
    token = csrf_from(page)
    assert "Helpful" in page and "Flag" in page
    voted = client.post(f"/o/river/reviews/{review.id}/helpful", data={"csrf_token": token}, headers=HX)
    assert voted.status_code == 200 and "Helpful ✓" in voted.get_data(as_text=True)
    flag_form = client.get(f"/o/river/reviews/{review.id}/flag")
    assert flag_form.status_code == 200 and 'name="reason"' in flag_form.get_data(as_text=True)
    empty = client.post(f"/o/river/reviews/{review.id}/flag", data={"csrf_token": token, "reason": ""})
    assert empty.status_code == 422 and "Say what is wrong" in empty.get_data(as_text=True)
    done = client.post(f"/o/river/reviews/{review.id}/flag", data={"csrf_token": token, "reason": "Off topic"})
    assert done.status_code == 303
    twice = client.post(f"/o/river/reviews/{review.id}/flag", data={"csrf_token": token, "reason": "Again"})
    assert twice.status_code == 409 and "flagged this review already" in twice.get_data(as_text=True)
    Auth(client).logout()
    log_in(client, "ana@example.com")
    token = csrf_from(client.get(form_url(w)).get_data(as_text=True))  # her edit form
    own = client.post(f"/o/river/reviews/{review.id}/flag", data={"csrf_token": token, "reason": "Mine"})
    assert own.status_code == 403
    assert client.post(f"/o/river/reviews/{review.id}/helpful", data={"csrf_token": token}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Review, review.id).open_flags == 1 and db.session.get(Review, review.id).helpful_count == 1


def test_an_admin_hides_a_flagged_review_from_the_queue_and_it_leaves_the_list(client, world):
    w = world
    review = write(w, 1, "Spam spam")
    reviews.flag(review, w.ben, "Spam")
    db.session.commit()
    log_in(client, "ada@example.com")
    assert "Flagged reviews of coaches" in client.get("/o/river/moderation").get_data(as_text=True)
    queue = client.get("/o/river/moderation/reviews").get_data(as_text=True)
    assert "Spam spam" in queue and "“Spam”" in queue
    token = csrf_from(queue)
    nothing = client.post(f"/o/river/reviews/{review.id}/hide", data={"csrf_token": token, "reason": ""})
    assert nothing.status_code == 422
    hidden = client.post(f"/o/river/reviews/{review.id}/hide", data={
        "csrf_token": token, "reason": "Spam", "next": "/o/river/moderation/reviews"})
    assert hidden.status_code == 303 and hidden.headers["Location"].endswith("/o/river/moderation/reviews")
    assert reviews.rating_of(w.org.id, w.maria.id).review_count == 0
    listing = client.get(f"/o/river/coaches/{w.maria.id}/reviews").get_data(as_text=True)
    assert "Spam spam" not in listing and "No reviews yet." in listing
    restored = client.post(f"/o/river/reviews/{review.id}/restore", data={"csrf_token": token})
    assert restored.status_code == 303
    db.session.expire_all()
    assert reviews.rating_of(w.org.id, w.maria.id).review_count == 1


def test_the_queue_names_each_coach_marks_a_coachs_own_flag_and_costs_the_same_for_more_coaches(app, client, world):
    """The reviewed coach may flag a review of themselves (not its author): the admin sees that flag marked as
    theirs, since it weighs differently; other flaggers stay unnamed, as on posts. Coaches' names come in one
    statement, however many coaches the queue holds."""
    w = world
    review = write(w, 2, "Late and unprepared")
    reviews.flag(review, w.maria, "This never happened")
    reviews.flag(review, w.ben, "Unfair")
    db.session.commit()
    log_in(client, "ada@example.com")
    path = "/o/river/moderation/reviews"
    queue = client.get(path).get_data(as_text=True)
    item = queue[queue.index(f'id="queue-{review.id}"'):]
    item = item[:item.index("</section>")]
    assert "Review of <strong>Maria Santos</strong> · 2 open flags" in item
    assert re.search(r"“This never happened” <small[^>]*>[^<]*· flagged by the coach reviewed</small>", item)
    assert re.search(r"“Unfair” <small[^>]*>[^<·]*</small>", item)  # Ben's: no name, no mark
    assert "Ben Brown" not in item
    one_coach = statements_for(app, client, path)
    jons = w.write_booking(w.jon, w.serve, w.ben, clock.now().replace(microsecond=0) - timedelta(days=1), "ended")
    reviews.flag(reviews.write_review(jons, w.ben, 1, "No show"), w.ana, "Rude")
    db.session.commit()
    assert "Review of <strong>Jon Berg</strong>" in client.get(path).get_data(as_text=True)
    assert statements_for(app, client, path) == one_coach


def test_members_who_are_not_admins_get_403_from_moderation(client, world):
    w = world
    review = write(w)
    log_in(client, "maria@example.com")
    assert client.get("/o/river/moderation/reviews").status_code == 403
    token = csrf_from(client.get(f"/o/river/coaches/{w.maria.id}/reviews").get_data(as_text=True))
    assert client.post(f"/o/river/reviews/{review.id}/hide",
                       data={"csrf_token": token, "reason": "I dislike it"}).status_code == 403
    assert db.session.get(Review, review.id).status == "visible"


def test_reviews_come_a_page_at_a_time_and_more_is_a_fragment(client, world):
    w = world
    write(w, 5, "review 0")
    for i in range(1, 7):
        booking = w.write_booking(w.maria, w.aim, w.ben, clock.now().replace(microsecond=0)
                                  - timedelta(days=2, hours=2 * i), "ended")
        reviews.write_review(booking, w.ben, 4, f"review {i}", now=clock.now() - timedelta(minutes=i))
    db.session.commit()
    log_in(client, "jon@example.com")
    page = client.get(f"/o/river/coaches/{w.maria.id}/reviews").get_data(as_text=True)
    assert page.count('class="review"') == 5 and "More reviews" in page
    more = re.search(r'href="([^"]*cursor=[^"]+)"', page).group(1).replace("&amp;", "&")
    fragment = client.get(more, headers=HX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html and html.count('class="review"') == 2
    assert "More reviews" not in html and fragment.headers.get("Vary") and "HX-Request" in fragment.headers["Vary"]
    assert client.get(more).get_data(as_text=True).count('class="review"') == 2  # the same page without htmx
    tampered = client.get(f"/o/river/coaches/{w.maria.id}/reviews?cursor=%27%3B--&order=%3Cx%3E")
    assert tampered.status_code == 200 and tampered.get_data(as_text=True).count('class="review"') == 5
    assert client.get(f"/o/river/coaches/{w.ana.id}/reviews").status_code == 404
    assert client.get("/o/river/coaches/not-an-id/reviews").status_code == 404


# --- the ask --------------------------------------------------------------------------------------------------------

def test_the_athlete_is_asked_once_when_a_session_ends(client, world, quiet, mailbox):
    w = world
    started = clock.now().replace(microsecond=0) - timedelta(hours=3)
    booking = w.write_booking(w.maria, w.aim, w.ben, started, "active")
    db.session.commit()
    lifecycle.transition(booking, "end", None)
    db.session.commit()
    quiet.drain()
    quiet.drain()  # a second delivery round finds nothing new to do
    db.session.expire_all()
    tenancy.activate(w.org.id)
    asked = list(db.session.scalars(select(Notification).where(Notification.kind == "review_request")))
    assert [(n.membership_id, n.title) for n in asked] == [
        (w.ben.id, "How was your session with Maria Santos? Leave a review")]
    assert asked[0].url == f"/o/river/bookings/{booking.id}/review"
    emails = list(db.session.scalars(select(Email).where(Email.to_address == "ben@example.com")))
    assert [e.subject for e in emails] == ["How was your session with Maria Santos?"]
    # Delivered again (at least once): the dedupe key keeps it to one notification and one email.
    from coach.notifications import reviews as review_notices

    review_notices.ask_for_review({"booking_id": str(booking.id)})
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.kind == "review_request")) == 1


def test_the_coach_is_told_of_a_new_review(client, world, quiet):
    w = world
    write(w, 4, "Solid")
    quiet.drain()
    db.session.expire_all()
    tenancy.activate(w.org.id)
    told = list(db.session.scalars(select(Notification).where(Notification.kind == "review_received")))
    assert [(n.membership_id, n.title) for n in told] == [(w.maria.id, "Ana Alves reviewed your session: 4 stars")]


def test_a_page_of_reviews_is_a_fixed_number_of_statements(app, client, world):
    """One review or five with replies and votes: the same statements (names come with the reviews)."""
    w = world
    write(w, 5, "first")
    log_in(client, "jon@example.com")
    path = f"/o/river/coaches/{w.maria.id}/reviews"
    one = statements_for(app, client, path)
    for i in range(1, 5):
        booking = w.write_booking(w.maria, w.aim, w.ben, clock.now().replace(microsecond=0)
                                  - timedelta(days=2, hours=2 * i), "ended")
        review = reviews.write_review(booking, w.ben, 3, f"review {i}")
        reviews.reply(review, w.maria, "Thanks")
        reviews.vote_helpful(review, w.jon)
    db.session.commit()
    five = statements_for(app, client, path)
    assert five == one


def test_a_double_click_on_publish_writes_one_review(client, world):
    w = world
    log_in(client, "ana@example.com")
    html = client.get(form_url(w)).get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    data = {"csrf_token": csrf_from(html), "stars": "4", "body": "Twice clicked", "idempotency_key": key.group(1)}
    first, second = client.post(form_url(w), data=data), client.post(form_url(w), data=data)
    assert first.status_code == second.status_code == 303
    assert db.session.scalar(select(func.count()).select_from(Review)) == 1
