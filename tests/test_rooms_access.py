"""Who may enter a session's room, and when (coach.rooms.access): one statement for the page and every frame."""
from __future__ import annotations

from datetime import timedelta

import pytest

from coach import tenancy
from coach.rooms import access
from tests.room_support import RoomWorld


@pytest.fixture()
def world(ctx):
    return RoomWorld()


def test_the_coach_and_the_booked_athlete_enter_an_open_room_and_nobody_else_does(world):
    tenancy.activate(world.org.id)
    assert access.check(world.org.id, world.one.id, world.maria.id).may_enter
    athlete = access.check(world.org.id, world.one.id, world.ana.id)
    assert athlete.may_enter and athlete.role == "athlete" and not athlete.is_coach
    for outsider in (world.cleo, world.admin, world.ben):
        seen = access.check(world.org.id, world.one.id, outsider.id)
        assert seen.state == "open" and seen.role is None and not seen.may_enter


def test_a_room_opens_ten_minutes_before_and_closes_after_the_grace(world):
    tenancy.activate(world.org.id)
    one = access.check(world.org.id, world.one.id, world.ana.id)
    assert access.check(world.org.id, world.one.id, world.ana.id, now=one.opens_at - timedelta(seconds=1)).state \
        == "before"
    assert one.opens_at == one.starts_at - timedelta(minutes=10)
    assert access.check(world.org.id, world.one.id, world.ana.id, now=one.closes_at).state == "after"
    assert access.check(world.org.id, world.later.id, world.ana.id).state == "before"
    assert access.check(world.org.id, world.group.id, world.ben.id).may_enter  # six minutes early is fine


def test_a_cancelled_session_and_ids_that_are_not_sessions_here(world):
    hill = world.other_club()
    tenancy.activate(world.org.id)
    assert access.check(world.org.id, world.cancelled.id, world.ana.id).state == "cancelled"
    assert not access.check(world.org.id, world.cancelled.id, world.maria.id).may_enter
    for bad in ("nope", "", None, "00000000-0000-0000-0000-000000000000", str(world.hill_session_id)):
        assert access.check(world.org.id, bad, world.ana.id) is None
    one_id, zed_id = world.one.id, world.zed.id
    tenancy.activate(hill.id)
    assert access.check(hill.id, one_id, zed_id) is None  # River's session, under Hill's RLS
