"""The API's read models: a message with its decisions and statuses, a customer's chat
history with a business, and usage counts.

TODO: the chat history and usage belong to dispatcher/history.py and
dispatcher/billing.py, which another branch is building; until they land these are
minimal queries of their own. The boundary is the three functions below
(:func:`chat_history`, :func:`usage`, :func:`message_detail`): swap their bodies for
calls into those modules and the routes do not change.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlmodel import Session, col

from .. import tables
from ..errors import NotFound
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
    session: Session, business_id: int, phone: Phone, limit: int = 500
) -> schemas.ChatOut:
    """Outbound messages (with the role of the number and the rule) and inbound
    replies to the business's numbers (with the keyword kind), oldest first; the last
    ``limit`` entries."""
    message, inbound = tables.Message, tables.InboundMessage
    entries = [
        schemas.ChatEntry(
            at=row.created_at,
            direction="outbound",
            body=_shown(row),
            role=row.role,
            message_id=row.id,
            type=row.message_type,
            rule=row.rule_id,
            state=row.state,
            provider_status=row.provider_status,
        )
        for row in session.execute(
            select(message)
            .where(
                col(message.business_id) == business_id,
                col(message.phone) == phone.e164,
            )
            .order_by(col(message.id).desc())
            .limit(limit)
        ).scalars()
    ]
    entries.extend(
        schemas.ChatEntry(
            at=row.received_at,
            direction="inbound",
            body=row.body,
            role=row.role,
            message_sid=row.message_sid,
            keyword_kind=row.keyword_kind,
        )
        for row in session.execute(
            select(inbound)
            .where(
                col(inbound.business_id) == business_id,
                col(inbound.phone) == phone.e164,
            )
            .order_by(col(inbound.id).desc())
            .limit(limit)
        ).scalars()
    )
    # Inbound first on a tie: a reply is admitted at the instant its message arrived.
    entries.sort(key=lambda e: (e.at, e.direction == "outbound"))
    return schemas.ChatOut(
        phone=phone.e164, business_id=business_id, entries=entries[-limit:]
    )


def usage(
    session: Session,
    business_id: int,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> schemas.UsageOut:
    """Counts for billing: messages by state, segments handed to the provider by role,
    inbound messages and segments (inbound STOP included)."""
    message, inbound = tables.Message, tables.InboundMessage
    outbound_where = [col(message.business_id) == business_id]
    inbound_where = [col(inbound.business_id) == business_id]
    if since is not None:
        outbound_where.append(col(message.created_at) >= since)
        inbound_where.append(col(inbound.received_at) >= since)
    if until is not None:
        outbound_where.append(col(message.created_at) < until)
        inbound_where.append(col(inbound.received_at) < until)
    by_state = {
        str(state): int(count)
        for state, count in session.execute(
            select(col(message.state), func.count())
            .where(*outbound_where)
            .group_by(col(message.state))
        ).all()
    }
    by_role = {
        role or "none": int(total or 0)
        for role, total in session.execute(
            select(col(message.role), func.sum(col(message.segments)))
            .where(*outbound_where, col(message.state) == "sent")
            .group_by(col(message.role))
        ).all()
    }
    received, received_segments = session.execute(
        select(func.count(), func.coalesce(func.sum(col(inbound.segments)), 0)).where(
            *inbound_where
        )
    ).one()
    return schemas.UsageOut(
        business_id=business_id,
        since=since,
        until=until,
        outbound_messages=sum(by_state.values()),
        outbound_segments=sum(by_role.values()),
        outbound_by_state=by_state,
        outbound_segments_by_role=by_role,
        inbound_messages=int(received),
        inbound_segments=int(received_segments),
    )
