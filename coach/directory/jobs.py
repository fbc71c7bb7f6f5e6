"""The directory's consumers and sweeps (imported by the app and the worker): the projection follows profiles,
offerings, availability, bookings, packs and reviews; reviews are asked for when sessions end."""
from __future__ import annotations
