"""Deleting an account: asked for, kept for a grace period (signing in cancels it), then erased by a sweep.

What erasure keeps and why (the person's choice ``erase_content`` decides only about their words):

- The ``users`` row stays as a tombstone (every organization's memberships, posts and payments point at it): the
  email becomes an unroutable placeholder unique to the row (``deleted-<id>@erased.invalid``), the name
  "Deleted member", the password unusable; two-factor, recovery codes, passkeys, sessions, email changes, the
  security log, sign-in and reset links and exports are removed; ``erased_at`` is set.
- Memberships stay, so posts, comments and messages keep their author ("Deleted member") and conversations keep
  their shape; erased members are left out of member lists and counts (``orgs.service``). Their space
  memberships, notifications, preferences, calendar feeds, reactions, mentions and flags go.
- Posts, comments, review comments and chat messages stay; with ``erase_content`` their text becomes
  :data:`REMOVED_TEXT` and a post's earlier versions go.
- Media the person uploaded: the stored objects and the rows go (the media domain's purge).
- Bookings still to come are cancelled through the booking service (the other side is told, the cancellation
  policy applies); past bookings stay (the coach's history, the payments on them).
- Financial records stay, as the law asks: payments, the ledger and receipts keep their amounts; the receipts'
  buyer name and email are replaced.
- Progress data about the person as an athlete (their records, goals, habits, check-ins, programs, notes,
  timeline and reports with their stored files) is deleted.
- The directory: a coach's profile (and what it teaches) goes, and their public listing with it, in the same
  transaction. Reviews the person wrote stay with their stars (the coach earned them, and the ratings stay true)
  and are shown as by "A former athlete"; with ``erase_content`` their text becomes :data:`REMOVED_TEXT`, as do a
  coach's replies and the reasons of the person's flags. Reviews a deleted coach received stay with the
  organization (the athletes' words); their helpful votes stay as counts.

Each organization's part runs acting for that organization, so its row-level security applies; every step is
audited in that organization's trail, and the erasure as a platform event.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

from markupsafe import escape
from sqlalchemy import delete, select, text, update

from coach import clock
from coach.accounts import security_log
from coach.accounts import service as accounts
from coach.accounts.models import (
    AccountExport,
    EmailChange,
    Passkey,
    PasswordResetToken,
    RecoveryCode,
    SecurityEvent,
    SignInLink,
    User,
    UserSession,
)
from coach.booking.lifecycle import transition
from coach.booking.models import Booking
from coach.chat.models import Message
from coach.directory import projection
from coach.directory.models import CoachProfile, CoachProfileTerm, Review, ReviewFlag
from coach.errors import Conflict
from coach.extensions import db
from coach.media.models import MediaComment, MediaItem
from coach.media.service import purge
from coach.media.storage import get_storage
from coach.orgs.models import Membership
from coach.payments.models import Invoice, Payment
from coach.platform import audit, tenant_context
from coach.platform.mail import queue_email
from coach.platform.models import Email, IdempotencyKey
from coach.progress.models import ProgressReport
from coach.spaces.models import Comment, Post, PostRevision

log = logging.getLogger(__name__)

GRACE = timedelta(days=14)
DELETED_NAME = "Deleted member"
# What a post, comment or message whose author had their words removed reads as (no Markdown, no markup).
REMOVED_TEXT = "(removed by its author)"
REMOVED_HTML = f'<p class="muted">{escape(REMOVED_TEXT)}</p>'
# Not an argon2 hash: no password ever verifies against it.
UNUSABLE_PASSWORD = "!erased"

# Rows about the person as an athlete (or as a coach's digest), deleted with them: (table, membership column).
# Their children (goal values and milestones, habit check-ins, record levels and media, workout log exercises
# and comments) go with them by cascade.
PROGRESS_ROWS = (
    ("session_records", "athlete_membership_id"),
    ("athlete_skill_levels", "athlete_membership_id"),
    ("goals", "athlete_membership_id"),
    ("habits", "athlete_membership_id"),
    ("readiness_checkins", "athlete_membership_id"),
    ("workout_logs", "athlete_membership_id"),
    ("program_assignments", "athlete_membership_id"),
    ("coach_notes", "athlete_membership_id"),
    ("timeline_entries", "athlete_membership_id"),
    ("progress_reports", "athlete_membership_id"),
    ("coach_digests", "coach_membership_id"),
    ("athlete_profiles", "membership_id"),
)
# The person's own traces in an organization that mean nothing without them (or carry a secret: a calendar
# feed's address).
OWN_ROWS = (
    ("space_members", "membership_id"),
    ("notifications", "membership_id"),
    ("notification_preferences", "membership_id"),
    ("calendar_feeds", "membership_id"),
    ("conversation_reads", "membership_id"),
    ("reactions", "membership_id"),
    ("post_mentions", "membership_id"),
    ("flags", "membership_id"),
)


class DeletionError(Conflict):
    """A deletion that cannot be asked for (already scheduled) or cancelled (none pending)."""


def placeholder_email(user_id: uuid.UUID) -> str:
    """An address unique to the erased row that can never receive mail (``.invalid`` is reserved, RFC 2606)."""
    return f"deleted-{user_id.hex}@erased.invalid"


def is_pending(user: User) -> bool:
    return user.deletion_due_at is not None and user.erased_at is None


def due_label(user: User) -> str:
    """The day the account will be erased, in its person's time zone (``6 December 2026``)."""
    try:
        zone = ZoneInfo(user.timezone or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    due = user.deletion_due_at.astimezone(zone)
    return f"{due.day} {due:%B %Y}"


def _locked(user: User) -> User:
    # Two requests at once (a double click, two tabs): the second waits and sees the first one's deletion.
    return db.session.scalar(select(User).where(User.id == user.id).with_for_update().execution_options(
        populate_existing=True))


def request_deletion(user: User, erase_content: bool) -> User:
    """Schedule ``user``'s erasure in :data:`GRACE` (the caller commits; the route asked for a fresh sign-in).

    Every other session ends; the person is emailed the date and that signing in cancels it.

    :param erase_content: replace the text of their posts, comments and messages too.
    :raises DeletionError: a deletion is already scheduled (nothing changes).
    """
    user = _locked(user)
    if is_pending(user):
        raise DeletionError(f"Your account is already scheduled for deletion on {due_label(user)}.")
    at = clock.now()
    user.deletion_requested_at, user.deletion_due_at = at, at + GRACE
    user.deletion_erase_content = bool(erase_content)
    security_log.record(user.id, "deletion.requested", due=user.deletion_due_at.isoformat(),
                        erase_content=user.deletion_erase_content)
    for other in accounts.live_sessions(user):
        if other.id != user.auth_session_id:
            accounts.revoke_session(user, other.id)
    queue_email(user.email, "Your Coach account will be deleted", "account_deletion_scheduled", user=user,
                due=due_label(user), erase_content=user.deletion_erase_content)
    return user


def cancel_deletion(user: User, how: str = "button") -> bool:
    """Stop ``user``'s pending deletion (``how``: ``button`` or ``sign-in``); ``False`` if none was pending."""
    user = _locked(user)
    if not is_pending(user):
        return False
    user.deletion_requested_at = user.deletion_due_at = None
    user.deletion_erase_content = False
    security_log.record(user.id, "deletion.cancelled", how=how)
    queue_email(user.email, "Your Coach account will not be deleted", "account_deletion_cancelled",
                user=user, by_sign_in=how == "sign-in")
    return True


@accounts.session_opened.connect
def _cancel_on_sign_in(user: User, session: UserSession) -> None:
    """Signing in during the grace period cancels the deletion; ``session.deletion_cancelled`` tells the page."""
    session.deletion_cancelled = is_pending(user) and cancel_deletion(user, how="sign-in")


# --- erasure ---------------------------------------------------------------------------------------------

def due_accounts(limit: int = 100) -> list[uuid.UUID]:
    """Accounts whose grace period is over and that are not erased yet (oldest due first)."""
    return list(db.session.scalars(
        select(User.id).where(User.deletion_due_at <= clock.now(), User.erased_at.is_(None))
        .order_by(User.deletion_due_at).limit(limit)))


def erase_account(user_id: uuid.UUID) -> bool:
    """Erase one due account (the caller commits; one transaction per account). ``False`` when there is
    nothing to do: unknown, not due, cancelled meanwhile or already erased, so running twice is harmless."""
    user = db.session.scalar(select(User).where(User.id == user_id).with_for_update(skip_locked=True))
    if user is None or not is_pending(user) or user.deletion_due_at > clock.now():
        return False
    with tenant_context.acting_for(None, user.id):  # their memberships, through the own-memberships policy
        memberships = [(m.tenant_id, m.id) for m in db.session.scalars(
            select(Membership).where(Membership.user_id == user.id))]
        _delete_idempotency_keys(user)  # those of no organization
    organizations = []
    for tenant_id, membership_id in memberships:
        # Acting as them too: the idempotency keys' policy shows a person only their own.
        with tenant_context.acting_for(tenant_id, user.id):
            organizations.append(str(tenant_id))
            _erase_in_organization(user, db.session.get(Membership, membership_id))
            _delete_idempotency_keys(user)
    steps = _erase_account_rows(user)
    with tenant_context.acting_for(None, None):
        audit.record("account.erased", actor_label="system", target_type="user", target_id=user.id,
                     details={"organizations": organizations, **steps})
    return True


def _delete_idempotency_keys(user: User) -> None:
    # Stored answers to their requests (kept 72 hours) may carry their name or words.
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == user.id)
                       .execution_options(synchronize_session=False))


def _step(action: str, user: User, **counts) -> None:
    audit.record(f"account.erasure.{action}", actor_label="system", target_type="user", target_id=user.id,
                 details=counts)


def _erase_in_organization(user: User, member: Membership) -> None:
    """The person's part of one organization (acting for it)."""
    now = clock.now()
    tid, mid = member.tenant_id, member.id
    # Media they uploaded: the stored objects, then the rows (attachments and review comments go with them).
    items = list(db.session.scalars(select(MediaItem).where(MediaItem.tenant_id == tid,
                                                            MediaItem.owner_membership_id == mid)))
    for item in items:
        if item.status != "deleting":
            item.status, item.deleted_at = "deleting", now
            db.session.flush()
        purge(item)
    _step("media", user, items=len(items))

    # Bookings still to come, as athlete or coach: cancelled by the system (the other side is told).
    upcoming = list(db.session.scalars(select(Booking).where(
        Booking.tenant_id == tid, Booking.starts_at > now, Booking.status.in_(("held", "requested", "confirmed")),
        (Booking.athlete_membership_id == mid) | (Booking.coach_membership_id == mid))))
    for booking in upcoming:
        transition(booking, "cancel", None, now, reason="account deleted")
    _step("bookings", user, cancelled=len(upcoming))

    words = {"posts": 0, "comments": 0, "messages": 0}
    if user.deletion_erase_content:
        words = _remove_words(tid, mid)
    _step("content", user, removed_text=user.deletion_erase_content, **words)
    _step("directory", user, **_erase_directory(user, tid, mid))

    # Receipts keep their amounts and numbers; the buyer becomes "Deleted member".
    renamed = db.session.execute(
        update(Invoice).where(Invoice.tenant_id == tid, Invoice.payment_id.in_(
            select(Payment.id).where(Payment.tenant_id == tid, Payment.athlete_membership_id == mid)))
        .values(buyer_name=DELETED_NAME, buyer_email=placeholder_email(user.id))
        .execution_options(synchronize_session=False)).rowcount
    _step("payments", user, receipts_pseudonymised=renamed)

    report_keys = [key for row in db.session.execute(
        select(ProgressReport.html_key, ProgressReport.pdf_key).where(
            ProgressReport.tenant_id == tid, ProgressReport.athlete_membership_id == mid)) for key in row if key]
    if report_keys:
        get_storage().delete(report_keys)
    progress = {table: _delete_rows(table, column, tid, mid) for table, column in PROGRESS_ROWS}
    _step("progress", user, **{k: v for k, v in progress.items() if v})
    own = {table: _delete_rows(table, column, tid, mid) for table, column in OWN_ROWS}
    _step("membership", user, kept=True, **{k: v for k, v in own.items() if v})


def _delete_rows(table: str, column: str, tenant_id: uuid.UUID, membership_id: uuid.UUID) -> int:
    # Table and column names come from the constants above, never from input.
    return db.session.execute(text(f"DELETE FROM {table} WHERE tenant_id = :t AND {column} = :m"),
                              {"t": tenant_id, "m": membership_id}).rowcount


def _erase_directory(user: User, tid: uuid.UUID, mid: uuid.UUID) -> dict[str, int]:
    """The coach's profile and its public listing go now (not at the projection's next run); reviews stay."""
    profiles = select(CoachProfile.id).where(CoachProfile.tenant_id == tid, CoachProfile.coach_membership_id == mid)
    db.session.execute(delete(CoachProfileTerm).where(CoachProfileTerm.tenant_id == tid,
                                                      CoachProfileTerm.profile_id.in_(profiles))
                       .execution_options(synchronize_session=False))
    removed = db.session.execute(delete(CoachProfile).where(CoachProfile.tenant_id == tid,
                                                            CoachProfile.coach_membership_id == mid)
                                 .execution_options(synchronize_session=False)).rowcount
    # With the profile gone the coach is not listed: the projection deletes the row and the organization's words.
    projection.refresh_coach(tid, mid)
    counts = {"profiles": removed}
    if user.deletion_erase_content:
        mine = (Review.tenant_id == tid, Review.athlete_membership_id == mid)
        counts["reviews"] = db.session.execute(update(Review).where(*mine).values(body=REMOVED_TEXT)
                                               .execution_options(synchronize_session=False)).rowcount
        counts["replies"] = db.session.execute(
            update(Review).where(Review.tenant_id == tid, Review.replied_by_membership_id == mid,
                                 Review.reply_body.is_not(None))
            .values(reply_body=REMOVED_TEXT).execution_options(synchronize_session=False)).rowcount
        db.session.execute(update(ReviewFlag).where(ReviewFlag.tenant_id == tid, ReviewFlag.membership_id == mid)
                           .values(reason="").execution_options(synchronize_session=False))
    return counts


def _remove_words(tid: uuid.UUID, mid: uuid.UUID) -> dict[str, int]:
    posts = select(Post.id).where(Post.tenant_id == tid, Post.author_membership_id == mid)
    db.session.execute(delete(PostRevision).where(PostRevision.tenant_id == tid, PostRevision.post_id.in_(posts))
                       .execution_options(synchronize_session=False))
    counts = {}
    for name, model, values in (
        ("posts", Post, {"body_source": REMOVED_TEXT, "body_html": REMOVED_HTML}),
        ("comments", Comment, {"body_source": REMOVED_TEXT, "body_html": REMOVED_HTML}),
        ("review_comments", MediaComment, {"body": REMOVED_TEXT}),
        ("messages", Message, {"body": REMOVED_TEXT}),
    ):
        counts[name] = db.session.execute(
            update(model).where(model.tenant_id == tid, model.author_membership_id == mid)
            .values(**values).execution_options(synchronize_session=False)).rowcount
    return counts


def _erase_account_rows(user: User) -> dict[str, int]:
    """The account itself: secrets, sessions, logs and links go; the row stays as a tombstone."""
    accounts.revoke_all_sessions(user)  # their open sockets close once this commits
    export_keys = [key for key in db.session.scalars(
        select(AccountExport.object_key).where(AccountExport.user_id == user.id)) if key]
    if export_keys:
        get_storage().delete(export_keys)
    removed = {}
    for model in (UserSession, RecoveryCode, Passkey, SecurityEvent, EmailChange, SignInLink, PasswordResetToken,
                  AccountExport):
        removed[model.__tablename__] = db.session.execute(
            delete(model).where(model.user_id == user.id).execution_options(synchronize_session=False)).rowcount
    # Emails already sent keep only their envelope; the envelope named the person.
    removed["emails"] = db.session.execute(delete(Email).where(Email.to_address == user.email)
                                           .execution_options(synchronize_session=False)).rowcount
    user.email = placeholder_email(user.id)
    user.display_name = DELETED_NAME
    user.password_hash = UNUSABLE_PASSWORD
    user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
    user.platform_admin = False
    user.erased_at = clock.now()
    db.session.flush()
    return {k: v for k, v in removed.items() if v}


def each_in_own_transaction(ids: list[uuid.UUID], erase, what: str) -> int:
    """Run ``erase(id)`` for each id and commit it alone: a failure rolls back that one only (logged, tried again at
    the sweep's next run). How many ``erase`` said it erased."""
    erased = 0
    for one in ids:
        try:
            erased += bool(erase(one))
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("could not erase %s %s; it is tried again at the next run", what, one)
    return erased


def erase_due_accounts() -> int:
    """The sweep: erase every due account, each in its own transaction."""
    return each_in_own_transaction(due_accounts(), erase_account, "account")
