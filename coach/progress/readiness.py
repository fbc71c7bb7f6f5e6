"""The daily readiness check-in: sleep, energy, mood, stress, soreness and a note, one per local day of the
athlete (a second one the same day replaces it), its score, the trend, and the coach's flag.

**Score** (:func:`score`, 1 poor .. 5 ready): the mean of five points, each 1..5 —
energy and mood as given (5 = high), stress and soreness reversed (``6 − value``: 1 = none is best), and sleep
``1 + 4 × clamp((hours − 4) / 4, 0, 1)`` (4 hours or less → 1, 8 hours or more → 5, linear between) —
rounded to two decimals.

**Flag** (:func:`evaluate`, used by :func:`flag` and :func:`flags`): today's score (the athlete's local today)
against their own baseline of the 14 days before today. With at least 7 check-ins in those 14 days, the
athlete is flagged when ``score < mean − max(0.75, 1.5 × sd)`` (``sd`` the population standard deviation):
a drop of at least three quarters of a point, more for an athlete whose readiness always swings.

The note is visible to the organization's coaches (it is the timeline entry's detail).
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert as pg_insert

from coach import clock
from coach.extensions import db
from coach.orgs.models import Membership
from coach.progress import timeline
from coach.progress.access import ProgressError
from coach.progress.days import local_today
from coach.progress.models import ReadinessCheckin

BASELINE_DAYS, BASELINE_MIN = 14, 7
MIN_DROP, SD_FACTOR = 0.75, 1.5
NOTE_MAX = 1000
SCALES = ("energy", "mood", "stress", "soreness")
SCALE_HINTS = {"energy": "1 drained – 5 full of energy", "mood": "1 low – 5 great",
               "stress": "1 relaxed – 5 very stressed", "soreness": "1 none – 5 very sore"}


@dataclass(frozen=True)
class Flag:
    athlete_id: uuid.UUID
    on_date: date
    score: float
    baseline: float
    sd: float
    days: int

    @property
    def drop(self) -> float:
        return round(self.baseline - self.score, 2)

    @property
    def label(self) -> str:
        return f"Readiness {self.score:.1f}, {self.drop:.1f} below their 14-day baseline of {self.baseline:.1f}"


# --- pure ----------------------------------------------------------------------------------------------

def sleep_points(hours: Decimal | float) -> float:
    return 1 + 4 * min(max((float(hours) - 4) / 4, 0.0), 1.0)


def score(sleep_hours, energy: int, mood: int, stress: int, soreness: int) -> Decimal:
    """The readiness score, 1..5 (see the module's docstring)."""
    points = sleep_points(sleep_hours) + energy + mood + (6 - stress) + (6 - soreness)
    return Decimal(str(points / 5)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def evaluate(today_score: float, n: int, mean: float | None, sd: float | None) -> bool:
    """Whether a score is flagged against a baseline of ``n`` check-ins with ``mean`` and ``sd``."""
    if n < BASELINE_MIN or mean is None:
        return False
    return today_score < mean - max(MIN_DROP, SD_FACTOR * (sd or 0.0))


def baseline(scores: list[float]) -> tuple[int, float | None, float | None]:
    if not scores:
        return 0, None, None
    mean = sum(scores) / len(scores)
    return len(scores), mean, math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))


# --- parsing -------------------------------------------------------------------------------------------

def _scale(values: dict, name: str) -> int:
    raw = str(values.get(name) if values.get(name) is not None else "").strip()
    try:
        value = int(raw)
    except ValueError:
        raise ProgressError(f"Choose {name} from 1 to 5.") from None
    if not 1 <= value <= 5:
        raise ProgressError(f"Choose {name} from 1 to 5.")
    return value


def _sleep(raw) -> Decimal:
    text_ = str(raw if raw is not None else "").strip().replace(",", ".")
    if not text_:
        raise ProgressError("Say how many hours you slept, from 0 to 24.")
    try:
        hours = Decimal(text_)
    except InvalidOperation:
        raise ProgressError("Sleep must be a number of hours, like 7.5.") from None
    if not hours.is_finite() or not 0 <= hours <= 24:
        raise ProgressError("Sleep must be between 0 and 24 hours.")
    return hours.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# --- reading -------------------------------------------------------------------------------------------

def today(athlete: Membership) -> ReadinessCheckin | None:
    """Today's check-in (the athlete's local today), or None."""
    return db.session.scalar(select(ReadinessCheckin).where(
        ReadinessCheckin.tenant_id == athlete.tenant_id, ReadinessCheckin.athlete_membership_id == athlete.id,
        ReadinessCheckin.on_date == local_today(athlete)))


def trend(athlete: Membership, days: int = 28) -> list[tuple[date, float]]:
    """(day, score) of the check-ins of the last ``days`` days up to today, oldest first. One statement."""
    end = local_today(athlete)
    rows = db.session.execute(select(ReadinessCheckin.on_date, ReadinessCheckin.score).where(
        ReadinessCheckin.tenant_id == athlete.tenant_id, ReadinessCheckin.athlete_membership_id == athlete.id,
        ReadinessCheckin.on_date > end - timedelta(days=days), ReadinessCheckin.on_date <= end,
    ).order_by(ReadinessCheckin.on_date))
    return [(d, float(s)) for d, s in rows]


def history(athlete: Membership, limit: int = 60) -> list[ReadinessCheckin]:
    """The latest check-ins, newest first."""
    return list(db.session.scalars(select(ReadinessCheckin).where(
        ReadinessCheckin.tenant_id == athlete.tenant_id, ReadinessCheckin.athlete_membership_id == athlete.id,
    ).order_by(ReadinessCheckin.on_date.desc()).limit(limit)))


# Today's score and the 14 days before, per athlete, in each athlete's own zone: one statement.
_FLAGS = text("""
    WITH a AS (
        SELECT m.id, (CAST(:now AS timestamptz) AT TIME ZONE u.timezone)::date AS today
        FROM memberships m JOIN users u ON u.id = m.user_id
        WHERE m.tenant_id = :tenant_id AND m.id = ANY(:ids)
    )
    SELECT a.id, a.today, t.score,
           count(b.score) AS n, avg(b.score) AS mean, stddev_pop(b.score) AS sd
    FROM a
    JOIN readiness_checkins t ON t.tenant_id = :tenant_id AND t.athlete_membership_id = a.id AND t.on_date = a.today
    LEFT JOIN readiness_checkins b ON b.tenant_id = :tenant_id AND b.athlete_membership_id = a.id
         AND b.on_date >= a.today - :days AND b.on_date < a.today
    GROUP BY a.id, a.today, t.score
""").bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


def flags(tenant_id: uuid.UUID, athlete_ids) -> dict[uuid.UUID, Flag]:
    """The flagged athletes among ``athlete_ids`` (rule: module docstring). One statement."""
    ids = list(athlete_ids)
    if not ids:
        return {}
    out = {}
    for athlete_id, day, today_score, n, mean, sd in db.session.execute(_FLAGS, {
            "tenant_id": tenant_id, "ids": ids, "now": clock.now(), "days": BASELINE_DAYS}):
        mean_f = float(mean) if mean is not None else None
        sd_f = float(sd) if sd is not None else 0.0
        if evaluate(float(today_score), n, mean_f, sd_f):
            out[athlete_id] = Flag(athlete_id, day, float(today_score), round(mean_f, 2), round(sd_f, 2), n)
    return out


def flag(athlete: Membership) -> Flag | None:
    """The athlete's flag today, or None."""
    return flags(athlete.tenant_id, [athlete.id]).get(athlete.id)


# --- writing -------------------------------------------------------------------------------------------

def check_in(athlete: Membership, actor: Membership, values: dict) -> ReadinessCheckin:
    """Today's check-in of ``athlete`` (by the athlete only); a second one today replaces the first.
    Writes (or rewrites) its ``readiness`` timeline entry."""
    if actor.id != athlete.id or actor.tenant_id != athlete.tenant_id:
        raise ProgressError("Only the athlete checks in their own readiness.", status=403)
    sleep = _sleep(values.get("sleep_hours"))
    scales = {name: _scale(values, name) for name in SCALES}
    note = (values.get("note") or "").strip()
    if len(note) > NOTE_MAX:
        raise ProgressError(f"Use at most {NOTE_MAX:,} characters for the note.")
    result = score(sleep, **scales)
    now = clock.now()
    day = local_today(athlete, now)
    fields = {"sleep_hours": sleep, **scales, "note": note, "score": result, "updated_at": now}
    row_id = db.session.scalar(pg_insert(ReadinessCheckin).values(
        id=uuid.uuid4(), tenant_id=athlete.tenant_id, athlete_membership_id=athlete.id, on_date=day,
        created_at=now, **fields,
    ).on_conflict_do_update(constraint="uq_readiness_checkins_day", set_=fields).returning(ReadinessCheckin.id))
    row = db.session.get(ReadinessCheckin, row_id, populate_existing=True)
    timeline.record(athlete.tenant_id, athlete.id, "readiness", row.id, now, f"Readiness {result:.1f} / 5",
                    note)
    return row
