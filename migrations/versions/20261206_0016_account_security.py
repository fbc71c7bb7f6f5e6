"""Account security, privacy and organization settings.

Accounts (global rows, like ``users`` and ``user_sessions``: a person is not an organization's): the TOTP
second factor on ``users`` (its secret sealed with the app's key, the last time step used so a code works
once), recovery codes (hashes only), passkeys (WebAuthn credentials), what each session proved (its second
factor, when its person last re-entered a password), a security log per person, email changes waiting for
confirmation (with an undo link for the old address), account exports, and the deletion of an account
(requested, due after a grace period, erased).

Organizations: their settings (locale, who may create spaces, public listing, a two-factor requirement, how
long chat and the audit trail are kept), their branding (an accent colour, a logo) and their closing (requested,
due after a grace period). An organization's export is a tenant table under forced RLS like every other.

Revision ID: 0016_account_security
Revises: 0015_progress
Created: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from rls import grant_dml, tenant_columns, tenant_table

revision = "0016_account_security"
down_revision = "0015_progress"
branch_labels = None
depends_on = None

EXPORT_STATUS = "status IN ('queued', 'running', 'ready', 'failed', 'expired')"


def _ts(name, nullable=True, default=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if default else None)


def _user_fk(table):
    return sa.Column("user_id", UUID(as_uuid=True),
                     sa.ForeignKey("users.id", ondelete="CASCADE", name=f"fk_{table}_user_id_users"), nullable=False)


def _export_columns():
    return [
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("progress", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("object_key", sa.String(300)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("error", sa.String(300)),
        _ts("created_at", nullable=False, default=True),
        _ts("started_at"),
        _ts("finished_at"),
        _ts("expires_at"),
        sa.CheckConstraint(EXPORT_STATUS, name="status_valid"),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="progress_range"),
    ]


def upgrade():
    # --- accounts ---------------------------------------------------------------------------------------
    op.add_column("users", sa.Column("totp_secret", sa.String(300)))
    op.add_column("users", _ts("totp_enabled_at"))
    op.add_column("users", sa.Column("totp_last_step", sa.BigInteger))
    op.add_column("users", sa.Column("platform_admin", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("users", _ts("password_changed_at"))
    op.add_column("users", _ts("deletion_requested_at"))
    op.add_column("users", _ts("deletion_due_at"))
    op.add_column("users", sa.Column("deletion_erase_content", sa.Boolean, nullable=False,
                                     server_default=sa.false()))
    op.add_column("users", _ts("erased_at"))
    op.create_index("ix_users_deletion_due_at", "users", ["deletion_due_at"],
                    postgresql_where=sa.text("deletion_due_at IS NOT NULL AND erased_at IS NULL"))

    op.add_column("user_sessions", sa.Column("second_factor", sa.String(16)))
    op.add_column("user_sessions", _ts("reauthenticated_at"))
    op.add_column("user_sessions", sa.Column("country", sa.String(2), nullable=False, server_default=""))
    op.create_check_constraint("second_factor_valid", "user_sessions",
                               "second_factor IN ('totp', 'recovery', 'passkey')")

    op.create_table(
        "recovery_codes",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        _user_fk("recovery_codes"),
        sa.Column("code_hash", sa.String(64), nullable=False),
        _ts("created_at", nullable=False, default=True),
        _ts("used_at"),
        sa.UniqueConstraint("user_id", "code_hash", name="uq_recovery_codes_user_id_code_hash"),
    )
    grant_dml("recovery_codes")

    op.create_table(
        "passkeys",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        _user_fk("passkeys"),
        sa.Column("credential_id", sa.LargeBinary, nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("sign_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("transports", sa.String(200), nullable=False, server_default=""),
        sa.Column("backed_up", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("name", sa.String(60), nullable=False),
        _ts("created_at", nullable=False, default=True),
        _ts("last_used_at"),
        sa.UniqueConstraint("credential_id", name="uq_passkeys_credential_id"),
        sa.CheckConstraint("char_length(btrim(name)) BETWEEN 1 AND 60", name="name_length"),
        sa.CheckConstraint("octet_length(credential_id) BETWEEN 16 AND 1023", name="credential_id_length"),
    )
    op.create_index("ix_passkeys_user_id", "passkeys", ["user_id"])
    grant_dml("passkeys")

    op.create_table(
        "security_events",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        _user_fk("security_events"),
        sa.Column("action", sa.String(40), nullable=False),
        _ts("created_at", nullable=False, default=True),
        sa.Column("ip", sa.String(64), nullable=False, server_default=""),
        sa.Column("user_agent", sa.String(200), nullable=False, server_default=""),
        sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index("ix_security_events_user_id_created_at", "security_events",
                    ["user_id", sa.text("created_at DESC"), sa.text("id DESC")])
    grant_dml("security_events")

    op.create_table(
        "email_changes",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        _user_fk("email_changes"),
        sa.Column("old_email", sa.String(254), nullable=False),
        sa.Column("new_email", sa.String(254), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("undo_token_hash", sa.String(64), unique=True),
        _ts("created_at", nullable=False, default=True),
        _ts("expires_at", nullable=False),
        _ts("confirmed_at"),
        _ts("undo_expires_at"),
        _ts("undone_at"),
    )
    op.create_index("ix_email_changes_user_id", "email_changes", ["user_id"])
    grant_dml("email_changes")

    op.create_table(
        "account_exports",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        _user_fk("account_exports"),
        *_export_columns(),
    )
    op.create_index("ix_account_exports_user_id_created_at", "account_exports",
                    ["user_id", sa.text("created_at DESC")])
    grant_dml("account_exports")

    # --- organizations ----------------------------------------------------------------------------------
    op.add_column("organizations", sa.Column("locale", sa.String(16), nullable=False, server_default="en"))
    op.add_column("organizations", sa.Column("space_creation", sa.String(16), nullable=False,
                                             server_default="leaders"))
    op.add_column("organizations", sa.Column("listed_publicly", sa.Boolean, nullable=False,
                                             server_default=sa.false()))
    op.add_column("organizations", sa.Column("require_two_factor", sa.Boolean, nullable=False,
                                             server_default=sa.false()))
    op.add_column("organizations", sa.Column("chat_retention_days", sa.Integer))
    op.add_column("organizations", sa.Column("audit_retention_days", sa.Integer))
    op.add_column("organizations", sa.Column("accent_color", sa.String(7)))
    op.add_column("organizations", sa.Column("logo_key", sa.String(300)))
    op.add_column("organizations", sa.Column("branding_version", sa.Integer, nullable=False, server_default="0"))
    op.add_column("organizations", _ts("closing_requested_at"))
    op.add_column("organizations", _ts("closing_due_at"))
    op.create_check_constraint("space_creation_valid", "organizations",
                               "space_creation IN ('admins', 'leaders', 'members')")
    op.create_check_constraint("accent_color_format", "organizations", "accent_color ~ '^#[0-9a-f]{6}$'")
    op.create_check_constraint("chat_retention_range", "organizations", "chat_retention_days BETWEEN 1 AND 3650")
    op.create_check_constraint("audit_retention_range", "organizations",
                               "audit_retention_days BETWEEN 30 AND 3650")
    # The cancellation policy new offerings start with (each offering keeps its own; the booking form's limits).
    op.add_column("organizations", sa.Column("default_cancellation_window_hours", sa.SmallInteger, nullable=False,
                                             server_default="24"))
    op.add_column("organizations", sa.Column("default_late_cancel_policy", sa.String(8), nullable=False,
                                             server_default="forfeit"))
    op.add_column("organizations", sa.Column("default_late_cancel_fee_percent", sa.SmallInteger, nullable=False,
                                             server_default="50"))
    op.create_check_constraint("default_cancellation_window_range", "organizations",
                               "default_cancellation_window_hours BETWEEN 0 AND 720")
    op.create_check_constraint("default_late_cancel_policy_valid", "organizations",
                               "default_late_cancel_policy IN ('forfeit', 'fee', 'refund')")
    op.create_check_constraint("default_late_cancel_fee_range", "organizations",
                               "default_late_cancel_fee_percent BETWEEN 0 AND 100")

    op.create_table(
        "org_exports",
        *tenant_columns("org_exports"),
        # The member who asked (cleared alone if they leave; the export stays the organization's).
        sa.Column("requested_by_membership_id", UUID(as_uuid=True)),
        *_export_columns(),
    )
    op.execute("ALTER TABLE org_exports ADD CONSTRAINT fk_org_exports_requested_by FOREIGN KEY "
               "(tenant_id, requested_by_membership_id) REFERENCES memberships (tenant_id, id) "
               "ON DELETE SET NULL (requested_by_membership_id)")
    op.create_index("ix_org_exports_tenant_id_created_at", "org_exports", ["tenant_id", sa.text("created_at DESC")])
    tenant_table("org_exports")

    # --- data retention (governance) -------------------------------------------------------------------------
    # The audit trail stays append-only for every role; deleting is allowed only inside audit_events_expire,
    # which deletes the active organization's events older than that organization's own audit_retention_days
    # (30 days at least, the check above), a batch at a time. The DELETE guard gets a WHEN clause for the
    # setting the function sets for its own statement; UPDATE keeps its unconditional guard. (The runtime role
    # has no DELETE grant on the table, so setting the variable itself opens nothing.)
    op.execute("DROP TRIGGER audit_events_no_update_delete ON audit_events")
    op.execute("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
               "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()")
    op.execute("CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events FOR EACH ROW "
               "WHEN (coalesce(current_setting('coach.audit_expiry', true), '') <> 'on') "
               "EXECUTE FUNCTION audit_events_append_only()")
    op.execute("""
        CREATE FUNCTION audit_events_expire(p_batch integer) RETURNS integer
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
        DECLARE
            v_tenant uuid := NULLIF(current_setting('app.tenant_id', true), '')::uuid;
            v_days integer;
            v_deleted integer;
        BEGIN
            SELECT audit_retention_days INTO v_days FROM public.organizations WHERE id = v_tenant;
            IF v_tenant IS NULL OR v_days IS NULL THEN
                RETURN 0;
            END IF;
            PERFORM set_config('coach.audit_expiry', 'on', true);
            DELETE FROM public.audit_events WHERE id IN (
                SELECT id FROM public.audit_events
                 WHERE tenant_id = v_tenant AND created_at < now() - make_interval(days => v_days)
                 ORDER BY created_at LIMIT least(greatest(p_batch, 1), 10000));
            GET DIAGNOSTICS v_deleted = ROW_COUNT;
            PERFORM set_config('coach.audit_expiry', '', true);
            RETURN v_deleted;
        END $$
    """)
    op.execute("REVOKE ALL ON FUNCTION audit_events_expire(integer) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION audit_events_expire(integer) TO coach_app")


def downgrade():
    op.execute("DROP FUNCTION audit_events_expire(integer)")
    op.execute("DROP TRIGGER audit_events_no_delete ON audit_events")
    op.execute("DROP TRIGGER audit_events_no_update ON audit_events")
    op.execute("CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events "
               "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()")
    op.drop_table("org_exports")
    for name in ("space_creation_valid", "accent_color_format", "chat_retention_range", "audit_retention_range",
                 "default_cancellation_window_range", "default_late_cancel_policy_valid",
                 "default_late_cancel_fee_range"):
        op.drop_constraint(name, "organizations", type_="check")
    for column in ("locale", "space_creation", "listed_publicly", "require_two_factor", "chat_retention_days",
                   "audit_retention_days", "accent_color", "logo_key", "branding_version", "closing_requested_at",
                   "closing_due_at", "default_cancellation_window_hours", "default_late_cancel_policy",
                   "default_late_cancel_fee_percent"):
        op.drop_column("organizations", column)
    for table in ("account_exports", "email_changes", "security_events", "passkeys", "recovery_codes"):
        op.drop_table(table)
    op.drop_constraint("second_factor_valid", "user_sessions", type_="check")
    for column in ("second_factor", "reauthenticated_at", "country"):
        op.drop_column("user_sessions", column)
    op.drop_index("ix_users_deletion_due_at", "users")
    for column in ("totp_secret", "totp_enabled_at", "totp_last_step", "platform_admin", "password_changed_at",
                   "deletion_requested_at", "deletion_due_at", "deletion_erase_content", "erased_at"):
        op.drop_column("users", column)
