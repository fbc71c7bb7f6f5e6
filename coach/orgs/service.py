"""Organization services: create, invite, accept, change roles, remove members.

Functions that touch tenant rows expect the organization to be active
(``coach.tenant_context.activate``); RLS hides everything else. The caller commits.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from blinker import Namespace
from flask import current_app, has_app_context
from redis.exceptions import RedisError
from sqlalchemy import bindparam, event as orm_event, func, select, true
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, contains_eager

from coach.accounts.models import User
from coach.accounts.service import (AccountError, create_user, live_session_params, login_attempted,
                                    normalize_email, parse_session_id, session_row)
from coach.clock import now
from coach.dbutil import insert_or_raise
from coach.errors import DomainError
from coach.extensions import db
from coach.orgs.events import MEMBER_REMOVED, MEMBER_ROLE_CHANGED
from coach.orgs.models import ADMIN, COACH, ROLES, Invitation, Membership, Organization
from coach.platform import audit, tenant_context
from coach.platform.mail import queue_email
from coach.platform.outbox import emit
from coach.platform.queues import redis_conn
from coach.security import new_token, token_hash

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")
# Slugs that would read as, or collide with, pages of the app.
RESERVED_SLUGS = frozenset({
    "admin", "api", "app", "auth", "coach", "dev", "help", "health", "invitations", "login", "logout",
    "metrics", "new", "o", "org", "orgs", "organizations", "password", "profile", "settings", "signup",
    "static", "support", "system", "www",
})


# Sent with ``membership`` (the removed one, deleted in the caller's transaction) by
# :func:`remove_member`. A receiver acting outside the database (chat closes the member's sockets)
# must wait for the commit: the caller may still roll back.
member_removed = Namespace().signal("member-removed")


class OrgError(DomainError):
    """A request that cannot be carried out; the message is safe to show."""


class InvitationGone(OrgError):
    """The invitation link no longer leads anywhere: revoked, accepted, expired or never valid."""

    status = 410


@login_attempted.connect
def _audit_login(action: str, user: User | None, label: str) -> bool:
    """Record a login attempt in every organization the account belongs to; False if it belongs to none."""
    if user is None:
        return False
    with tenant_context.acting_for(None, user.id):  # a user's own memberships are readable to them
        tenant_ids = list(db.session.scalars(select(Membership.tenant_id).where(Membership.user_id == user.id)))
    for tenant_id in tenant_ids:
        with tenant_context.acting_for(tenant_id, user.id):
            audit.record(action, actor=user, actor_label=label, tenant_id=tenant_id, target_type="user",
                         target_id=user.id)
    return bool(tenant_ids)


def _insert_unique(row, taken_message: str) -> None:
    """Insert ``row`` in a savepoint; a unique-constraint race becomes :class:`OrgError` (``taken_message``)."""
    insert_or_raise(row, OrgError(taken_message))


def slug_problem(slug: str) -> str | None:
    """Why ``slug`` cannot be used, or ``None`` if it can."""
    if not SLUG_RE.match(slug):
        return "Use 3–40 lowercase letters, digits and hyphens, starting and ending with a letter or digit."
    if "--" in slug:
        return "Use single hyphens only."
    if slug in RESERVED_SLUGS:
        return "This address is reserved. Choose another."
    return None


def org_by_slug(slug: str) -> Organization | None:
    return db.session.scalar(select(Organization).where(Organization.slug == slug))


@dataclass(frozen=True)
class MemberContext:
    """Who a request is from and where: the signed-in user (and when their session was last seen), and,
    when they belong to it, the organization named by the URL and their membership of it."""

    user: User
    last_seen: datetime
    org: Organization | None
    membership: Membership | None


@cache
def _member_context_statement():
    # Built once (only the parameters change): SQLAlchemy reuses its compiled form. See member_context.
    who = session_row()
    user = aliased(User, who)
    acting = tenant_context.set_user_setting(who.c.id, clear_tenant=True).lateral("acting")
    found = select(Membership).where(Membership.tenant_id == Organization.id,
                                     Membership.user_id == acting.c.user_id.cast(UUID)) \
        .correlate(Organization, acting).limit(1).lateral("found")
    member = aliased(Membership, found)
    tenant = tenant_context.set_tenant_setting(member.tenant_id).lateral("tenant")
    return (select(user, who.c.last_seen_at, Organization, member, acting.c.user_id, tenant.c.tenant_id)
            .select_from(who).join(acting, true())
            .outerjoin(Organization, Organization.slug == bindparam("slug")).outerjoin(found, true())
            .join(tenant, true())
            .options(contains_eager(member.user.of_type(user)), contains_eager(member.organization)))


def member_context(session_id: str, slug: str) -> MemberContext | None:
    """The live session ``session_id``'s user, the organization ``slug`` and the user's membership of it, in one
    statement that also tells PostgreSQL who acts for which organization; ``None`` for a session that is unknown,
    revoked or expired (nothing is set then).

    The statement first sets ``app.user_id`` (and clears ``app.tenant_id``), then reads the membership under the
    policy that shows a user their own memberships, then sets ``app.tenant_id`` to the membership's organization,
    or to nothing when there is none: a user who is not a member acts for no organization. Each step is a
    ``LATERAL`` subquery that needs the one before it, and the session's and the membership's are kept from being
    merged into the outer query (``LIMIT 1``): PostgreSQL sets ``app.user_id`` from the session's one row and
    cannot read the membership before the setting it depends on. The values the ``set_config`` calls return are
    checked against the row before ``g`` records them. Unknown organizations and organizations the user does not
    belong to are alike: no membership.
    """
    sid = parse_session_id(session_id)
    if sid is None:
        return None
    row = db.session.execute(_member_context_statement(), {**live_session_params(sid), "slug": slug}).first()
    if row is None:
        return None
    user, last_seen, org, membership, user_setting, tenant_setting = row
    user.auth_session_id = sid
    tenant_context.applied(tenant_context.checked(tenant_setting, membership and membership.tenant_id),
                           tenant_context.checked(user_setting, user.id))
    if membership is None:
        return MemberContext(user, last_seen, None, None)
    return MemberContext(user, last_seen, org, membership)


def memberships_of(user: User) -> list[Membership]:
    """Every organization ``user`` belongs to (visible through the own-membership policy)."""
    return list(db.session.scalars(
        select(Membership).where(Membership.user_id == user.id).order_by(func.lower(Organization.name))
        .join(Membership.organization)
    ))


def only_organization(user: User) -> Organization | None:
    """The organization of a member of exactly one (where signing in lands them), else ``None``. One statement,
    under the own-memberships policy (at sign-in no organization is in force yet)."""
    with tenant_context.acting_for(None, user.id):
        found = db.session.scalars(select(Organization).join(Membership, Membership.tenant_id == Organization.id)
                                   .where(Membership.user_id == user.id).limit(2)).all()
    return found[0] if len(found) == 1 else None


def membership_by_slug(user: User, slug: str) -> Membership | None:
    """``user``'s membership of the organization at ``slug`` (visible through the own-membership policy), in one
    statement; ``None`` for an unknown organization or one they do not belong to."""
    if not slug or len(slug) > 40:
        return None
    return db.session.scalar(select(Membership).join(Membership.organization)
                             .where(Organization.slug == slug, Membership.user_id == user.id))


def membership_for(org: Organization, user: User) -> Membership | None:
    return db.session.scalar(
        select(Membership).where(Membership.tenant_id == org.id, Membership.user_id == user.id)
    )


def create_organization(creator: User, name: str, slug: str, tz: str) -> Organization:
    """Create an organization; ``creator`` becomes its first admin."""
    slug = slug.strip().lower()
    problem = slug_problem(slug)
    if problem:
        raise OrgError(problem)
    if org_by_slug(slug) is not None:
        raise OrgError("This address is taken. Choose another.")
    org = Organization(name=name.strip(), slug=slug, timezone=tz)
    # Someone may take the address between the check above and this insert.
    _insert_unique(org, "This address is taken. Choose another.")
    tenant_context.activate(org.id, creator.id)
    db.session.add(Membership(tenant_id=org.id, user_id=creator.id, role=ADMIN))
    db.session.flush()
    audit.record("organization.created", actor=creator, target_type="organization", target_id=org.id,
                 details={"slug": org.slug, "name": org.name})
    return org


# Erased accounts keep their memberships (their posts and messages point at them: "Deleted member"), but they
# are nobody to list, pick or count (coach.privacy.deletion).
def members(org: Organization) -> list[Membership]:
    return list(db.session.scalars(
        select(Membership).join(Membership.user).where(Membership.tenant_id == org.id, User.erased_at.is_(None))
        .order_by(func.lower(User.display_name))
    ))


def members_with_role(org: Organization, role: str, limit: int = 50) -> list[Membership]:
    return list(db.session.scalars(
        select(Membership).join(Membership.user).where(Membership.tenant_id == org.id, Membership.role == role,
                                                       User.erased_at.is_(None))
        .order_by(func.lower(User.display_name)).limit(limit)
    ))


# The organization home names this many coaches (alphabetically) and links to the full list: the page costs
# the same in a club of 5 coaches and one of 500.
HOME_COACHES = 12
# The home page's role counts are kept in Redis this long (and forgotten when a membership changes): counting
# a 5,000-member organization on every view would make the page's cost grow with the organization.
ROLE_COUNTS_TTL = 60
_CHANGED_TENANTS = "coach.orgs.role_counts_changed"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HomeSummary:
    """What the organization home shows: how many members have each role, and the first coaches by name."""

    counts: dict[str, int]
    coaches: list  # rows with ``id`` (the membership) and ``display_name``, at most HOME_COACHES


@cache
def _coaches_statement():
    # Built once (only the tenant changes): the first coaches by name, found through the (tenant_id, role) index.
    return (select(Membership.id, User.display_name).join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == bindparam("tenant_id", type_=UUID(as_uuid=True)),
                   Membership.role == COACH, User.erased_at.is_(None))
            .order_by(func.lower(User.display_name), Membership.id).limit(HOME_COACHES))


@cache
def _home_statement():
    # The role counts (one row) and, beside them, the first coaches: one statement when the counts are not cached.
    counts = select(*[func.count().filter(Membership.role == role).label(role) for role in ROLES]) \
        .join(User, User.id == Membership.user_id) \
        .where(Membership.tenant_id == bindparam("tenant_id", type_=UUID(as_uuid=True)), User.erased_at.is_(None)) \
        .subquery("counts")
    coaches = _coaches_statement().lateral("coaches")
    return (select(*counts.c, coaches.c.id, coaches.c.display_name).select_from(counts)
            .outerjoin(coaches, true()))


def _counts_key(tenant_id) -> str:
    return f"coach:role-counts:{tenant_id}"


def home_summary(org: Organization) -> HomeSummary:
    """The organization home's figures and coaches: one statement (plain rows, nothing to hydrate), and the
    role counts from Redis when they are there (:data:`ROLE_COUNTS_TTL`)."""
    params = {"tenant_id": org.id}
    counts = _cached_counts(org.id)
    if counts is not None:
        return HomeSummary(counts, db.session.execute(_coaches_statement(), params).all())
    rows = db.session.execute(_home_statement(), params).all()
    counts = {role: getattr(rows[0], role) for role in ROLES}
    _cache_counts(org.id, counts)
    return HomeSummary(counts, [row for row in rows if row.id is not None])


def _cached_counts(tenant_id) -> dict[str, int] | None:
    try:
        stored = redis_conn().get(_counts_key(tenant_id))
    except RedisError:
        return None  # counted in the database instead
    if stored is None:
        return None
    counts = json.loads(stored)
    return counts if set(counts) == set(ROLES) else None


def _cache_counts(tenant_id, counts: dict[str, int]) -> None:
    try:
        redis_conn().set(_counts_key(tenant_id), json.dumps(counts), ex=ROLE_COUNTS_TTL)
    except RedisError:
        log.warning("could not keep the role counts of %s in Redis", tenant_id)


@orm_event.listens_for(Session, "after_flush")
def _note_membership_changes(session, flush_context) -> None:
    changed = {obj.tenant_id for obj in (*session.new, *session.dirty, *session.deleted)
               if isinstance(obj, Membership)}
    if changed:
        session.info.setdefault(_CHANGED_TENANTS, set()).update(changed)


@orm_event.listens_for(Session, "after_commit")
def _forget_role_counts(session) -> None:
    """Forget the cached counts of every organization whose memberships this transaction changed, once it
    has committed (forgotten before, a page could count the old rows again and keep them)."""
    if session.in_nested_transaction():
        return
    changed = session.info.pop(_CHANGED_TENANTS, None)
    if changed and has_app_context():
        try:
            redis_conn().delete(*[_counts_key(tenant_id) for tenant_id in changed])
        except RedisError:
            log.warning("could not forget the role counts of %s: they may be %s s old", changed, ROLE_COUNTS_TTL)


@orm_event.listens_for(Session, "after_transaction_end")
def _forget_noted_changes(session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CHANGED_TENANTS, None)  # rolled back (a commit has used and emptied it)


def get_membership(org: Organization, membership_id) -> Membership | None:
    return db.session.scalar(
        select(Membership).where(Membership.tenant_id == org.id, Membership.id == membership_id)
    )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise OrgError("Unknown role.")


def _admin_count(org: Organization) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Membership)
        .where(Membership.tenant_id == org.id, Membership.role == ADMIN)
    )


def change_role(org: Organization, membership: Membership, role: str, actor: User | None = None) -> None:
    """Give a member another role; an organization always keeps at least one admin."""
    _check_role(role)
    # Lock the admins so two demotions at once cannot leave none.
    db.session.execute(
        select(Membership.id).where(Membership.tenant_id == org.id, Membership.role == ADMIN).with_for_update()
    )
    if membership.role == ADMIN and role != ADMIN and _admin_count(org) <= 1:
        raise OrgError("An organization needs at least one admin. Make someone else admin first.")
    if membership.role != role:
        audit.record("member.role_changed", actor=actor, target_type="membership", target_id=membership.id,
                     details={"member": membership.user.email, "from": membership.role, "to": role})
        emit(MEMBER_ROLE_CHANGED, {"membership_id": str(membership.id), "from": membership.role, "to": role},
             tenant_id=org.id)
    membership.role = role


def remove_member(org: Organization, membership: Membership, actor: User | None = None) -> None:
    db.session.execute(
        select(Membership.id).where(Membership.tenant_id == org.id, Membership.role == ADMIN).with_for_update()
    )
    if membership.role == ADMIN and _admin_count(org) <= 1:
        raise OrgError("The last admin cannot be removed. Make someone else admin first.")
    try:
        with db.session.begin_nested():
            db.session.delete(membership)
            db.session.flush()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) != "23503":
            raise
        # Payments, credits, earnings and invoices name the member and are kept for the books.
        raise OrgError(f"{membership.user.display_name} has payment records (payments, credits, earnings or "
                       "invoices) that the books must keep, so they cannot be removed. Change their role "
                       "instead.", status=409) from exc
    audit.record("member.removed", actor=actor, target_type="membership", target_id=membership.id,
                 details={"member": membership.user.email, "role": membership.role})
    emit(MEMBER_REMOVED, {"membership_id": str(membership.id), "role": membership.role}, tenant_id=org.id)
    member_removed.send(org, membership=membership)


def pending_invitations(org: Organization) -> list[Invitation]:
    return list(db.session.scalars(
        select(Invitation).where(Invitation.tenant_id == org.id, Invitation.accepted_at.is_(None),
                                 Invitation.revoked_at.is_(None))
        .order_by(Invitation.created_at.desc())
    ))


def get_invitation(org: Organization, invitation_id) -> Invitation | None:
    return db.session.scalar(
        select(Invitation).where(Invitation.tenant_id == org.id, Invitation.id == invitation_id)
    )


def invite(org: Organization, inviter: Membership, email: str, role: str) -> Invitation:
    """Invite ``email`` to join with ``role`` and email the link."""
    _check_role(role)
    email = normalize_email(email)
    existing_member = db.session.scalar(
        select(Membership).join(Membership.user)
        .where(Membership.tenant_id == org.id, func.lower(User.email) == email)
    )
    if existing_member is not None:
        raise OrgError("This person is already a member.")
    open_invite = db.session.scalar(
        select(Invitation).where(Invitation.tenant_id == org.id, func.lower(Invitation.email) == email,
                                 Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
    )
    if open_invite is not None:
        # Inviting again replaces the old link (and its role) instead of failing.
        open_invite.revoked_at = now()
        db.session.flush()
    secret, digest = new_token()
    ttl = timedelta(days=current_app.config["INVITATION_TTL_DAYS"])
    invitation = Invitation(tenant_id=org.id, email=email, role=role, token_hash=digest,
                            invited_by_membership_id=inviter.id, expires_at=now() + ttl)
    # Another admin may invite the same address at the same moment.
    _insert_unique(invitation, "An invitation to this address was just sent. Refresh to see it.")
    _send_invitation(org, invitation, inviter.user, secret)
    audit.record("invitation.created", actor=inviter.user, target_type="invitation", target_id=invitation.id,
                 details={"email": email, "role": role})
    return invitation


def resend_invitation(org: Organization, invitation: Invitation, sender: User) -> None:
    """Send a fresh link (the old one stops working) and restart the expiry."""
    if invitation.accepted_at or invitation.revoked_at:
        raise OrgError("This invitation is no longer open.")
    secret, digest = new_token()
    invitation.token_hash = digest
    invitation.sent_at = now()
    invitation.expires_at = now() + timedelta(days=current_app.config["INVITATION_TTL_DAYS"])
    _send_invitation(org, invitation, sender, secret)
    audit.record("invitation.resent", actor=sender, target_type="invitation", target_id=invitation.id,
                 details={"email": invitation.email})


def revoke_invitation(invitation: Invitation, actor: User | None = None) -> None:
    if invitation.accepted_at:
        raise OrgError("This invitation was already accepted.")
    if invitation.revoked_at is None:
        invitation.revoked_at = now()
        audit.record("invitation.revoked", actor=actor, target_type="invitation", target_id=invitation.id,
                     details={"email": invitation.email})


def _send_invitation(org: Organization, invitation: Invitation, inviter: User, secret: str) -> None:
    queue_email(invitation.email, f"{inviter.display_name} invited you to {org.name} on Coach", "invitation",
                org=org, invitation=invitation, inviter=inviter, token=secret)


def find_open_invitation(org: Organization, secret: str) -> Invitation:
    """The open invitation of ``org`` behind ``secret``, or :class:`InvitationGone` saying why not."""
    invitation = db.session.scalar(
        select(Invitation).where(Invitation.tenant_id == org.id, Invitation.token_hash == token_hash(secret))
    )
    if invitation is None or invitation.revoked_at is not None:
        raise InvitationGone("This invitation link is not valid. Ask for a new invitation.")
    if invitation.accepted_at is not None:
        raise InvitationGone("This invitation has already been accepted. Log in to continue.")
    if invitation.expires_at < now():
        raise InvitationGone("This invitation has expired. Ask for a new invitation.")
    return invitation


def accept_invitation(org: Organization, secret: str, user: User) -> Membership:
    """Join ``org`` with the invitation's role. Accepting twice, or as an existing member, is harmless."""
    invitation = find_open_invitation(org, secret)
    db.session.execute(select(Invitation.id).where(Invitation.id == invitation.id).with_for_update())
    db.session.refresh(invitation)
    if invitation.accepted_at is not None:
        raise InvitationGone("This invitation has already been accepted. Log in to continue.")
    invitation.accepted_at = now()
    invitation.accepted_by_user_id = user.id
    membership = membership_for(org, user)
    if membership is None:
        membership = Membership(tenant_id=org.id, user_id=user.id, role=invitation.role)
        db.session.add(membership)
        db.session.flush()
    audit.record("invitation.accepted", actor=user, target_type="invitation", target_id=invitation.id,
                 details={"email": invitation.email, "role": membership.role})
    return membership


def sign_up_and_accept(org: Organization, secret: str, password: str, display_name: str, tz: str) -> User:
    """Create the invited person's account (the email link proves the address) and join."""
    invitation = find_open_invitation(org, secret)
    try:
        user = create_user(invitation.email, password, display_name, tz)
    except AccountError as exc:
        raise OrgError("An account with this email already exists. Log in to accept the invitation.") from exc
    accept_invitation(org, secret, user)
    return user
