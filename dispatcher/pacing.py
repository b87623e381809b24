"""Pacing: each sending number's throughput, shared by every worker on every machine.

One row per number in ``pacers`` holds the theoretical time its next segment may leave
(the generic cell rate algorithm). A claim takes a slot when that time is within one
burst of now and moves it on by ``segments / segments_per_second``; the row is locked
for the rest of the claim transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from . import tables


def take_pace(
    session: Session,
    number_id: int,
    segments: int,
    clock: Callable[[], dt.datetime],
    burst: dt.timedelta,
    *,
    wait: bool = True,
) -> bool:
    """Take ``segments`` from the number's pacer (GCRA); False when it must wait.

    The pacer row is locked for the rest of the claim, so workers on many machines share
    one pace per number; claims take their pacers last and in number order, so the lock
    is short and two claims never wait on each other crosswise. With ``wait`` false a
    pacer another claim holds is skipped instead. The time is read once the lock is
    held: a claim that waited would otherwise compare the pacer with a moment already
    past and refuse slots that are due.
    """
    number = session.get(tables.Number, number_id)
    if number is None:
        return False
    pacer = locked_pacer(session, number_id, clock(), wait=wait)
    if pacer is None:
        return False
    now = clock()
    # A claim that comes late (a busy machine, a slow round) may use the slots it missed
    # within one burst, so the number keeps its rate on average; never more than that.
    ready = max(pacer.ready_at, now - burst)
    if ready - now > burst:
        return False
    pacer.ready_at = ready + dt.timedelta(
        seconds=max(1, segments) / number.segments_per_second
    )
    session.add(pacer)
    return True


def locked_pacer(
    session: Session, number_id: int, now: dt.datetime, *, wait: bool = True
) -> tables.Pacer | None:
    """The number's pacer row, locked until the transaction ends; created if missing.

    Without ``wait``, None when another claim holds it right now (``SKIP LOCKED``;
    SQLite has one writer and never gets here busy). Workers that meet a number for the
    first time at once must not both insert its row: the insert does nothing when a
    concurrent one won.
    """
    query = (
        select(tables.Pacer)
        .where(col(tables.Pacer.number_id) == number_id)
        .with_for_update(skip_locked=not wait)
    )
    pacer: tables.Pacer | None = session.execute(query).scalar_one_or_none()
    if pacer is not None:
        return pacer
    exists = session.execute(
        select(col(tables.Pacer.number_id)).where(
            col(tables.Pacer.number_id) == number_id
        )
    ).first()
    if exists is not None:
        return None
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(tables.Pacer)
        .values(number_id=number_id, ready_at=now)
        .on_conflict_do_nothing()
    )
    created: tables.Pacer | None = session.execute(query).scalar_one_or_none()
    return created
