"""Getting started: the first steps a new admin, coach or athlete sees on the organization's home.

Each step is done when the row it asks for exists (an invitation or a coach, weekly hours, a space, a post, a
profile, an offering, a booking), read in one statement; only what leaves no row of its own is stored: that
the member hid the list (``Membership.onboarding_dismissed_at``), that an admin looked at the organization's
time zone (``Organization.timezone_confirmed_at``) and that a person checked their name and zone
(``User.profile_confirmed_at``). Schedulers get no list: every admin step is an admin's to take, and their own
work (booking for others) needs nothing set up first.

Every subquery names the organization's ``tenant_id`` as well as RLS does, so another organization's rows never
count here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import aliased

from coach.accounts.models import User
from coach.booking.models import AvailabilityRule, Booking, Offering
from coach.chat.models import Conversation
from coach.clock import now
from coach.directory.models import CoachProfile
from coach.errors import NotAllowed
from coach.extensions import db
from coach.orgs.models import ADMIN, ATHLETE, COACH, Invitation, Membership, Organization
from coach.platform import audit
from coach.spaces.models import Post, Space

# A member whose steps are all done sees "You're all set" for this long after joining, then nothing.
ALL_SET_SHOWN = timedelta(days=30)


@dataclass(frozen=True)
class Step:
    """One step: ``key`` names it for the page (its link and wording), ``done`` says whether it is taken."""

    key: str
    title: str
    done: bool


@dataclass(frozen=True)
class Checklist:
    """A member's steps in order, and how far along they are."""

    role: str
    steps: tuple[Step, ...]

    @property
    def done(self) -> int:
        return sum(step.done for step in self.steps)

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def complete(self) -> bool:
        return self.done == self.total

    @property
    def next_step(self) -> Step | None:
        return next((step for step in self.steps if not step.done), None)


# The steps per role: key and title, in the order they are best taken.
STEPS = {
    ADMIN: (("invite", "Invite your coaches"), ("timezone", "Check the organization's time zone"),
            ("hours", "A coach sets their weekly hours"), ("space", "Create a space"),
            ("post", "Publish the first post")),
    COACH: (("profile", "Introduce yourself on your coach profile"), ("hours", "Set your weekly hours"),
            ("offering", "Create your first offering")),
    ATHLETE: (("profile", "Check your name and time zone"), ("coach", "Find a coach"),
              ("booking", "Book your first session")),
}


def _any(model, *conditions):
    return exists(select(1).select_from(model).where(*conditions))


def _admin_facts(org: Organization) -> list:
    tid = org.id
    return [
        or_(_any(Invitation, Invitation.tenant_id == tid, Invitation.role == COACH),
            _any(Membership, Membership.tenant_id == tid, Membership.role == COACH)),
        _any(AvailabilityRule, AvailabilityRule.tenant_id == tid),
        _any(Space, Space.tenant_id == tid),
        _any(Post, Post.tenant_id == tid),
    ]


def _coach_facts(member: Membership) -> list:
    tid, mid = member.tenant_id, member.id
    return [
        _any(CoachProfile, CoachProfile.tenant_id == tid, CoachProfile.coach_membership_id == mid,
             CoachProfile.headline != "", CoachProfile.bio_source != ""),
        _any(AvailabilityRule, AvailabilityRule.tenant_id == tid, AvailabilityRule.coach_membership_id == mid),
        _any(Offering, Offering.tenant_id == tid, Offering.coach_membership_id == mid),
    ]


def _athlete_facts(member: Membership) -> list:
    tid, mid = member.tenant_id, member.id
    booked = _any(Booking, Booking.tenant_id == tid, Booking.athlete_membership_id == mid)
    # Found a coach: booked one, or wrote with one in a direct conversation.
    coach = aliased(Membership)
    talked = exists(select(1).select_from(Conversation).join(coach, and_(
        coach.tenant_id == Conversation.tenant_id, coach.role == COACH,
        or_(coach.id == Conversation.member_low_id, coach.id == Conversation.member_high_id))).where(
        Conversation.tenant_id == tid, Conversation.kind == "direct", Conversation.last_message_at.is_not(None),
        or_(Conversation.member_low_id == mid, Conversation.member_high_id == mid)))
    return [or_(booked, talked), booked]


def checklist(org: Organization, member: Membership, user: User) -> Checklist | None:
    """The member's getting-started steps, or None when their role has none (schedulers).

    One statement (none for a scheduler); dismissal is not looked at here (see :func:`shown`).
    """
    role = member.role
    if role == ADMIN:
        invite, hours, space, post = db.session.execute(select(*_admin_facts(org))).one()
        done = (invite, org.timezone_confirmed_at is not None, hours, space, post)
    elif role == COACH:
        done = tuple(db.session.execute(select(*_coach_facts(member))).one())
    elif role == ATHLETE:
        found, booked = db.session.execute(select(*_athlete_facts(member))).one()
        done = (user.profile_confirmed_at is not None, found, booked)
    else:
        return None
    return Checklist(role, tuple(Step(key, title, bool(flag)) for (key, title), flag in zip(STEPS[role], done)))


def visible(member: Membership, found: Checklist | None) -> bool:
    """Whether the home page shows ``found``: not hidden by the member, and not every step done longer than
    :data:`ALL_SET_SHOWN` after joining (an old hand has nothing to learn from it)."""
    if found is None or member.onboarding_dismissed_at is not None:
        return False
    return not (found.complete and member.created_at < now() - ALL_SET_SHOWN)


def shown(org: Organization, member: Membership, user: User) -> Checklist | None:
    """The checklist the member's home shows, or None (see :func:`visible`). A hidden one costs no statement."""
    if member.onboarding_dismissed_at is not None or member.role not in STEPS:
        return None
    found = checklist(org, member, user)
    return found if visible(member, found) else None


def dismiss(member: Membership) -> None:
    """Hide the member's checklist (theirs only: another admin of the organization keeps seeing their own)."""
    if member.onboarding_dismissed_at is None:
        member.onboarding_dismissed_at = now()


def confirm_timezone(org: Organization, actor: Membership) -> None:
    """An admin says the organization's time zone is right as it is (changing it in settings counts too)."""
    if actor.role != ADMIN or actor.tenant_id != org.id:
        raise NotAllowed("Only the organization's admins confirm its time zone.")
    if org.timezone_confirmed_at is None:
        org.timezone_confirmed_at = now()
        audit.record("org.timezone_confirmed", actor=actor.user, target_type="organization", target_id=org.id,
                     tenant_id=org.id, details={"timezone": org.timezone})


def confirm_profile(user: User) -> None:
    """The person says their name and time zone are right as they are (saving the profile counts too)."""
    if user.profile_confirmed_at is None:
        user.profile_confirmed_at = now()
