"""The organization's home: a fast shell that answers "what now?" with blocks, each its own fragment.

The shell runs no query of its own beyond the member's context (first byte stays cheap); each block is
``/o/<slug>/home/<block>``, loaded by htmx when the page shows and again on the body events that change it. Without
JavaScript each block's placeholder is a link to the page the block summarizes, so the page is never empty.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import abort, g, session
from flask_login import current_user

from coach import clock
from coach.blueprints.orgs import bp
from coach.booking import lists
from coach.booking.availability import zone
from coach.chat import service as chat
from coach.directory import reviews
from coach.governance import dashboard
from coach.htmx import render
from coach.media import service as media
from coach.orgs import service
from coach.orgs.models import ADMIN, ATHLETE, COACH, ROLE_LABELS, SCHEDULER
from coach.progress import habits, programs, readiness
from coach.spaces import service as spaces
from coach.tenancy import role_required

HOME = "orgs/home.html"
BLOCK_PAGE = "orgs/home/page.html"  # a block's page: its ``card`` is the fragment
BOOKED = ("held", "requested", "confirmed", "active")
SHOWN = 3  # rows per list block: a glance, with a link to the whole list
# Events that change what blocks show: a booking changed on this page, the member was notified (booking
# requests, confirmations, cancellations: relayed from the chat socket), someone posted in a space of mine.
SESSIONS_EVENTS = "booking-changed from:body, notified from:body"


@dataclass(frozen=True)
class Block:
    """One block of the home page: its title, the page it summarizes (the no-JS link), what refreshes it and
    whether it loads when shown (below the fold) rather than at once."""

    name: str
    title: str
    page: str  # endpoint of the full page
    refresh: str = ""
    lazy: bool = False


BLOCKS = {
    "sessions": Block("sessions", "Next sessions", "booking.sessions", SESSIONS_EVENTS),
    "today": Block("today", "Today", "progress.index"),
    "messages": Block("messages", "Messages", "chat.index", "notified from:body"),
    "schedule": Block("schedule", "Today and tomorrow", "booking.sessions", SESSIONS_EVENTS),
    "requests": Block("requests", "Requests waiting", "booking.sessions", SESSIONS_EVENTS),
    "attention": Block("attention", "Athletes needing attention", "progress.index", "notified from:body"),
    "members": Block("members", "Members waiting", "admin.members"),
    "moderation": Block("moderation", "Moderation", "spaces.moderation"),
    "storage": Block("storage", "Storage", "media.library", lazy=True),
    "spaces": Block("spaces", "New in your spaces", "spaces.feed", "posts-changed from:body", lazy=True),
    "reviews": Block("reviews", "Reviews to write", "booking.sessions", lazy=True),
}
BY_ROLE = {
    ATHLETE: ("sessions", "today", "messages", "spaces", "reviews"),
    COACH: ("schedule", "requests", "attention", "spaces"),
    ADMIN: ("schedule", "requests", "members", "moderation", "spaces", "storage"),
    SCHEDULER: ("schedule", "requests", "spaces"),
}


def greeting(now: datetime, tz: str) -> str:
    """"Good morning" and so on, by the hour where the member is."""
    hour = now.astimezone(zone(tz)).hour
    return "Good morning" if 5 <= hour < 12 else "Good afternoon" if 12 <= hour < 18 else "Good evening"


@bp.get("/o/<slug>/")
@role_required()
def home(slug: str):
    """The organization's home for a member: a greeting and the blocks of their role."""
    if session.get("last_org") != g.org.slug:
        session["last_org"] = g.org.slug
    tz = current_user.timezone or "UTC"
    now = clock.now()
    return render(HOME, org=g.org, membership=g.membership, roles=ROLE_LABELS, tz=tz,
                  local_now=now.astimezone(zone(tz)), greeting=greeting(now, tz),
                  blocks=[BLOCKS[name] for name in BY_ROLE[g.membership.role]])


@bp.get(f"/o/<slug>/home/<any({', '.join(BLOCKS)}):block>")
@role_required()
def home_block(slug: str, block: str):
    """One block of the home page, as a fragment (or, followed as a link, on its own page)."""
    if block not in BY_ROLE[g.membership.role]:
        abort(404)
    tz = current_user.timezone or "UTC"
    return render(BLOCK_PAGE, "card", org=g.org, me=g.membership, part=BLOCKS[block], tz=tz,
                  **LOADERS[block](g.membership, tz))


# --- what each block shows (a handful of statements each) ---------------------------------------------------

def _staff(member) -> bool:
    return member.role in (ADMIN, SCHEDULER)


def _local_midnight(now: datetime, tz: str, days: int) -> datetime:
    local = now.astimezone(zone(tz)).date() + timedelta(days=days)
    return datetime.combine(local, datetime.min.time(), zone(tz))


def _sessions(member, tz):
    found = lists.session_lists(member, None, tz)
    return {"rows": found["upcoming"][:SHOWN], "more": len(found["upcoming"]) > SHOWN}


def _today(member, tz):
    return {"workouts": programs.today(member), "habits": [h for h in habits.today(member) if not h.done_today],
            "checkin": readiness.today(member)}


def _messages(member, tz):
    unread = [s for s in chat.conversations_for(g.org, member) if s.unread]
    return {"unread": unread[:5], "more": len(unread) > 5}


def _schedule(member, tz):
    now = clock.now()
    until = _local_midnight(now, tz, 2)
    if _staff(member):
        rows = lists.org_rows(member, tz, statuses=("held", "confirmed", "active"), since=now - timedelta(hours=12),
                              until=until, limit=12)
    else:
        found = lists.session_lists(member, member, tz, now)
        rows = [r for r in found["today"] + found["upcoming"] if r.starts_at < until]
    rows = [r for r in rows if r.status == "active" or r.ends_at > now]
    tomorrow = _local_midnight(now, tz, 1)
    return {"today": [r for r in rows if r.starts_at < tomorrow],
            "tomorrow": [r for r in rows if r.starts_at >= tomorrow]}


def _requests(member, tz):
    if _staff(member):
        rows = lists.org_rows(member, tz, statuses=("requested",), limit=SHOWN + 1)
    else:
        rows = lists.session_lists(member, member, tz)["pending"]
    return {"rows": rows[:SHOWN], "more": len(rows) > SHOWN}


def _attention(member, tz):
    unread = [s for s in chat.conversations_for(g.org, member)
              if s.unread and s.other is not None and s.other.role == ATHLETE]
    flagged = list(readiness.flags(member.tenant_id, lists.athletes_of(member)))[:5]
    return {"unread": unread[:5], "flagged": [m for m in (service.get_membership(g.org, i) for i in flagged) if m]}


def _members(member, tz):
    waiting = service.pending_invitations(g.org)
    return {"invitations": waiting[:5], "count": len(waiting)}


def _moderation(member, tz):
    return {"upkeep": dashboard.upkeep(g.org)}


def _storage(member, tz):
    used = media.shown_usage(g.org)
    return {"usage": used, "used_label": media.human_size(used.used), "quota_label": media.human_size(used.quota)}


def _spaces(member, tz):
    page = spaces.feed_page(g.org, member, limit=SHOWN)
    return {"posts": page.posts, "space_names": page.spaces}


def _reviews(member, tz):
    return {"rows": reviews.to_write(member, SHOWN)}


LOADERS = {"sessions": _sessions, "today": _today, "messages": _messages, "schedule": _schedule,
           "requests": _requests, "attention": _attention, "members": _members, "moderation": _moderation,
           "storage": _storage, "spaces": _spaces, "reviews": _reviews}
