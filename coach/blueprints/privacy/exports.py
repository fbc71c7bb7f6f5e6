"""Exporting data: a person's own (every organization they belong to) and an organization's (its admins)."""
from __future__ import annotations
