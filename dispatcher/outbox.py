"""Admitting messages: idempotency, the decision and the outbox row, in one transaction.

:func:`admit` is the send API. For one request it checks the idempotency key, takes the
stored facts of the business and the recipient, decides under the policy in force, and
writes the message with its decision: queued for a worker when the decision is to send
(or to wait for quiet hours to end), held until the number registry changes, or closed as
suppressed or rejected. Suppressions are kept like sends, so the audit log and the chat
history show them. A repeated idempotency key returns the first result; the same key
with a different payload is refused.

:func:`admit_many` does the same for a campaign, deciding in bulk: the business's numbers
are read once and the recipients' consent in chunks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine as DbEngine
from sqlalchemy import bindparam, func, insert, select, update
from sqlmodel import Session

from . import consent, segments, tables
from .businesses import business_id as resolve_business
from .decision import Decision
from .engine import Engine
from .errors import ConstraintViolation, FieldError
from .facts import Channel, ConsentState, Facts
from .phone import Phone
from .policy import Outcome, Policy
from .recipients import Candidate, Location, decide_strictest, locate
from .snapshot import Snapshot, number_statuses
from .store import InsertOrSkip, lock, rowcount, transaction, utc_now

# Lanes, claimed in this order: codes and compliance replies first, then what customers
# wait for, then marketing.
LANES = {"otp": 0, "compliance": 0, "transactional": 1, "marketing": 2}
OTHER_LANE = 3


_MESSAGES = tables.table_of(tables.Message)
# A message per idempotency key of a business; a key seen before is skipped.
_ADMIT_ONCE = InsertOrSkip(
    _MESSAGES,
    ["business_id", "idempotency_key"],
    where=_MESSAGES.c.idempotency_key.is_not(None),
)


_M = _MESSAGES.c
_NUMBERS = tables.table_of(tables.Number).c
_TAGS = tables.table_of(tables.FairTag)
_CLOCKS = tables.table_of(tables.LaneClock)
# Built once, as Core statements: every admission runs them.
_BY_KEY = select(
    _M.id,
    _M.state,
    _M.outcome,
    _M.reason,
    _M.rule_id,
    _M.role,
    _M.not_before,
    _M.segments,
    _M.payload_hash,
).where(_M.business_id == bindparam("business"), _M.idempotency_key == bindparam("key"))
_SENT_24H = select(func.count()).where(
    _M.business_id == bindparam("business"),
    _M.phone == bindparam("phone"),
    _M.category == "marketing",
    _M.state.in_(("sending", "sent", "unknown")),
    _M.updated_at >= bindparam("since"),
)
_SENT_24H_BUT = _SENT_24H.where(_M.id != bindparam("exclude"))
_PLATFORM_NUMBER = select(_NUMBERS.id).where(
    _NUMBERS.role == bindparam("role"),
    _NUMBERS.business_id.is_(None),
    _NUMBERS.retired_at.is_(None),
)
_BUSINESS_NUMBER = select(_NUMBERS.id).where(
    _NUMBERS.role == bindparam("role"),
    _NUMBERS.business_id == bindparam("business"),
    _NUMBERS.retired_at.is_(None),
)
# The lane's head, its clock and the business's last rank in it, in one read. ORDER
# BY and LIMIT rather than min(): the planner then stops at the first entry of the
# ready index even when its statistics still say the table is empty.
_RANKS = select(
    select(_M.rank)
    .where(_M.state == "queued", _M.lane == bindparam("lane"))
    .order_by(_M.rank)
    .limit(1)
    .scalar_subquery(),
    select(_CLOCKS.c.clock)
    .where(_CLOCKS.c.lane == bindparam("lane"))
    .scalar_subquery(),
    select(_TAGS.c.last_rank)
    .where(
        _TAGS.c.business_id == bindparam("business"),
        _TAGS.c.lane == bindparam("lane"),
    )
    .scalar_subquery(),
)
_NEW_TAG = insert(_TAGS)
_SET_TAG = (
    update(_TAGS)
    .where(
        _TAGS.c.business_id == bindparam("tag_business"),
        _TAGS.c.lane == bindparam("tag_lane"),
    )
    .values(last_rank=bindparam("last_rank"))
)
_NEW_CLOCK = insert(_CLOCKS)
_SET_CLOCK = (
    update(_CLOCKS)
    .where(_CLOCKS.c.lane == bindparam("clock_lane"))
    .values(clock=bindparam("clock"))
)
_ADMIT = insert(_MESSAGES).returning(_M.id)


def lane_of(category: str) -> int:
    return LANES.get(category, OTHER_LANE)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One message a business (or the platform) asks to send.

    ``jurisdiction`` and ``zone`` override what the recipient's area code says.
    ``reply_role`` names the number a customer wrote to, for compliance replies.
    """

    business: int | str
    to: Phone
    message_type: str
    body: str
    media: tuple[str, ...] = ()
    idempotency_key: str | None = None
    reply_role: str | None = None
    jurisdiction: str | None = None
    zone: str | None = None

    @property
    def channel(self) -> Channel:
        return Channel.MMS if self.media else Channel.SMS

    def payload_hash(self, business_id: int) -> str:
        payload = {
            "business": business_id,
            "to": self.to.e164,
            "type": self.message_type,
            "body": self.body,
            "media": list(self.media),
            "reply_role": self.reply_role,
            "jurisdiction": self.jurisdiction,
            "zone": self.zone,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Admitted:
    """What happened to one request. ``repeated`` is true for a known idempotency key."""

    message_id: int
    state: str
    outcome: Outcome
    reason: str
    rule_id: str
    role: str | None
    not_before: dt.datetime
    segments: int
    repeated: bool = False


@dataclass(slots=True)
class CampaignSummary:
    """Counts per outcome of a bulk admission."""

    admitted: int = 0
    repeated: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, int] = field(default_factory=dict)

    def count(self, decided: tuple[str, str], *, repeated: bool = False) -> None:
        """One more request, by its ``(outcome, rule)``."""
        outcome, rule = decided
        self.admitted += 1
        self.repeated += repeated
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1
        self.by_rule[rule] = self.by_rule.get(rule, 0) + 1


class IdempotencyConflict(ConstraintViolation):
    """The idempotency key was used before with a different payload."""

    def __init__(self) -> None:
        super().__init__(
            "idempotency_key",
            "already used for a different message; use a new key for a new message",
        )


def facts_for(
    message_type: str,
    channel: Channel,
    snapshot: Snapshot,
    reply_role: str | None,
    candidate: Candidate,
    marketing_sent_24h: int = 0,
) -> Facts:
    """The facts for one message to a recipient where ``candidate`` says, at its clock."""
    return Facts(
        message_type=message_type,
        channel=channel,
        jurisdiction=candidate.jurisdiction,
        local_date=candidate.local_date,
        local_time=candidate.local_time,
        marketing_sent_24h=marketing_sent_24h,
        reply_role=reply_role,
        **snapshot.fact_fields(),
    )


def decide(
    engine: Engine,
    build: Callable[[Candidate], Facts],
    location: Location,
    now: dt.datetime,
) -> tuple[Decision, Facts, dt.datetime]:
    """The strictest decision over the recipient's candidate zones.

    Returns the decision, the facts it was made from, and when the message may leave:
    ``now``, or the end of quiet hours in UTC for a deferral with a time. A worker decides
    again when that time comes.
    """
    # The winner's facts were built while deciding; keep them rather than build again.
    built: dict[Candidate, Facts] = {}

    def remember(candidate: Candidate) -> Facts:
        facts = built[candidate] = build(candidate)
        return facts

    found = decide_strictest(engine, remember, location, now)
    return found.decision, built[found.candidate], found.not_before or now


def marketing_sent_24h(
    session: Session,
    business: int,
    phone: Phone,
    now: dt.datetime,
    *,
    exclude: int | None = None,
) -> int:
    """Marketing messages handed to the provider for this recipient in the last 24 h.

    The worker counts again when it claims a message, so the cap holds at send time even
    for messages queued together.
    """
    params = {
        "business": business,
        "phone": phone.e164,
        "since": now - dt.timedelta(hours=24),
    }
    if exclude is None:
        return int(session.execute(_SENT_24H, params).scalar_one())
    found = session.execute(_SENT_24H_BUT, {**params, "exclude": exclude})
    return int(found.scalar_one())


def from_number(
    session: Session, policy: Policy, business: int, role: str
) -> int | None:
    """The id of the active number in ``role`` for ``business`` (or the platform's)."""
    if policy.roles[role].owner == "platform":
        return session.execute(_PLATFORM_NUMBER, {"role": role}).scalar_one_or_none()
    found = session.execute(_BUSINESS_NUMBER, {"role": role, "business": business})
    return found.scalar_one_or_none()


def next_ranks(session: Session, business: int, lane: int, count: int) -> int:
    """Reserve ``count`` fair-queuing ranks for ``business`` in ``lane``; the first one.

    A business's messages follow each other, but a newcomer starts at the head of the
    lane, so one business's campaign does not push another's messages behind it.
    """
    lock(session, f"fair:{lane}")
    head, clock, last = session.execute(
        _RANKS, {"lane": lane, "business": business}
    ).one()
    floor = head - 1 if head is not None else (clock or 0)
    start = max(last or 0, floor)
    end = start + count
    if last is None:
        session.execute(
            _NEW_TAG, {"business_id": business, "lane": lane, "last_rank": end}
        )
    else:
        session.execute(
            _SET_TAG, {"tag_business": business, "tag_lane": lane, "last_rank": end}
        )
    if clock is None:
        session.execute(_NEW_CLOCK, {"lane": lane, "clock": end})
    elif end > clock:
        session.execute(_SET_CLOCK, {"clock_lane": lane, "clock": end})
    return start + 1


def _state_for(decision: Decision) -> str:
    if decision.outcome is Outcome.SEND:
        return "queued"
    if decision.outcome is Outcome.DEFER:
        return "queued" if decision.not_before_local is not None else "held"
    return "suppressed" if decision.outcome is Outcome.SUPPRESS else "rejected"


def _row(
    business: int,
    request: SendRequest,
    payload_hash: str,
    decision: Decision,
    facts: Facts,
    location: Location,
    not_before: dt.datetime,
    number_id: int | None,
    rank: int,
    now: dt.datetime,
    segment_count: int | None = None,
) -> dict[str, Any]:
    state = _state_for(decision)
    if segment_count is None:
        segment_count = segments.count(request.body).segments
    if decision.outcome is Outcome.SEND and number_id is None:
        raise FieldError("role", f"no active {decision.role} number to send from")
    return {
        "business_id": business,
        "phone": request.to.e164,
        "message_type": request.message_type,
        "channel": request.channel.value,
        "body": request.body,
        "media": json.dumps(list(request.media)),
        "idempotency_key": request.idempotency_key,
        "payload_hash": payload_hash,
        "correlation": uuid.uuid4().hex,
        "category": decision.category or "unknown",
        "scope": decision.scope,
        "role": decision.role,
        "from_number_id": number_id,
        "reply_role": request.reply_role,
        "jurisdiction": location.jurisdiction,
        "zones": ",".join(location.zones),
        "segments": segment_count,
        "lane": lane_of(decision.category or ""),
        "rank": rank,
        "state": state,
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "rule_id": decision.rule.id,
        "rule_file": decision.rule.file,
        "rule_line": decision.rule.line,
        "policy_hash": decision.policy_hash,
        "facts": json.dumps(facts.to_mapping(), separators=(",", ":")),
        "not_before": not_before,
        "created_at": now,
        "updated_at": now,
    }


def _by_key(session: Session, business: int, key: str) -> tuple[Admitted, str] | None:
    """The message admitted for ``business`` under idempotency ``key``, and the digest
    of its payload."""
    found = session.execute(_BY_KEY, {"business": business, "key": key}).first()
    if found is None:
        return None
    admitted = Admitted(
        message_id=found.id,
        state=found.state,
        outcome=Outcome(found.outcome),
        reason=found.reason,
        rule_id=found.rule_id,
        role=found.role,
        not_before=found.not_before,
        segments=found.segments,
        repeated=True,
    )
    return admitted, found.payload_hash


def admitted_by_key(session: Session, business: int, key: str) -> Admitted | None:
    """The message admitted for ``business`` under idempotency ``key``, if any."""
    found = _by_key(session, business, key)
    return None if found is None else found[0]


def _existing(session: Session, business: int, request: SendRequest) -> Admitted | None:
    if request.idempotency_key is None:
        return None
    found = _by_key(session, business, request.idempotency_key)
    if found is None:
        return None
    admitted, digest = found
    if digest != request.payload_hash(business):
        raise IdempotencyConflict()
    return admitted


def _location(request: SendRequest) -> Location:
    return locate(request.to.e164, jurisdiction=request.jurisdiction, zone=request.zone)


def admit(
    db: DbEngine,
    engine: Engine,
    request: SendRequest,
    *,
    now: dt.datetime | None = None,
) -> Admitted:
    """Decide and record one message, all in one transaction.

    Raises :class:`~dispatcher.errors.FieldError` (unknown business, no number in the
    role the policy chose) or :class:`IdempotencyConflict`; nothing is written then.
    """
    when = now or utc_now()
    try:
        with transaction(db) as session:
            return admit_in(session, engine, request, when)
    except ConstraintViolation as error:
        if error.field != "row" or request.idempotency_key is None:
            raise
        # Two requests with one key raced; the first one's row is the answer.
        with transaction(db, write=False) as session:
            business = resolve_business(session, request.business)
            found = _existing(session, business, request)
        if found is None:
            raise
        return found


def admit_in(
    session: Session, engine: Engine, request: SendRequest, when: dt.datetime
) -> Admitted:
    """:func:`admit` inside a write transaction the caller holds, so that a message is
    admitted together with what caused it (an inbound reply and its confirmation).

    Raises as :func:`admit` does, before the message is written: the caller's
    transaction stays usable (at most a fair-queuing rank was reserved in it).
    """
    policy = engine.policy
    business = resolve_business(session, request.business)
    earlier = _existing(session, business, request)
    if earlier is not None:
        return earlier
    assist, accelerate, numbers = number_statuses(session, policy, business)
    states = consent.states(session, policy, request.to, business)
    snapshot = Snapshot(business, assist, accelerate, numbers, states)
    sent = marketing_sent_24h(session, business, request.to, when)
    location = _location(request)

    def build(candidate: Candidate) -> Facts:
        return facts_for(
            request.message_type,
            request.channel,
            snapshot,
            request.reply_role,
            candidate,
            sent,
        )

    decision, facts, not_before = decide(engine, build, location, when)
    number_id = (
        from_number(session, policy, business, decision.role)
        if decision.outcome is Outcome.SEND and decision.role
        else None
    )
    rank = next_ranks(session, business, lane_of(decision.category or ""), 1)
    values = _row(
        business,
        request,
        request.payload_hash(business),
        decision,
        facts,
        location,
        not_before,
        number_id,
        rank,
        when,
    )
    message_id = session.execute(_ADMIT, values).scalar_one()
    return Admitted(
        message_id=message_id,
        state=values["state"],
        outcome=decision.outcome,
        reason=decision.reason,
        rule_id=decision.rule.id,
        role=decision.role,
        not_before=not_before,
        segments=values["segments"],
    )


def admit_many(
    db: DbEngine,
    engine: Engine,
    requests: Iterable[SendRequest],
    *,
    now: dt.datetime | None = None,
    chunk: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> CampaignSummary:
    """Decide and record many messages of one business, ``chunk`` per transaction.

    Each chunk is atomic; a crash between chunks leaves the earlier ones admitted, and
    running the campaign again with the same idempotency keys admits only the rest.
    """
    summary = CampaignSummary()
    batch: list[SendRequest] = []
    for request in requests:
        batch.append(request)
        if len(batch) == chunk:
            _admit_chunk(db, engine, batch, now or utc_now(), summary)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        _admit_chunk(db, engine, batch, now or utc_now(), summary)
        if progress:
            progress(len(batch))
    return summary


def _admit_chunk(
    db: DbEngine,
    engine: Engine,
    batch: Sequence[SendRequest],
    when: dt.datetime,
    summary: CampaignSummary,
) -> None:
    policy = engine.policy
    with transaction(db) as session:
        # A campaign names its business the same way in every request: read it once.
        refs = {r.business for r in batch}
        businesses = {resolve_business(session, ref) for ref in refs}
        if len(businesses) != 1:
            raise FieldError("business", "a campaign belongs to one business")
        (business,) = businesses
        fresh, digests, again = _first_of_each_key(batch, business)
        assist, accelerate, numbers = number_statuses(session, policy, business)
        states = consent.states_many(session, policy, [r.to for r in fresh], business)
        numbers_by_role: dict[str, int | None] = {}
        pending: list[tuple[SendRequest, Decision, Facts, Location, dt.datetime]] = []
        counted: dict[str, int] = {}
        for request in fresh:
            snapshot = Snapshot(
                business,
                assist,
                accelerate,
                numbers,
                states.get(
                    request.to.e164, dict.fromkeys(policy.scopes, ConsentState.NONE)
                ),
            )
            location = _location(request)

            def build(
                candidate: Candidate,
                request: SendRequest = request,
                snapshot: Snapshot = snapshot,
            ) -> Facts:
                return facts_for(
                    request.message_type,
                    request.channel,
                    snapshot,
                    request.reply_role,
                    candidate,
                )

            decision, facts, not_before = decide(engine, build, location, when)
            pending.append((request, decision, facts, location, not_before))
            if request.body not in counted:
                # A campaign sends one text to everyone: count its segments once.
                counted[request.body] = segments.count(request.body).segments
        by_lane: dict[int, int] = {}
        for _, decision, *_ in pending:
            lane = lane_of(decision.category or "")
            by_lane[lane] = by_lane.get(lane, 0) + 1
        next_rank = {
            lane: next_ranks(session, business, lane, n) for lane, n in by_lane.items()
        }
        values = []
        for (request, decision, facts, location, not_before), digest in zip(
            pending, digests, strict=True
        ):
            lane = lane_of(decision.category or "")
            rank = next_rank[lane]
            next_rank[lane] += 1
            number_id = None
            if decision.outcome is Outcome.SEND and decision.role:
                if decision.role not in numbers_by_role:
                    numbers_by_role[decision.role] = from_number(
                        session, policy, business, decision.role
                    )
                number_id = numbers_by_role[decision.role]
            values.append(
                _row(
                    business,
                    request,
                    digest,
                    decision,
                    facts,
                    location,
                    not_before,
                    number_id,
                    rank,
                    when,
                    counted[request.body],
                )
            )
        known = _insert_new(session, business, values)
        for row in values:
            key = row["idempotency_key"]
            if key in known:
                summary.count(known[key], repeated=True)
            else:
                summary.count((str(row["outcome"]), str(row["rule_id"])))
        decided = {row["idempotency_key"]: row for row in values}
        for key in again:
            first = known.get(key) or (decided[key]["outcome"], decided[key]["rule_id"])
            summary.count(first, repeated=True)


def _first_of_each_key(
    batch: Sequence[SendRequest], business: int
) -> tuple[list[SendRequest], list[str], list[str]]:
    """The requests to decide, their payload digests, and the keys repeated in ``batch``
    after their first request (one entry per repeat).

    Raises :class:`IdempotencyConflict` when one key carries two payloads.
    """
    fresh: list[SendRequest] = []
    digests: list[str] = []
    by_key: dict[str, str] = {}
    again: list[str] = []
    for request in batch:
        digest = request.payload_hash(business)
        key = request.idempotency_key
        if key is not None and key in by_key:
            if by_key[key] != digest:
                raise IdempotencyConflict()
            again.append(key)
            continue
        if key is not None:
            by_key[key] = digest
        fresh.append(request)
        digests.append(digest)
    return fresh, digests, again


def _insert_new(
    session: Session, business: int, values: list[dict[str, Any]]
) -> dict[str, tuple[str, str]]:
    """Insert the rows whose idempotency key is new for their business; skip the rest.

    The unique index decides, so a concurrent admission of the same key cannot slip
    in between a lookup and the insert. Returns the outcome and rule of the earlier
    row of each key that was skipped, after checking that its payload is the same.
    """
    if not values:
        return {}
    # No RETURNING: a plain executemany is several times faster on both databases,
    # and the count says whether any row was skipped.
    written = session.execute(
        _ADMIT_ONCE.statement(session),
        values,
        execution_options={"preserve_rowcount": True},
    )
    if rowcount(written) == len(values):
        return {}
    ours = {v["idempotency_key"]: v for v in values if v["idempotency_key"]}
    message = _MESSAGES.c
    rows = session.execute(
        select(
            message.idempotency_key,
            message.correlation,
            message.payload_hash,
            message.outcome,
            message.rule_id,
        ).where(
            message.business_id == business,
            message.idempotency_key.in_(list(ours)),
        )
    ).all()
    known: dict[str, tuple[str, str]] = {}
    for key, correlation, digest, outcome, rule in rows:
        mine = ours[key]
        if correlation == mine["correlation"]:
            continue
        if digest != mine["payload_hash"]:
            raise IdempotencyConflict()
        known[key] = (outcome, rule)
    return known
