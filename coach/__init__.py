"""Coach: the multi-tenant coaching platform. The app is built by :func:`coach.app.create_app`."""
from __future__ import annotations


def create_app(config: dict | None = None):
    """Build the app (``flask --app coach``, ``wsgi.py``, the tests); see :func:`coach.app.create_app`."""
    # Imported when called, not at the top: every ``import coach.<module>`` runs this file first, and
    # must not pull in the whole web app (the app module is the top of the import graph).
    from coach.app import create_app as build

    return build(config)
