"""Delivery statuses reported by the provider, applied to the messages they concern.

Twilio's status callbacks and the simulator's reports take the same path:
:func:`apply_status` stores every report append-only and moves the message's provider
status forward only (callbacks arrive out of order: a late ``sending`` never replaces a
``delivered``). A report of error 21610 writes the opt-out for the scope of the number
that got it, as a failed send does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine as DbEngine
from sqlalchemy import select
from sqlmodel import Session, col

from . import billing, consent, tables
from .consent import ConsentSource
from .phone import Phone
from .policy import Policy
from .providers.base import MessageStatus, StatusReport
from .providers.classification import ErrorAction, classify
from .store import transaction, utc_now

log = structlog.get_logger("dispatcher.statuses")


@dataclass(frozen=True, slots=True)
class Applied:
    """What a report did: which message, whether the stored status moved, a replay."""

    message_id: int | None
    advanced: bool
    duplicate: bool


def apply_status(
    db: DbEngine,
    policy: Policy,
    report: StatusReport,
    *,
    now: dt.datetime | None = None,
) -> Applied:
    """Record ``report`` and move its message forward. Idempotent for a replayed report.

    A report for a message we do not know is kept in no table and logged: it is not ours
    (or was sent before this database existed).
    """
    when = now or utc_now()
    with transaction(db) as session:
        message = tables.Message
        query = select(message).where(col(message.provider_sid) == report.sid)
        if report.correlation_id:
            query = select(message).where(
                (col(message.provider_sid) == report.sid)
                | (col(message.correlation) == report.correlation_id)
            )
        row = session.execute(query.with_for_update()).scalars().first()
        if row is None or row.id is None:
            log.warning("status_unknown_message", status=report.status.value)
            return Applied(None, advanced=False, duplicate=False)
        event = tables.MessageEvent
        seen = session.execute(
            select(col(event.id)).where(
                col(event.message_id) == row.id,
                col(event.kind) == "status",
                col(event.status) == report.status.value,
                col(event.detail) == report.sid,
            )
        ).first()
        if seen is not None:
            return Applied(row.id, advanced=False, duplicate=True)
        session.add(
            tables.MessageEvent(
                message_id=row.id,
                at=when,
                kind="status",
                status=report.status.value,
                error_code=report.error_code,
                detail=report.sid,
            )
        )
        current = MessageStatus(row.provider_status) if row.provider_status else None
        advanced = report.status.advances(current)
        if advanced:
            row.provider_status = report.status.value
            row.provider_sid = row.provider_sid or report.sid
            if report.error_code is not None:
                row.error_code = report.error_code
            if row.state in ("sending", "unknown"):
                # The callback proves the provider has it: no reconciliation needed.
                row.state = "sent"
            row.updated_at = when
            session.add(row)
            billing.bill_message(session, row.id, when)
        if report.error_code is not None:
            action = classify(report.error_code).action
            if action is ErrorAction.RECORD_OPT_OUT and row.scope is not None:
                _record_opt_out(session, policy, row, when)
    log.info(
        "status_applied",
        message_id=row.id,
        status=report.status.value,
        advanced=advanced,
        error_code=report.error_code,
    )
    return Applied(row.id, advanced=advanced, duplicate=False)


def _record_opt_out(
    session: Session, policy: Policy, row: tables.Message, when: dt.datetime
) -> None:
    if row.scope is None:
        return
    owner = None if policy.scopes[row.scope].owner == "platform" else row.business_id
    consent.record(
        session,
        policy,
        phone=Phone.from_stored(row.phone),
        scope=row.scope,
        business=owner,
        opt_in=False,
        source=ConsentSource.PROVIDER_ERROR_21610,
        recorded_by="status callback",
        source_ref=str(row.id),
        number_id=row.from_number_id,
        at=when,
    )
