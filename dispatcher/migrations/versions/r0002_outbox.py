"""The send pipeline: messages (the outbox), decision and message events, pacing and
fair-queuing state.

Revision ID: r0002
Revises: r0001
Create Date: 2026-12-03 13:24:26.918184
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_WHEN = sa.DateTime(timezone=True)
APPEND_ONLY = ("decision_events", "message_events")

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lane_clocks",
        sa.Column("lane", sa.Integer(), nullable=False),
        sa.Column("clock", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("lane", name=op.f("pk_lane_clocks")),
    )
    op.create_table(
        "fair_tags",
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("lane", sa.Integer(), nullable=False),
        sa.Column("last_rank", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_fair_tags_business_id_businesses"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("business_id", "lane", name=op.f("pk_fair_tags")),
    )
    op.create_table(
        "messages",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("media", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("correlation", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=True),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.Column("from_number_id", sa.Integer(), nullable=True),
        sa.Column("reply_role", sa.String(length=64), nullable=True),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.Column("zones", sa.String(length=200), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("lane", sa.Integer(), nullable=False),
        sa.Column("rank", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.String(length=80), nullable=False),
        sa.Column("rule_file", sa.String(length=300), nullable=False),
        sa.Column("rule_line", sa.Integer(), nullable=False),
        sa.Column("policy_hash", sa.String(length=64), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("not_before", _WHEN, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires", _WHEN, nullable=True),
        sa.Column("provider_sid", sa.String(length=64), nullable=True),
        sa.Column("provider_status", sa.String(length=16), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'held', 'sending', 'unknown', 'sent', 'suppressed', 'rejected', 'dead')",
            name=op.f("ck_messages_state"),
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_messages_business_id_businesses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["from_number_id"],
            ["numbers.id"],
            name=op.f("fk_messages_from_number_id_numbers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_business_phone", ["business_id", "phone", "id"], unique=False
        )
        batch_op.create_index(
            "ix_messages_leases",
            ["lease_expires"],
            unique=False,
            sqlite_where=sa.text("state IN ('sending', 'unknown')"),
            postgresql_where=sa.text("state IN ('sending', 'unknown')"),
        )
        batch_op.create_index(
            "ix_messages_provider_sid", ["provider_sid"], unique=False
        )
        batch_op.create_index(
            "ix_messages_ready",
            ["lane", "rank"],
            unique=False,
            sqlite_where=sa.text("state = 'queued'"),
            postgresql_where=sa.text("state = 'queued'"),
        )
        batch_op.create_index(
            "uq_messages_business_idempotency",
            ["business_id", "idempotency_key"],
            unique=True,
            sqlite_where=sa.text("idempotency_key IS NOT NULL"),
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        )
        batch_op.create_index("uq_messages_correlation", ["correlation"], unique=True)

    op.create_table(
        "pacers",
        sa.Column("number_id", sa.Integer(), nullable=False),
        sa.Column("ready_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["number_id"],
            ["numbers.id"],
            name=op.f("fk_pacers_number_id_numbers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("number_id", name=op.f("pk_pacers")),
    )
    op.create_table(
        "decision_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "message_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("at", _WHEN, nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.String(length=80), nullable=False),
        sa.Column("rule_file", sa.String(length=300), nullable=False),
        sa.Column("rule_line", sa.Integer(), nullable=False),
        sa.Column("policy_hash", sa.String(length=64), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_decision_events_message_id_messages"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_events")),
    )
    with op.batch_alter_table("decision_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_decision_events_message_id", ["message_id"], unique=False
        )

    op.create_table(
        "message_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "message_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("at", _WHEN, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_events_message_id_messages"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_events")),
    )
    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_events_message_id", ["message_id"], unique=False
        )
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    # r0001 created dispatcher_append_only() on PostgreSQL.
    for table in APPEND_ONLY:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION dispatcher_append_only()"
            )
            continue
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only_{verb.lower()} BEFORE {verb} ON "
                f"{table} BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    with op.batch_alter_table("message_events", schema=None) as batch_op:
        batch_op.drop_index("ix_message_events_message_id")

    op.drop_table("message_events")
    with op.batch_alter_table("decision_events", schema=None) as batch_op:
        batch_op.drop_index("ix_decision_events_message_id")

    op.drop_table("decision_events")
    op.drop_table("pacers")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("uq_messages_correlation")
        batch_op.drop_index(
            "uq_messages_business_idempotency",
            sqlite_where=sa.text("idempotency_key IS NOT NULL"),
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_messages_ready",
            sqlite_where=sa.text("state = 'queued'"),
            postgresql_where=sa.text("state = 'queued'"),
        )
        batch_op.drop_index("ix_messages_provider_sid")
        batch_op.drop_index(
            "ix_messages_leases",
            sqlite_where=sa.text("state IN ('sending', 'unknown')"),
            postgresql_where=sa.text("state IN ('sending', 'unknown')"),
        )
        batch_op.drop_index("ix_messages_business_phone")

    op.drop_table("messages")
    op.drop_table("fair_tags")
    op.drop_table("lane_clocks")
