"""The operators' console."""
from __future__ import annotations
