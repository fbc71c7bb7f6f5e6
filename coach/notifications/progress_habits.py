"""Habit reminders: every five minutes, each habit whose reminder time has passed today in the athlete's zone
(within the last two hours: no reminder for a time long gone, after an outage), that was not reminded today
(``last_reminded_on``) and is not ticked today, gets one ``habit_reminder`` notice. Once a day even if the sweep
runs twice or late: ``last_reminded_on`` is set in the same transaction, and the notice's dedupe key holds
the habit and the day."""
from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Date, cast, func, or_, select, text


from coach import clock
from coach.extensions import db
from coach.notifications import service
from coach.accounts.models import User
from coach.orgs.models import Membership, Organization
from coach.platform.jobs import each_tenant
from coach.platform.periodic import periodic
from coach.progress.models import Habit, HabitCheckin

WINDOW_MINUTES = 120
BATCH = 500


def _tenants() -> list[uuid.UUID]:
    return list(db.session.scalars(text("SELECT habits_reminder_tenants()")))


def remind_due(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """Send the reminders due in one organization; how many were sent."""
    now = now or clock.now()
    # The athlete's wall clock, in SQL too, so only the habits due now are read (however many an organization has).
    local = func.timezone(User.timezone, now)
    minute = func.extract("hour", local) * 60 + func.extract("minute", local)
    rows = db.session.execute(
        select(Habit, Membership).join(Membership, (Membership.tenant_id == Habit.tenant_id)
                                       & (Membership.id == Habit.athlete_membership_id))
        .join(User, User.id == Membership.user_id)
        .where(Habit.tenant_id == tenant_id, Habit.reminder_minute.is_not(None), Habit.archived_at.is_(None),
               Habit.reminder_minute <= minute, Habit.reminder_minute >= minute - WINDOW_MINUTES,
               or_(Habit.last_reminded_on.is_(None), Habit.last_reminded_on < cast(local, Date)))
        .order_by(Habit.reminder_minute, Habit.id).limit(BATCH)).all()
    due = []
    for habit, athlete in rows:
        local = now.astimezone(ZoneInfo(athlete.user.timezone or "UTC"))
        minute = local.hour * 60 + local.minute
        day = local.date()
        if habit.last_reminded_on is not None and habit.last_reminded_on >= day:
            continue
        if not 0 <= minute - habit.reminder_minute <= WINDOW_MINUTES:
            continue
        due.append((habit, athlete, day))
    if not due:
        return 0
    ticked = set(db.session.execute(select(HabitCheckin.habit_id, HabitCheckin.on_date).where(
        HabitCheckin.tenant_id == tenant_id, HabitCheckin.habit_id.in_([h.id for h, _, _ in due]),
        HabitCheckin.on_date.in_({d for _, _, d in due}))).all())
    org = db.session.get(Organization, tenant_id)
    url = service.path_for("progress.my_habits", slug=org.slug)
    sent = 0
    for habit, athlete, day in due:
        habit.last_reminded_on = day
        if (habit.id, day) in ticked:
            continue
        notice = service.notify(athlete, "habit_reminder", dedupe_key=f"habit:{habit.id}:{day.isoformat()}",
                                title=f"Reminder: {habit.title}", url=url,
                                body="Tick it off when it's done.", subject_id=habit.id, now=now)
        sent += notice is not None
    db.session.flush()
    service.announce()
    return sent


@periodic(every=300, name="habit_reminders")
def sweep_habit_reminders() -> int:
    """Every organization with reminders, one transaction each."""
    now = clock.now()
    return each_tenant(_tenants(), lambda tenant_id: remind_due(tenant_id, now), "habit reminders")
