"""Deleting accounts and closing organizations.

An organization whose closing is due is erased by ``erase_organization(id)``: a SECURITY DEFINER function (owned
by ``coach_owner``, ``search_path=''``, run by ``coach_app`` only) that deletes the organization's row, which
cascades through every tenant table's ``tenant_id`` foreign key, and then its audit trail (which has no foreign key,
so that it outlives deleted users). It refuses an organization whose closing nobody asked for, so the runtime
role cannot erase a live organization through it; that the grace period is over is the caller's check (the
application's clock, which the tests move).

Two append-only guards learn one exception: the ledger's and the audit trail's rows may be deleted once their
organization no longer exists (a ledger row goes with the organization's cascade; an audit row by the function
above). While the organization exists, nothing changes: both still refuse every UPDATE and DELETE, for every role.
The lock of a signed session record's children (0015) names its table by schema, with an empty search_path, so it
works inside that function too.

A person's erasure needs no function: it runs as the runtime role, acting for each of the person's organizations
in turn (their memberships are listed through the own-memberships policy).

Revision ID: 0017_erasure
Revises: 0016_account_security
Created: 2026-12-06
"""
from alembic import op

revision = "0017_erasure"
down_revision = "0016_account_security"
branch_labels = None
depends_on = None

APP_ROLE = "coach_app"

_GONE = "NOT EXISTS (SELECT 1 FROM public.organizations o WHERE o.id = OLD.tenant_id)"


def _guard(name: str, message: str, exception: str = "") -> str:
    return f"""
        CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
        BEGIN
            {exception}
            RAISE EXCEPTION {message}
                USING ERRCODE = 'insufficient_privilege';
        END $$
    """


_ALLOW = (f"IF TG_OP = 'DELETE' AND OLD.tenant_id IS NOT NULL AND {_GONE} THEN RETURN OLD; END IF;")
_AUDIT_MESSAGE = "'audit_events is append-only: % is not allowed', TG_OP"
_LEDGER_MESSAGE = "'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME"


def _children_lock(qualified: bool) -> str:
    # 0015's lock of a signed record's levels and media, as it was (``qualified`` False) or with its table named
    # by schema and an empty search_path, so it also works when fired inside ``erase_organization``.
    table, setting = ("public.session_records", "SET search_path = '' ") if qualified else ("session_records", "")
    return f"""
        CREATE OR REPLACE FUNCTION session_record_children_lock() RETURNS trigger LANGUAGE plpgsql {setting}AS $$
        DECLARE
            v_record uuid;
            v_tenant uuid;
        BEGIN
            IF TG_OP = 'INSERT' THEN v_record := NEW.record_id; v_tenant := NEW.tenant_id;
            ELSE v_record := OLD.record_id; v_tenant := OLD.tenant_id; END IF;
            -- A record being deleted (with its booking or organization) is gone already: its rows may go.
            IF EXISTS (SELECT 1 FROM {table} r WHERE r.tenant_id = v_tenant AND r.id = v_record
                       AND r.status = 'signed') THEN
                RAISE EXCEPTION 'session record % is signed off and locked', v_record
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'session_record_locked';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END $$
    """


def upgrade():
    # A closed organization's ledger and audit rows may go once the organization itself is gone.
    op.execute(_guard("audit_events_append_only", _AUDIT_MESSAGE, _ALLOW))
    op.execute(_guard("ledger_append_only", _LEDGER_MESSAGE, _ALLOW))
    op.execute(_children_lock(qualified=True))
    op.execute("""
        CREATE FUNCTION erase_organization(p_tenant uuid) RETURNS boolean
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
        DECLARE
            v_previous text := current_setting('app.tenant_id', true);
        BEGIN
            PERFORM 1 FROM public.organizations
             WHERE id = p_tenant AND closing_due_at IS NOT NULL FOR UPDATE;
            IF NOT FOUND THEN
                RETURN false;
            END IF;
            -- Acting for the organization (for this transaction), the tenant policies let these deletes see its
            -- rows. Signed session records first: their children's lock lets them go once the record is gone.
            PERFORM set_config('app.tenant_id', p_tenant::text, true);
            DELETE FROM public.session_records WHERE tenant_id = p_tenant;
            DELETE FROM public.organizations WHERE id = p_tenant;
            DELETE FROM public.audit_events WHERE tenant_id = p_tenant;
            PERFORM set_config('app.tenant_id', coalesce(v_previous, ''), true);
            RETURN true;
        END $$
    """)
    op.execute("REVOKE ALL ON FUNCTION erase_organization(uuid) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION erase_organization(uuid) TO {APP_ROLE}")


def downgrade():
    op.execute("DROP FUNCTION erase_organization(uuid)")
    op.execute(_children_lock(qualified=False))
    op.execute(_guard("audit_events_append_only", _AUDIT_MESSAGE))
    op.execute(_guard("ledger_append_only", _LEDGER_MESSAGE))
