"""What the database knows about one (business, recipient) pair, ready for the engine.

The send pipeline calls :func:`take_snapshot` once per message and builds
:class:`~dispatcher.facts.Facts` from it together with what it knows itself (the
message type, the recipient's local time)::

    with transaction(engine, write=False) as session:
        snap = take_snapshot(session, policy, business_id, phone)
    facts = Facts(message_type="order_status", channel=Channel.SMS,
                  jurisdiction="US-TX", local_date=..., local_time=...,
                  **snap.fact_fields())

Two indexed reads: the business with its active numbers and the platform's, and the
consent states of the phone for that business and the platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, or_, select
from sqlmodel import Session

from . import consent, tables
from .errors import NotFound
from .facts import ConsentState, NumberStatus
from .phone import Phone
from .policy import Policy


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Stored facts: enrolment, each role's number status, each scope's consent.

    ``numbers`` has every role of the policy (``absent`` where no active number holds
    it); ``consent`` has every scope (``none`` where nothing was recorded).
    """

    business_id: int
    assist: bool
    accelerate: bool
    numbers: Mapping[str, NumberStatus]
    consent: Mapping[str, ConsentState]

    def fact_fields(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~dispatcher.facts.Facts`."""
        return {
            "assist": self.assist,
            "accelerate": self.accelerate,
            "numbers": dict(self.numbers),
            "consent": dict(self.consent),
        }


def _numbers_query() -> Select[bool, bool, str, str, int | None]:
    # Table columns, not the models' attributes: a Core statement skips the ORM's
    # work on every execution.
    business = tables.table_of(tables.Business).c
    number = tables.table_of(tables.Number)
    joined = and_(
        number.c.retired_at.is_(None),
        or_(number.c.business_id == business.id, number.c.business_id.is_(None)),
    )
    return (
        select(
            business.assist,
            business.accelerate,
            number.c.role,
            number.c.status,
            number.c.business_id,
        )
        .select_from(tables.table_of(tables.Business))
        .outerjoin(number, joined)
        .where(business.id == bindparam("business_id"))
    )


# Built once: the send pipeline runs it for every message.
_NUMBERS = _numbers_query()


def number_statuses(
    session: Session, policy: Policy, business_id: int
) -> tuple[bool, bool, dict[str, NumberStatus]]:
    """``(assist, accelerate, status per role)`` for a business. One read.

    Raises :class:`~dispatcher.errors.NotFound` for an unknown business.
    """
    rows = session.execute(_NUMBERS, {"business_id": business_id}).all()
    if not rows:
        raise NotFound("business", f"no business {business_id!r}")
    statuses = dict.fromkeys(policy.roles, NumberStatus.ABSENT)
    for _assist, _accelerate, role, status, owner in rows:
        known = policy.roles.get(role) if role is not None else None
        if known is None or status is None:
            continue
        # A platform role is read from the platform's number only, a business role
        # from the business's own.
        if (known.owner == "platform") == (owner is None):
            statuses[role] = NumberStatus(status)
    return bool(rows[0][0]), bool(rows[0][1]), statuses


def take_snapshot(
    session: Session, policy: Policy, business_id: int, phone: Phone
) -> Snapshot:
    """Everything stored that the policy needs for one message to ``phone``."""
    assist, accelerate, numbers = number_statuses(session, policy, business_id)
    scopes = consent.states(session, policy, phone, business_id)
    return Snapshot(business_id, assist, accelerate, numbers, scopes)
