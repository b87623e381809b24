"""Businesses, their stores, and their enrolment in Assist and Accelerate.

Every function takes an open session (see :func:`dispatcher.store.transaction`) and
leaves committing to the caller, so a command made of several steps is one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, select

from . import tables
from .errors import ConstraintViolation, FieldError, NotFound
from .store import utc_now

MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class Business:
    """A business as the rest of the dispatcher sees it."""

    id: int
    name: str
    assist: bool
    accelerate: bool
    stores: tuple[str, ...]

    @property
    def enrolments(self) -> tuple[str, ...]:
        """``("assist", "accelerate")``, or the part of it that applies."""
        return tuple(
            name
            for name, on in (("assist", self.assist), ("accelerate", self.accelerate))
            if on
        )


def _clean_name(value: str, field: str) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise FieldError(field, "missing (expected a non-empty name)")
    if len(name) > MAX_NAME:
        raise FieldError(
            field, f"too long ({len(name)} characters, at most {MAX_NAME})"
        )
    return name


def _row(session: Session, ref: int | str) -> tables.Business:
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        row = session.get(tables.Business, int(ref))
    else:
        row = session.exec(
            select(tables.Business).where(tables.Business.name == ref.strip())
        ).first()
    if row is None:
        raise NotFound("business", f"no business {ref!r} (give its id or exact name)")
    return row


def _view(session: Session, row: tables.Business) -> Business:
    if row.id is None:
        raise NotFound("business", "the business has not been written yet")
    stores = session.exec(
        select(tables.BusinessStore.name)
        .where(tables.BusinessStore.business_id == row.id)
        .order_by(col(tables.BusinessStore.name))
    ).all()
    return Business(row.id, row.name, row.assist, row.accelerate, tuple(stores))


def get_business(session: Session, ref: int | str) -> Business:
    """The business with id or exact name ``ref``. Raises :class:`NotFound`."""
    return _view(session, _row(session, ref))


# Where a session keeps the ids of the businesses its transaction has read.
_KNOWN = "dispatcher.businesses.known"


def business_id(session: Session, ref: int | str) -> int:
    """The id of the business ``ref`` names. Raises :class:`NotFound`.

    Reads the business row only (not its stores); by id, a row the session already
    holds, or an id given to :func:`known`, costs no query.
    """
    if isinstance(ref, int) and ref in session.info.get(_KNOWN, ()):
        return ref
    found = _row(session, ref).id
    if found is None:  # pragma: no cover - rows read back have ids
        raise NotFound("business", "the business has not been written yet")
    return found


def known(session: Session, business: int) -> None:
    """Note that the caller read business ``business`` in this session's transaction,
    so that :func:`business_id` need not read it again (businesses are never
    deleted)."""
    session.info.setdefault(_KNOWN, set()).add(business)


def list_businesses(session: Session) -> list[Business]:
    rows = session.exec(select(tables.Business).order_by(col(tables.Business.id))).all()
    return [_view(session, row) for row in rows]


def add_business(
    session: Session,
    name: str,
    *,
    stores: Iterable[str] = (),
    assist: bool = False,
    accelerate: bool = False,
    now: dt.datetime | None = None,
) -> Business:
    """Create a business with its stores.

    Raises :class:`FieldError` for an empty name and :class:`ConstraintViolation` when
    the name is taken or a store name repeats.
    """
    clean = _clean_name(name, "name")
    store_names = [_clean_name(s, "store") for s in stores]
    if len(set(store_names)) != len(store_names):
        raise ConstraintViolation("store", "the same store name is given twice")
    taken = session.exec(
        select(tables.Business.id).where(tables.Business.name == clean)
    ).first()
    if taken is not None:
        raise ConstraintViolation("name", f"a business named {clean!r} already exists")
    when = now or utc_now()
    row = tables.Business(
        name=clean,
        assist=assist,
        accelerate=accelerate,
        created_at=when,
        updated_at=when,
    )
    session.add(row)
    session.flush()
    created = _view(session, row)
    for store in store_names:
        session.add(
            tables.BusinessStore(business_id=created.id, name=store, created_at=when)
        )
    session.flush()
    return _view(session, row)


def add_store(
    session: Session, ref: int | str, name: str, *, now: dt.datetime | None = None
) -> Business:
    """Add a store to a business. Stores share the business's numbers."""
    row = _row(session, ref)
    clean = _clean_name(name, "store")
    current = _view(session, row)
    if clean in current.stores:
        raise ConstraintViolation(
            "store", f"{row.name!r} already has a store {clean!r}"
        )
    session.add(
        tables.BusinessStore(
            business_id=current.id, name=clean, created_at=now or utc_now()
        )
    )
    session.flush()
    return _view(session, row)


def enrol(
    session: Session,
    ref: int | str,
    *,
    assist: bool | None = None,
    accelerate: bool | None = None,
    now: dt.datetime | None = None,
) -> Business:
    """Turn Assist and Accelerate on or off (``None`` leaves one as it is).

    Enrolling does not add a number: a business that uses either product needs the
    second-number flow (:func:`dispatcher.numbers.migrate_second_number`), and the
    policy sees the numbers' state, so until then its rules decide what may leave.
    """
    row = _row(session, ref)
    if assist is not None:
        row.assist = assist
    if accelerate is not None:
        row.accelerate = accelerate
    row.updated_at = now or utc_now()
    session.add(row)
    session.flush()
    return _view(session, row)
