"""Addresses edited by hand in the directory's organization pages: a malformed id, an id nobody has, another
organization's review or coach, a membership that is not a coach. Each is a 404 (never a 500), and a refused post
writes nothing: no reply, flag, vote, hidden state, verification or profile."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from coach import tenancy
from coach.directory import reviews
from coach.directory.models import CoachProfile, Review, ReviewFlag, ReviewVote
from coach.extensions import db
from coach.platform.models import AuditEvent
from tests.conftest import csrf_from
from tests.directory_support import DirectoryWorld
from tests.factories import PASSWORD, add_member, make_user

UNKNOWN = "00000000-0000-4000-8000-000000000000"
MALFORMED = ["not-an-id", "1%27%20OR%201=1", UNKNOWN]


@pytest.fixture()
def world(ctx):
    w = DirectoryWorld()
    tenancy.activate(w.org.id)
    w.review = reviews.write_review(w.ended, w.ana, 4, "River's review")
    ended_at = w.ended.starts_at
    db.session.commit()
    # Hill Club gets an athlete, an ended session with Yara and a review of it: a real id of another organization.
    tenancy.activate(w.hill.id)
    w.hill_athlete = add_member(w.hill, make_user("hal@example.com", "Hal Hill"), "athlete")
    hill_ended = w.write_booking(w.yara, w.yara_offering, w.hill_athlete, ended_at, "ended")
    w.hill_review = reviews.write_review(hill_ended, w.hill_athlete, 2, "Hill's review")
    db.session.commit()
    tenancy.activate(w.org.id)
    return w


def log_in(client, w, email: str) -> str:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD}).status_code == 303
    return csrf_from(client.get(f"/o/river/coaches/{w.maria.id}/reviews").get_data(as_text=True))


def written(w) -> tuple:
    """Everything a refused post could have written, in both organizations."""
    db.session.expire_all()
    rows = []
    for org, review in ((w.org, w.review), (w.hill, w.hill_review)):
        tenancy.activate(org.id)
        again = db.session.get(Review, review.id)
        rows.append((again.reply_body, again.status, again.open_flags, again.helpful_count,
                     db.session.scalar(select(func.count()).select_from(ReviewFlag)),
                     db.session.scalar(select(func.count()).select_from(ReviewVote)),
                     db.session.scalar(select(func.count()).select_from(AuditEvent).where(
                         AuditEvent.action.like("review.%") | AuditEvent.action.like("directory.%")))))
    tenancy.activate(w.org.id)
    return tuple(rows)


ACTIONS = [("reply", {"body": "Thanks"}), ("flag", {"reason": "Spam"}), ("helpful", {}), ("hide", {"reason": "x"}),
           ("restore", {})]


@pytest.mark.parametrize("action,data", ACTIONS, ids=[a for a, _ in ACTIONS])
def test_a_review_address_edited_by_hand_is_404_and_writes_nothing(client, world, action, data):
    w = world
    token = log_in(client, w, "ada@example.com")  # an admin: every action is hers to try
    before = written(w)
    for bad in MALFORMED + [str(w.hill_review.id)]:
        response = client.post(f"/o/river/reviews/{bad}/{action}", data={"csrf_token": token, **data})
        assert response.status_code == 404, (bad, response.status_code)
        assert client.get(f"/o/river/reviews/{bad}").status_code == 404
    assert written(w) == before


def test_a_review_of_another_organization_is_not_reached_through_its_own_address_either(client, world):
    """Ada is no member of Hill Club: its review's own address is a 404 for her, not a page."""
    w = world
    token = log_in(client, w, "ada@example.com")
    before = written(w)
    assert client.get(f"/o/hill/reviews/{w.hill_review.id}").status_code == 404
    assert client.post(f"/o/hill/reviews/{w.hill_review.id}/hide",
                       data={"csrf_token": token, "reason": "x"}).status_code == 404
    assert written(w) == before


@pytest.mark.parametrize("who", ["maria@example.com", "ben@example.com"])
def test_posting_a_review_of_someone_elses_session_writes_nothing(client, world, who):
    w = world
    tenancy.activate(w.org.id)
    upcoming = w.write_booking(w.maria, w.aim, w.ben, w.ended.starts_at, "ended")  # Ben's, unreviewed
    db.session.commit()
    token = log_in(client, w, who)
    theirs = upcoming if who == "maria@example.com" else w.ended  # the coach's session, Ana's session
    response = client.post(f"/o/river/bookings/{theirs.id}/review",
                           data={"csrf_token": token, "stars": "5", "body": "Not mine to write"})
    assert response.status_code in (403, 404)
    assert response.status_code == 404 or "Only the athlete" in response.get_data(as_text=True)
    for bad in MALFORMED:
        assert client.post(f"/o/river/bookings/{bad}/review",
                           data={"csrf_token": token, "stars": "5", "body": "x"}).status_code == 404
    db.session.expire_all()
    tenancy.activate(w.org.id)
    assert list(db.session.scalars(select(Review.body))) == ["River's review"]


def test_profile_addresses_edited_by_hand_are_404_and_write_nothing(client, world):
    """The profile, its editor, its preview and its verification: a malformed id, one nobody has, an athlete's
    membership, and another organization's coach."""
    w = world
    tenancy.activate(w.hill.id)
    yara_id = w.yara.id
    tenancy.activate(w.org.id)
    token = log_in(client, w, "ada@example.com")
    for bad in MALFORMED + [str(w.ana.id), str(yara_id)]:
        assert client.get(f"/o/river/coaches/{bad}/profile").status_code == 404, bad
        assert client.get(f"/o/river/coaches/{bad}/profile/edit").status_code == 404, bad
        assert client.post(f"/o/river/coaches/{bad}/profile/edit",
                           data={"csrf_token": token, "headline": "Taken over", "online": "y"}).status_code == 404
        assert client.post(f"/o/river/coaches/{bad}/profile/preview",
                           data={"csrf_token": token, "headline": "x", "online": "y"}).status_code == 404
        assert client.post(f"/o/river/coaches/{bad}/profile/verification",
                           data={"csrf_token": token, "action": "verify", "note": "ID seen"}).status_code == 404
    db.session.expire_all()
    tenancy.activate(w.hill.id)
    yara = db.session.scalar(select(CoachProfile).where(CoachProfile.coach_membership_id == yara_id))
    assert (yara.headline, yara.verified_at) == ("Valorant aim coach (hill)", None)
    tenancy.activate(w.org.id)
    assert db.session.scalar(select(func.count()).select_from(CoachProfile)) == 2  # Maria's and Jon's only
