"""Replies customers send to our numbers: the scope they touch, the consent they change,
and the one answer the rules allow.

The number written to decides the scope (``policy.scope_of_role``): a STOP to a
business's marketing number revokes that business's marketing only, to its
transactional number its transactional messages only, and to the platform's global
number OTP codes for every business. :func:`receive` does, for one inbound SMS:

1. In one transaction: classify the text (:mod:`dispatcher.keywords`), record an opt-out
   or opt-in for that scope in the consent ledger (source ``keyword``, the provider's
   message id as evidence), and append the message to ``inbound_messages``, keyword or
   not, so it shows in the chat history.
2. Then admit the answer through the send pipeline (:func:`dispatcher.outbox.admit`), so
   it is decided by the policy like any message: the HELP reply; after an opt-out or an
   opt-in that changed the state, the one confirmation (FCC 64.1200(a)(12)). Its
   idempotency key is ``reply:<MessageSid>``.

A message id seen before changes nothing: the stored row is the answer, and the reply is
admitted again under the same key, which returns the first result (or completes a reply
that a crash interrupted between the two steps).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine as DbEngine
from sqlalchemy import select
from sqlmodel import Session, col

from . import consent, numbers, segments, tables
from .businesses import get_business
from .consent import ConsentSource
from .engine import Engine
from .errors import ConstraintViolation, InputError
from .facts import ConsentState
from .keywords import Kind, Match, ReplyClassifier, reply_text
from .outbox import Admitted, SendRequest, admit
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
    number of the registry, and :class:`~dispatcher.errors.FieldError` for a malformed
    message id; nothing is written then.
    """
    if not sms.sid or len(sms.sid) > MAX_SID:
        raise InputError(f"MessageSid: expected 1-{MAX_SID} characters")
    when = now or utc_now()
    policy = engine.policy
    try:
        with transaction(db) as session:
            row = _stored(session, sms.sid)
            if row is None:
                row, changed = _record(session, engine, classifier, sms, when)
                duplicate = False
            else:
                changed, duplicate = False, True
            reply_business = _reply_business(session, row)
    except ConstraintViolation:
        # The same message delivered twice at once: the other delivery wrote it.
        with transaction(db, write=False) as session:
            found = _stored(session, sms.sid)
            if found is None:
                raise
            row, changed, duplicate = found, False, True
            reply_business = _reply_business(session, row)
    if row.id is None:  # pragma: no cover - flushed rows have ids
        raise ConstraintViolation("inbound", "not written")
    kind = Kind(row.keyword_kind) if row.keyword_kind else None
    reply, skipped = None, None
    if row.reply_type is not None:
        if reply_business is None:
            skipped = "no business has messaged this phone from the global number"
        else:
            reply = _answer(
                db, engine, row, kind, reply_business, settings, sms.sender, when
            )
    result = Received(
        inbound_id=row.id,
        duplicate=duplicate,
        business_id=row.business_id,
        role=row.role,
        scope=row.scope,
        kind=kind,
        consent_changed=changed,
        reply=reply,
        reply_skipped=skipped,
    )
    log.info(
        "inbound_received",
        inbound_id=row.id,
        business_id=row.business_id,
        role=row.role,
        scope=row.scope,
        kind=kind.value if kind else None,
        consent_changed=changed,
        duplicate=duplicate,
        reply_message_id=reply.message_id if reply else None,
        reply_state=reply.state if reply else None,
        reply_skipped=skipped,
        policy=policy.short_hash,
    )
    return result


def _stored(session: Session, sid: str) -> tables.InboundMessage | None:
    return session.execute(
        select(tables.InboundMessage).where(
            col(tables.InboundMessage.message_sid) == sid
        )
    ).scalar_one_or_none()


def _record(
    session: Session,
    engine: Engine,
    classifier: ReplyClassifier,
    sms: InboundSms,
    when: dt.datetime,
) -> tuple[tables.InboundMessage, bool]:
    policy = engine.policy
    number = numbers.get_number(session, sms.number)
    scope = policy.scope_of_role(number.role)
    match = classifier.classify(scope, sms.body)
    event_id, changed = None, False
    if match is not None and match.kind is not Kind.HELP:
        event_id, changed = _change_consent(
            session, engine, sms, number, scope, match, when
        )
    reply_type = _reply_type(policy, match, changed)
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
        reply_type=reply_type,
        consent_event_id=event_id,
        received_at=when,
    )
    session.add(row)
    session.flush()
    return row, changed


def _change_consent(
    session: Session,
    engine: Engine,
    sms: InboundSms,
    number: numbers.SenderNumber,
    scope: str,
    match: Match,
    when: dt.datetime,
) -> tuple[int, bool]:
    policy = engine.policy
    opt_in = match.kind is Kind.OPT_IN
    before = consent.current_state(
        session, policy, sms.sender, scope, number.business_id
    )
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
    after = ConsentState.OPTED_IN if opt_in else ConsentState.OPTED_OUT
    return entry.id, before is not after


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


def _reply_business(session: Session, row: tables.InboundMessage) -> int | None:
    """Who a reply is sent (and billed) for: the number's business; for the global
    number, the business whose message from it reached this phone last."""
    if row.business_id is not None:
        return row.business_id
    message = tables.Message
    return session.execute(
        select(col(message.business_id))
        .where(
            col(message.phone) == row.phone,
            col(message.from_number_id) == row.number_id,
        )
        .order_by(col(message.id).desc())
        .limit(1)
    ).scalar_one_or_none()


def _answer(
    db: DbEngine,
    engine: Engine,
    row: tables.InboundMessage,
    kind: Kind | None,
    business: int,
    settings: Settings,
    sender: Phone,
    when: dt.datetime,
) -> Admitted | None:
    if kind is None or row.reply_type is None:
        return None
    with transaction(db, write=False) as session:
        name = get_business(session, business).name
    text = reply_text(
        engine.policy,
        row.scope,
        kind,
        row.language or "en",
        business=name,
        platform=settings.platform_name,
        help_contact=settings.help_contact,
    )
    request = SendRequest(
        business=business,
        to=sender,
        message_type=row.reply_type,
        body=text,
        reply_role=row.role,
        idempotency_key=f"reply:{row.message_sid}",
    )
    try:
        return admit(db, engine, request, now=when)
    except ConstraintViolation as error:
        if error.field != "idempotency_key":
            raise
        # The rules' reply text changed since the first delivery: the first answer
        # stands.
        return _first_reply(db, business, request.idempotency_key or "")


def _first_reply(db: DbEngine, business: int, key: str) -> Admitted | None:
    with transaction(db, write=False) as session:
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
