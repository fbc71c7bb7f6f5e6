"""Payments: billing settings, products (credit packs and plans), payments, credit grants and their uses,
subscriptions, the double-entry ledger, coach earnings held in escrow, payouts, invoices with gapless
numbers, and the provider's raw webhook events. Bookings gain the ``held`` status (a slot kept while its
checkout is open); offering prices move to each currency's own minor unit.

The ledger is append-only (no UPDATE or DELETE for anyone, a trigger like the audit log's) and every
transaction balances per currency: a deferred constraint trigger sums its entries at commit, so a set of
entries that does not add up to zero never commits. A credit cannot be spent twice: ``credit_grants``
keeps ``credits_remaining`` between 0 and the total (a CHECK), and spending is one conditional UPDATE on
that row, so concurrent spenders queue on its lock and the ones past zero change nothing.

Invoice numbers are gapless per organization: taken from ``billing_settings.next_invoice_number`` by an
UPDATE that holds the row's lock until the transaction ends, so a rolled-back invoice gives its number back.

``payment_events`` are stored as they arrive, keyed by the provider's event id (a replay finds the row);
an event whose organization cannot be told is kept with no organization (written, never read back by the
runtime role, like a failed login's audit row).

Revision ID: 0014_payments
Revises: 0013_rls_settings_once
Created: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from rls import APP_ROLE, allow_platform_inserts, tenant_columns, tenant_fk, tenant_table

revision = "0014_payments"
down_revision = "0013_rls_settings_once"
branch_labels = None
depends_on = None

OLD_LIVE = "('requested', 'confirmed', 'active')"
NEW_LIVE = "('held', 'requested', 'confirmed', 'active')"
# Currencies with no minor unit among those Babel knows (ISO 4217 exponent 0): their prices were stored
# multiplied by 100 and are divided back. (Three-decimal currencies were stored x100 too and gain a digit.)
ZERO_DECIMAL = ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                "VUV", "XAF", "XOF", "XPF")
THREE_DECIMAL = ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")


def _ts(name, nullable=True, default=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if default else None)


def _money(name="amount_minor"):
    return sa.Column(name, sa.BigInteger, nullable=False)


def _currency():
    return sa.Column("currency", sa.String(3), nullable=False)


def _member(column, nullable=False):
    return sa.Column(column, UUID(as_uuid=True), nullable=nullable)


def upgrade():
    # --- bookings: the held status, and prices in each currency's own minor unit ---------------------
    op.execute("ALTER TABLE bookings DROP CONSTRAINT ck_bookings_status_valid")
    op.create_check_constraint("status_valid", "bookings",
                               "status IN ('held', 'requested', 'confirmed', 'active', 'declined', 'expired', "
                               "'cancelled', 'ended', 'no_show')")
    op.drop_index("uq_bookings_live_athlete", "bookings")
    op.create_index("uq_bookings_live_athlete", "bookings", ["tenant_id", "session_id", "athlete_membership_id"],
                    unique=True, postgresql_where=sa.text(f"status IN {NEW_LIVE}"))
    op.drop_index("ix_bookings_due", "bookings")
    op.create_index("ix_bookings_due", "bookings", ["starts_at"], postgresql_where=sa.text(f"status IN {NEW_LIVE}"))
    op.drop_index("ix_bookings_requested_expiry", "bookings")
    op.create_index("ix_bookings_requested_expiry", "bookings", ["expires_at"],
                    postgresql_where=sa.text("status IN ('held', 'requested')"))
    op.execute("""
        CREATE OR REPLACE FUNCTION bookings_due_tenants(p_now timestamptz, p_grace interval) RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.bookings
            WHERE (status IN ('held', 'requested') AND expires_at <= p_now)
               OR (status = 'confirmed' AND starts_at <= p_now)
               OR (status = 'active' AND ends_at + p_grace <= p_now)
               OR (status = 'confirmed' AND reminder_24h_sent_at IS NULL
                   AND confirmed_at <= starts_at - interval '24 hours'
                   AND p_now >= starts_at - interval '24 hours' AND p_now < starts_at - interval '1 hour')
               OR (status = 'confirmed' AND reminder_1h_sent_at IS NULL
                   AND confirmed_at <= starts_at - interval '1 hour'
                   AND p_now >= starts_at - interval '1 hour' AND p_now < starts_at)
        $$
    """)
    zero = ", ".join(f"'{c}'" for c in ZERO_DECIMAL)
    three = ", ".join(f"'{c}'" for c in THREE_DECIMAL)
    op.execute(f"UPDATE offerings SET price_minor = price_minor / 100 WHERE currency IN ({zero})")
    op.execute(f"UPDATE offerings SET price_minor = LEAST(price_minor * 10, 100000000) WHERE currency IN ({three})")
    # What a late cancellation (or a no-show) costs: the whole session (forfeit), a share of it (fee), or
    # nothing (refund: this offering always gives back).
    op.add_column("offerings", sa.Column("late_cancel_policy", sa.String(8), nullable=False,
                                         server_default="forfeit"))
    op.add_column("offerings", sa.Column("late_cancel_fee_percent", sa.SmallInteger, nullable=False,
                                         server_default="50"))
    op.create_check_constraint("late_cancel_policy_valid", "offerings",
                               "late_cancel_policy IN ('forfeit', 'fee', 'refund')")
    op.create_check_constraint("late_cancel_fee_range", "offerings", "late_cancel_fee_percent BETWEEN 0 AND 100")

    # Emails may carry files (a receipt's PDF): [{filename, content_type, data (base64)}], cleared once sent.
    op.add_column("emails", sa.Column("attachments", JSONB))

    # --- settings ------------------------------------------------------------------------------------
    op.create_table(
        "billing_settings",
        *tenant_columns("billing_settings"),
        _currency(),
        sa.Column("commission_bps", sa.Integer, nullable=False, server_default="1000"),
        sa.Column("tax_rate_bps", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tax_label", sa.String(40), nullable=False, server_default="VAT"),
        sa.Column("seller_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("seller_address", sa.Text, nullable=False, server_default=""),
        sa.Column("seller_tax_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("dispute_window_hours", sa.Integer, nullable=False, server_default="48"),
        sa.Column("grace_days", sa.Integer, nullable=False, server_default="7"),
        sa.Column("coaches_may_refund", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("next_invoice_number", sa.Integer, nullable=False, server_default="1"),
        _ts("updated_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", name="uq_billing_settings_tenant"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        sa.CheckConstraint("commission_bps BETWEEN 0 AND 10000", name="commission_range"),
        sa.CheckConstraint("tax_rate_bps BETWEEN 0 AND 5000", name="tax_rate_range"),
        sa.CheckConstraint("dispute_window_hours BETWEEN 0 AND 2160", name="dispute_window_range"),
        sa.CheckConstraint("grace_days BETWEEN 0 AND 60", name="grace_range"),
        sa.CheckConstraint("next_invoice_number >= 1", name="invoice_number_positive"),
        sa.CheckConstraint("char_length(seller_address) <= 1000", name="seller_address_length"),
    )
    tenant_table("billing_settings")

    # --- products: credit packs and subscription plans ------------------------------------------------
    op.create_table(
        "products",
        *tenant_columns("products"),
        _member("coach_membership_id"),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("price_minor", sa.BigInteger, nullable=False),
        _currency(),
        sa.Column("credits", sa.Integer, nullable=False),
        sa.Column("validity_days", sa.Integer),
        sa.Column("weekly_limit", sa.SmallInteger),
        sa.Column("interval", sa.String(8)),
        sa.Column("rollover", sa.Boolean, nullable=False, server_default=sa.false()),
        _ts("archived_at"),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["coach_membership_id"], "memberships", "fk_products_coach"),
        sa.CheckConstraint("kind IN ('pack', 'plan')", name="kind_valid"),
        sa.CheckConstraint("char_length(btrim(title)) BETWEEN 1 AND 120", name="title_length"),
        sa.CheckConstraint("char_length(description) <= 2000", name="description_length"),
        sa.CheckConstraint("price_minor BETWEEN 1 AND 100000000", name="price_range"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        sa.CheckConstraint("credits BETWEEN 0 AND 1000", name="credits_range"),
        sa.CheckConstraint("weekly_limit IS NULL OR weekly_limit BETWEEN 1 AND 50", name="weekly_limit_range"),
        sa.CheckConstraint(
            "(kind = 'pack' AND interval IS NULL AND credits >= 1 AND validity_days BETWEEN 1 AND 1095)"
            " OR (kind = 'plan' AND interval IN ('month', 'year') AND validity_days IS NULL)",
            name="kind_shape"),
    )
    op.create_index("ix_products_coach", "products", ["tenant_id", "coach_membership_id"])
    tenant_table("products")

    op.create_table(
        "product_offerings",
        *tenant_columns("product_offerings"),
        sa.Column("product_id", UUID(as_uuid=True), nullable=False),
        sa.Column("offering_id", UUID(as_uuid=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "product_id", "offering_id", name="uq_product_offerings_pair"),
        tenant_fk(["product_id"], "products", "fk_product_offerings_product"),
        tenant_fk(["offering_id"], "offerings", "fk_product_offerings_offering"),
    )
    tenant_table("product_offerings")

    op.create_table(
        "product_spaces",
        *tenant_columns("product_spaces"),
        sa.Column("product_id", UUID(as_uuid=True), nullable=False),
        sa.Column("space_id", UUID(as_uuid=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "product_id", "space_id", name="uq_product_spaces_pair"),
        tenant_fk(["product_id"], "products", "fk_product_spaces_product"),
        tenant_fk(["space_id"], "spaces", "fk_product_spaces_space"),
    )
    tenant_table("product_spaces")

    # --- subscriptions --------------------------------------------------------------------------------
    op.create_table(
        "subscriptions",
        *tenant_columns("subscriptions"),
        _member("athlete_membership_id"),
        sa.Column("product_id", UUID(as_uuid=True), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("provider_subscription_id", sa.String(255)),
        sa.Column("provider_customer_id", sa.String(255)),
        _ts("current_period_start"),
        _ts("current_period_end"),
        sa.Column("cancel_at_period_end", sa.Boolean, nullable=False, server_default=sa.false()),
        _ts("grace_until"),
        _ts("created_at", nullable=False, default=True),
        _ts("ended_at"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_subscriptions_athlete"),
        tenant_fk(["product_id"], "products", "fk_subscriptions_product", ondelete="NO ACTION"),
        sa.UniqueConstraint("provider_subscription_id", name="uq_subscriptions_provider_id"),
        sa.CheckConstraint("status IN ('incomplete', 'active', 'past_due', 'ended')", name="status_valid"),
    )
    op.create_index("ix_subscriptions_athlete", "subscriptions", ["tenant_id", "athlete_membership_id"])
    op.create_index("ix_subscriptions_grace", "subscriptions", ["grace_until"],
                    postgresql_where=sa.text("status = 'past_due'"))
    tenant_table("subscriptions")

    op.create_table(
        "subscription_space_grants",
        *tenant_columns("subscription_space_grants"),
        sa.Column("subscription_id", UUID(as_uuid=True), nullable=False),
        sa.Column("space_id", UUID(as_uuid=True), nullable=False),
        # Whether the subscription made the member a member of the space (and so takes it away at the end).
        sa.Column("added_member", sa.Boolean, nullable=False),
        _ts("created_at", nullable=False, default=True),
        _ts("revoked_at"),
        tenant_fk(["subscription_id"], "subscriptions", "fk_subscription_space_grants_subscription"),
        tenant_fk(["space_id"], "spaces", "fk_subscription_space_grants_space"),
        sa.UniqueConstraint("tenant_id", "subscription_id", "space_id", name="uq_subscription_space_grants"),
    )
    tenant_table("subscription_space_grants")

    # --- payments -------------------------------------------------------------------------------------
    op.create_table(
        "payments",
        *tenant_columns("payments"),
        _member("athlete_membership_id"),
        _member("coach_membership_id", nullable=True),
        sa.Column("purpose", sa.String(8), nullable=False),
        sa.Column("product_id", UUID(as_uuid=True)),
        sa.Column("booking_id", UUID(as_uuid=True)),
        sa.Column("subscription_id", UUID(as_uuid=True)),
        _money(),
        _currency(),
        sa.Column("tax_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("disputed_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("provider_checkout_id", sa.String(255)),
        sa.Column("provider_payment_id", sa.String(255)),
        sa.Column("provider_invoice_id", sa.String(255)),
        sa.Column("reference", sa.String(120), nullable=False, server_default=""),
        sa.Column("failure_reason", sa.String(300), nullable=False, server_default=""),
        _member("recorded_by_membership_id", nullable=True),
        _ts("created_at", nullable=False, default=True),
        _ts("paid_at"),
        _ts("expires_at"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_payments_athlete", ondelete="NO ACTION"),
        tenant_fk(["coach_membership_id"], "memberships", "fk_payments_coach", ondelete="NO ACTION"),
        tenant_fk(["product_id"], "products", "fk_payments_product", ondelete="NO ACTION"),
        tenant_fk(["booking_id"], "bookings", "fk_payments_booking", ondelete="NO ACTION"),
        tenant_fk(["subscription_id"], "subscriptions", "fk_payments_subscription", ondelete="NO ACTION"),
        tenant_fk(["recorded_by_membership_id"], "memberships", "fk_payments_recorded_by",
                  ondelete="SET NULL (recorded_by_membership_id)"),
        sa.UniqueConstraint("provider_checkout_id", name="uq_payments_provider_checkout"),
        sa.UniqueConstraint("provider_invoice_id", name="uq_payments_provider_invoice"),
        sa.CheckConstraint("purpose IN ('session', 'pack', 'plan')", name="purpose_valid"),
        sa.CheckConstraint("method IN ('card', 'manual')", name="method_valid"),
        sa.CheckConstraint("status IN ('pending', 'paid', 'failed', 'expired', 'cancelled')", name="status_valid"),
        sa.CheckConstraint("amount_minor BETWEEN 0 AND 100000000", name="amount_range"),
        sa.CheckConstraint("tax_minor BETWEEN 0 AND amount_minor", name="tax_within_amount"),
        sa.CheckConstraint("refunded_minor BETWEEN 0 AND amount_minor", name="refund_within_amount"),
        sa.CheckConstraint("disputed_minor BETWEEN 0 AND amount_minor", name="dispute_within_amount"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        sa.CheckConstraint("(purpose = 'session') = (booking_id IS NOT NULL)", name="session_has_booking"),
        sa.CheckConstraint("purpose = 'session' OR product_id IS NOT NULL", name="product_purchase_has_product"),
        sa.CheckConstraint("method <> 'manual' OR char_length(btrim(reference)) >= 1", name="manual_has_reference"),
    )
    op.create_index("ix_payments_created", "payments", ["tenant_id", sa.text("created_at DESC"), "id"])
    op.create_index("ix_payments_athlete", "payments", ["tenant_id", "athlete_membership_id", "created_at"])
    op.create_index("ix_payments_booking", "payments", ["tenant_id", "booking_id"])
    op.create_index("ix_payments_pending_expiry", "payments", ["expires_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    tenant_table("payments")

    # --- credits --------------------------------------------------------------------------------------
    op.create_table(
        "credit_grants",
        *tenant_columns("credit_grants"),
        _member("athlete_membership_id"),
        sa.Column("product_id", UUID(as_uuid=True), nullable=False),
        sa.Column("payment_id", UUID(as_uuid=True)),
        sa.Column("subscription_id", UUID(as_uuid=True)),
        sa.Column("credits_total", sa.Integer, nullable=False),
        sa.Column("credits_remaining", sa.Integer, nullable=False),
        # What one credit is worth (the price paid over the credits, in minor units; the last credit takes the
        # remainder), so a session booked with it earns the coach a share of real money.
        sa.Column("unit_value_minor", sa.BigInteger, nullable=False, server_default="0"),
        _currency(),
        sa.Column("weekly_limit", sa.SmallInteger),
        _ts("expires_at"),
        _ts("revoked_at"),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_credit_grants_athlete", ondelete="NO ACTION"),
        tenant_fk(["product_id"], "products", "fk_credit_grants_product", ondelete="NO ACTION"),
        tenant_fk(["payment_id"], "payments", "fk_credit_grants_payment", ondelete="NO ACTION"),
        tenant_fk(["subscription_id"], "subscriptions", "fk_credit_grants_subscription", ondelete="NO ACTION"),
        sa.CheckConstraint("credits_total BETWEEN 0 AND 10000", name="total_range"),
        sa.CheckConstraint("credits_remaining BETWEEN 0 AND credits_total", name="remaining_within_total"),
        sa.CheckConstraint("unit_value_minor >= 0", name="unit_value_positive"),
    )
    op.create_index("ix_credit_grants_athlete", "credit_grants", ["tenant_id", "athlete_membership_id"])
    op.create_index("ix_credit_grants_expiry", "credit_grants", ["expires_at"],
                    postgresql_where=sa.text("credits_remaining > 0 AND revoked_at IS NULL"))
    # One grant per paid purchase: a redelivered webhook cannot grant the pack twice.
    op.create_index("uq_credit_grants_payment", "credit_grants", ["tenant_id", "payment_id"], unique=True,
                    postgresql_where=sa.text("payment_id IS NOT NULL"))
    tenant_table("credit_grants")

    op.create_table(
        "credit_uses",
        *tenant_columns("credit_uses"),
        sa.Column("grant_id", UUID(as_uuid=True), nullable=False),
        sa.Column("booking_id", UUID(as_uuid=True), nullable=False),
        sa.Column("week_start", sa.Date, nullable=False),
        _ts("used_at", nullable=False, default=True),
        _ts("returned_at"),
        tenant_fk(["grant_id"], "credit_grants", "fk_credit_uses_grant", ondelete="NO ACTION"),
        tenant_fk(["booking_id"], "bookings", "fk_credit_uses_booking", ondelete="NO ACTION"),
        sa.UniqueConstraint("tenant_id", "booking_id", name="uq_credit_uses_booking"),
    )
    op.create_index("ix_credit_uses_grant_week", "credit_uses", ["tenant_id", "grant_id", "week_start"])
    tenant_table("credit_uses")

    # --- the ledger -----------------------------------------------------------------------------------
    op.create_table(
        "ledger_transactions",
        *tenant_columns("ledger_transactions"),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("memo", sa.String(300), nullable=False, server_default=""),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("payment_id", UUID(as_uuid=True)),
        sa.Column("booking_id", UUID(as_uuid=True)),
        _member("actor_membership_id", nullable=True),
        _ts("created_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_ledger_transactions_key"),
    )
    op.create_index("ix_ledger_transactions_payment", "ledger_transactions", ["tenant_id", "payment_id"])
    op.create_index("ix_ledger_transactions_booking", "ledger_transactions", ["tenant_id", "booking_id"])
    op.create_table(
        "ledger_entries",
        *tenant_columns("ledger_entries"),
        sa.Column("transaction_id", UUID(as_uuid=True), nullable=False),
        sa.Column("account", sa.String(40), nullable=False),
        sa.Column("ref_id", UUID(as_uuid=True)),
        # An ISO currency, or CREDIT for session credits.
        sa.Column("unit", sa.String(6), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["transaction_id"], "ledger_transactions", "fk_ledger_entries_transaction"),
        sa.CheckConstraint("amount <> 0", name="amount_nonzero"),
        sa.CheckConstraint("unit ~ '^([A-Z]{3}|CREDIT)$'", name="unit_format"),
    )
    op.create_index("ix_ledger_entries_account", "ledger_entries", ["tenant_id", "account", "ref_id", "unit"])
    op.create_index("ix_ledger_entries_transaction", "ledger_entries", ["tenant_id", "transaction_id"])
    for table in ("ledger_transactions", "ledger_entries"):
        tenant_table(table)
        op.execute(f"REVOKE UPDATE, DELETE ON {table} FROM {APP_ROLE}")
    op.execute("""
        CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
        BEGIN
            RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    for table in ("ledger_transactions", "ledger_entries"):
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()")
    # At commit, every transaction that gained entries sums to zero in each unit.
    op.execute("""
        CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
        DECLARE
            off record;
        BEGIN
            SELECT unit, sum(amount) AS total INTO off FROM public.ledger_entries
            WHERE tenant_id = NEW.tenant_id AND transaction_id = NEW.transaction_id
            GROUP BY unit HAVING sum(amount) <> 0 LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'ledger transaction % does not balance: % % off', NEW.transaction_id, off.total,
                    off.unit USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$
    """)
    op.execute("CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()")

    # --- earnings (escrow) and payouts ----------------------------------------------------------------
    op.create_table(
        "payouts",
        *tenant_columns("payouts"),
        _member("coach_membership_id"),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        _money(),
        _currency(),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(120), nullable=False, server_default=""),
        _member("recorded_by_membership_id", nullable=True),
        _ts("paid_at", nullable=False, default=True),
        tenant_fk(["coach_membership_id"], "memberships", "fk_payouts_coach", ondelete="NO ACTION"),
        tenant_fk(["recorded_by_membership_id"], "memberships", "fk_payouts_recorded_by",
                  ondelete="SET NULL (recorded_by_membership_id)"),
        sa.CheckConstraint("period_start <= period_end", name="period_order"),
        sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
        sa.CheckConstraint("method IN ('manual', 'stripe_connect')", name="method_valid"),
    )
    tenant_table("payouts")

    op.create_table(
        "earnings",
        *tenant_columns("earnings"),
        sa.Column("booking_id", UUID(as_uuid=True), nullable=False),
        _member("coach_membership_id"),
        sa.Column("payment_id", UUID(as_uuid=True)),
        sa.Column("grant_id", UUID(as_uuid=True)),
        sa.Column("gross_minor", sa.BigInteger, nullable=False),
        sa.Column("commission_minor", sa.BigInteger, nullable=False),
        sa.Column("net_minor", sa.BigInteger, nullable=False),
        sa.Column("reversed_minor", sa.BigInteger, nullable=False, server_default="0"),
        _currency(),
        sa.Column("status", sa.String(10), nullable=False),
        _ts("available_at", nullable=False),
        sa.Column("payout_id", UUID(as_uuid=True)),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["booking_id"], "bookings", "fk_earnings_booking", ondelete="NO ACTION"),
        tenant_fk(["coach_membership_id"], "memberships", "fk_earnings_coach", ondelete="NO ACTION"),
        tenant_fk(["payment_id"], "payments", "fk_earnings_payment", ondelete="NO ACTION"),
        tenant_fk(["grant_id"], "credit_grants", "fk_earnings_grant", ondelete="NO ACTION"),
        tenant_fk(["payout_id"], "payouts", "fk_earnings_payout", ondelete="NO ACTION"),
        sa.UniqueConstraint("tenant_id", "booking_id", name="uq_earnings_booking"),
        sa.CheckConstraint("status IN ('pending', 'available', 'reversed', 'paid')", name="status_valid"),
        sa.CheckConstraint("gross_minor >= 0 AND commission_minor >= 0 AND net_minor = gross_minor - commission_minor",
                           name="amounts_add_up"),
        sa.CheckConstraint("reversed_minor BETWEEN 0 AND net_minor", name="reversal_within_net"),
    )
    op.create_index("ix_earnings_coach", "earnings", ["tenant_id", "coach_membership_id", "created_at"])
    op.create_index("ix_earnings_due", "earnings", ["available_at"], postgresql_where=sa.text("status = 'pending'"))
    tenant_table("earnings")

    # --- invoices and receipts ------------------------------------------------------------------------
    op.create_table(
        "invoices",
        *tenant_columns("invoices"),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("payment_id", UUID(as_uuid=True), nullable=False),
        sa.Column("buyer_name", sa.String(200), nullable=False),
        sa.Column("buyer_email", sa.String(254), nullable=False),
        sa.Column("seller_name", sa.String(200), nullable=False),
        sa.Column("seller_address", sa.Text, nullable=False, server_default=""),
        sa.Column("seller_tax_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("lines", JSONB, nullable=False),
        sa.Column("subtotal_minor", sa.BigInteger, nullable=False),
        sa.Column("tax_minor", sa.BigInteger, nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("tax_rate_bps", sa.Integer, nullable=False),
        sa.Column("tax_label", sa.String(40), nullable=False),
        _currency(),
        _ts("issued_at", nullable=False, default=True),
        tenant_fk(["payment_id"], "payments", "fk_invoices_payment", ondelete="NO ACTION"),
        sa.UniqueConstraint("tenant_id", "number", name="uq_invoices_number"),
        sa.CheckConstraint("kind IN ('receipt', 'credit_note')", name="kind_valid"),
        sa.CheckConstraint("number >= 1", name="number_positive"),
        sa.CheckConstraint("subtotal_minor + tax_minor = total_minor", name="totals_add_up"),
    )
    op.create_index("ix_invoices_payment", "invoices", ["tenant_id", "payment_id"])
    tenant_table("invoices")

    # --- the provider's webhook events, stored raw ----------------------------------------------------
    op.create_table(
        "payment_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE")),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        _ts("received_at", nullable=False, default=True),
        _ts("processed_at"),
        sa.Column("outcome", sa.String(300), nullable=False, server_default=""),
        sa.UniqueConstraint("tenant_id", "id", name="uq_payment_events_tenant_id_id"),
    )
    op.create_index("ix_payment_events_tenant", "payment_events", ["tenant_id", sa.text("received_at DESC")])
    tenant_table("payment_events")
    allow_platform_inserts("payment_events")


    # The sweeps run for no organization: these functions (the owner's, reading under a policy for the owner
    # only) say which organizations have something due; the sweep then acts inside each under its policy.
    due = {
        "earnings": "status = 'pending' AND available_at <= p_now",
        "credit_grants": "credits_remaining > 0 AND revoked_at IS NULL AND expires_at <= p_now",
        "payments": "status IN ('pending', 'failed') AND method = 'card' AND expires_at <= p_now",
        "subscriptions": "(status = 'past_due' AND grace_until <= p_now) OR (status IN ('active', 'past_due') "
                         "AND current_period_end <= p_now AND (cancel_at_period_end "
                         "OR provider_subscription_id IS NULL))",
    }
    for table, condition in due.items():
        op.execute(f"CREATE POLICY sweep_function_read ON {table} FOR SELECT TO CURRENT_USER USING (true)")
        op.execute(f"""
            CREATE FUNCTION {table}_due_tenants(p_now timestamptz) RETURNS SETOF uuid
            LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
                SELECT DISTINCT tenant_id FROM public.{table} WHERE {condition}
            $$
        """)
        op.execute(f"GRANT EXECUTE ON FUNCTION {table}_due_tenants(timestamptz) TO {APP_ROLE}")


def downgrade():
    for table in ("earnings", "credit_grants", "payments", "subscriptions"):
        op.execute(f"DROP FUNCTION IF EXISTS {table}_due_tenants(timestamptz)")
    for table in ("payment_events", "invoices", "earnings", "payouts", "ledger_entries", "ledger_transactions",
                  "credit_uses", "credit_grants", "payments", "subscription_space_grants", "subscriptions",
                  "product_spaces", "product_offerings", "products", "billing_settings"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS ledger_check_balanced()")
    op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
    op.drop_column("emails", "attachments")
    op.drop_constraint("ck_offerings_late_cancel_fee_range", "offerings")
    op.drop_constraint("ck_offerings_late_cancel_policy_valid", "offerings")
    op.drop_column("offerings", "late_cancel_fee_percent")
    op.drop_column("offerings", "late_cancel_policy")
    op.execute("DELETE FROM bookings WHERE status = 'held'")
    op.drop_index("ix_bookings_requested_expiry", "bookings")
    op.create_index("ix_bookings_requested_expiry", "bookings", ["expires_at"],
                    postgresql_where=sa.text("status = 'requested'"))
    op.drop_index("ix_bookings_due", "bookings")
    op.create_index("ix_bookings_due", "bookings", ["starts_at"], postgresql_where=sa.text(f"status IN {OLD_LIVE}"))
    op.drop_index("uq_bookings_live_athlete", "bookings")
    op.create_index("uq_bookings_live_athlete", "bookings", ["tenant_id", "session_id", "athlete_membership_id"],
                    unique=True, postgresql_where=sa.text(f"status IN {OLD_LIVE}"))
    op.drop_constraint("ck_bookings_status_valid", "bookings")
    op.create_check_constraint("status_valid", "bookings",
                               "status IN ('requested', 'confirmed', 'active', 'declined', 'expired', 'cancelled', "
                               "'ended', 'no_show')")
