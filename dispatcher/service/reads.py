"""The API's read models: a message with its decisions and statuses, a customer's chat
history with a business (:func:`dispatcher.history.conversation`), and the month's
usage report (:func:`dispatcher.billing.usage_report`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from .. import billing, history, tables
from ..billing import Month, Rates
from ..errors import NotFound
from ..history import DEFAULT_LIMIT
from ..phone import Phone
from . import schemas

HIDDEN_CATEGORIES = frozenset({"otp"})  # bodies never shown: codes


def _shown(row: tables.Message) -> str | None:
    return None if row.category in HIDDEN_CATEGORIES else row.body


def message_detail(
    session: Session, business_id: int, message_id: int
) -> schemas.MessageOut:
    """One message of ``business_id``; NotFound for another business's message too."""
    row = session.get(tables.Message, message_id)
    if row is None or row.business_id != business_id or row.id is None:
        raise NotFound("message", f"no message {message_id} for this business")
    admitted = schemas.DecisionOut(
        at=row.created_at,
        stage="admit",
        outcome=row.outcome,
        role=row.role,
        rule=schemas.RuleRef(id=row.rule_id, file=row.rule_file, line=row.rule_line),
        reason=row.reason,
        policy_hash=row.policy_hash,
    )
    event = tables.DecisionEvent
    later = [
        schemas.DecisionOut(
            at=ev.at,
            stage=ev.stage,
            outcome=ev.outcome,
            role=ev.role,
            rule=schemas.RuleRef(id=ev.rule_id, file=ev.rule_file, line=ev.rule_line),
            reason=ev.reason,
            policy_hash=ev.policy_hash,
        )
        for ev in session.execute(
            select(event).where(col(event.message_id) == row.id).order_by(col(event.id))
        ).scalars()
    ]
    status = tables.MessageEvent
    statuses = [
        schemas.StatusOut(
            at=ev.at,
            kind=ev.kind,
            status=ev.status,
            error_code=ev.error_code,
            detail=ev.detail,
        )
        for ev in session.execute(
            select(status)
            .where(col(status.message_id) == row.id)
            .order_by(col(status.id))
        ).scalars()
    ]
    return schemas.MessageOut(
        id=row.id,
        business_id=row.business_id,
        to=row.phone,
        type=row.message_type,
        category=row.category,
        channel=row.channel,
        body=_shown(row),
        state=row.state,
        segments=row.segments,
        created_at=row.created_at,
        not_before=row.not_before,
        decision=admitted,
        decisions=[admitted, *later],
        provider_sid=row.provider_sid,
        provider_status=row.provider_status,
        error_code=row.error_code,
        statuses=statuses,
    )


def chat_history(
    session: Session, business_id: int, phone: Phone, limit: int = DEFAULT_LIMIT
) -> schemas.ChatOut:
    """The last ``limit`` entries between the business and ``phone``, oldest first:
    outbound messages (the role of the number, the rule) and every inbound message
    (the keyword kind); OTP bodies are never shown."""
    entries = [
        _chat_entry(entry)
        for entry in history.conversation(session, business_id, phone, limit)
    ]
    return schemas.ChatOut(phone=phone.e164, business_id=business_id, entries=entries)


def _chat_entry(entry: history.Entry) -> schemas.ChatEntry:
    if isinstance(entry, history.Inbound):
        return schemas.ChatEntry(
            at=entry.at,
            direction="inbound",
            body=entry.body,
            role=entry.role,
            number=entry.number,
            message_sid=entry.ref,
            keyword=entry.keyword,
            keyword_kind=entry.keyword_kind,
        )
    return schemas.ChatEntry(
        at=entry.at,
        direction="outbound",
        body=None if entry.category in HIDDEN_CATEGORIES else entry.body,
        role=entry.role,
        number=entry.number,
        message_id=entry.message_id,
        type=entry.message_type,
        rule=entry.rule,
        state=entry.state,
        provider_status=entry.provider_status,
        segments=entry.segments,
    )


def usage(
    session: Session, business_id: int, month: Month, rates: Rates
) -> schemas.UsageOut:
    """The business's usage in ``month`` from the billing ledger, priced with
    ``rates``: a line per role, direction and kind, totals and money."""
    report = billing.usage_report(session, business_id, month, rates)
    return schemas.UsageOut.model_validate(report.to_mapping())
