"""Calendar sync: a coach's own calendars (CalDAV today) block their bookable time, and confirmed bookings are
written into the calendar they chose. Providers implement :class:`coach.calsync.provider.CalendarProvider`;
adding Google or Microsoft is a new module (see docs/ARCHITECTURE.md, "Calendar sync")."""
