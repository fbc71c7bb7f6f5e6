"""Notices of the athlete development domain (being built)."""
from __future__ import annotations
