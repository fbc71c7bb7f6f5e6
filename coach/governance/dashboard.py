"""The organization admin's dashboard: members over time, active members, bookings, posts and messages per
week, storage, top coaches. Read under the organization's row-level security (the request's tenant), one
grouped statement per figure whatever the amount of data, weeks cut in the organization's time zone.

Definitions (the page's help text says the same):

- **members**: memberships by the week they were created, cumulative (members who left are not counted: a
  membership row goes when its member leaves);
- **active**: members whose account had a signed-in session seen within the last 7 / 30 days (sessions are the
  account's, so someone active in another organization of theirs counts here too);
- **booked**: bookings made that week (any status); **delivered**: sessions that week with an ended booking (a
  group session counts once); **cancelled**: bookings cancelled that week;
- **posts** and **messages**: written that week (deleted ones included: they were activity);
- **top coaches**: sessions delivered in the last 90 days.

Two things an admin acts on are counted live on every view (one statement, :func:`upkeep`): what waits in the
moderation queues (flagged posts and comments, flagged reviews) and the public directory (whether the
organization lists its coaches; how many are listed, opted out, or have no profile yet).

The page shows :func:`shown`: the figures kept in Valkey for :data:`FIGURES_TTL` seconds per organization (at
5,000 members and 26 weeks of 20,000 bookings, 100,000 posts and 200,000 messages the six statements take
0.5–0.8 s of PostgreSQL; ``python -m bench admin_dashboard``), with the time they were counted on the page. Valkey
away means counting on every view.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError
from sqlalchemy import bindparam, text

from coach import clock
from coach.extensions import db
from coach.media import service as media
from coach.orgs.models import Organization
from coach.platform.queues import redis_conn
from coach.progress import charts

log = logging.getLogger(__name__)

WEEKS = 26
FIGURES_TTL = 60  # seconds an organization's figures are shown before they are counted again
FIGURES_KEPT = 15 * 60  # seconds they stay in Valkey: shown while one request counts them again
COUNTING_LOCK = 30  # seconds at most one request holds the right to count them again
TOP_COACHES = 5
TOP_COACH_DAYS = 90

_MEMBERS = text("""
    SELECT greatest(date_trunc('week', m.created_at AT TIME ZONE :tz)::date, :first_week) AS week, count(*) AS n
    FROM memberships m WHERE m.tenant_id = :tenant_id GROUP BY 1
""")

_ACTIVE = text("""
    SELECT count(DISTINCT m.user_id) FILTER (WHERE s.last_seen_at >= :since_7) AS active_7,
           count(DISTINCT m.user_id) AS active_30
    FROM memberships m JOIN user_sessions s ON s.user_id = m.user_id
    WHERE m.tenant_id = :tenant_id AND s.last_seen_at >= :since_30
""")

# One pass over the organization's recent bookings: each row may count as booked (by when it was made),
# delivered (by when its session started) and cancelled (by when it was cancelled).
_BOOKINGS = text("""
    SELECT date_trunc('week', e.at AT TIME ZONE :tz)::date AS week, e.kind,
           CASE WHEN e.kind = 'delivered' THEN count(DISTINCT b.session_id) ELSE count(*) END AS n
    FROM bookings b
    CROSS JOIN LATERAL (VALUES ('booked', b.created_at),
                               ('delivered', CASE WHEN b.status = 'ended' THEN b.starts_at END),
                               ('cancelled', CASE WHEN b.status = 'cancelled' THEN b.status_changed_at END)
                       ) AS e(kind, at)
    WHERE b.tenant_id = :tenant_id
      AND (b.created_at >= :since OR b.starts_at >= :since OR b.status_changed_at >= :since)
      AND e.at >= :since AND e.at < :until
    GROUP BY 1, 2
""")

_WRITING = text("""
    SELECT date_trunc('week', w.at AT TIME ZONE :tz)::date AS week, w.kind, count(*) AS n
    FROM (SELECT 'posts' AS kind, p.created_at AS at FROM posts p
          WHERE p.tenant_id = :tenant_id AND p.created_at >= :since AND p.created_at < :until
          UNION ALL
          SELECT 'messages', c.created_at FROM messages c
          WHERE c.tenant_id = :tenant_id AND c.created_at >= :since AND c.created_at < :until) AS w
    GROUP BY 1, 2
""")

_TOP_COACHES = text("""
    SELECT u.display_name AS name, count(DISTINCT b.session_id) AS n
    FROM bookings b
    JOIN memberships m ON m.tenant_id = b.tenant_id AND m.id = b.coach_membership_id
    JOIN users u ON u.id = m.user_id
    WHERE b.tenant_id = :tenant_id AND b.status = 'ended' AND b.starts_at >= :since AND b.starts_at < :until
    GROUP BY m.id, u.display_name
    ORDER BY n DESC, u.display_name
    LIMIT :limit
""").bindparams(bindparam("limit"))

# What waits for moderation and how the coaches stand in the public directory: counted on every view (an admin
# who just resolved a flag expects the number to drop). Erased accounts' memberships are not coaches any more.
_UPKEEP = text("""
    SELECT (SELECT count(DISTINCT coalesce(f.post_id, f.comment_id)) FROM flags f
            WHERE f.tenant_id = :tenant_id AND f.resolved_at IS NULL) AS flagged_content,
           (SELECT count(*) FROM reviews r WHERE r.tenant_id = :tenant_id AND r.open_flags > 0) AS flagged_reviews,
           (SELECT count(*) FROM directory_listings l WHERE l.organization_id = :tenant_id) AS listed,
           count(m.id) AS coaches,
           count(m.id) FILTER (WHERE p.id IS NULL) AS without_profile,
           count(m.id) FILTER (WHERE NOT p.listed) AS opted_out
    FROM memberships m
    JOIN users u ON u.id = m.user_id AND u.erased_at IS NULL
    LEFT JOIN coach_profiles p ON p.tenant_id = m.tenant_id AND p.coach_membership_id = m.id
    WHERE m.tenant_id = :tenant_id AND m.role = 'coach'
""")


@dataclass(frozen=True)
class Upkeep:
    """The moderation queues' sizes and the organization's coaches in the public directory."""

    flagged_content: int  # posts and comments with open flags
    flagged_reviews: int
    listed_publicly: bool  # the organization's choice
    coaches: int
    listed: int  # rows in the public directory now
    opted_out: int
    without_profile: int

    @property
    def moderation(self) -> int:
        return self.flagged_content + self.flagged_reviews

    @property
    def not_listed_otherwise(self) -> int:
        """Coaches with a profile who did not opt out and are still not listed (no headline yet, or the
        organization does not list its coaches)."""
        return max(0, self.coaches - self.listed - self.opted_out - self.without_profile)


def upkeep(org: Organization) -> Upkeep:
    """:class:`Upkeep` for ``org``, counted now (one statement)."""
    row = db.session.execute(_UPKEEP, {"tenant_id": org.id}).one()
    return Upkeep(int(row.flagged_content), int(row.flagged_reviews), bool(org.listed_publicly), int(row.coaches),
                  int(row.listed), int(row.opted_out), int(row.without_profile))


@dataclass(frozen=True)
class Series:
    """One named line of a chart: its key (a CSS class suffix), its label and the chart's geometry."""

    key: str
    label: str
    chart: charts.LineChart


@dataclass(frozen=True)
class Storage:
    used: int
    quota: int
    percent: int
    used_label: str
    quota_label: str


@dataclass(frozen=True)
class Dashboard:
    weeks: list[date]  # the Mondays of the charts' weeks, oldest first
    members: list[Series]
    member_rows: list[tuple[date, int]]
    members_total: int
    active_7: int
    active_30: int
    bookings: list[Series]
    booking_rows: list[tuple[date, int, int, int]]  # week, booked, delivered, cancelled
    writing: list[Series]
    writing_rows: list[tuple[date, int, int]]  # week, posts, messages
    storage: Storage
    top_coaches: list[tuple[str, int]]
    as_of: datetime  # when the figures were counted


def _window(org: Organization, now: datetime) -> tuple[ZoneInfo, list[date], datetime, datetime]:
    """The organization's zone, the Mondays of the last :data:`WEEKS` weeks (this one last) and the instants
    the first week starts and this week ends."""
    zone = ZoneInfo(org.timezone or "UTC")
    today = now.astimezone(zone).date()
    this_monday = today - timedelta(days=today.weekday())
    weeks = [this_monday - timedelta(weeks=WEEKS - 1 - i) for i in range(WEEKS)]
    start = datetime.combine(weeks[0], time.min, zone)
    end = datetime.combine(this_monday + timedelta(days=7), time.min, zone)
    return zone, weeks, start, end


def _counts(rows, weeks: list[date], kinds: tuple[str, ...]) -> dict[str, list[int]]:
    found = {(row.week, row.kind): int(row.n) for row in rows}
    return {kind: [found.get((week, kind), 0) for week in weeks] for kind in kinds}


def _lines(weeks: list[date], named: list[tuple[str, str, list[int]]]) -> list[Series]:
    """Lines on one scale: every series is drawn with the same range and days, so they share the axes."""
    top = max([4, *(n for _, _, values in named for n in values)])
    return [Series(key, label, charts.line(list(zip(weeks, values)), y_min=0, y_max=top, start=weeks[0],
                                           end=weeks[-1]))
            for key, label, values in named]


def _figures(org: Organization, now: datetime, weeks: list[date], start: datetime, end: datetime,
             zone: ZoneInfo) -> dict:
    """The dashboard's numbers (six statements, whatever the amount of data), as plain JSON-able values."""
    common = {"tenant_id": org.id, "tz": zone.key}
    added = {row.week: int(row.n) for row in db.session.execute(_MEMBERS, {**common, "first_week": weeks[0]})}
    cumulative, total = [], 0
    for week in weeks:
        total += added.get(week, 0)
        cumulative.append(total)
    active = db.session.execute(_ACTIVE, {"tenant_id": org.id, "since_7": now - timedelta(days=7),
                                          "since_30": now - timedelta(days=30)}).one()
    window = {**common, "since": start, "until": end}
    booked = _counts(db.session.execute(_BOOKINGS, window), weeks, ("booked", "delivered", "cancelled"))
    written = _counts(db.session.execute(_WRITING, window), weeks, ("posts", "messages"))
    used = media.usage(org).used
    top = db.session.execute(_TOP_COACHES, {"tenant_id": org.id, "since": now - timedelta(days=TOP_COACH_DAYS),
                                            "until": now, "limit": TOP_COACHES}).all()
    return {"this_week": weeks[-1].isoformat(), "zone": zone.key, "as_of": now.isoformat(), "members": cumulative,
            "active_7": int(active.active_7), "active_30": int(active.active_30), **booked, **written,
            "used": int(used), "top": [[row.name, int(row.n)] for row in top]}


def _board(org: Organization, weeks: list[date], f: dict) -> Dashboard:
    room = media.Usage(f["used"], media.quota_of(org))
    return Dashboard(
        weeks=weeks, members=_lines(weeks, [("members", "Members", f["members"])]),
        member_rows=list(zip(weeks, f["members"])), members_total=f["members"][-1],
        active_7=f["active_7"], active_30=f["active_30"],
        bookings=_lines(weeks, [("booked", "Booked", f["booked"]), ("delivered", "Delivered", f["delivered"]),
                                ("cancelled", "Cancelled", f["cancelled"])]),
        booking_rows=list(zip(weeks, f["booked"], f["delivered"], f["cancelled"])),
        writing=_lines(weeks, [("posts", "Posts", f["posts"]), ("messages", "Messages", f["messages"])]),
        writing_rows=list(zip(weeks, f["posts"], f["messages"])),
        storage=Storage(room.used, room.quota, room.percent, media.human_size(room.used),
                        media.human_size(room.quota)),
        top_coaches=[(name, n) for name, n in f["top"]],
        as_of=datetime.fromisoformat(f["as_of"]),
    )


def build(org: Organization, now: datetime | None = None) -> Dashboard:
    """Every figure of the dashboard for ``org``, counted now (six statements, whatever the amount of data)."""
    now = now or clock.now()
    zone, weeks, start, end = _window(org, now)
    return _board(org, weeks, _figures(org, now, weeks, start, end, zone))


def _key(tenant_id) -> str:
    return f"coach:admin-dashboard:{tenant_id}"


def shown(org: Organization) -> Dashboard:
    """:func:`build` as the page shows it: the figures kept in Valkey, counted at most once per
    :data:`FIGURES_TTL` seconds, so 16 admins refreshing the page count once a minute, not 16 times a second.
    When they are older than that, one request (the one that takes a short lock) counts them again while the
    others show the kept ones with their time; kept figures of another week or time zone (the week turned, the
    organization moved) are counted again by whoever asks."""
    now = clock.now()
    zone, weeks, start, end = _window(org, now)
    key = _key(org.id)
    try:
        kept = redis_conn().get(key)
    except RedisError:
        kept = None
    if kept is not None:
        figures = json.loads(kept)
        if figures.get("this_week") == weeks[-1].isoformat() and figures.get("zone") == zone.key:
            if (now - datetime.fromisoformat(figures["as_of"])).total_seconds() < FIGURES_TTL:
                return _board(org, weeks, figures)
            try:
                someone_counts = not redis_conn().set(f"{key}:counting", 1, nx=True, ex=COUNTING_LOCK)
            except RedisError:
                someone_counts = False
            if someone_counts:
                return _board(org, weeks, figures)
    figures = _figures(org, now, weeks, start, end, zone)
    try:
        redis_conn().set(key, json.dumps(figures), ex=FIGURES_KEPT)
        redis_conn().delete(f"{key}:counting")
    except RedisError:
        log.warning("could not keep the dashboard figures of %s in Valkey", org.id)
    return _board(org, weeks, figures)


def forget(tenant_id) -> None:
    """Drop the kept figures of one organization (the next view counts again)."""
    try:
        redis_conn().delete(_key(tenant_id), f"{_key(tenant_id)}:counting")
    except RedisError:
        log.warning("could not forget the dashboard figures of %s", tenant_id)
