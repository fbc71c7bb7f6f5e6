"""Counting the SQL statements one request sends (the "a page is a fixed number of queries" tests)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from coach.extensions import db


@contextmanager
def statements_sent(app) -> Iterator[list[str]]:
    """The SQL statements this thread sends inside the block, in a list filled as they go (the background job
    runner's threads share the engine: their statements are not counted). For several requests in one block, or
    a POST: compare ``len()`` before and after each."""
    me = threading.get_ident()
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == me:
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def statements_for(app, browser, path: str) -> int:
    """How many SQL statements this thread sends while serving ``path``."""
    with statements_sent(app) as seen:
        assert browser.get(path).status_code == 200
    return len(seen)
