"""The audit log: every decision with its rule, policy version and facts.

Admission decisions live on the message row; decisions made again at claim time are in
``decision_events``. :func:`decisions` reads both, in time order, as one list of records
a reviewer can filter and export (CSV or JSON lines). Phone numbers are masked in the
export; the facts never hold one.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import IO

from sqlalchemy import select, update
from sqlmodel import Session, col

from . import tables
from .businesses import business_id
from .phone import Phone
from .store import utc_now


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision as the audit log shows it."""

    at: str
    message_id: int
    business_id: int
    recipient: str
    message_type: str
    stage: str
    outcome: str
    role: str | None
    rule_id: str
    rule_file: str
    rule_line: int
    policy_hash: str
    reason: str
    facts: str


def decisions(
    session: Session,
    *,
    business: int | str | None = None,
    rule_id: str | None = None,
    outcome: str | None = None,
) -> list[DecisionRecord]:
    """Every decision, oldest first, optionally filtered."""
    message, event = tables.Message, tables.DecisionEvent
    owner = business_id(session, business) if business is not None else None
    admitted = select(message)
    later = select(event, message).join(
        message, col(message.id) == col(event.message_id)
    )
    if owner is not None:
        admitted = admitted.where(col(message.business_id) == owner)
        later = later.where(col(message.business_id) == owner)
    if rule_id is not None:
        admitted = admitted.where(col(message.rule_id) == rule_id)
        later = later.where(col(event.rule_id) == rule_id)
    if outcome is not None:
        admitted = admitted.where(col(message.outcome) == outcome)
        later = later.where(col(event.outcome) == outcome)
    records = [
        _record(
            row.created_at,
            row,
            "admit",
            row.outcome,
            row.role,
            row.rule_id,
            row.rule_file,
            row.rule_line,
            row.policy_hash,
            row.reason,
            row.facts,
        )
        for row in session.execute(admitted).scalars()
    ]
    for ev, row in session.execute(later).all():
        records.append(
            _record(
                ev.at,
                row,
                ev.stage,
                ev.outcome,
                ev.role,
                ev.rule_id,
                ev.rule_file,
                ev.rule_line,
                ev.policy_hash,
                ev.reason,
                ev.facts,
            )
        )
    records.sort(key=lambda r: (r.at, r.message_id))
    return records


def _record(
    at: dt.datetime,
    row: tables.Message,
    stage: str,
    outcome: str,
    role: str | None,
    rule_id: str,
    rule_file: str,
    rule_line: int,
    policy_hash: str,
    reason: str,
    facts: str,
) -> DecisionRecord:
    return DecisionRecord(
        at=at.isoformat(),
        message_id=row.id or 0,
        business_id=row.business_id,
        recipient=Phone.from_stored(row.phone).masked,
        message_type=row.message_type,
        stage=stage,
        outcome=outcome,
        role=role,
        rule_id=rule_id,
        rule_file=rule_file,
        rule_line=rule_line,
        policy_hash=policy_hash,
        reason=reason,
        facts=facts,
    )


def write(records: Iterable[DecisionRecord], out: IO[str], fmt: str) -> None:
    """Write ``records`` as ``csv`` (with a header) or ``jsonl``."""
    rows = [asdict(r) for r in records]
    if fmt == "csv":
        fields = list(DecisionRecord.__dataclass_fields__)
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        return
    for row in rows:
        row["facts"] = json.loads(str(row["facts"]))
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


def dead_letters(session: Session) -> list[tables.Message]:
    message = tables.Message
    query = (
        select(message).where(col(message.state) == "dead").order_by(col(message.id))
    )
    return list(session.execute(query).scalars())


def requeue(session: Session, ids: list[int], now: dt.datetime | None = None) -> int:
    """Move dead letters back to the queue; returns how many moved."""
    message = tables.Message
    when = now or utc_now()
    dead = list(
        session.execute(
            select(col(message.id))
            .where(col(message.id).in_(ids), col(message.state) == "dead")
            .with_for_update()
        ).scalars()
    )
    if not dead:
        return 0
    session.execute(
        update(message)
        .where(col(message.id).in_(dead))
        .values(state="queued", not_before=when, attempts=0, updated_at=when)
    )
    moved = len(dead)
    for message_id in dead:
        session.add(
            tables.MessageEvent(
                message_id=message_id,
                at=when,
                kind="requeued",
                detail="requeued by an operator",
            )
        )
    return moved
