"""One row in each table of issue 19 (calendars, manage links, series, waitlists), written directly: the RLS
tests and the cross-tenant crawl need them to exist, not to have been made through the pages."""
from __future__ import annotations

from datetime import timedelta

from coach.booking import manage_links
from coach.booking.models import BookingSeries, ExternalBusy, WaitlistEntry
from coach.calsync.models import CalendarConnection, CalendarPush, CalendarSource
from coach.extensions import db
from coach.platform.sealing import seal


def seed_calendar_rows(org, coach, athlete, offering, booking) -> dict:
    connection = CalendarConnection(tenant_id=org.id, coach_membership_id=coach.id, label="Personal",
                                    server_url="http://127.0.0.1:9/dav/", username="coach",
                                    secret_sealed=seal("app-password"), status="ok")
    db.session.add(connection)
    db.session.flush()
    source = CalendarSource(tenant_id=org.id, connection_id=connection.id, url="http://127.0.0.1:9/dav/cal/",
                            display_name="Personal", blocks_time=True, receives_bookings=True)
    db.session.add(source)
    db.session.flush()
    start = booking.starts_at + timedelta(days=1)
    db.session.add(ExternalBusy(tenant_id=org.id, source_id=source.id, coach_membership_id=coach.id,
                                href="/dav/cal/dentist.ics", etag='"1"', uid="dentist", starts_at=start,
                                ends_at=start + timedelta(hours=1)))
    db.session.add(CalendarPush(tenant_id=org.id, source_id=source.id, uid=booking.uid, booking_id=booking.id,
                                href="/dav/cal/booking.ics", etag='"1"', state="present"))
    series = BookingSeries(tenant_id=org.id, offering_id=offering.id, coach_membership_id=coach.id,
                           athlete_membership_id=athlete.id, created_by_membership_id=coach.id, interval_weeks=1,
                           occurrences=4, first_starts_at=booking.starts_at, timezone="Europe/Berlin")
    db.session.add(series)
    db.session.flush()
    db.session.add(WaitlistEntry(tenant_id=org.id, session_id=booking.session_id, offering_id=offering.id,
                                 athlete_membership_id=athlete.id, added_by_membership_id=athlete.id))
    token = manage_links.issue(booking, "cancel")
    db.session.flush()
    return {"connection": connection, "source": source, "series": series, "manage_token": token}
