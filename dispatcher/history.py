"""A customer's chat history with a business: what was sent, what they replied, in order.

Outbound entries come from the outbox (``messages``): every message a business asked to
send to the customer, from any number role, whether it left or not, with the number it
left from (masked), the rule that decided it, its state and the provider's status.
Inbound entries come from an :data:`InboundSource`. The default one,
:func:`stored_replies`, reads ``inbound_messages``, where the inbound webhook stores
every message a customer sends, keyword or not: its body, the keyword and its kind,
the role of the number written to and when it arrived. :func:`keyword_replies` reads
only the replies that changed consent, from the consent ledger (no bodies).

A reply to the platform's global number belongs to no business (its row's business
is NULL). It is shown to the business whose message from that number reached the
phone last before the reply, the one the webhook answered and billed it for, and to
no other: a customer of two businesses who replies to an OTP code of one does not
show up in the other's history.

>>> [entry.direction for entry in conversation(session, 1, phone)]  # doctest: +SKIP
['outbound', 'inbound', 'outbound']
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlmodel import Session, col

from . import tables
from .businesses import business_id as resolve_business
from .errors import FieldError
from .phone import Phone

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message the business asked to send to the customer, and what became of it.

    ``rule`` is the rule of the latest decision (the one at claim time when the worker
    decided again, else the one at admission). ``number`` is the masked E.164 of the
    number it left from, ``None`` when it never got one.
    """

    at: dt.datetime
    message_id: int
    message_type: str
    category: str
    channel: str
    body: str
    media: int
    role: str | None
    number: str | None
    rule: str
    outcome: str
    reason: str
    state: str
    provider_status: str | None
    error_code: int | None
    segments: int

    direction = "outbound"

    def to_mapping(self) -> dict[str, object]:
        return _mapping(self)


@dataclass(frozen=True, slots=True)
class Inbound:
    """A reply from the customer to one of the business's numbers.

    ``keyword`` is the keyword or phrase matched, ``keyword_kind`` what it asked for
    (``opt_out``, ``opt_in``, ``help``, ``revocation``); ``body`` is ``None`` when the
    source does not keep it.
    """

    at: dt.datetime
    ref: str
    role: str | None
    number: str | None
    body: str | None
    keyword: str | None
    keyword_kind: str | None

    direction = "inbound"

    def to_mapping(self) -> dict[str, object]:
        return _mapping(self)


def _mapping(entry: Outbound | Inbound) -> dict[str, object]:
    """The JSON form of a history entry: its direction, then its fields in order."""
    values: dict[str, object] = {"direction": entry.direction}
    for name in (f.name for f in fields(entry)):
        value = getattr(entry, name)
        values[name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return values


Entry = Outbound | Inbound

InboundSource = Callable[
    [Session, int, Phone, int, dt.datetime | None], Sequence[Inbound]
]
"""``(session, business_id, phone, limit, before)``: the newest ``limit`` replies
strictly before ``before`` (or all), in any order."""


def conversation(
    session: Session,
    business: int | str,
    phone: Phone,
    limit: int = DEFAULT_LIMIT,
    before: dt.datetime | None = None,
    *,
    inbound: InboundSource | None = None,
) -> list[Entry]:
    """The newest ``limit`` entries between ``business`` and ``phone``, oldest first.

    ``before`` pages back: pass the ``at`` of the first entry of a page to get the page
    before it. Raises :class:`~dispatcher.errors.FieldError` for an unknown business
    or a ``limit`` outside 1-500.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise FieldError("limit", f"expected 1-{MAX_LIMIT}, got {limit}")
    owner = resolve_business(session, business)
    replies = (inbound or stored_replies)(session, owner, phone, limit, before)
    entries: list[Entry] = [*_outbound(session, owner, phone, limit, before), *replies]
    entries.sort(key=_order)
    return entries[-limit:]


def _order(entry: Entry) -> tuple[dt.datetime, int, str]:
    if isinstance(entry, Outbound):
        return (entry.at, 1, f"{entry.message_id:020d}")
    return (entry.at, 0, entry.ref)


def _outbound(
    session: Session,
    business: int,
    phone: Phone,
    limit: int,
    before: dt.datetime | None,
) -> list[Outbound]:
    message = tables.Message
    query = select(message).where(
        col(message.business_id) == business, col(message.phone) == phone.e164
    )
    if before is not None:
        query = query.where(col(message.created_at) < before)
    rows = list(
        session.execute(
            query.order_by(
                col(message.created_at).desc(), col(message.id).desc()
            ).limit(limit)
        ).scalars()
    )
    ids = [row.id for row in rows if row.id is not None]
    rules = _latest_rules(session, ids)
    numbers = _numbers(session, {row.from_number_id for row in rows})
    return [
        Outbound(
            at=row.created_at,
            message_id=row.id or 0,
            message_type=row.message_type,
            category=row.category,
            channel=row.channel,
            body=row.body,
            media=len(json.loads(row.media)),
            role=row.role,
            number=numbers.get(row.from_number_id),
            rule=rules.get(row.id or 0, row.rule_id),
            outcome=row.outcome,
            reason=row.reason,
            state=row.state,
            provider_status=row.provider_status,
            error_code=row.error_code,
            segments=row.segments,
        )
        for row in rows
    ]


def _latest_rules(session: Session, message_ids: list[int]) -> dict[int, str]:
    if not message_ids:
        return {}
    event = tables.DecisionEvent
    rows = session.execute(
        select(col(event.message_id), col(event.rule_id))
        .where(col(event.message_id).in_(message_ids))
        .order_by(col(event.id))
    ).all()
    return {int(message_id): str(rule) for message_id, rule in rows}


def _numbers(session: Session, ids: set[int | None]) -> dict[int | None, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    number = tables.Number
    rows = session.execute(
        select(col(number.id), col(number.e164)).where(col(number.id).in_(wanted))
    ).all()
    return {int(number_id): _masked(str(e164)) for number_id, e164 in rows}


def stored_replies(
    session: Session,
    business: int,
    phone: Phone,
    limit: int,
    before: dt.datetime | None,
) -> list[Inbound]:
    """Every message ``phone`` sent to ``business``'s numbers, and those to the global
    number that the business answers for (see the module docstring)."""
    inbound, message, number = tables.InboundMessage, tables.Message, tables.Number
    # Who answers for a reply to a platform number: the business of the latest message
    # from that number to the phone, sent no later than the reply arrived.
    answering = (
        select(col(message.business_id))
        .where(
            col(message.phone) == col(inbound.phone),
            col(message.from_number_id) == col(inbound.number_id),
            col(message.created_at) <= col(inbound.received_at),
        )
        .order_by(col(message.id).desc())
        .limit(1)
        .correlate(inbound)
        .scalar_subquery()
    )
    query = (
        select(inbound, col(number.e164))
        .join(number, col(inbound.number_id) == col(number.id))
        .where(
            col(inbound.phone) == phone.e164,
            (col(inbound.business_id) == business)
            | (col(inbound.business_id).is_(None) & (answering == business)),
        )
    )
    if before is not None:
        query = query.where(col(inbound.received_at) < before)
    rows = session.execute(
        query.order_by(col(inbound.received_at).desc(), col(inbound.id).desc()).limit(
            limit
        )
    ).all()
    return [
        Inbound(
            at=row.received_at,
            ref=row.message_sid,
            role=row.role,
            number=_masked(e164),
            body=row.body,
            keyword=row.keyword,
            keyword_kind=row.keyword_kind,
        )
        for row, e164 in rows
    ]


def keyword_replies(
    session: Session,
    business: int,
    phone: Phone,
    limit: int,
    before: dt.datetime | None,
) -> list[Inbound]:
    """Replies that changed the customer's consent with ``business``, from the ledger.

    The ledger keeps the number written to, the scope and the action, not the text.
    """
    event = tables.ConsentEvent
    number = tables.Number
    query = (
        select(event, number)
        .join(number, col(event.number_id) == col(number.id), isouter=True)
        .where(
            col(event.business_id) == business,
            col(event.phone) == phone.e164,
            col(event.source) == "keyword",
        )
    )
    if before is not None:
        query = query.where(col(event.at) < before)
    rows = session.execute(
        query.order_by(col(event.at).desc(), col(event.id).desc()).limit(limit)
    ).all()
    return [
        Inbound(
            at=row.at,
            ref=row.source_ref or str(row.id),
            role=found.role if found else None,
            number=_masked(found.e164) if found else None,
            body=None,
            keyword=None,
            keyword_kind="opt_out" if row.action == "opt_out" else "opt_in",
        )
        for row, found in rows
    ]


def _masked(e164: str) -> str:
    return Phone.from_stored(e164).masked
