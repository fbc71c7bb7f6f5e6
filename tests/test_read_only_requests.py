"""A GET that only read ends its transaction with COMMIT (psycopg then keeps its prepared statements and
PostgreSQL plans a page's statements once per connection); anything that wrote, or failed, still rolls back."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from coach import create_app
from coach.extensions import db

COPIED = ("COACH_ENV", "SECRET_KEY", "REDIS_URL", "MEDIA_LOCAL_ROOT", "SQLALCHEMY_DATABASE_URI")


@pytest.fixture()
def probe(app, owner_db):
    """An app of the same configuration with three routes of its own, one pooled connection."""
    probe = create_app({**{k: app.config[k] for k in COPIED},
                        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0},
                        "PROPAGATE_EXCEPTIONS": False})
    owner_db.execute("CREATE TABLE IF NOT EXISTS read_only_probe (id uuid PRIMARY KEY)")
    owner_db.execute("GRANT SELECT, INSERT ON read_only_probe TO coach_app")

    @probe.get("/probe/read")
    def read():
        # The same statement on every request: psycopg prepares it on its fifth use on the connection.
        value = db.session.execute(text("SELECT count(*) FROM read_only_probe WHERE id <> :id"),
                                   {"id": uuid.uuid4()}).scalar_one()
        prepared = db.session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
        return {"rows": value, "prepared": prepared}

    @probe.get("/probe/write-and-forget")
    def write_and_forget():
        db.session.execute(text("INSERT INTO read_only_probe (id) VALUES (:id)"), {"id": uuid.uuid4()})
        return "not committed"

    @probe.get("/probe/read-then-fail")
    def read_then_fail():
        db.session.execute(text("SELECT 1"))
        raise RuntimeError("a view that failed after reading")

    yield probe
    with probe.app_context():
        db.engine.dispose()
    owner_db.execute("DROP TABLE read_only_probe")


def test_a_page_that_only_reads_keeps_its_prepared_statements_across_requests(probe):
    client = probe.test_client()
    prepared = [client.get("/probe/read").get_json()["prepared"] for _ in range(8)]
    # After five uses the statement is prepared, and it stays prepared on the next requests (a ROLLBACK at
    # the end of each request made psycopg deallocate everything: the count went back to 0 every time).
    assert prepared[-1] >= 1
    assert prepared[-3:] == [prepared[-1]] * 3


def test_a_get_that_wrote_without_committing_is_rolled_back(probe, owner_db):
    client = probe.test_client()
    assert client.get("/probe/write-and-forget").status_code == 200
    assert owner_db.execute("SELECT count(*) FROM read_only_probe").fetchone()[0] == 0


def test_a_request_that_failed_is_rolled_back_and_answered_500(probe):
    client = probe.test_client()
    assert client.get("/probe/read-then-fail").status_code == 500
    assert client.get("/probe/read").status_code == 200
