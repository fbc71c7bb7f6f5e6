"""Booking: offerings, availability, slot computation, the booking lifecycle, calendar feeds."""
