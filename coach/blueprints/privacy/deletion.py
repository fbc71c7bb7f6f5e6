"""Deleting an account (after a grace period) and closing an organization."""
from __future__ import annotations
