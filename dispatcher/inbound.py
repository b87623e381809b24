"""Replies customers send to our numbers: the scope they touch, the consent they change,
the usage they bill, and the one answer the rules allow.

The number written to decides the scope (``policy.scope_of_role``): a STOP to a
business's marketing number revokes that business's marketing only, to its
transactional number its transactional messages only, and to the platform's global
number OTP codes for every business. :func:`receive` does, for one inbound SMS and in
one write transaction:

1. classify the text (:mod:`dispatcher.keywords`) for the scope of the number, found
   with its business, and whether the message id was stored before, in one read;
2. record an opt-out or opt-in for that scope in the consent ledger (source
   ``keyword``, the provider's message id as evidence);
3. append the message to ``inbound_messages``, keyword or not, so it shows in the chat
   history, and bill it (:func:`dispatcher.billing.record_inbound`);
4. admit the answer through the send pipeline (:func:`dispatcher.outbox.admit_in`), so
   it is decided by the policy like any message: the HELP reply; after an opt-out or an
   opt-in that changed the state, the one confirmation (FCC 64.1200(a)(12)). Its
   idempotency key is ``reply:<MessageSid>``; the workers send it.

Doing it all at once keeps the webhook to one round of statements and leaves no moment
where the opt-out is stored but its confirmation is not. An answer the policy cannot
place (no number in the role it chose) is skipped and logged; the opt-out stands.

A message for the global number is answered, billed and shown in the chat history of
the business whose message from that number reached the phone last; with none, it is
stored and billed to no business, and not answered.

A message id seen before changes nothing: the stored row is the answer, and the reply
admitted with it is returned again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine as DbEngine
from sqlalchemy import bindparam, insert, select
from sqlmodel import Session

from . import billing, businesses, consent, segments, tables
from .consent import ConsentSource
from .engine import Engine
from .errors import ConstraintViolation, FieldError, InputError, NotFound
from .keywords import Kind, Match, ReplyClassifier, reply_text
from .outbox import (
    Admitted,
    IdempotencyConflict,
    SendRequest,
    admit_in,
    admitted_by_key,
)
from .phone import Phone
from .policy import Policy
from .store import transaction, utc_now

log = structlog.get_logger("dispatcher.inbound")

# The catalogue's message type for the answer to each kind of keyword.
REPLY_TYPES = {
    Kind.HELP: "help_reply",
    Kind.OPT_OUT: "opt_out_confirmation",
    Kind.REVOCATION: "opt_out_confirmation",
    Kind.OPT_IN: "opt_in_confirmation",
}
RECORDED_BY = "inbound webhook"
NO_SENDER = "no business has messaged this phone from the global number"
MAX_SID = 64


@dataclass(frozen=True, slots=True)
class InboundSms:
    """One SMS a customer sent: ``sender`` is the customer, ``number`` ours."""

    sid: str
    sender: Phone
    number: Phone
    body: str


@dataclass(frozen=True, slots=True)
class Received:
    """What :func:`receive` did. ``reply`` is None when no answer was due (ordinary
    chat, a repeated STOP) or none could be sent (``reply_skipped`` says why)."""

    inbound_id: int
    duplicate: bool
    business_id: int | None
    role: str
    scope: str
    kind: Kind | None
    consent_changed: bool
    reply: Admitted | None
    reply_skipped: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """What the reply texts fill in: the platform's name and where to get help."""

    platform_name: str
    help_contact: str


def receive(
    db: DbEngine,
    engine: Engine,
    classifier: ReplyClassifier,
    sms: InboundSms,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
) -> Received:
    """Record ``sms`` and act on it (see the module docstring).

    Raises :class:`~dispatcher.errors.NotFound` when ``sms.number`` is not an active
    number of the registry, and :class:`~dispatcher.errors.InputError` for a malformed
    message id; nothing is written then.
    """
    if not sms.sid or len(sms.sid) > MAX_SID:
        raise InputError(f"MessageSid: expected 1-{MAX_SID} characters")
    when = now or utc_now()
    try:
        with transaction(db) as session:
            number = _number(session, sms)
            if number is not None and number.seen is None:
                result = _record(
                    session, engine, classifier, sms, number, settings, when
                )
            else:
                row = _stored(session, sms.sid)
                if row is None:
                    raise NotFound(
                        "number",
                        f"{sms.number} is not an active number of the registry",
                    )
                result = _repeated(session, engine, row, settings, when)
    except ConstraintViolation:
        # The same message delivered twice at once: the other delivery wrote it.
        with transaction(db, write=False) as session:
            found = _stored(session, sms.sid)
            if found is None:
                raise
            result = _repeated(session, engine, found, settings, when, admit=False)
    log.info(
        "inbound_received",
        inbound_id=result.inbound_id,
        business_id=result.business_id,
        role=result.role,
        scope=result.scope,
        kind=result.kind.value if result.kind else None,
        consent_changed=result.consent_changed,
        duplicate=result.duplicate,
        reply_message_id=result.reply.message_id if result.reply else None,
        reply_state=result.reply.state if result.reply else None,
        reply_skipped=result.reply_skipped,
        policy=engine.policy.short_hash,
    )
    return result


@dataclass(frozen=True, slots=True)
class _Number:
    """The active number written to, its business's name (None for the platform's
    numbers) and the id of the stored message when its MessageSid was seen before."""

    id: int
    business_id: int | None
    role: str
    business_name: str | None
    seen: int | None


@dataclass(frozen=True, slots=True)
class _Stored:
    """An ``inbound_messages`` row, as far as answering it again needs."""

    id: int
    message_sid: str
    business_id: int | None
    number_id: int
    role: str
    scope: str
    phone: str
    keyword_kind: str | None
    language: str | None
    reply_type: str | None


_INBOUND = tables.table_of(tables.InboundMessage)
_NUMBERS = tables.table_of(tables.Number)
_BUSINESSES = tables.table_of(tables.Business)
_MESSAGES = tables.table_of(tables.Message).c
# Built once, as Core statements: every inbound message runs them.
_LOOKUP = (
    select(
        _NUMBERS.c.id,
        _NUMBERS.c.business_id,
        _NUMBERS.c.role,
        _BUSINESSES.c.name,
        select(_INBOUND.c.id)
        .where(_INBOUND.c.message_sid == bindparam("sid"))
        .scalar_subquery(),
    )
    .select_from(_NUMBERS)
    .outerjoin(_BUSINESSES, _NUMBERS.c.business_id == _BUSINESSES.c.id)
    .where(_NUMBERS.c.e164 == bindparam("e164"), _NUMBERS.c.retired_at.is_(None))
)
_STORED_FIELDS = tuple(field.name for field in dataclasses.fields(_Stored))
_STORED = select(*(_INBOUND.c[name] for name in _STORED_FIELDS)).where(
    _INBOUND.c.message_sid == bindparam("sid")
)
_STORE = insert(_INBOUND).returning(_INBOUND.c.id)
_LAST_SENDER = (
    select(_MESSAGES.business_id)
    .where(
        _MESSAGES.phone == bindparam("phone"),
        _MESSAGES.from_number_id == bindparam("number"),
    )
    .order_by(_MESSAGES.id.desc())
    .limit(1)
)
_BUSINESS_NAME = select(_BUSINESSES.c.name).where(
    _BUSINESSES.c.id == bindparam("business")
)


def _number(session: Session, sms: InboundSms) -> _Number | None:
    """The active number ``sms`` was written to, with whether its id was stored."""
    found = session.execute(_LOOKUP, {"e164": sms.number.e164, "sid": sms.sid}).first()
    if found is None:
        return None
    number = _Number(*found)
    if number.business_id is not None:
        # Read with its number: the ledger and the reply need not check it again.
        businesses.known(session, number.business_id)
    return number


def _stored(session: Session, sid: str) -> _Stored | None:
    found = session.execute(_STORED, {"sid": sid}).first()
    return None if found is None else _Stored(*found)


def _record(
    session: Session,
    engine: Engine,
    classifier: ReplyClassifier,
    sms: InboundSms,
    number: _Number,
    settings: Settings,
    when: dt.datetime,
) -> Received:
    policy = engine.policy
    scope = policy.scope_of_role(number.role)
    match = classifier.classify(scope, sms.body)
    event_id, changed = None, False
    if match is not None and match.kind is not Kind.HELP:
        event_id, changed = _change_consent(
            session, engine, sms, number, scope, match, when
        )
    answering = (
        number.business_id
        if number.business_id is not None
        else _last_sender(session, sms.sender, number.id)
    )
    values: dict[str, Any] = {
        "message_sid": sms.sid,
        "business_id": number.business_id,
        "number_id": number.id,
        "role": number.role,
        "scope": scope,
        "phone": sms.sender.e164,
        "body": sms.body,
        "segments": segments.count(sms.body).segments,
        "keyword_kind": match.kind.value if match else None,
        "keyword": match.keyword[:64] if match else None,
        "language": match.language if match else None,
        "matched_by": match.matched_by.value if match else None,
        "reply_type": _reply_type(policy, match, changed),
        "consent_event_id": event_id,
        "received_at": when,
    }
    values["id"] = session.execute(_STORE, values).scalar_one()
    row = _Stored(**{name: values[name] for name in _STORED_FIELDS})
    billing.record_inbound(
        session,
        message_sid=sms.sid,
        to=sms.number,
        body=sms.body,
        at=when,
        business=answering,
        number=number,
    )
    reply, skipped = None, None
    if row.reply_type is not None and match is not None:
        if answering is None:
            skipped = NO_SENDER
        else:
            name = number.business_name
            if name is None:
                name = _business_name(session, answering)
            text = reply_text(
                policy,
                scope,
                match.kind,
                row.language or "en",
                business=name,
                platform=settings.platform_name,
                help_contact=settings.help_contact,
            )
            reply, skipped = _admit_reply(
                session, engine, row, sms.sender, answering, text, when
            )
    return _received(row, False, changed, reply, skipped)


def _repeated(
    session: Session,
    engine: Engine,
    row: _Stored,
    settings: Settings,
    when: dt.datetime,
    *,
    admit: bool = True,
) -> Received:
    """What a message seen before did: its row and the reply admitted with it.

    A row stored before replies were admitted in the same transaction may lack its
    reply; with ``admit`` it is admitted now.
    """
    reply, skipped = None, None
    if row.reply_type is not None:
        sender = Phone.from_stored(row.phone)
        answering = (
            row.business_id
            if row.business_id is not None
            else _last_sender(session, sender, row.number_id)
        )
        if answering is None:
            skipped = NO_SENDER
        else:
            reply = admitted_by_key(session, answering, f"reply:{row.message_sid}")
            kind = Kind(row.keyword_kind) if row.keyword_kind else None
            if reply is None and admit and kind is not None:
                text = reply_text(
                    engine.policy,
                    row.scope,
                    kind,
                    row.language or "en",
                    business=_business_name(session, answering),
                    platform=settings.platform_name,
                    help_contact=settings.help_contact,
                )
                reply, skipped = _admit_reply(
                    session, engine, row, sender, answering, text, when
                )
    return _received(row, True, False, reply, skipped)


def _received(
    row: _Stored,
    duplicate: bool,
    changed: bool,
    reply: Admitted | None,
    skipped: str | None,
) -> Received:
    return Received(
        inbound_id=row.id,
        duplicate=duplicate,
        business_id=row.business_id,
        role=row.role,
        scope=row.scope,
        kind=Kind(row.keyword_kind) if row.keyword_kind else None,
        consent_changed=changed,
        reply=reply,
        reply_skipped=skipped,
    )


def _change_consent(
    session: Session,
    engine: Engine,
    sms: InboundSms,
    number: _Number,
    scope: str,
    match: Match,
    when: dt.datetime,
) -> tuple[int, bool]:
    policy = engine.policy
    opt_in = match.kind is Kind.OPT_IN
    entry = consent.record(
        session,
        policy,
        phone=sms.sender,
        scope=scope,
        business=number.business_id,
        opt_in=opt_in,
        source=ConsentSource.KEYWORD,
        source_ref=sms.sid,
        number_id=number.id,
        # A keyword opt-in's evidence is what the customer wrote, under the rules
        # (identified by their hash) that made it count.
        consent_text=sms.body if opt_in else None,
        consent_text_version=f"keyword@{policy.short_hash}" if opt_in else None,
        recorded_by=RECORDED_BY,
        at=when,
    )
    return entry.id, entry.changed


def _reply_type(policy: Policy, match: Match | None, changed: bool) -> str | None:
    if match is None:
        return None
    if match.kind is not Kind.HELP and not changed:
        # One confirmation per change: a second STOP gets no second text.
        return None
    wanted = REPLY_TYPES[match.kind]
    if wanted not in policy.message_types:
        log.error("inbound_reply_type_missing", message_type=wanted)
        return None
    return wanted


def _last_sender(session: Session, phone: Phone, number_id: int) -> int | None:
    """The business whose message from the platform number ``number_id`` reached
    ``phone`` last: who a reply to that number is answered, billed and shown for."""
    found = session.execute(_LAST_SENDER, {"phone": phone.e164, "number": number_id})
    business: int | None = found.scalar_one_or_none()
    return business


def _business_name(session: Session, business: int) -> str:
    found: str | None = session.execute(
        _BUSINESS_NAME, {"business": business}
    ).scalar_one_or_none()
    if found is None:  # pragma: no cover - foreign keys keep businesses
        raise NotFound("business", f"no business {business}")
    return found


def _admit_reply(
    session: Session,
    engine: Engine,
    row: _Stored,
    sender: Phone,
    business: int,
    text: str,
    when: dt.datetime,
) -> tuple[Admitted | None, str | None]:
    """Admit the answer in the caller's transaction; ``(None, why)`` when the policy
    cannot place it, so the reply's failure never undoes the opt-out it confirms."""
    if row.reply_type is None:  # pragma: no cover - callers check
        return None, None
    key = f"reply:{row.message_sid}"
    request = SendRequest(
        business=business,
        to=sender,
        message_type=row.reply_type,
        body=text,
        reply_role=row.role,
        idempotency_key=key,
    )
    try:
        return admit_in(session, engine, request, when), None
    except IdempotencyConflict:
        # The rules' reply text changed since the first delivery: the first answer
        # stands.
        return admitted_by_key(session, business, key), None
    except FieldError as error:
        log.error("inbound_reply_refused", field=error.field, reason=error.reason)
        return None, f"{error.field}: {error.reason}"
