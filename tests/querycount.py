"""Counting the SQL statements one request sends (the "a page is a fixed number of queries" tests)."""
from __future__ import annotations

import threading

from sqlalchemy import event

from coach.extensions import db


def statements_for(app, browser, path: str) -> int:
    """How many SQL statements this thread sends while serving ``path``."""
    me = threading.get_ident()
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == me:
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert browser.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)
