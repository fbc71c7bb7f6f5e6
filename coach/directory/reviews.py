"""Reviews: an athlete's stars and words about one ended session, the coach's one public reply, members' flags and
"helpful" votes, moderation, and each coach's counted ratings.

The counts (``coach_ratings``) change in the same transaction as the review that changes them, with one
``UPDATE ... SET x = x ± n`` per write: a new visible review, stars edited, a review hidden or restored. Every such
write locks the coach's rating row first and the review second, so two writes about one coach queue behind each
other in one order and never deadlock. :func:`check_ratings` recounts from the rows and reports (or fixes) any
difference, for an operator who suspects one.

Plain functions: no request or session; the caller commits (a :class:`~coach.errors.DomainError` means roll back).
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import aliased

from coach import clock
from coach.accounts.models import User
from coach.booking.models import Booking, Offering
from coach.dbutil import insert_or_raise
from coach.directory.events import LISTING_CHANGED, REVIEW_CHANGED, REVIEW_POSTED
from coach.directory.models import (FLAG_REASON_MAX, REPLY_MAX, REVIEW_BODY_MAX, CoachRating, Review, ReviewFlag,
                                    ReviewVote)
from coach.errors import Conflict, DomainError, NotAllowed
from coach.extensions import db
from coach.ids import parse_uuid
from coach.orgs.models import ADMIN, Membership
from coach.platform import audit
from coach.platform.outbox import emit
from coach.platform.pagination import decode_cursor, encode_cursor

ORDERS = ("newest", "helpful")
HIDE_REASON_MAX = 300
PAGE_MAX = 50
MAX_CURSOR = 160


class ReviewError(DomainError):
    """A review, reply, flag or vote that cannot be taken as it is (422 unless said otherwise)."""


# --- reading --------------------------------------------------------------------------------------------

def get_review(tenant_id: uuid.UUID, review_id) -> Review | None:
    ident = parse_uuid(review_id)
    if ident is None:
        return None
    return db.session.scalar(select(Review).where(Review.tenant_id == tenant_id, Review.id == ident))


def review_for_booking(booking: Booking) -> Review | None:
    return db.session.scalar(select(Review).where(Review.tenant_id == booking.tenant_id,
                                                  Review.booking_id == booking.id))


def rating_of(tenant_id: uuid.UUID, coach_id: uuid.UUID) -> CoachRating | None:
    """The coach's counted visible reviews, or ``None`` before their first review."""
    return db.session.scalar(select(CoachRating).where(CoachRating.tenant_id == tenant_id,
                                                       CoachRating.coach_membership_id == coach_id))


def why_not_reviewable(booking: Booking, member: Membership) -> DomainError | None:
    """Why ``member`` may not write a review of ``booking`` now, or ``None`` when they may."""
    if member.id != booking.athlete_membership_id or member.tenant_id != booking.tenant_id:
        return NotAllowed("Only the athlete of this session can review it.")
    if booking.status != "ended":
        return Conflict("You can review a session once it has ended.")
    if review_for_booking(booking) is not None:
        return Conflict("You have already reviewed this session. You can edit your review instead.")
    return None


def reviewable(booking: Booking, member: Membership) -> bool:
    """The booking's athlete, the session ended, no review yet."""
    return why_not_reviewable(booking, member) is None


def to_write(athlete: Membership, limit: int = 3):
    """The athlete's ended sessions without a review yet, newest first (their home's "Reviews to write"): rows
    of booking id, start, offering title and coach name. One statement."""
    coach = aliased(Membership)
    reviewed = select(Review.id).where(Review.tenant_id == Booking.tenant_id, Review.booking_id == Booking.id)
    return db.session.execute(
        select(Booking.id, Booking.starts_at, Offering.title, User.display_name.label("coach_name"))
        .join(Offering, (Offering.tenant_id == Booking.tenant_id) & (Offering.id == Booking.offering_id))
        .join(coach, (coach.tenant_id == Booking.tenant_id) & (coach.id == Booking.coach_membership_id))
        .join(User, User.id == coach.user_id)
        .where(Booking.tenant_id == athlete.tenant_id, Booking.athlete_membership_id == athlete.id,
               Booking.status == "ended", ~reviewed.exists())
        .order_by(Booking.starts_at.desc()).limit(limit)).all()


def editable(review: Review, member: Membership, now: datetime | None = None) -> bool:
    return member.id == review.athlete_membership_id and (now or clock.now()) < review.editable_until


def may_reply(review: Review, member: Membership) -> bool:
    return member.id == review.coach_membership_id and review.reply_body is None and review.status == "visible"


def may_moderate(member: Membership) -> bool:
    return member.role == ADMIN


def may_flag(review: Review, member: Membership) -> bool:
    return member.id != review.athlete_membership_id and review.status == "visible"


def may_vote(review: Review, member: Membership) -> bool:
    # The author and the coach reviewed are the two people whose vote would not be a reader's judgment.
    return member.id not in (review.athlete_membership_id, review.coach_membership_id) and review.status == "visible"


# --- the counts ---------------------------------------------------------------------------------------------

def _lock_rating(tenant_id: uuid.UUID, coach_id: uuid.UUID) -> None:
    """Make sure the coach's rating row exists and lock it: the first lock of every write that changes counts."""
    db.session.execute(pg_insert(CoachRating).values(
        id=uuid.uuid4(), tenant_id=tenant_id, coach_membership_id=coach_id,
    ).on_conflict_do_nothing(constraint="uq_coach_ratings_coach"))
    db.session.execute(select(CoachRating.id).where(
        CoachRating.tenant_id == tenant_id, CoachRating.coach_membership_id == coach_id).with_for_update())


def _count(tenant_id: uuid.UUID, coach_id: uuid.UUID, changes: dict[int, int], now: datetime) -> None:
    """Add ``changes`` (stars → +1 or -1) to the coach's counts in one statement (the row is locked already)."""
    values: dict = {"updated_at": now}
    count = sum(changes.values())
    if count:
        values["review_count"] = CoachRating.review_count + count
    star_sum = sum(stars * n for stars, n in changes.items())
    if star_sum:
        values["star_sum"] = CoachRating.star_sum + star_sum
    for stars, n in changes.items():
        if n:
            column = getattr(CoachRating, f"stars_{stars}")
            values[f"stars_{stars}"] = column + n
    db.session.execute(update(CoachRating).where(
        CoachRating.tenant_id == tenant_id, CoachRating.coach_membership_id == coach_id).values(**values))


def _locked_review(review: Review) -> Review:
    """The review's row locked and read again (after the rating row: the lock order)."""
    return db.session.scalars(select(Review).where(Review.tenant_id == review.tenant_id, Review.id == review.id)
                              .with_for_update(of=Review).execution_options(populate_existing=True)).one()


# --- checks of what people type ---------------------------------------------------------------------------

def _stars(value) -> int:
    try:
        stars = int(str(value).strip()) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        stars = None
    if stars is None or not 1 <= stars <= 5:
        raise ReviewError("Choose between 1 and 5 stars.")
    return stars


def _text(value: str | None, limit: int, what: str, required: bool = False) -> str:
    text = (value or "").replace("\r\n", "\n").strip()
    if "\x00" in text:
        raise ReviewError(f"The {what} contains a character that is not allowed.")
    if len(text) > limit:
        raise ReviewError(f"The {what} has at most {limit:,} characters ({len(text):,} now).")
    if required and not text:
        raise ReviewError(f"Write the {what} first.")
    return text


# --- writing ----------------------------------------------------------------------------------------------

def write_review(booking: Booking, athlete: Membership, stars, body: str | None,
                 now: datetime | None = None) -> Review:
    """The athlete's review of an ended session: counted at once, editable for ``REVIEW_EDIT_DAYS``.

    :raises NotAllowed: not the booking's athlete. :raises Conflict: not ended, or reviewed already (also when
        two submissions race: the unique key per booking decides).
    """
    refused = why_not_reviewable(booking, athlete)
    if refused is not None:
        raise refused
    stars, body = _stars(stars), _text(body, REVIEW_BODY_MAX, "review")
    now = now or clock.now()
    _lock_rating(booking.tenant_id, booking.coach_membership_id)
    review = Review(tenant_id=booking.tenant_id, booking_id=booking.id, coach_membership_id=booking.coach_membership_id,
                    athlete_membership_id=athlete.id, stars=stars, body=body, status="visible", created_at=now,
                    updated_at=now, editable_until=now + timedelta(days=current_app.config["REVIEW_EDIT_DAYS"]),
                    helpful_count=0, open_flags=0)
    insert_or_raise(review, Conflict("You have already reviewed this session. You can edit your review instead."))
    _count(booking.tenant_id, booking.coach_membership_id, {stars: 1}, now)
    emit(REVIEW_POSTED, {"review_id": str(review.id), "booking_id": str(booking.id),
                         "coach_membership_id": str(booking.coach_membership_id), "stars": stars},
         tenant_id=booking.tenant_id)
    return review


def edit_review(review: Review, athlete: Membership, stars, body: str | None,
                now: datetime | None = None) -> Review:
    """The author changes stars or words before ``editable_until``; a visible review's counts follow."""
    if athlete.id != review.athlete_membership_id:
        raise NotAllowed("Only the athlete who wrote this review can edit it.")
    now = now or clock.now()
    if now >= review.editable_until:
        raise Conflict(f"A review can be edited for {current_app.config['REVIEW_EDIT_DAYS']} days; "
                       "this one can no longer be changed.")
    stars, body = _stars(stars), _text(body, REVIEW_BODY_MAX, "review")
    _lock_rating(review.tenant_id, review.coach_membership_id)
    review = _locked_review(review)
    if stars == review.stars and body == review.body:
        return review  # nothing changed: not "edited", nothing to tell anyone
    if review.status == "visible" and stars != review.stars:
        _count(review.tenant_id, review.coach_membership_id, {review.stars: -1, stars: 1}, now)
    review.stars, review.body, review.updated_at = stars, body, now
    db.session.flush()
    _changed(review, "edited")
    return review


def reply(review: Review, coach: Membership, body: str | None, now: datetime | None = None) -> Review:
    """The reviewed coach answers once, publicly."""
    if coach.id != review.coach_membership_id:
        raise NotAllowed("Only the coach this review is about can reply to it.")
    if review.status != "visible":
        raise Conflict("This review is hidden by the moderators: it cannot be replied to.")
    body = _text(body, REPLY_MAX, "reply", required=True)
    now = now or clock.now()
    # Compare and swap: of two replies at once, one finds the reply there already.
    done = db.session.execute(update(Review).where(
        Review.tenant_id == review.tenant_id, Review.id == review.id, Review.reply_body.is_(None)).values(
        reply_body=body, replied_at=now, replied_by_membership_id=coach.id)).rowcount
    if not done:
        raise Conflict("You have replied to this review already; a review has one reply.")
    db.session.refresh(review)
    _changed(review, "replied")
    return review


def flag(review: Review, member: Membership, reason: str | None, now: datetime | None = None) -> ReviewFlag:
    """A member asks the organization's moderators to look at a review (once per member)."""
    if member.id == review.athlete_membership_id:
        raise NotAllowed("You cannot flag your own review. You can edit it while it is editable.")
    if review.status != "visible":
        raise Conflict("This review is hidden already.")
    reason = _text(reason, FLAG_REASON_MAX, "reason", required=True)
    row = ReviewFlag(tenant_id=review.tenant_id, review_id=review.id, membership_id=member.id, reason=reason,
                     created_at=now or clock.now())
    insert_or_raise(row, Conflict("You have flagged this review already; the moderators will look at it."))
    db.session.execute(update(Review).where(Review.tenant_id == review.tenant_id, Review.id == review.id)
                       .values(open_flags=Review.open_flags + 1))
    db.session.refresh(review)
    return row


def vote_helpful(review: Review, member: Membership) -> bool:
    """Toggle ``member``'s "helpful" vote; whether they now count it helpful."""
    if not may_vote(review, member):
        if review.status != "visible":
            raise Conflict("This review is hidden.")
        raise NotAllowed("You cannot vote on a review of your own session.")
    added = db.session.scalar(pg_insert(ReviewVote).values(
        id=uuid.uuid4(), tenant_id=review.tenant_id, review_id=review.id, membership_id=member.id,
    ).on_conflict_do_nothing(constraint="uq_review_votes_member").returning(ReviewVote.id))
    if added is None:
        removed = db.session.execute(delete(ReviewVote).where(
            ReviewVote.tenant_id == review.tenant_id, ReviewVote.review_id == review.id,
            ReviewVote.membership_id == member.id)).rowcount
        if not removed:
            return False
    step = 1 if added is not None else -1
    db.session.execute(update(Review).where(Review.tenant_id == review.tenant_id, Review.id == review.id)
                       .values(helpful_count=func.greatest(Review.helpful_count + step, 0)))
    db.session.refresh(review)
    return added is not None


def _resolve_flags(review: Review, now: datetime) -> int:
    return db.session.execute(update(ReviewFlag).where(
        ReviewFlag.tenant_id == review.tenant_id, ReviewFlag.review_id == review.id,
        ReviewFlag.resolved_at.is_(None)).values(resolved_at=now)).rowcount


def hide(review: Review, moderator: Membership, reason: str | None, now: datetime | None = None) -> Review:
    """An admin hides a review: it leaves the profile, the counts and the directory; its flags are resolved."""
    if not may_moderate(moderator):
        raise NotAllowed("Only the organization's admins moderate reviews.")
    reason = _text(reason, HIDE_REASON_MAX, "reason", required=True)
    now = now or clock.now()
    _lock_rating(review.tenant_id, review.coach_membership_id)
    review = _locked_review(review)
    if review.status == "hidden":
        raise Conflict("This review is hidden already.")
    _count(review.tenant_id, review.coach_membership_id, {review.stars: -1}, now)
    flags = _resolve_flags(review, now)
    review.status, review.hidden_at, review.hidden_by_membership_id = "hidden", now, moderator.id
    review.hidden_reason, review.open_flags = reason, 0
    db.session.flush()
    audit.record("review.hidden", actor=moderator.user, target_type="review", target_id=review.id,
                 details={"coach": str(review.coach_membership_id), "stars": review.stars, "reason": reason,
                          "flags": flags})
    _changed(review, "hidden")
    return review


def restore(review: Review, moderator: Membership, now: datetime | None = None) -> Review:
    """An admin shows a hidden review again (counted again), or keeps a flagged one: either way its open flags
    are resolved."""
    if not may_moderate(moderator):
        raise NotAllowed("Only the organization's admins moderate reviews.")
    now = now or clock.now()
    _lock_rating(review.tenant_id, review.coach_membership_id)
    review = _locked_review(review)
    if review.status == "visible" and review.open_flags == 0:
        raise Conflict("This review is shown and nobody has flagged it: there is nothing to restore.")
    was_hidden = review.status == "hidden"
    if was_hidden:
        _count(review.tenant_id, review.coach_membership_id, {review.stars: 1}, now)
        review.status, review.hidden_at, review.hidden_by_membership_id, review.hidden_reason = \
            "visible", None, None, ""
    flags = _resolve_flags(review, now)
    review.open_flags = 0
    db.session.flush()
    audit.record("review.restored" if was_hidden else "review.kept", actor=moderator.user, target_type="review",
                 target_id=review.id, details={"coach": str(review.coach_membership_id), "flags": flags})
    if was_hidden:
        _changed(review, "restored")
    return review


def _changed(review: Review, what: str) -> None:
    emit(REVIEW_CHANGED, {"review_id": str(review.id), "coach_membership_id": str(review.coach_membership_id),
                          "what": what}, tenant_id=review.tenant_id)


# --- pages of reviews ---------------------------------------------------------------------------------------

@dataclass
class ReviewPage:
    """One page of a coach's visible reviews: ``rows`` (reviews with their athlete loaded), ``next_cursor``
    (``None`` on the last page), ``order``; for a member, the ids they voted helpful and flagged."""

    rows: list[Review]
    next_cursor: str | None
    order: str
    voted: frozenset = frozenset()
    flagged: frozenset = frozenset()


def _helpful_cursor(review: Review) -> str:
    raw = f"{review.helpful_count}|{encode_cursor(review.created_at, review.id)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _read_helpful_cursor(cursor: str | None) -> tuple[int, datetime, uuid.UUID] | None:
    """``(helpful_count, created_at, id)``, or ``None`` for a missing or malformed cursor (read as the start, as
    every list's cursor is: see :mod:`coach.platform.pagination`)."""
    if not cursor or len(cursor) > MAX_CURSOR:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        count, _, rest = raw.partition("|")
        position = decode_cursor(rest)
        helpful = int(count)
    except (ValueError, UnicodeDecodeError):
        return None
    if position is None or helpful < 0:
        return None
    return (helpful, *position)


def page_query(tenant_id: uuid.UUID, coach_membership_id: uuid.UUID, order: str, cursor: str | None, limit: int):
    """The statement of one page (``limit`` + 1 rows, to know whether there is more): every order is descending
    on all its columns, so "after the cursor" is one row comparison the index's range scan starts from."""
    query = select(Review).where(Review.tenant_id == tenant_id, Review.coach_membership_id == coach_membership_id,
                                 Review.status == "visible")
    if order == "helpful":
        position = _read_helpful_cursor(cursor)
        if position is not None:
            query = query.where(tuple_(Review.helpful_count, Review.created_at, Review.id) < tuple_(*position))
        query = query.order_by(Review.helpful_count.desc(), Review.created_at.desc(), Review.id.desc())
    else:
        position = decode_cursor(cursor)
        if position is not None:
            query = query.where(tuple_(Review.created_at, Review.id) < tuple_(*position))
        query = query.order_by(Review.created_at.desc(), Review.id.desc())
    return query.limit(limit + 1)


def reviews_page(tenant_id: uuid.UUID, coach_membership_id: uuid.UUID, order: str = "newest",
                 cursor: str | None = None, limit: int = 5, member: Membership | None = None) -> ReviewPage:
    """A page of the coach's visible reviews, newest first or most helpful first, after ``cursor``: a keyset
    walk of the partial indexes ``ix_reviews_coach_newest`` / ``_helpful`` (page 100 costs what page 1 does).

    :param member: a member reading (their votes and flags are read for the page's rows, in one statement).
    """
    order = order if order in ORDERS else "newest"
    limit = max(1, min(int(limit), PAGE_MAX))
    rows = list(db.session.scalars(page_query(tenant_id, coach_membership_id, order, cursor, limit)))
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = _helpful_cursor(last) if order == "helpful" else encode_cursor(last.created_at, last.id)
    voted = flagged = frozenset()
    if member is not None and rows:
        voted, flagged = marks_of(tenant_id, member.id, [r.id for r in rows])
    return ReviewPage(rows, next_cursor, order, voted, flagged)


def marks_of(tenant_id: uuid.UUID, member_id: uuid.UUID, review_ids: list[uuid.UUID]) -> tuple[frozenset, frozenset]:
    """Which of the reviews the member voted helpful, and which they flagged: one statement."""
    votes = select(ReviewVote.review_id.label("review_id"), literal("vote").label("what")).where(
        ReviewVote.tenant_id == tenant_id, ReviewVote.membership_id == member_id,
        ReviewVote.review_id.in_(review_ids))
    flags = select(ReviewFlag.review_id.label("review_id"), literal("flag").label("what")).where(
        ReviewFlag.tenant_id == tenant_id, ReviewFlag.membership_id == member_id,
        ReviewFlag.review_id.in_(review_ids))
    rows = db.session.execute(votes.union_all(flags)).all()
    return (frozenset(r.review_id for r in rows if r.what == "vote"),
            frozenset(r.review_id for r in rows if r.what == "flag"))


def moderation_queue(tenant_id: uuid.UUID, limit: int = 100) -> tuple[list[Review], list[Review]]:
    """Reviews with open flags (most recently changed first) and hidden ones (most recently hidden first)."""
    flagged = list(db.session.scalars(select(Review).where(Review.tenant_id == tenant_id, Review.open_flags > 0)
                                      .order_by(Review.updated_at.desc(), Review.id.desc()).limit(limit)))
    hidden = list(db.session.scalars(select(Review).where(Review.tenant_id == tenant_id, Review.status == "hidden")
                                     .order_by(Review.hidden_at.desc(), Review.id.desc()).limit(limit)))
    return flagged, hidden


def names_of(tenant_id: uuid.UUID, membership_ids) -> dict[uuid.UUID, str]:
    """Display names of these members of the organization, in one statement (the queue names each review's coach)."""
    ids = {i for i in membership_ids if i is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(Membership.id, User.display_name).join(User, User.id == Membership.user_id)
                                   .where(Membership.tenant_id == tenant_id, Membership.id.in_(ids))).all())


def open_flags_of(tenant_id: uuid.UUID, review_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[ReviewFlag]]:
    """The unresolved flags of these reviews, oldest first (the moderation page's reasons)."""
    found: dict[uuid.UUID, list[ReviewFlag]] = {}
    if review_ids:
        for row in db.session.scalars(select(ReviewFlag).where(
                ReviewFlag.tenant_id == tenant_id, ReviewFlag.review_id.in_(review_ids),
                ReviewFlag.resolved_at.is_(None)).order_by(ReviewFlag.created_at)):
            found.setdefault(row.review_id, []).append(row)
    return found


# --- the check ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mismatch:
    """A coach whose stored counts differ from their visible reviews: ``stored`` and ``actual`` are the counts
    of 1 to 5 stars."""

    coach_membership_id: uuid.UUID
    stored: tuple[int, ...]
    actual: tuple[int, ...]
    stored_count: int
    stored_sum: int

    def __str__(self) -> str:
        return (f"coach {self.coach_membership_id}: stored {list(self.stored)} (count {self.stored_count}, "
                f"sum {self.stored_sum}), reviews say {list(self.actual)}")


def check_ratings(tenant_id: uuid.UUID, fix: bool = False, now: datetime | None = None) -> list[Mismatch]:
    """Recount every coach's visible reviews and compare with ``coach_ratings``; with ``fix``, write the recount
    (under the rating rows' locks, so no review write slips between the count and the fix) and have the
    directory refresh those coaches' listings."""
    stored_query = select(CoachRating).where(CoachRating.tenant_id == tenant_id).order_by(CoachRating.id)
    if fix:
        stored_query = stored_query.with_for_update()
    stored = {r.coach_membership_id: r for r in db.session.scalars(stored_query)}
    actual: dict[uuid.UUID, list[int]] = {}
    for coach_id, stars, n in db.session.execute(
            select(Review.coach_membership_id, Review.stars, func.count()).where(
                Review.tenant_id == tenant_id, Review.status == "visible")
            .group_by(Review.coach_membership_id, Review.stars)):
        actual.setdefault(coach_id, [0] * 5)[stars - 1] = n
    mismatches = []
    for coach_id in sorted(set(stored) | set(actual), key=str):
        row, counts = stored.get(coach_id), tuple(actual.get(coach_id, [0] * 5))
        have = tuple(row.distribution) if row else (0,) * 5
        count, total = (row.review_count, row.star_sum) if row else (0, 0)
        if have != counts or count != sum(counts) or total != sum((i + 1) * n for i, n in enumerate(counts)):
            mismatches.append(Mismatch(coach_id, have, counts, count, total))
    if fix:
        for m in mismatches:
            _write_counts(tenant_id, m.coach_membership_id, m.actual, now or clock.now())
            emit(LISTING_CHANGED, {"coach_membership_id": str(m.coach_membership_id)}, tenant_id=tenant_id)
    return mismatches


def _write_counts(tenant_id: uuid.UUID, coach_id: uuid.UUID, counts: tuple[int, ...], now: datetime) -> None:
    values = {f"stars_{i + 1}": n for i, n in enumerate(counts)}
    values.update(review_count=sum(counts), star_sum=sum((i + 1) * n for i, n in enumerate(counts)), updated_at=now)
    stmt = pg_insert(CoachRating).values(id=uuid.uuid4(), tenant_id=tenant_id, coach_membership_id=coach_id,
                                         **values)
    db.session.execute(stmt.on_conflict_do_update(constraint="uq_coach_ratings_coach", set_=values))


# --- names as shown -------------------------------------------------------------------------------------------

def public_name(display_name: str) -> str:
    """"Ana Alves" → "Ana A.": how the public directory names a reviewer."""
    parts = (display_name or "").split()
    if not parts:
        return "An athlete"
    return parts[0] if len(parts) == 1 else f"{parts[0]} {parts[-1][0]}."
