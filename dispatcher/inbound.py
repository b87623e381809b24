"""Replies customers send to our numbers: the scope they touch, the consent they change,
the usage they bill, and the one answer the rules allow.

The number written to decides the scope (``policy.scope_of_role``): a STOP to a
business's marketing number revokes that business's marketing only, to its
transactional number its transactional messages only, and to the platform's global
number OTP codes for every business. :func:`receive` does, for one inbound SMS and in
one write transaction:

1. classify the text (:mod:`dispatcher.keywords`) for the scope of the number, found
   with its business in one indexed read;
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

import datetime as dt
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine as DbEngine
from sqlalchemy import select
from sqlmodel import Session, col

from . import billing, consent, segments, tables
from .consent import ConsentSource
from .engine import Engine
from .errors import ConstraintViolation, FieldError, InputError, NotFound
from .keywords import Kind, Match, ReplyClassifier, reply_text
from .outbox import Admitted, IdempotencyConflict, SendRequest, admit_in
from .phone import Phone
from .policy import Outcome, Policy
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
            row = _stored(session, sms.sid)
            if row is None:
                result = _record(session, engine, classifier, sms, settings, when)
            else:
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


def _stored(session: Session, sid: str) -> tables.InboundMessage | None:
    return session.execute(
        select(tables.InboundMessage).where(
            col(tables.InboundMessage.message_sid) == sid
        )
    ).scalar_one_or_none()


def _number(
    session: Session, phone: Phone
) -> tuple[tables.Number, tables.Business | None]:
    """The active number ``phone`` and its business (None for the platform's)."""
    number, business = tables.Number, tables.Business
    found = session.execute(
        select(number, business)
        .join(business, col(number.business_id) == col(business.id), isouter=True)
        .where(col(number.e164) == phone.e164, col(number.retired_at).is_(None))
    ).first()
    if found is None:
        raise NotFound("number", f"{phone} is not an active number of the registry")
    return found[0], found[1]


def _record(
    session: Session,
    engine: Engine,
    classifier: ReplyClassifier,
    sms: InboundSms,
    settings: Settings,
    when: dt.datetime,
) -> Received:
    policy = engine.policy
    number, owner = _number(session, sms.number)
    if number.id is None:  # pragma: no cover - rows read back have ids
        raise NotFound("number", "not written")
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
    row = tables.InboundMessage(
        message_sid=sms.sid,
        business_id=number.business_id,
        number_id=number.id,
        role=number.role,
        scope=scope,
        phone=sms.sender.e164,
        body=sms.body,
        segments=segments.count(sms.body).segments,
        keyword_kind=match.kind.value if match else None,
        keyword=match.keyword[:64] if match else None,
        language=match.language if match else None,
        matched_by=match.matched_by.value if match else None,
        reply_type=_reply_type(policy, match, changed),
        consent_event_id=event_id,
        received_at=when,
    )
    session.add(row)
    billing.record_inbound(
        session,
        message_sid=sms.sid,
        to=sms.number,
        body=sms.body,
        at=when,
        business=answering,
        number=number,
    )
    session.flush()
    reply, skipped = None, None
    if row.reply_type is not None and match is not None:
        if answering is None:
            skipped = NO_SENDER
        else:
            name = (
                owner.name if owner is not None else _business_name(session, answering)
            )
            text = reply_text(
                policy,
                scope,
                match.kind,
                row.language or "en",
                business=name,
                platform=settings.platform_name,
                help_contact=settings.help_contact,
            )
            reply, skipped = _admit_reply(session, engine, row, answering, text, when)
    return _received(row, False, changed, reply, skipped)


def _repeated(
    session: Session,
    engine: Engine,
    row: tables.InboundMessage,
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
        answering = (
            row.business_id
            if row.business_id is not None
            else _last_sender(session, Phone.from_stored(row.phone), row.number_id)
        )
        if answering is None:
            skipped = NO_SENDER
        else:
            reply = _first_reply(session, answering, f"reply:{row.message_sid}")
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
                    session, engine, row, answering, text, when
                )
    return _received(row, True, False, reply, skipped)


def _received(
    row: tables.InboundMessage,
    duplicate: bool,
    changed: bool,
    reply: Admitted | None,
    skipped: str | None,
) -> Received:
    if row.id is None:  # pragma: no cover - flushed rows have ids
        raise ConstraintViolation("inbound", "not written")
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
    number: tables.Number,
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
    message = tables.Message
    return session.execute(
        select(col(message.business_id))
        .where(
            col(message.phone) == phone.e164,
            col(message.from_number_id) == number_id,
        )
        .order_by(col(message.id).desc())
        .limit(1)
    ).scalar_one_or_none()


def _business_name(session: Session, business: int) -> str:
    found = session.get(tables.Business, business)
    if found is None:  # pragma: no cover - foreign keys keep businesses
        raise NotFound("business", f"no business {business}")
    return found.name


def _admit_reply(
    session: Session,
    engine: Engine,
    row: tables.InboundMessage,
    business: int,
    text: str,
    when: dt.datetime,
) -> tuple[Admitted | None, str | None]:
    """Admit the answer in the caller's transaction; ``(None, why)`` when the policy
    cannot place it, so the reply's failure never undoes the opt-out it confirms."""
    if row.reply_type is None:  # pragma: no cover - callers check
        return None, None
    request = SendRequest(
        business=business,
        to=Phone.from_stored(row.phone),
        message_type=row.reply_type,
        body=text,
        reply_role=row.role,
        idempotency_key=f"reply:{row.message_sid}",
    )
    try:
        return admit_in(session, engine, request, when), None
    except IdempotencyConflict:
        # The rules' reply text changed since the first delivery: the first answer
        # stands.
        key = request.idempotency_key or ""
        return _first_reply(session, business, key), None
    except FieldError as error:
        log.error("inbound_reply_refused", field=error.field, reason=error.reason)
        return None, f"{error.field}: {error.reason}"


def _first_reply(session: Session, business: int, key: str) -> Admitted | None:
    found = session.execute(
        select(tables.Message).where(
            col(tables.Message.business_id) == business,
            col(tables.Message.idempotency_key) == key,
        )
    ).scalar_one_or_none()
    if found is None or found.id is None:
        return None
    return Admitted(
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
