"""Manage a booking without logging in: the links of booking emails (see :mod:`coach.booking.manage_links`).

A blueprint of its own (``booking_links``), outside ``/o/<slug>``: whoever holds the link is not signed in, and
the signed token names the organization.
"""
from __future__ import annotations

from flask import Blueprint

links = Blueprint("booking_links", __name__)
