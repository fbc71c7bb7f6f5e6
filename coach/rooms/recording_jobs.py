"""Recording jobs: the room's end finishes a running recording (a consumer of ``room.ended``), and a sweep
finishes recordings whose coach's browser went silent (crashed, closed, lost its network) with the parts that
arrived."""
from __future__ import annotations

import uuid

from flask import g

from coach.platform.jobs import consumer, each_tenant
from coach.platform.periodic import periodic
from coach.rooms import recording
from coach.rooms.events import ROOM_ENDED


@consumer(ROOM_ENDED)
def finish_on_end(payload: dict) -> None:
    """The coach ended the room for everyone: a recording still running is finished (their page stops its
    recorder on ``ended`` too; whatever it had not sent yet is lost, as after a crash)."""
    recording.room_ended(g.tenant_id, uuid.UUID(payload["session_id"]), by=None)


@periodic(every=60, name="sweep_room_recordings")
def sweep_stale() -> int:
    """Every organization with a recording that has had no part (nor sign of life) for two minutes."""
    return each_tenant(recording.stale_tenants(), recording.finish_stale, "room recording sweep")
