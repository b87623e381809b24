"""The usage ledger: usage_events, append-only.

Revision ID: r0003_usage
Revises: r0002
Create Date: 2026-12-04

Written in parallel with the service's revision for inbound messages and API keys; at
merge one of the two is re-chained after the other (only ``down_revision`` changes).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0003_usage"
down_revision = "r0002"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)
_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "usage_events"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", _BIG, nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=True),
        sa.Column("number_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=True),
        sa.Column("entry", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("source_ref", sa.String(length=64), nullable=False),
        sa.Column("message_id", _BIG, nullable=True),
        sa.Column("at", _WHEN, nullable=False),
        sa.CheckConstraint(
            "direction IN ('outbound', 'inbound')",
            name=op.f("ck_usage_events_direction"),
        ),
        sa.CheckConstraint(
            "kind IN ('sms', 'mms', 'call')", name=op.f("ck_usage_events_kind")
        ),
        sa.CheckConstraint(
            "entry IN ('charge', 'credit')", name=op.f("ck_usage_events_entry")
        ),
        sa.CheckConstraint(
            "source IN ('message', 'inbound', 'call')",
            name=op.f("ck_usage_events_source"),
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_usage_events_business_id_businesses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["number_id"],
            ["numbers.id"],
            name=op.f("fk_usage_events_number_id_numbers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_usage_events_message_id_messages"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_events")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(
            "uq_usage_events_source", ["source", "source_ref", "entry"], unique=True
        )
        batch_op.create_index(
            "ix_usage_events_business_at", ["business_id", "at"], unique=False
        )
    # r0001 created dispatcher_append_only() on PostgreSQL.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE "
            f"ON {TABLE} FOR EACH ROW EXECUTE FUNCTION dispatcher_append_only()"
        )
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only_{verb.lower()} BEFORE {verb} ON "
            f"{TABLE} BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TABLE}_append_only ON {TABLE}")
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_business_at")
        batch_op.drop_index("uq_usage_events_source")
    op.drop_table(TABLE)
