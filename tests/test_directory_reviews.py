"""Reviews, the service: who may write, edit, reply, flag, vote and moderate, what each refuses, and that nothing is
half-written when it does. River Academy's world (tests/directory_support.py): Ana's session with Maria ended an
hour ago; Hill Club is the second organization."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from coach import clock, tenancy
from coach.directory import reviews
from coach.directory.events import REVIEW_CHANGED, REVIEW_POSTED
from coach.directory.models import Review, ReviewFlag, ReviewVote
from coach.errors import Conflict, NotAllowed
from coach.extensions import db
from coach.platform.models import AuditEvent, OutboxEvent
from coach.platform.pagination import encode_cursor
from tests.directory_support import DirectoryWorld


@pytest.fixture()
def world(ctx):
    return DirectoryWorld()


def counts(w, coach=None):
    rating = reviews.rating_of(w.org.id, (coach or w.maria).id)
    return None if rating is None else (rating.review_count, rating.star_sum, rating.distribution)


def write(w, stars=5, body="Great session.", booking=None, athlete=None):
    review = reviews.write_review(booking or w.ended, athlete or w.ana, stars, body)
    db.session.commit()
    return review


def another_ended(w, athlete=None, hours_ago: int = 30):
    booking = w.write_booking(w.maria, w.aim, athlete or w.ben, clock.now().replace(microsecond=0)
                              - timedelta(hours=hours_ago), "ended")
    db.session.commit()
    return booking


def topics(w) -> list[str]:
    return list(db.session.scalars(select(OutboxEvent.topic).where(OutboxEvent.tenant_id == w.org.id,
                                                                   OutboxEvent.topic.like("directory.review%"))
                                   .order_by(OutboxEvent.created_at)))


# --- writing ---------------------------------------------------------------------------------------------------

def test_the_athlete_reviews_an_ended_session_and_the_coach_is_counted_at_once(world):
    w = world
    assert reviews.reviewable(w.ended, w.ana)
    review = write(w, 4, "Clear plan for my crosshair.\nWill book again.")
    assert review.body == "Clear plan for my crosshair.\nWill book again."  # newlines kept
    assert review.editable_until - review.created_at == timedelta(days=14)
    assert counts(w) == (1, 4, [0, 0, 0, 1, 0])
    assert not reviews.reviewable(w.ended, w.ana)
    assert topics(w) == [REVIEW_POSTED]


@pytest.mark.parametrize("stars", [0, 6, "abc", "", None, "4.5", True, -1])
def test_stars_outside_one_to_five_are_refused_and_nothing_is_written(world, stars):
    w = world
    with pytest.raises(reviews.ReviewError, match="between 1 and 5 stars"):
        reviews.write_review(w.ended, w.ana, stars, "Hmm")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Review)) == 0
    assert counts(w) is None


def test_a_text_over_five_thousand_characters_or_with_nul_is_refused(world):
    w = world
    with pytest.raises(reviews.ReviewError, match="at most 5,000 characters"):
        reviews.write_review(w.ended, w.ana, 5, "x" * 20_000)
    db.session.rollback()
    with pytest.raises(reviews.ReviewError, match="not allowed"):
        reviews.write_review(w.ended, w.ana, 5, "bad\x00byte")
    db.session.rollback()
    assert counts(w) is None
    assert write(w, 5, "y" * 5000).body == "y" * 5000


def test_html_in_a_review_is_kept_as_text(world):
    w = world
    review = write(w, 5, "<script>alert(1)</script> <b>bold</b>")
    assert review.body == "<script>alert(1)</script> <b>bold</b>"  # escaped when shown (see the page tests)


def test_someone_else_cannot_review_my_session(world):
    w = world
    for other in (w.ben, w.maria, w.admin):
        with pytest.raises(NotAllowed, match="Only the athlete"):
            reviews.write_review(w.ended, other, 5, "")
        db.session.rollback()
    assert counts(w) is None


@pytest.mark.parametrize("status", ["confirmed", "active", "cancelled", "no_show", "requested"])
def test_a_session_that_has_not_ended_cannot_be_reviewed(world, status):
    w = world
    booking = w.write_booking(w.maria, w.aim, w.ana, clock.now().replace(microsecond=0) + timedelta(days=2), status)
    db.session.commit()
    with pytest.raises(Conflict, match="once it has ended"):
        reviews.write_review(booking, w.ana, 5, "Too early")
    db.session.rollback()
    assert counts(w) is None


def test_a_session_is_reviewed_once(world):
    w = world
    write(w, 5)
    with pytest.raises(Conflict, match="already reviewed"):
        reviews.write_review(w.ended, w.ana, 1, "Again")
    db.session.rollback()
    assert counts(w) == (1, 5, [0, 0, 0, 0, 1])


def test_two_submissions_at_once_make_one_review_and_one_count(app, world):
    """A double submit from two tabs: both pass the check before either inserts; the unique key per booking lets
    one in, the other gets the clear message, and the coach is counted once."""
    w = world
    org_id, booking_id, ana_id = w.org.id, w.ended.id, w.ana.id
    barrier, outcomes = threading.Barrier(2), []

    def submit(stars):
        with app.test_request_context():
            tenancy.activate(org_id)
            from coach.booking.models import Booking
            from coach.orgs.models import Membership
            booking, ana = db.session.get(Booking, booking_id), db.session.get(Membership, ana_id)
            assert reviews.reviewable(booking, ana)  # both see no review yet
            barrier.wait(timeout=10)
            try:
                reviews.write_review(booking, ana, stars, f"{stars} stars")
                db.session.commit()
                outcomes.append("written")
            except Conflict as exc:
                db.session.rollback()
                outcomes.append(str(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=submit, args=(s,)) for s in (5, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(outcomes)[-1] == "written" and outcomes.count("written") == 1
    assert any("already reviewed" in o for o in outcomes)
    db.session.expire_all()
    tenancy.activate(org_id)
    assert db.session.scalar(select(func.count()).select_from(Review)) == 1
    count, star_sum, _ = counts(w)
    assert count == 1 and star_sum in (5, 3)


# --- editing --------------------------------------------------------------------------------------------------

def test_the_author_edits_within_fourteen_days_and_the_counts_follow_the_stars(world):
    w = world
    review = write(w, 2, "Meh")
    reviews.edit_review(review, w.ana, 4, "Better on second thought")
    db.session.commit()
    assert counts(w) == (1, 4, [0, 0, 0, 1, 0])
    assert review.updated_at > review.created_at  # shown as "edited"
    assert topics(w) == [REVIEW_POSTED, REVIEW_CHANGED]


def test_nobody_else_edits_a_review(world):
    w = world
    review = write(w, 5)
    with pytest.raises(NotAllowed):
        reviews.edit_review(review, w.maria, 1, "Sabotage")
    db.session.rollback()
    assert counts(w) == (1, 5, [0, 0, 0, 0, 1])


def test_a_review_cannot_be_edited_after_fourteen_days(world, monkeypatch):
    w = world
    review = write(w, 5, "Loved it")
    later = clock.now() + timedelta(days=14, minutes=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    with pytest.raises(Conflict, match="can no longer be changed"):
        reviews.edit_review(review, w.ana, 1, "Changed my mind")
    db.session.rollback()
    assert not reviews.editable(review, w.ana)
    assert counts(w) == (1, 5, [0, 0, 0, 0, 1])
    assert db.session.get(Review, review.id).body == "Loved it"


# --- replying ---------------------------------------------------------------------------------------------------

def test_the_coach_replies_once(world):
    w = world
    review = write(w)
    reviews.reply(review, w.maria, "Thank you, Ana! See you next week.")
    db.session.commit()
    assert review.reply_body == "Thank you, Ana! See you next week." and review.replied_at is not None
    with pytest.raises(Conflict, match="replied to this review already"):
        reviews.reply(review, w.maria, "And another thing")
    db.session.rollback()
    assert db.session.get(Review, review.id).reply_body == "Thank you, Ana! See you next week."


def test_only_the_reviewed_coach_replies_and_a_reply_has_limits(world):
    w = world
    review = write(w)
    for other in (w.jon, w.admin, w.ana):
        with pytest.raises(NotAllowed, match="Only the coach"):
            reviews.reply(review, other, "Hi")
        db.session.rollback()
    with pytest.raises(reviews.ReviewError, match="at most 2,000"):
        reviews.reply(review, w.maria, "x" * 2001)
    db.session.rollback()
    with pytest.raises(reviews.ReviewError, match="Write the reply"):
        reviews.reply(review, w.maria, "   ")
    db.session.rollback()
    assert db.session.get(Review, review.id).reply_body is None


# --- flags and votes --------------------------------------------------------------------------------------------

def test_members_flag_once_each_and_not_their_own(world):
    w = world
    review = write(w)
    reviews.flag(review, w.ben, "Not about the session")
    reviews.flag(review, w.jon, "Rude")
    db.session.commit()
    assert review.open_flags == 2
    with pytest.raises(Conflict, match="flagged this review already"):
        reviews.flag(review, w.ben, "Again")
    db.session.rollback()
    with pytest.raises(NotAllowed, match="your own review"):
        reviews.flag(review, w.ana, "Oops")
    db.session.rollback()
    with pytest.raises(reviews.ReviewError, match="at most 300"):
        reviews.flag(review, w.kim, "x" * 301)
    db.session.rollback()
    assert db.session.get(Review, review.id).open_flags == 2
    assert db.session.scalar(select(func.count()).select_from(ReviewFlag)) == 2


def test_helpful_is_a_toggle_and_not_for_the_author_or_the_coach(world):
    w = world
    review = write(w)
    assert reviews.vote_helpful(review, w.ben) is True
    assert reviews.vote_helpful(review, w.jon) is True
    db.session.commit()
    assert review.helpful_count == 2
    assert reviews.vote_helpful(review, w.ben) is False
    db.session.commit()
    assert review.helpful_count == 1
    for own in (w.ana, w.maria):
        with pytest.raises(NotAllowed):
            reviews.vote_helpful(review, own)
        db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ReviewVote)) == 1


# --- moderation ---------------------------------------------------------------------------------------------------

def test_a_hidden_review_leaves_the_counts_and_restoring_brings_it_back(world):
    w = world
    review = write(w, 1, "Awful, and here is the coach's phone number")
    write(w, 5, "Great", booking=another_ended(w), athlete=w.ben)
    reviews.flag(review, w.ben, "Personal data")
    db.session.commit()
    assert counts(w) == (2, 6, [1, 0, 0, 0, 1])
    reviews.hide(review, w.admin, "Contains personal data")
    db.session.commit()
    assert counts(w) == (1, 5, [0, 0, 0, 0, 1])
    assert review.status == "hidden" and review.open_flags == 0
    assert db.session.scalar(select(func.count()).select_from(ReviewFlag).where(
        ReviewFlag.resolved_at.is_(None))) == 0
    assert [r.id for r in reviews.reviews_page(w.org.id, w.maria.id).rows] != [] and review.id not in [
        r.id for r in reviews.reviews_page(w.org.id, w.maria.id).rows]
    with pytest.raises(Conflict, match="hidden already"):
        reviews.hide(review, w.admin, "Again")
    db.session.rollback()
    reviews.restore(review, w.admin)
    db.session.commit()
    assert counts(w) == (2, 6, [1, 0, 0, 0, 1])
    actions = list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == w.org.id,
                                                                      AuditEvent.action.like("review.%"))
                                      .order_by(AuditEvent.created_at)))
    assert actions == ["review.hidden", "review.restored"]


def test_only_admins_moderate_and_a_reason_is_needed(world):
    w = world
    review = write(w)
    for other in (w.maria, w.jon, w.ben):
        with pytest.raises(NotAllowed, match="admins"):
            reviews.hide(review, other, "No")
        db.session.rollback()
    with pytest.raises(reviews.ReviewError, match="reason"):
        reviews.hide(review, w.admin, "")
    db.session.rollback()
    assert counts(w) == (1, 5, [0, 0, 0, 0, 1])


def test_keeping_a_flagged_review_resolves_its_flags(world):
    w = world
    review = write(w)
    reviews.flag(review, w.ben, "I disagree")
    db.session.commit()
    assert [r.id for r in reviews.moderation_queue(w.org.id)[0]] == [review.id]
    reviews.restore(review, w.admin)
    db.session.commit()
    assert reviews.moderation_queue(w.org.id) == ([], [])
    assert counts(w) == (1, 5, [0, 0, 0, 0, 1])


def test_editing_a_hidden_review_does_not_count_it_again(world):
    w = world
    review = write(w, 2)
    reviews.hide(review, w.admin, "Spam")
    reviews.edit_review(review, w.ana, 5, "Now five")
    db.session.commit()
    assert counts(w) == (0, 0, [0, 0, 0, 0, 0])


# --- pages ---------------------------------------------------------------------------------------------------------

def test_pages_walk_newest_and_most_helpful_by_keyset(world):
    w = world
    athletes = [w.ana, w.ben]
    made = []
    for i in range(7):
        booking = w.ended if i == 0 else another_ended(w, athlete=athletes[i % 2], hours_ago=30 + 2 * i)
        made.append(reviews.write_review(booking, athletes[0] if i == 0 else athletes[i % 2], 1 + i % 5, f"r{i}",
                                         now=clock.now() - timedelta(days=10 - i)))
    db.session.commit()
    for review, votes in ((made[1], 2), (made[4], 1)):
        for voter in (w.jon, w.kim)[:votes]:
            reviews.vote_helpful(review, voter)
    db.session.commit()
    seen, cursor = [], None
    while True:
        page = reviews.reviews_page(w.org.id, w.maria.id, "newest", cursor, limit=3)
        seen += [r.body for r in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"r{i}" for i in range(6, -1, -1)]
    seen, cursor = [], None
    while True:
        page = reviews.reviews_page(w.org.id, w.maria.id, "helpful", cursor, limit=2)
        seen += [r.body for r in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["r1", "r4", "r6", "r5", "r3", "r2", "r0"]
    tampered = reviews.reviews_page(w.org.id, w.maria.id, "helpful", "bm90IGEgY3Vyc29y", limit=2)
    assert [r.body for r in tampered.rows] == ["r1", "r4"]  # a bad cursor reads as the first page
    assert reviews.reviews_page(w.org.id, w.maria.id, "sideways", "%%%", limit=2).order == "newest"


def test_another_organization_sees_none_of_it(world):
    w = world
    review_id, maria_id = write(w).id, w.maria.id
    tenancy.activate(w.hill.id)
    assert reviews.get_review(w.hill.id, review_id) is None
    assert reviews.reviews_page(w.hill.id, maria_id).rows == []
    assert reviews.rating_of(w.hill.id, maria_id) is None
    assert db.session.scalar(select(func.count()).select_from(Review)) == 0  # RLS: not even unfiltered


@pytest.mark.parametrize("order, index", [("newest", "ix_reviews_coach_newest"),
                                          ("helpful", "ix_reviews_coach_helpful")])
def test_a_page_of_reviews_reads_its_partial_index_in_order(world, order, index):
    """Every page's statement (first and after a cursor) is an index scan of the order's partial index with no
    sort: with sequential scans priced out, the planner shows which index can serve the shape at all."""
    w = world
    write(w)
    cursor = reviews.reviews_page(w.org.id, w.maria.id, order, limit=1).rows[0]
    after = (reviews._helpful_cursor(cursor) if order == "helpful"
             else encode_cursor(cursor.created_at, cursor.id))
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    for position in (None, after):
        statement = reviews.page_query(w.org.id, w.maria.id, order, position, 5)
        compiled = statement.compile(dialect=db.session.get_bind().dialect)
        plan = db.session.connection().exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled),
                                                        compiled.params).scalar()
        nodes = list(_nodes(plan[0]["Plan"]))
        assert any(n.get("Index Name") == index for n in nodes), nodes
        assert not any(n["Node Type"] in ("Sort", "Incremental Sort") for n in nodes), nodes


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)
