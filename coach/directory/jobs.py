"""The directory's consumers and sweeps (imported by the app and the worker): the projection follows profiles,
offerings, availability, bookings, packs and reviews; reviews are asked for when sessions end."""
from __future__ import annotations

from coach.directory import projection_jobs  # noqa: F401 - registers the projection's consumers and sweeps
from coach.directory import review_jobs  # noqa: F401 - registers the nightly ratings check
