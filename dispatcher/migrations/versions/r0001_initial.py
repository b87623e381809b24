"""Businesses, stores, numbers, number changes and the consent ledger.

Revision ID: r0001
Revises:
Create Date: 2025-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)
APPEND_ONLY = ("consent_events", "number_changes")

_PG_FUNCTION = """
CREATE FUNCTION dispatcher_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "businesses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("assist", sa.Boolean(), nullable=False),
        sa.Column("accelerate", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_businesses")),
    )
    op.create_index("uq_businesses_name", "businesses", ["name"], unique=True)
    op.create_table(
        "number_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", _WHEN, nullable=False),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_number_changes_business_id_businesses"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_number_changes")),
    )
    op.create_index(
        "ix_number_changes_business_id", "number_changes", ["business_id"], unique=False
    )
    op.create_index(
        "uq_number_changes_second_number",
        "number_changes",
        ["business_id"],
        unique=True,
        sqlite_where=sa.text("action = 'second_number'"),
        postgresql_where=sa.text("action = 'second_number'"),
    )
    op.create_table(
        "numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("e164", sa.String(length=16), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("segments_per_second", sa.Float(), nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("retired_at", _WHEN, nullable=True),
        sa.CheckConstraint(
            "kind IN ('long_code', 'toll_free', 'short_code')",
            name=op.f("ck_numbers_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('registered', 'pending', 'unregistered')",
            name=op.f("ck_numbers_status"),
        ),
        sa.CheckConstraint(
            "segments_per_second > 0", name=op.f("ck_numbers_throughput")
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_numbers_business_id_businesses"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_numbers")),
    )
    op.create_index("ix_numbers_business_id", "numbers", ["business_id"], unique=False)
    op.create_index(
        "uq_numbers_active_e164",
        "numbers",
        ["e164"],
        unique=True,
        sqlite_where=sa.text("retired_at IS NULL"),
        postgresql_where=sa.text("retired_at IS NULL"),
    )
    op.create_index(
        "uq_numbers_business_role",
        "numbers",
        ["business_id", "role"],
        unique=True,
        sqlite_where=sa.text("retired_at IS NULL AND business_id IS NOT NULL"),
        postgresql_where=sa.text("retired_at IS NULL AND business_id IS NOT NULL"),
    )
    op.create_index(
        "uq_numbers_platform_role",
        "numbers",
        ["role"],
        unique=True,
        sqlite_where=sa.text("retired_at IS NULL AND business_id IS NULL"),
        postgresql_where=sa.text("retired_at IS NULL AND business_id IS NULL"),
    )
    op.create_table(
        "stores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_stores_business_id_businesses"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stores")),
    )
    op.create_index(
        "uq_stores_business_name", "stores", ["business_id", "name"], unique=True
    )
    op.create_table(
        "consent_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("business_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("at", _WHEN, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_ref", sa.Text(), nullable=True),
        sa.Column("number_id", sa.Integer(), nullable=True),
        sa.Column("consent_text", sa.Text(), nullable=True),
        sa.Column("consent_text_version", sa.String(length=64), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "action = 'opt_out' OR (consent_text IS NOT NULL "
            "AND consent_text_version IS NOT NULL)",
            name=op.f("ck_consent_events_opt_in_evidence"),
        ),
        sa.CheckConstraint(
            "action IN ('opt_in', 'opt_out', 're_opt_in')",
            name=op.f("ck_consent_events_action"),
        ),
        sa.CheckConstraint(
            "source <> 'keyword' OR source_ref IS NOT NULL",
            name=op.f("ck_consent_events_keyword_message"),
        ),
        sa.CheckConstraint(
            "source IN ('web_form', 'keyword', 'agent', 'provider_error_21610', "
            "'import')",
            name=op.f("ck_consent_events_source"),
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_events_business_id_businesses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["number_id"],
            ["numbers.id"],
            name=op.f("fk_consent_events_number_id_numbers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index(
        "ix_consent_events_phone_business",
        "consent_events",
        ["phone", "business_id"],
        unique=False,
    )
    op.create_table(
        "consent_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("event_at", _WHEN, nullable=False),
        sa.CheckConstraint(
            "state IN ('opted_in', 'opted_out')", name=op.f("ck_consent_states_state")
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_consent_states_business_id_businesses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["consent_events.id"],
            name=op.f("fk_consent_states_event_id_consent_events"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_states")),
    )
    op.create_index(
        "uq_consent_states_business",
        "consent_states",
        ["phone", "business_id", "scope"],
        unique=True,
    )
    op.create_index(
        "uq_consent_states_platform",
        "consent_states",
        ["phone", "scope"],
        unique=True,
        sqlite_where=sa.text("business_id IS NULL"),
        postgresql_where=sa.text("business_id IS NULL"),
    )

    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    # The product never updates or deletes these rows; the database refuses it too, so a
    # hand-written statement cannot rewrite the evidence either.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION dispatcher_append_only()"
            )
        return
    for table in APPEND_ONLY:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only_{verb.lower()} BEFORE {verb} ON "
                f"{table} BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION dispatcher_append_only()")
    for table in (
        "consent_states",
        "consent_events",
        "stores",
        "numbers",
        "number_changes",
        "businesses",
    ):
        op.drop_table(table)
