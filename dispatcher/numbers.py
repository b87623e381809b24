"""The number registry and the second-number flow.

A sending number belongs to one business in one role (``business_id`` is ``None`` for
the platform's own numbers, such as the global OTP number). The roles and who owns them
come from the policy. The database refuses a second active number in a role, a number
active twice, and a second global number (see :mod:`dispatcher.tables`); the code here
checks first so that the refusal names the field and the reason.

Every change is recorded in ``number_changes``: who, when, and the business's active
numbers before and after.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import Session, col, select

from . import tables
from .businesses import get_business
from .errors import ConstraintViolation, FieldError, NotFound
from .facts import NumberStatus
from .phone import LineType, Phone
from .policy import Policy
from .store import utc_now

SECOND_NUMBER = "second_number"


class NumberKind(StrEnum):
    LONG_CODE = "long_code"
    TOLL_FREE = "toll_free"
    SHORT_CODE = "short_code"


class RegistrationStatus(StrEnum):
    """Carrier registration: only a registered number may carry traffic."""

    REGISTERED = "registered"
    PENDING = "pending"
    UNREGISTERED = "unregistered"

    @property
    def number_status(self) -> NumberStatus:
        return NumberStatus(self.value)


# Segments per second a sender may carry when nothing else is known (DOMAIN.md).
DEFAULT_THROUGHPUT = {
    NumberKind.LONG_CODE: 1.0,
    NumberKind.TOLL_FREE: 3.0,
    NumberKind.SHORT_CODE: 30.0,
}


@dataclass(frozen=True, slots=True)
class SenderNumber:
    """One registered sending number. ``business_id`` is ``None`` for the platform."""

    id: int
    phone: Phone
    business_id: int | None
    role: str
    kind: NumberKind
    status: RegistrationStatus
    segments_per_second: float
    retired_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.retired_at is None


@dataclass(frozen=True, slots=True)
class SecondNumber:
    """The outcome of the second-number flow. ``changed`` is false on a replay."""

    business_id: int
    marketing: SenderNumber
    transactional: SenderNumber
    change_id: int
    changed: bool


def _view(row: tables.Number) -> SenderNumber:
    if row.id is None:
        raise NotFound("number", "the number has not been written yet")
    return SenderNumber(
        id=row.id,
        phone=Phone.from_stored(row.e164),
        business_id=row.business_id,
        role=row.role,
        kind=NumberKind(row.kind),
        status=RegistrationStatus(row.status),
        segments_per_second=row.segments_per_second,
        retired_at=row.retired_at,
    )


def _active_rows(session: Session, business_id: int | None) -> list[tables.Number]:
    owner = (
        col(tables.Number.business_id).is_(None)
        if business_id is None
        else col(tables.Number.business_id) == business_id
    )
    query = (
        select(tables.Number)
        .where(owner, col(tables.Number.retired_at).is_(None))
        .order_by(col(tables.Number.id))
    )
    return list(session.exec(query).all())


def _active_by_phone(session: Session, phone: Phone) -> tables.Number | None:
    return session.exec(
        select(tables.Number).where(
            tables.Number.e164 == phone.e164, col(tables.Number.retired_at).is_(None)
        )
    ).first()


def _snapshot(session: Session, business_id: int | None) -> str:
    numbers = [
        {"id": row.id, "role": row.role, "e164": row.e164, "status": row.status}
        for row in _active_rows(session, business_id)
    ]
    return json.dumps({"numbers": numbers}, sort_keys=True)


def _record(
    session: Session,
    business_id: int | None,
    action: str,
    actor: str,
    when: dt.datetime,
    before: str,
) -> int:
    change = tables.NumberChange(
        business_id=business_id,
        action=action,
        actor=actor,
        at=when,
        before=before,
        after=_snapshot(session, business_id),
    )
    session.add(change)
    session.flush()
    if change.id is None:
        raise NotFound("change", "the change was not written")
    return change.id


def _check_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip():
        raise FieldError("actor", "missing (say who makes the change)")
    return actor.strip()


def _check_role(policy: Policy, role: str, business_id: int | None) -> None:
    known = policy.roles.get(role)
    if known is None:
        raise FieldError(
            "role", f"unknown role {role!r}; expected one of {', '.join(policy.roles)}"
        )
    if known.owner == "platform" and business_id is not None:
        raise FieldError(
            "business", f"role {role!r} belongs to the platform; name no business"
        )
    if known.owner == "business" and business_id is None:
        raise FieldError("business", f"role {role!r} needs the business it belongs to")


def _check_kind(phone: Phone, kind: NumberKind) -> None:
    if kind is NumberKind.SHORT_CODE:
        # TODO: short codes are not E.164; they need their own address type.
        raise FieldError("kind", "short codes are not supported by the registry yet")
    if kind is NumberKind.TOLL_FREE and phone.line_type is not LineType.TOLL_FREE:
        raise FieldError("kind", "toll_free given, but the number is not toll-free")
    if kind is NumberKind.LONG_CODE and phone.line_type is LineType.TOLL_FREE:
        raise FieldError("kind", "long_code given, but the number is toll-free")


def _check_free(session: Session, phone: Phone) -> None:
    taken = _active_by_phone(session, phone)
    if taken is not None:
        owner = (
            "the platform"
            if taken.business_id is None
            else (f"business {taken.business_id}")
        )
        raise ConstraintViolation(
            "number",
            f"{phone} is already the {taken.role} number of {owner} "
            "(a number belongs to one business and one role)",
        )


def _throughput(kind: NumberKind, value: float | None) -> float:
    if value is None:
        return DEFAULT_THROUGHPUT[kind]
    if not value > 0:
        raise FieldError("segments_per_second", f"must be above 0, got {value}")
    return float(value)


def add_number(
    session: Session,
    policy: Policy,
    phone: Phone,
    *,
    role: str,
    business: int | str | None,
    actor: str,
    kind: NumberKind = NumberKind.LONG_CODE,
    status: RegistrationStatus = RegistrationStatus.PENDING,
    segments_per_second: float | None = None,
    replace: bool = False,
    now: dt.datetime | None = None,
) -> SenderNumber:
    """Register ``phone`` as the ``role`` number of ``business`` (``None``: platform).

    With ``replace``, the number now in that role is retired in the same transaction;
    without it, an occupied role is refused. Raises :class:`FieldError`,
    :class:`NotFound` or :class:`ConstraintViolation`; nothing is written then.
    """
    who = _check_actor(actor)
    owner = None if business is None else get_business(session, business).id
    _check_role(policy, role, owner)
    _check_kind(phone, kind)
    rate = _throughput(kind, segments_per_second)
    _check_free(session, phone)
    when = now or utc_now()
    before = _snapshot(session, owner)
    current = [row for row in _active_rows(session, owner) if row.role == role]
    if current and not replace:
        whose = "the platform" if owner is None else f"business {owner}"
        raise ConstraintViolation(
            "role",
            f"{whose} already has a {role} number "
            f"({Phone.from_stored(current[0].e164)}); one number per role: retire it "
            "first or pass --replace",
        )
    for row in current:
        row.retired_at = when
        row.updated_at = when
        session.add(row)
    session.flush()
    row = tables.Number(
        e164=phone.e164,
        business_id=owner,
        role=role,
        kind=kind.value,
        status=status.value,
        segments_per_second=rate,
        added_by=who,
        created_at=when,
        updated_at=when,
    )
    session.add(row)
    session.flush()
    _record(session, owner, "replace" if current else "add", who, when, before)
    return _view(row)


def get_number(session: Session, phone: Phone) -> SenderNumber:
    """The active number ``phone``. Raises :class:`NotFound`."""
    row = _active_by_phone(session, phone)
    if row is None:
        raise NotFound("number", f"{phone} is not an active number of the registry")
    return _view(row)


def list_numbers(
    session: Session,
    business: int | str | None = None,
    *,
    include_retired: bool = False,
) -> list[SenderNumber]:
    """Numbers of one business (or all, with ``business=None``), oldest first."""
    query = select(tables.Number).order_by(col(tables.Number.id))
    if business is not None:
        query = query.where(
            tables.Number.business_id == get_business(session, business).id
        )
    if not include_retired:
        query = query.where(col(tables.Number.retired_at).is_(None))
    return [_view(row) for row in session.exec(query).all()]


def retire_number(
    session: Session,
    policy: Policy,
    phone: Phone,
    *,
    actor: str,
    now: dt.datetime | None = None,
) -> SenderNumber:
    """Take ``phone`` out of service; its history stays.

    The platform's numbers are not retired alone: the platform keeps exactly one global
    number, so its replacement is added with ``replace=True`` instead.
    """
    who = _check_actor(actor)
    row = _active_by_phone(session, phone)
    if row is None:
        raise NotFound("number", f"{phone} is not an active number of the registry")
    role = policy.roles.get(row.role)
    if row.business_id is None and (role is None or role.owner == "platform"):
        raise ConstraintViolation(
            "number",
            f"the platform must keep its {row.role} number; add the new one with "
            f"`dispatcher numbers add --role {row.role} --replace` instead",
        )
    when = now or utc_now()
    before = _snapshot(session, row.business_id)
    row.retired_at = when
    row.updated_at = when
    session.add(row)
    session.flush()
    _record(session, row.business_id, "retire", who, when, before)
    return _view(row)


def set_status(
    session: Session,
    phone: Phone,
    status: RegistrationStatus,
    *,
    actor: str,
    now: dt.datetime | None = None,
) -> SenderNumber:
    """Record a change of carrier registration (for example pending to registered)."""
    who = _check_actor(actor)
    row = _active_by_phone(session, phone)
    if row is None:
        raise NotFound("number", f"{phone} is not an active number of the registry")
    when = now or utc_now()
    before = _snapshot(session, row.business_id)
    row.status = status.value
    row.updated_at = when
    session.add(row)
    session.flush()
    _record(session, row.business_id, f"status_{status.value}", who, when, before)
    return _view(row)


def second_number_roles(policy: Policy) -> tuple[str, str]:
    """``(kept, added)``: the role the existing number takes and the new number's role.

    Read from the policy: the business role that stands in for another business role
    keeps the existing number (marketing); the role it stands in for is the new
    number's (transactional).
    """
    for role in policy.roles.values():
        for other in sorted(role.stands_in_for):
            target = policy.roles.get(other)
            if role.owner == "business" and target and target.owner == "business":
                return role.name, other
    raise FieldError("rules", "no business role stands in for another one")


def migrate_second_number(
    session: Session,
    policy: Policy,
    business: int | str,
    phone: Phone,
    *,
    actor: str,
    kind: NumberKind = NumberKind.LONG_CODE,
    status: RegistrationStatus = RegistrationStatus.PENDING,
    segments_per_second: float | None = None,
    now: dt.datetime | None = None,
) -> SecondNumber:
    """The second-number flow of the product brief.

    A business that uses Assist or Accelerate adds ``phone`` as its transactional
    number; its existing number becomes (or stays) its marketing number. Recorded once
    in ``number_changes`` with who, when, before and after. Running it again with the
    same number changes nothing and returns ``changed=False``; with another number it
    is refused, since a business has one transactional number.
    """
    who = _check_actor(actor)
    owner = get_business(session, business)
    kept, added = second_number_roles(policy)
    done = session.exec(
        select(tables.NumberChange).where(
            tables.NumberChange.business_id == owner.id,
            tables.NumberChange.action == SECOND_NUMBER,
        )
    ).first()
    rows = {row.role: row for row in _active_rows(session, owner.id)}
    if done is not None and done.id is not None:
        new = rows.get(added)
        if new is not None and new.e164 == phone.e164 and kept in rows:
            return SecondNumber(
                owner.id, _view(rows[kept]), _view(new), done.id, changed=False
            )
    if not (owner.assist or owner.accelerate):
        raise ConstraintViolation(
            "business",
            f"{owner.name!r} uses neither Assist nor Accelerate; the second number is "
            "for businesses that do (enrol it first: `dispatcher business enrol`)",
        )
    existing = rows.get(kept)
    # A business whose one number was registered in the added role: that number is
    # "the existing number", and it becomes the kept one.
    moving = existing is None and len(rows) == 1 and added in rows
    if added in rows and not moving:
        raise ConstraintViolation(
            "number",
            f"{owner.name!r} already has a {added} number "
            f"({Phone.from_stored(rows[added].e164)}); a business has exactly one",
        )
    if done is not None:
        raise ConstraintViolation(
            "business",
            f"{owner.name!r} went through the second-number flow already (change "
            f"{done.id}); change its numbers with `dispatcher numbers add --replace`",
        )
    if existing is None and not moving:
        raise ConstraintViolation(
            "business",
            f"{owner.name!r} has no number to keep as its {kept} number; add it first "
            f"(`dispatcher numbers add --role {kept}`)",
        )
    _check_kind(phone, kind)
    rate = _throughput(kind, segments_per_second)
    _check_free(session, phone)
    when = now or utc_now()
    before = _snapshot(session, owner.id)
    keep = existing if existing is not None else rows[added]
    if moving:
        keep.role = kept
        keep.updated_at = when
        session.add(keep)
        session.flush()
    new_row = tables.Number(
        e164=phone.e164,
        business_id=owner.id,
        role=added,
        kind=kind.value,
        status=status.value,
        segments_per_second=rate,
        added_by=who,
        created_at=when,
        updated_at=when,
    )
    session.add(new_row)
    session.flush()
    change_id = _record(session, owner.id, SECOND_NUMBER, who, when, before)
    return SecondNumber(owner.id, _view(keep), _view(new_row), change_id, True)
