"""One row in each tenant table of issue 22 (a coach's profile, the taxonomy and the terms it teaches, a review
with a flag and a vote, the coach's rating), written directly: the RLS tests and the cross-tenant crawl need them
to exist, not to have been made through the pages."""
from __future__ import annotations

from datetime import timedelta

from coach import clock
from coach.directory.models import (CoachProfile, CoachProfileTerm, CoachRating, DirectoryTerm, Review, ReviewFlag,
                                    ReviewVote)
from coach.extensions import db


def seed_directory_rows(org, coach, athlete, booking, label: str = "") -> dict:
    """``coach``'s profile (handle ``<label>-coach``) teaching Valorant aim, and ``athlete``'s 4-star review of
    ``booking`` (treated as ended; the booking row is not changed), flagged and found helpful by the coach."""
    now = clock.now()
    handle = f"{label}-coach".strip("-") or "coach"
    profile = CoachProfile(tenant_id=org.id, coach_membership_id=coach.id, handle=handle,
                           headline=f"{label} Valorant aim coach".strip(), bio_source="Aim drills and VOD review.",
                           bio_html="<p>Aim drills and VOD review.</p>", languages=["en"], tags=["vod review"],
                           years_experience=5)
    game = DirectoryTerm(tenant_id=org.id, kind="discipline", name="Valorant", slug="valorant")
    db.session.add_all([profile, game])
    db.session.flush()
    skill = DirectoryTerm(tenant_id=org.id, kind="skill", parent_id=game.id, name="Aim", slug="aim")
    db.session.add(skill)
    db.session.flush()
    db.session.add_all([CoachProfileTerm(tenant_id=org.id, profile_id=profile.id, term_id=game.id),
                        CoachProfileTerm(tenant_id=org.id, profile_id=profile.id, term_id=skill.id)])
    review = Review(tenant_id=org.id, booking_id=booking.id, coach_membership_id=coach.id,
                    athlete_membership_id=athlete.id, stars=4, body=f"{label} Clear drills, good feedback.".strip(),
                    editable_until=now + timedelta(days=14), helpful_count=1, open_flags=1)
    db.session.add(review)
    db.session.flush()
    db.session.add_all([
        ReviewFlag(tenant_id=org.id, review_id=review.id, membership_id=coach.id, reason="Testing flags"),
        ReviewVote(tenant_id=org.id, review_id=review.id, membership_id=coach.id),
        CoachRating(tenant_id=org.id, coach_membership_id=coach.id, review_count=1, star_sum=4, stars_4=1),
    ])
    db.session.flush()
    return {"profile": profile, "discipline": game, "skill": skill, "review": review}
