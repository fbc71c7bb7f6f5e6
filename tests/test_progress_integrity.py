"""The development tables' keys and cascades: a coach who leaves takes nothing of an athlete's history with them,
an athlete who leaves takes their own data, a closed organization leaves no row behind, and a signed record's
children cannot be changed even by a direct statement."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from coach import tenancy
from coach.booking import service as booking_service
from coach.extensions import db
from coach.orgs.models import Membership, Organization
from coach.progress import models as progress_models
from coach.progress.models import (
    CoachNote, Goal, ProgramAssignment, RecordSkillLevel, SessionRecord, TimelineEntry, WorkoutLog)
from tests.booking_support import make_offering, open_every_day
from tests.factories import add_member, make_org, make_user, media_row
from tests.progress_support import seed_progress_rows


def _world(prefix: str):
    org = make_org(make_user(f"{prefix}-admin@example.com"), slug=f"{prefix}-org", name=f"{prefix} org")
    coach = add_member(org, make_user(f"{prefix}-coach@example.com"), "coach")
    athlete = add_member(org, make_user(f"{prefix}-athlete@example.com"), "athlete")
    tenancy.activate(org.id)
    open_every_day(coach, tz="Europe/Berlin")
    offering = make_offering(coach)
    tenancy.activate(org.id)
    now = datetime.now(timezone.utc)
    slot = booking_service.available_slots(offering, now + timedelta(days=2), now + timedelta(days=3))[0]
    booking = booking_service.request_booking(offering, athlete, slot.starts_at, "", athlete)
    item = media_row(org.id, coach, "Serve", filename="serve.mp4", duration_ms=60_000)
    db.session.flush()
    rows = seed_progress_rows(org, coach, athlete, booking, item, label=prefix)
    ids = {kind: row.id for kind, row in rows.items()}
    org_id = org.id
    db.session.commit()
    tenancy.activate(org_id)
    return org, coach, athlete, ids


def _count(model, tenant_id) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id))


def test_a_coach_who_leaves_leaves_the_athletes_history_with_their_name_cleared(ctx):
    org, coach, athlete, rows = _world("keep")
    db.session.delete(db.session.get(Membership, coach.id))
    db.session.commit()
    tenancy.activate(org.id)
    record = db.session.get(SessionRecord, rows["record"])
    assert record is not None and record.status == "signed"
    assert record.booking_id is None  # the coach's sessions left with them; the record stays
    assert record.coach_membership_id is None and record.signed_by_membership_id is None
    assert db.session.get(Goal, rows["goal"]).created_by_membership_id is None
    assert db.session.get(CoachNote, rows["note"]).author_membership_id is None
    assert db.session.get(ProgramAssignment, rows["assignment"]) is not None
    assert _count(RecordSkillLevel, org.id) == 1


def test_an_athlete_who_leaves_takes_their_development_data(ctx):
    org, coach, athlete, rows = _world("leave")
    db.session.delete(db.session.get(Membership, athlete.id))
    db.session.commit()
    tenancy.activate(org.id)
    for model in (SessionRecord, RecordSkillLevel, Goal, WorkoutLog, CoachNote, TimelineEntry):
        assert _count(model, org.id) == 0, model.__tablename__


def test_closing_an_organization_leaves_no_development_row(ctx, owner_db):
    org, coach, athlete, rows = _world("gone")
    other, *_ = _world("stay")
    owner_db.execute("DELETE FROM organizations WHERE id = %s", [org.id])
    # Tenant tables are under forced RLS for the owner too: look as each organization.
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(org.id)])
    # (Audit events outlive their organization by design: append-only; closing one is issue 18's.)
    tables = sorted({value.__tablename__ for value in vars(progress_models).values()
                     if isinstance(value, type) and getattr(value, "__module__", "") == progress_models.__name__
                     and hasattr(value, "__tablename__")})
    for table in tables:
        left = owner_db.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", [org.id]).fetchone()[0]
        assert left == 0, table
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(other.id)])
    assert owner_db.execute("SELECT count(*) FROM session_records WHERE tenant_id = %s", [other.id]).fetchone()[0] == 1
    assert len(tables) == 26
    assert db.session.get(Organization, other.id) is not None


def test_a_signed_records_levels_and_text_cannot_be_changed_by_any_statement(ctx):
    org, coach, athlete, rows = _world("lock")
    statements = [
        lambda: db.session.execute(
            SessionRecord.__table__.update().where(SessionRecord.id == rows["record"]).values(notes_md="changed")),
        lambda: db.session.execute(
            RecordSkillLevel.__table__.update().where(RecordSkillLevel.record_id == rows["record"])
            .values(level=4)),
        lambda: db.session.execute(
            RecordSkillLevel.__table__.delete().where(RecordSkillLevel.record_id == rows["record"])),
    ]
    for statement in statements:
        with pytest.raises(DBAPIError) as caught:
            with db.session.begin_nested():
                statement()
        assert caught.value.orig.diag.constraint_name == "session_record_locked"
    db.session.rollback()
    tenancy.activate(org.id)
    assert db.session.get(SessionRecord, rows["record"]).notes_md == "lock notes"
