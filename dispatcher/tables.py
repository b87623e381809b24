"""The database tables, as SQLModel classes.

These classes are the storage shape only: the modules that own each noun
(:mod:`~dispatcher.businesses`, :mod:`~dispatcher.numbers`,
:mod:`~dispatcher.consent`) turn rows into typed values and are the only writers.
Schema changes go through an Alembic revision in ``dispatcher/migrations/versions``;
a test checks that the migrated schema matches these classes.

What the database itself enforces, so that no code path and no hand-written SQL can
break it:

* ``numbers``: an active number's E.164 is unique; a business has at most one active
  number per role (so one transactional and one marketing number); the platform has at
  most one active number per platform role (one global number). Partial unique
  indexes, on SQLite and PostgreSQL alike.
* ``consent_events`` and ``number_changes`` are append-only: triggers refuse UPDATE and
  DELETE (created by the migration, per dialect).
* ``consent_states`` holds one row per (business, phone, scope), with the platform's
  scopes under a NULL business.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlmodel import Field, SQLModel

from .errors import InternalError

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata = MetaData(naming_convention=NAMING)

# Names the database may report when a rule is broken; :mod:`dispatcher.store` turns
# them into a message naming the field.
UQ_BUSINESS_NAME = "uq_businesses_name"
UQ_ACTIVE_NUMBER = "uq_numbers_active_e164"
UQ_BUSINESS_ROLE = "uq_numbers_business_role"
UQ_PLATFORM_ROLE = "uq_numbers_platform_role"
UQ_SECOND_NUMBER = "uq_number_changes_second_number"
UQ_STATE_BUSINESS = "uq_consent_states_business"
UQ_STATE_PLATFORM = "uq_consent_states_platform"
UQ_INBOUND_SID = "uq_inbound_messages_message_sid"
UQ_API_KEY_DIGEST = "uq_api_keys_digest"

ACTIVE = "retired_at IS NULL"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on every dialect.

    PostgreSQL stores ``timestamptz``; SQLite stores the UTC wall time. Writing a naive
    datetime is a bug and raises :class:`~dispatcher.errors.InternalError`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise InternalError("naive datetime written to the database")
        utc = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _when(nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable))


def _big_id(**options: Any) -> Any:
    # SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits.
    return Field(
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), **options)
    )


def _big_ref(target: str, *, nullable: bool = False) -> Any:
    """A reference to a 64-bit id such as ``messages.id`` (INTEGER on SQLite)."""
    column = Column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey(target, ondelete="RESTRICT"),
        nullable=nullable,
    )
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(sa_column=column)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of ``model``, for statements the ORM does not build."""
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise InternalError(f"{model.__name__} is not a table model")
    return table


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


NUMBER_KINDS = ("long_code", "toll_free", "short_code")
REGISTRATION_STATUSES = ("registered", "pending", "unregistered")
CONSENT_ACTIONS = ("opt_in", "opt_out", "re_opt_in")
CONSENT_SOURCES = ("web_form", "keyword", "agent", "provider_error_21610", "import")
CONSENT_STATES = ("opted_in", "opted_out")


class Business(SQLModel, table=True):
    __tablename__ = "businesses"
    __table_args__ = (Index(UQ_BUSINESS_NAME, "name", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(200))
    assist: bool = False
    accelerate: bool = False
    created_at: dt.datetime = _when()
    updated_at: dt.datetime = _when()


class BusinessStore(SQLModel, table=True):
    __tablename__ = "stores"
    __table_args__ = (
        Index("uq_stores_business_name", "business_id", "name", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    business_id: int = Field(foreign_key="businesses.id", ondelete="RESTRICT")
    name: str = Field(sa_type=String(200))
    created_at: dt.datetime = _when()


class Number(SQLModel, table=True):
    """A sending number. ``business_id`` is NULL for the platform's own numbers."""

    __tablename__ = "numbers"
    __table_args__ = (
        CheckConstraint(_in("kind", NUMBER_KINDS), name="kind"),
        CheckConstraint(_in("status", REGISTRATION_STATUSES), name="status"),
        CheckConstraint("segments_per_second > 0", name="throughput"),
        Index(
            UQ_ACTIVE_NUMBER,
            "e164",
            unique=True,
            sqlite_where=text(ACTIVE),
            postgresql_where=text(ACTIVE),
        ),
        Index(
            UQ_BUSINESS_ROLE,
            "business_id",
            "role",
            unique=True,
            sqlite_where=text(f"{ACTIVE} AND business_id IS NOT NULL"),
            postgresql_where=text(f"{ACTIVE} AND business_id IS NOT NULL"),
        ),
        Index(
            UQ_PLATFORM_ROLE,
            "role",
            unique=True,
            sqlite_where=text(f"{ACTIVE} AND business_id IS NULL"),
            postgresql_where=text(f"{ACTIVE} AND business_id IS NULL"),
        ),
        Index("ix_numbers_business_id", "business_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    e164: str = Field(sa_type=String(16))
    business_id: int | None = Field(
        default=None, foreign_key="businesses.id", ondelete="RESTRICT"
    )
    role: str = Field(sa_type=String(64))
    kind: str = Field(sa_type=String(16))
    status: str = Field(sa_type=String(16))
    segments_per_second: float
    added_by: str = Field(sa_type=String(200))
    created_at: dt.datetime = _when()
    updated_at: dt.datetime = _when()
    retired_at: dt.datetime | None = _when(nullable=True)


class NumberChange(SQLModel, table=True):
    """Append-only record of a change to a business's numbers: who, when, before, after.

    ``before`` and ``after`` are JSON documents listing the business's active numbers
    (id, role, E.164). At most one ``second_number`` change per business: the flow is
    recorded once and replaying it is a no-op.
    """

    __tablename__ = "number_changes"
    __table_args__ = (
        Index(
            UQ_SECOND_NUMBER,
            "business_id",
            unique=True,
            sqlite_where=text("action = 'second_number'"),
            postgresql_where=text("action = 'second_number'"),
        ),
        Index("ix_number_changes_business_id", "business_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    business_id: int | None = Field(
        default=None, foreign_key="businesses.id", ondelete="RESTRICT"
    )
    action: str = Field(sa_type=String(32))
    actor: str = Field(sa_type=String(200))
    at: dt.datetime = _when()
    before: str = Field(sa_type=Text)
    after: str = Field(sa_type=Text)


class ConsentEvent(SQLModel, table=True):
    """One append-only ledger record; ``business_id`` is NULL for platform scopes."""

    __tablename__ = "consent_events"
    __table_args__ = (
        CheckConstraint(_in("action", CONSENT_ACTIONS), name="action"),
        CheckConstraint(_in("source", CONSENT_SOURCES), name="source"),
        CheckConstraint(
            "action = 'opt_out' OR (consent_text IS NOT NULL "
            "AND consent_text_version IS NOT NULL)",
            name="opt_in_evidence",
        ),
        CheckConstraint(
            "source <> 'keyword' OR source_ref IS NOT NULL", name="keyword_message"
        ),
        Index("ix_consent_events_phone_business", "phone", "business_id"),
    )

    id: int | None = _big_id(primary_key=True)
    business_id: int | None = Field(
        default=None, foreign_key="businesses.id", ondelete="RESTRICT"
    )
    phone: str = Field(sa_type=String(16))
    scope: str = Field(sa_type=String(64))
    action: str = Field(sa_type=String(16))
    at: dt.datetime = _when()
    source: str = Field(sa_type=String(32))
    source_ref: str | None = Field(default=None, sa_type=Text)
    number_id: int | None = Field(
        default=None, foreign_key="numbers.id", ondelete="RESTRICT"
    )
    consent_text: str | None = Field(default=None, sa_type=Text)
    consent_text_version: str | None = Field(default=None, sa_type=String(64))
    recorded_by: str = Field(sa_type=String(200))


class ConsentStateRow(SQLModel, table=True):
    """The current state per (business, phone, scope), written with its ledger row."""

    __tablename__ = "consent_states"
    __table_args__ = (
        CheckConstraint(_in("state", CONSENT_STATES), name="state"),
        # Not partial: NULLs are distinct, so platform rows pass through this one, and
        # the lookup by phone uses it for the business's and the platform's rows alike.
        Index(UQ_STATE_BUSINESS, "phone", "business_id", "scope", unique=True),
        Index(
            UQ_STATE_PLATFORM,
            "phone",
            "scope",
            unique=True,
            sqlite_where=text("business_id IS NULL"),
            postgresql_where=text("business_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    business_id: int | None = Field(
        default=None, foreign_key="businesses.id", ondelete="RESTRICT"
    )
    phone: str = Field(sa_type=String(16))
    scope: str = Field(sa_type=String(64))
    state: str = Field(sa_type=String(16))
    event_id: int = _big_ref("consent_events.id")
    event_at: dt.datetime = _when()


# --- the send pipeline ----------------------------------------------------------------

MESSAGE_STATES = (
    "queued",  # waiting for its not_before time and a worker
    "held",  # deferred until the number registry changes
    "sending",  # claimed under a lease; the provider may be being called
    "unknown",  # the provider call may or may not have reached it: reconcile first
    "sent",  # the provider accepted it
    "suppressed",  # the policy stopped it
    "rejected",  # the request was invalid
    "dead",  # gave up after retries; can be requeued by an operator
)
UQ_IDEMPOTENCY = "uq_messages_business_idempotency"
UQ_CORRELATION = "uq_messages_correlation"


class Message(SQLModel, table=True):
    """One message from request to outcome: the outbox row and the admit decision.

    The decision made when the request was admitted is kept here (rule, reason, policy
    hash, facts), so that suppressions need no second row; later decisions (at claim
    time) go to ``decision_events``. ``fence`` grows with every claim: a worker settles
    only the claim it holds.
    """

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("state", MESSAGE_STATES), name="state"),
        Index(
            UQ_IDEMPOTENCY,
            "business_id",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index(UQ_CORRELATION, "correlation", unique=True),
        Index(
            "ix_messages_ready",
            "lane",
            "rank",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "ix_messages_leases",
            "lease_expires",
            sqlite_where=text("state IN ('sending', 'unknown')"),
            postgresql_where=text("state IN ('sending', 'unknown')"),
        ),
        Index("ix_messages_business_phone", "business_id", "phone", "id"),
        Index("ix_messages_provider_sid", "provider_sid"),
    )

    id: int | None = _big_id(primary_key=True)
    business_id: int = Field(foreign_key="businesses.id", ondelete="RESTRICT")
    phone: str = Field(sa_type=String(16))
    message_type: str = Field(sa_type=String(64))
    channel: str = Field(sa_type=String(8))
    body: str = Field(sa_type=Text)
    media: str = Field(default="[]", sa_type=Text)
    idempotency_key: str | None = Field(default=None, sa_type=String(200))
    payload_hash: str = Field(sa_type=String(64))
    correlation: str = Field(sa_type=String(32))
    category: str = Field(sa_type=String(64))
    scope: str | None = Field(default=None, sa_type=String(64))
    role: str | None = Field(default=None, sa_type=String(64))
    from_number_id: int | None = Field(
        default=None, foreign_key="numbers.id", ondelete="RESTRICT"
    )
    reply_role: str | None = Field(default=None, sa_type=String(64))
    jurisdiction: str = Field(sa_type=String(16))
    zones: str = Field(sa_type=String(200))
    segments: int
    lane: int
    rank: int = Field(sa_column=Column(BigInteger(), nullable=False))
    state: str = Field(sa_type=String(16))
    outcome: str = Field(sa_type=String(16))
    reason: str = Field(sa_type=Text)
    rule_id: str = Field(sa_type=String(80))
    rule_file: str = Field(sa_type=String(300))
    rule_line: int
    policy_hash: str = Field(sa_type=String(64))
    facts: str = Field(sa_type=Text)
    not_before: dt.datetime = _when()
    attempts: int = 0
    fence: int = 0
    lease_owner: str | None = Field(default=None, sa_type=String(100))
    lease_expires: dt.datetime | None = _when(nullable=True)
    provider_sid: str | None = Field(default=None, sa_type=String(64))
    provider_status: str | None = Field(default=None, sa_type=String(16))
    error_code: int | None = None
    error: str | None = Field(default=None, sa_type=Text)
    created_at: dt.datetime = _when()
    updated_at: dt.datetime = _when()


class DecisionEvent(SQLModel, table=True):
    """A decision made after admission (re-checked at claim time), append-only."""

    __tablename__ = "decision_events"
    __table_args__ = (Index("ix_decision_events_message_id", "message_id"),)

    id: int | None = _big_id(primary_key=True)
    message_id: int = _big_ref("messages.id")
    at: dt.datetime = _when()
    stage: str = Field(sa_type=String(16))
    outcome: str = Field(sa_type=String(16))
    role: str | None = Field(default=None, sa_type=String(64))
    reason: str = Field(sa_type=Text)
    rule_id: str = Field(sa_type=String(80))
    rule_file: str = Field(sa_type=String(300))
    rule_line: int
    policy_hash: str = Field(sa_type=String(64))
    facts: str = Field(sa_type=Text)


class MessageEvent(SQLModel, table=True):
    """Append-only history of a message: attempts, provider answers, status callbacks."""

    __tablename__ = "message_events"
    __table_args__ = (Index("ix_message_events_message_id", "message_id"),)

    id: int | None = _big_id(primary_key=True)
    message_id: int = _big_ref("messages.id")
    at: dt.datetime = _when()
    kind: str = Field(sa_type=String(32))
    status: str | None = Field(default=None, sa_type=String(16))
    error_code: int | None = None
    detail: str | None = Field(default=None, sa_type=Text)


class Pacer(SQLModel, table=True):
    """Per sending number, the theoretical time its next segment may leave (GCRA)."""

    __tablename__ = "pacers"

    number_id: int = Field(
        sa_column=Column(
            Integer(),
            ForeignKey("numbers.id", ondelete="RESTRICT"),
            primary_key=True,
        )
    )
    ready_at: dt.datetime = _when()


class FairTag(SQLModel, table=True):
    """Per (business, lane), the last rank handed out: fair queuing between businesses."""

    __tablename__ = "fair_tags"

    business_id: int = Field(
        sa_column=Column(
            Integer(),
            ForeignKey("businesses.id", ondelete="RESTRICT"),
            primary_key=True,
        )
    )
    lane: int = Field(primary_key=True)
    last_rank: int = Field(sa_column=Column(BigInteger(), nullable=False))


class LaneClock(SQLModel, table=True):
    """Per lane, the highest rank claimed so far."""

    __tablename__ = "lane_clocks"

    lane: int = Field(primary_key=True)
    clock: int = Field(sa_column=Column(BigInteger(), nullable=False))


# --- usage billing --------------------------------------------------------------------

USAGE_DIRECTIONS = ("outbound", "inbound")
USAGE_KINDS = ("sms", "mms", "call")
USAGE_ENTRIES = ("charge", "credit")
USAGE_SOURCES = ("message", "inbound", "call")
UQ_USAGE_SOURCE = "uq_usage_events_source"


class UsageEvent(SQLModel, table=True):
    """One billable event, append-only: a charge, or the credit that cancels one.

    ``units`` are segments (SMS), messages (MMS) or started minutes (calls), negative
    in a credit. ``(source, source_ref, entry)`` is unique: the message id, the inbound
    MessageSid or the CallSid is billed once and credited at most once, however often
    the worker settles or a callback is replayed. ``business_id`` is NULL for usage of
    the platform's own numbers that no business answers for.
    """

    __tablename__ = "usage_events"
    __table_args__ = (
        CheckConstraint(_in("direction", USAGE_DIRECTIONS), name="direction"),
        CheckConstraint(_in("kind", USAGE_KINDS), name="kind"),
        CheckConstraint(_in("entry", USAGE_ENTRIES), name="entry"),
        CheckConstraint(_in("source", USAGE_SOURCES), name="source"),
        Index(UQ_USAGE_SOURCE, "source", "source_ref", "entry", unique=True),
        Index("ix_usage_events_business_at", "business_id", "at"),
    )

    id: int | None = _big_id(primary_key=True)
    business_id: int | None = Field(
        default=None, foreign_key="businesses.id", ondelete="RESTRICT"
    )
    number_id: int | None = Field(
        default=None, foreign_key="numbers.id", ondelete="RESTRICT"
    )
    role: str = Field(sa_type=String(64))
    direction: str = Field(sa_type=String(8))
    kind: str = Field(sa_type=String(8))
    units: int
    seconds: int | None = None
    entry: str = Field(sa_type=String(8))
    source: str = Field(sa_type=String(8))
    source_ref: str = Field(sa_type=String(64))
    message_id: int | None = _big_ref("messages.id", nullable=True)
    at: dt.datetime = _when()


class InboundMessage(SQLModel, table=True):
    """An SMS a customer sent to one of our numbers, append-only, keyword or not.

    ``business_id`` is NULL for the platform's global number. ``keyword_kind`` is what
    the reply classifier found (``opt_out``, ``opt_in``, ``help``, ``revocation``) or
    NULL for ordinary chat. A provider message id is stored once: a webhook delivered
    twice finds its row and changes nothing.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index(UQ_INBOUND_SID, "message_sid", unique=True),
        Index("ix_inbound_messages_business_phone", "business_id", "phone", "id"),
    )

    id: int | None = _big_id(primary_key=True)
    message_sid: str = Field(sa_type=String(64))
    business_id: int | None = Field(
        default=None, foreign_key="businesses.id", ondelete="RESTRICT"
    )
    number_id: int = Field(foreign_key="numbers.id", ondelete="RESTRICT")
    role: str = Field(sa_type=String(64))
    scope: str = Field(sa_type=String(64))
    phone: str = Field(sa_type=String(16))
    body: str = Field(sa_type=Text)
    segments: int
    keyword_kind: str | None = Field(default=None, sa_type=String(16))
    keyword: str | None = Field(default=None, sa_type=String(64))
    language: str | None = Field(default=None, sa_type=String(16))
    matched_by: str | None = Field(default=None, sa_type=String(16))
    reply_type: str | None = Field(default=None, sa_type=String(64))
    consent_event_id: int | None = _big_ref("consent_events.id", nullable=True)
    received_at: dt.datetime = _when()


class ApiKey(SQLModel, table=True):
    """A key for the HTTP API, stored as its SHA-256 digest only.

    ``business_id`` is NULL for a platform key, which administers every business. The
    key itself is shown once, when it is made; ``prefix`` lets a person tell keys apart.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        Index(UQ_API_KEY_DIGEST, "digest", unique=True),
        Index("ix_api_keys_business_id", "business_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    business_id: int | None = Field(
        default=None, foreign_key="businesses.id", ondelete="RESTRICT"
    )
    prefix: str = Field(sa_type=String(16))
    digest: str = Field(sa_type=String(64))
    label: str = Field(sa_type=String(200))
    created_by: str = Field(sa_type=String(200))
    created_at: dt.datetime = _when()
    revoked_at: dt.datetime | None = _when(nullable=True)
