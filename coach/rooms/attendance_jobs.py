"""The attendance sweep: stays whose browser vanished are closed at their last heartbeat (imported by
:mod:`coach.rooms.jobs`, which the app factory loads)."""
from __future__ import annotations

from coach import clock
from coach.platform.jobs import each_tenant
from coach.platform.periodic import periodic
from coach.rooms import attendance


@periodic(every=60, name="sweep_room_attendance")
def sweep_attendance() -> int:
    """Every organization with a stale stay: its stays closed (see :func:`coach.rooms.attendance.sweep`)."""
    now = clock.now()
    return each_tenant(attendance.stale_tenants(now), lambda tenant_id: attendance.sweep(tenant_id, now),
                       "room attendance sweep")
