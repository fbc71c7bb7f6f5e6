"""Row-level security: the catalog is right for every tenant table, and organizations cannot see each other.

These read pg_catalog, so a table added later with a ``tenant_id`` column is covered without
touching this file.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from coach.spaces import service as spaces_service
from psycopg import errors, sql

from coach import tenancy
from coach.booking import service as booking_service
from coach.chat import service as chat_service
from coach.notifications import service as notification_service
from coach.extensions import db
from coach.media.models import MediaComment
from coach.orgs.models import Membership
from coach.orgs.service import invite
from coach.platform.models import AuditEvent, IdempotencyKey, OutboxEvent, ProcessedEvent
from coach.privacy.models import OrgExport
from tests.calendar_rows import seed_calendar_rows
from tests.room_rows import seed_room_rows
from tests.directory_rows import seed_directory_rows
from coach.spaces.models import PostAttachment
from tests.booking_support import make_offering, open_every_day
from tests.payments_support import seed_payment_rows
from tests.progress_support import seed_progress_rows
from tests.factories import add_member, make_org, make_user, media_row

SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"
SET_USER = "SELECT set_config('app.user_id', %s, true)"


def tenant_tables(conn) -> list[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1"""
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture()
def two_orgs(ctx):
    """Organizations A and B, each with members, an open invitation, and a booking with all its trimmings."""
    a = make_org(make_user("a-admin@example.com"), slug="org-a", name="Org A")
    b = make_org(make_user("b-admin@example.com"), slug="org-b", name="Org B")
    now = datetime.now(timezone.utc)
    for org, prefix in ((a, "a"), (b, "b")):
        coach = add_member(org, make_user(f"{prefix}-coach@example.com"), "coach")
        athlete = add_member(org, make_user(f"{prefix}-athlete@example.com"), "athlete")
        tenancy.activate(org.id)
        admin = db.session.scalar(db.select(Membership).where(Membership.tenant_id == org.id, Membership.role == "admin"))
        tenancy.activate(org.id, admin.user_id)
        invite(org, admin, f"{prefix}-invitee@example.com", "athlete")
        # Booking: a coach calendar and weekly hours, an offering, an override, time off, a booking
        # (its coaching session) and a calendar feed.
        open_every_day(coach, tz="Europe/Berlin")
        offering = make_offering(coach)
        tenancy.activate(org.id, admin.user_id)
        booking_service.set_override(coach, (now + timedelta(days=5)).date(), [(10 * 60, 12 * 60)], coach)
        booking_service.add_time_off(coach, now + timedelta(days=10), now + timedelta(days=11), "Holiday", coach)
        slot = booking_service.available_slots(offering, now + timedelta(days=2), now + timedelta(days=3))[0]
        booking = booking_service.request_booking(offering, athlete, slot.starts_at, "", athlete)
        booking_service.regenerate_feed(athlete)
        # Spaces: a space with a member, a post (edited: a revision; mentioning: a mention), a comment,
        # a reaction and a flag.
        space = spaces_service.create_space(org, coach, f"Space {prefix}", "", "open")
        spaces_service.join(space, athlete)
        post = spaces_service.create_post(space, coach, "First post")
        spaces_service.edit_post(post, coach, f"First post, @{spaces_service.handle_of(athlete.user.display_name)}")
        spaces_service.add_comment(post, athlete, "A comment")
        spaces_service.toggle_reaction(post, athlete, "like")
        spaces_service.flag(post, athlete, "Testing flags")
        # Media rows written directly: these tests are about the database, not storage.
        item = media_row(org.id, coach, "Match", filename="match.mp4", duration_ms=60_000)
        db.session.flush()
        db.session.add(MediaComment(tenant_id=org.id, media_id=item.id, author_membership_id=athlete.id,
                                    at_ms=83_000, body="Look here"))
        db.session.add(PostAttachment(tenant_id=org.id, post_id=post.id, media_id=item.id, position=0))
        # Chat: a direct conversation with a message (read state and an attachment come with it).
        conversation = chat_service.direct_with(org, coach, athlete)
        message = chat_service.send(conversation, coach, "See you at six", attachments=[item])
        chat_service.mark_read(conversation, athlete, message.seq)
        # Notifications: one for the athlete, and a preference.
        notification_service.notify(athlete, "comment", dedupe_key=f"rls-{prefix}", title="Test", url="/")
        notification_service.set_preference(athlete, "mention", "in_app")
        # Payments: a pack bought and used, a plan subscribed with space access, earnings, a payout, a receipt.
        seed_payment_rows(org, coach, athlete, offering, space, booking)
        # Athlete development: a framework, a signed record of the booking, goals, habits, readiness, a program
        # assigned and logged, a note, the timeline, a report and a digest.
        seed_progress_rows(org, coach, athlete, booking, item, label=prefix)
        # Privacy: an organization export.
        db.session.add(OrgExport(tenant_id=org.id, requested_by_membership_id=admin.id))
        # Calendars: a connection with a calendar, busy time read from it, a pushed event, a manage link, a
        # recurring series and a waitlist place.
        seed_calendar_rows(org, coach, athlete, offering, booking)
        # Session rooms: the booking's room, both stays, a consent and a recording.
        seed_room_rows(org, coach, athlete, booking)
        # Directory: the coach's profile and terms, a review with a flag and a vote, the coach's rating.
        seed_directory_rows(org, coach, athlete, booking, label=prefix)
        # One row in every other tenant table, so each is covered below.
        db.session.add(OutboxEvent(tenant_id=org.id, topic="test.later", payload={},
                                   available_at=datetime.now(timezone.utc) + timedelta(days=1)))
        db.session.add(ProcessedEvent(event_id=uuid.uuid4(), tenant_id=org.id, topic="test.done"))
        db.session.add(AuditEvent(tenant_id=org.id, action="test.seeded", details={}))
        db.session.add(IdempotencyKey(tenant_id=org.id, user_id=admin.user_id, key=f"k-{prefix}",
                                      fingerprint="0" * 64))
        db.session.commit()
    return a, b


def admin_user_id(conn, org) -> uuid.UUID:
    conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(org.id)])
    return conn.execute("SELECT user_id FROM memberships WHERE role = 'admin'").fetchone()[0]


def test_every_tenant_table_has_rls_enabled_forced_and_a_tenant_policy(owner_db):
    tables = tenant_tables(owner_db)
    assert {"memberships", "invitations", "outbox_events", "audit_events"} <= set(tables)
    for table in tables:
        enabled, forced = owner_db.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass", [table]
        ).fetchone()
        assert enabled, f"{table}: row level security is not enabled"
        assert forced, f"{table}: row level security is not forced"
        policies = owner_db.execute(
            "SELECT policyname, cmd, roles::text[], qual, with_check FROM pg_policies "
            "WHERE schemaname = 'public' AND tablename = %s", [table]
        ).fetchall()
        runtime = [p for p in policies if set(p[2]) & {"public", "coach_app"}]
        assert any(p[1] == "ALL" for p in runtime), f"{table}: no tenant policy covering every command"
        for name, cmd, roles, qual, with_check in runtime:
            if cmd == "INSERT":
                # Rows of no organization may be written (platform events), never read back.
                assert with_check and ("app.tenant_id" in with_check or with_check == "(tenant_id IS NULL)"), name
                continue
            for expr in (qual, with_check):
                if expr is None and cmd == "SELECT":
                    continue
                assert expr and ("app.tenant_id" in expr or "app.user_id" in expr) and "NULLIF" in expr.upper(), (
                    f"{table}.{name}: must compare with NULLIF(current_setting('app.tenant_id' or 'app.user_id'))")
        # Policies for any other role may only serve the owner's SECURITY DEFINER functions.
        for name, cmd, roles, qual, with_check in policies:
            assert set(roles) <= {"public", "coach_app", "coach_owner"}, f"{table}.{name}: policy for {roles}"


def test_policies_read_the_settings_once_per_statement_not_once_per_row(owner_db):
    """``(SELECT NULLIF(current_setting(...))::uuid)`` is an InitPlan, computed once; the bare call is parsed
    again for every row (a page that counts 5,000 members paid for 10,000 of them)."""
    policies = owner_db.execute(
        "SELECT tablename, policyname, coalesce(qual, '') || ' ' || coalesce(with_check, '') FROM pg_policies "
        "WHERE schemaname = 'public' AND (qual LIKE '%current_setting%' OR with_check LIKE '%current_setting%')"
    ).fetchall()
    assert len(policies) >= 30
    per_row = [(table, name) for table, name, expr in policies
               if expr.count("current_setting(") != expr.count("SELECT (NULLIF(current_setting(")]
    assert per_row == []
    plan = "\n".join(row[0] for row in owner_db.execute("EXPLAIN SELECT count(*) FROM memberships").fetchall())
    assert "InitPlan" in plan and "current_setting" not in plan.split("InitPlan")[0], plan


def test_functions_that_cross_organizations_are_definer_functions_with_an_empty_search_path(owner_db):
    rows = owner_db.execute(
        """SELECT p.proname, p.prosecdef, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND p.prosecdef"""
    ).fetchall()
    assert {r[0] for r in rows} >= {"outbox_claim", "outbox_ack", "outbox_fail"}
    for name, _, config in rows:
        assert config and 'search_path=""' in config, f"{name}: SECURITY DEFINER needs search_path=''"


def test_tenant_tables_are_unique_on_tenant_and_id(owner_db):
    for table in tenant_tables(owner_db):
        key = owner_db.execute(
            """SELECT a.attname FROM pg_constraint con JOIN pg_attribute a
               ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
               WHERE con.conrelid = %s::regclass AND con.contype = 'p'""", [table]).fetchone()[0]
        found = owner_db.execute(
            """SELECT 1 FROM pg_constraint con
               WHERE con.conrelid = %s::regclass AND con.contype IN ('u', 'p')
               AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM unnest(con.conkey) k
                    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k)
                   = (SELECT array_agg(x ORDER BY x) FROM unnest(ARRAY[%s::text, 'tenant_id']) x)""",
            [table, key],
        ).fetchone()
        assert found, f"{table}: needs UNIQUE (tenant_id, {key}) for composite foreign keys"


def test_app_role_owns_nothing_and_cannot_bypass_rls(owner_db):
    superuser, bypass, createrole = owner_db.execute(
        "SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = 'coach_app'"
    ).fetchone()
    assert not superuser and not bypass and not createrole
    owned = owner_db.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
           WHERE r.rolname = 'coach_app'"""
    ).fetchall()
    assert owned == []
    owned_functions = owner_db.execute(
        "SELECT p.proname FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner WHERE r.rolname = 'coach_app'"
    ).fetchall()
    assert owned_functions == []
    can_create = owner_db.execute("SELECT has_schema_privilege('coach_app', 'public', 'CREATE')").fetchone()[0]
    assert not can_create


def test_app_role_cannot_change_the_schema(app_db):
    with pytest.raises(errors.InsufficientPrivilege):
        app_db.execute("ALTER TABLE memberships DISABLE ROW LEVEL SECURITY")


def test_with_one_organization_set_the_other_is_invisible_in_every_tenant_table(two_orgs, app_db, owner_db):
    a, b = two_orgs
    tables = tenant_tables(owner_db)
    with app_db.transaction():
        app_db.execute(SET_TENANT, [str(a.id)])
        for table in tables:
            query = sql.SQL("SELECT tenant_id, count(*) FROM {} GROUP BY tenant_id").format(sql.Identifier(table))
            seen = dict(app_db.execute(query).fetchall())
            assert b.id not in seen, f"{table}: organization B's rows are visible to A"
            if table in ("memberships", "invitations"):
                assert seen.get(a.id, 0) > 0, f"{table}: A's own rows should be visible"


def test_updates_and_deletes_of_another_organizations_rows_change_nothing(two_orgs, app_db, owner_db):
    a, b = two_orgs
    for table in tenant_tables(owner_db):
        writable = owner_db.execute("SELECT has_table_privilege('coach_app', %s, 'UPDATE')", [table]).fetchone()[0]
        if not writable:  # append-only (the audit log): the runtime role may not even try
            with pytest.raises(errors.InsufficientPrivilege):
                with app_db.transaction():
                    app_db.execute(sql.SQL("DELETE FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)),
                                   [b.id])
            continue
        with app_db.transaction(force_rollback=True):
            app_db.execute(SET_TENANT, [str(a.id)])
            app_db.execute(SET_USER, [str(admin_user_id(owner_db, b))])
            updated = app_db.execute(
                sql.SQL("UPDATE {} SET tenant_id = tenant_id WHERE tenant_id = %s").format(sql.Identifier(table)),
                [b.id]).rowcount
            deleted = app_db.execute(
                sql.SQL("DELETE FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)), [b.id]).rowcount
            assert (updated, deleted) == (0, 0), f"{table}: A changed B's rows"
    # The owner is under FORCE ROW LEVEL SECURITY too: count B's rows as B.
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(b.id)])
    remaining = owner_db.execute("SELECT count(*) FROM memberships WHERE tenant_id = %s", [b.id]).fetchone()[0]
    assert remaining == 3


def test_inserting_a_row_for_another_organization_is_refused(two_orgs, app_db, owner_db):
    a, b = two_orgs
    a_admin = admin_user_id(owner_db, a)
    for table in tenant_tables(owner_db):
        with app_db.transaction():
            app_db.execute(SET_TENANT, [str(a.id)])
            app_db.execute(SET_USER, [str(a_admin)])
            own = app_db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
        assert own > 0, f"{table}: the two_orgs fixture must give A a row here"
        # Copy one of A's rows, relabelled as B's: the policy's WITH CHECK must refuse it.
        statement = sql.SQL(
            "INSERT INTO {t} SELECT (jsonb_populate_record(NULL::{t}, to_jsonb(r) || "
            "jsonb_build_object('tenant_id', %s::text, 'id', gen_random_uuid()::text))).* FROM {t} r LIMIT 1"
        ).format(t=sql.Identifier(table))
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            with app_db.transaction():
                app_db.execute(SET_TENANT, [str(a.id)])
                app_db.execute(SET_USER, [str(a_admin)])
                app_db.execute(statement, [str(b.id)])


def test_with_no_organization_set_nothing_is_visible(two_orgs, app_db, owner_db):
    for table in tenant_tables(owner_db):
        with app_db.transaction():
            count = app_db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            assert count == 0, f"{table}: rows visible without an organization"


def test_a_pooled_connection_used_for_a_then_b_sees_none_of_a(two_orgs, app_db, owner_db):
    a, b = two_orgs
    with app_db.transaction():
        app_db.execute(SET_TENANT, [str(a.id)])
        assert app_db.execute("SELECT count(*) FROM memberships").fetchone()[0] == 3
    # Same connection, next transaction: the local setting is gone ('' not NULL) ...
    with app_db.transaction():
        assert app_db.execute("SELECT current_setting('app.tenant_id', true)").fetchone()[0] in ("", None)
        assert app_db.execute("SELECT count(*) FROM memberships").fetchone()[0] == 0
    # ... and with B set, only B's rows.
    with app_db.transaction():
        app_db.execute(SET_TENANT, [str(b.id)])
        tenants = {r[0] for r in app_db.execute("SELECT DISTINCT tenant_id FROM memberships").fetchall()}
        assert tenants == {b.id}


def test_the_app_session_switches_organizations_without_leaking(two_orgs, app):
    """Through SQLAlchemy's pool and the after_begin hook, as requests and jobs use it."""
    a, b = two_orgs
    with app.app_context():  # a fresh context, as a request or job gets: no user, no organization yet
        tenancy.activate(a.id)
        assert {m.tenant_id for m in db.session.scalars(db.select(Membership))} == {a.id}
        db.session.commit()
        tenancy.activate(b.id)
        assert {m.tenant_id for m in db.session.scalars(db.select(Membership))} == {b.id}
        db.session.commit()
        tenancy.deactivate()
        assert db.session.scalars(db.select(Membership)).all() == []
        db.session.rollback()


def test_own_memberships_are_readable_across_organizations_but_not_writable(two_orgs, app_db, owner_db):
    a, b = two_orgs
    person_id = owner_db.execute("SELECT id FROM users WHERE email = 'a-coach@example.com'").fetchone()[0]
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(b.id)])
    owner_db.execute("INSERT INTO memberships (id, tenant_id, user_id, role) VALUES (%s, %s, %s, 'athlete')",
                     [uuid.uuid4(), b.id, person_id])
    with app_db.transaction(force_rollback=True):
        app_db.execute(SET_TENANT, [str(a.id)])
        app_db.execute(SET_USER, [str(person_id)])
        mine = app_db.execute("SELECT tenant_id FROM memberships WHERE user_id = %s", [person_id]).fetchall()
        assert {r[0] for r in mine} == {a.id, b.id}
        assert app_db.execute("UPDATE memberships SET role = 'admin' WHERE tenant_id = %s AND user_id = %s",
                              [b.id, person_id]).rowcount == 0
        assert app_db.execute("DELETE FROM memberships WHERE tenant_id = %s AND user_id = %s",
                              [b.id, person_id]).rowcount == 0
        others = app_db.execute("SELECT count(*) FROM memberships WHERE tenant_id = %s AND user_id <> %s",
                                [b.id, person_id]).fetchone()[0]
        assert others == 0


def test_rows_of_two_organizations_cannot_reference_each_other(two_orgs, owner_db):
    a, b = two_orgs
    b_admin = owner_db.execute(
        "SELECT set_config('app.tenant_id', %s, false), (SELECT id FROM memberships WHERE role = 'admin')",
        [str(b.id)]).fetchone()[1]
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(a.id)])
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        owner_db.execute(
            "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by_membership_id, expires_at)"
            " VALUES (%s, %s, 'x@example.com', 'coach', %s, %s, now() + interval '1 day')",
            [uuid.uuid4(), a.id, uuid.uuid4().hex, b_admin])
