"""Notices of reviews (:mod:`coach.directory.reviews`): when a session ends its athlete is asked for a review
(``review_request``, in the app and by email by default, once per booking), and a coach is told of a new review
of theirs (``review_received``)."""
from __future__ import annotations

import uuid

from flask import g

from coach.booking.events import BOOKING_ENDED
from coach.booking.models import Booking
from coach.directory import reviews
from coach.directory.events import REVIEW_POSTED
from coach.directory.models import Review
from coach.extensions import db
from coach.notifications import service
from coach.notifications.booking_mail import short_when
from coach.orgs.models import Organization
from coach.platform.jobs import consumer


def _slug() -> str:
    return db.session.get(Organization, g.tenant_id).slug


@consumer(BOOKING_ENDED)
def ask_for_review(payload: dict) -> None:
    """The session ended: its athlete is asked how it was, once (the dedupe key is the booking's), and only while
    it can still be reviewed (a late delivery after the review was written, or a no-show, asks nothing)."""
    booking = db.session.get(Booking, uuid.UUID(payload["booking_id"]))
    if booking is None or booking.tenant_id != g.tenant_id:
        return
    athlete = booking.athlete
    if not reviews.reviewable(booking, athlete):
        return
    coach_name = booking.coach.user.display_name
    url = service.path_for("directory.review_form", slug=_slug(), booking_id=booking.id)
    title = f"How was your session with {coach_name}? Leave a review"
    body = f"{booking.offering.title}, {short_when(booking.starts_at, athlete)}."

    def email(member) -> service.OwnEmail:
        return service.OwnEmail(f"How was your session with {coach_name}?", "review_request",
                                {"booking": booking, "coach_name": coach_name, "review_path": url,
                                 "when": short_when(booking.starts_at, member)})

    service.notify(athlete, "review_request", dedupe_key=f"review_request:{booking.id}", title=title, body=body,
                   url=url, subject_id=booking.id, email=email)
    service.announce()


@consumer(REVIEW_POSTED)
def tell_coach(payload: dict) -> None:
    """A new review: the coach it is about is told, with its stars, linking to their reviews."""
    review = db.session.get(Review, uuid.UUID(payload["review_id"]))
    if review is None or review.tenant_id != g.tenant_id or review.status != "visible":
        return
    booking = db.session.get(Booking, review.booking_id)
    coach = booking.coach
    stars = f"{review.stars} star{'s' if review.stars != 1 else ''}"
    url = service.path_for("directory.coach_reviews", slug=_slug(), coach_id=coach.id) + f"#review-{review.id}"
    service.notify(coach, "review_received", dedupe_key=f"review_received:{review.id}",
                   title=f"{review.athlete.user.display_name} reviewed your session: {stars}",
                   body=review.body, url=url, actor_id=review.athlete_membership_id, subject_id=review.id)
    service.announce()
