"""API keys: one or more per business, and platform keys that administer every business.

A key is ``dk_`` followed by 43 URL-safe characters (256 random bits). Only its SHA-256
digest is stored (a key this long needs no slow hash), so a copy of the database reveals
no key; the key is shown once, when it is made. A business key reaches only its own
business's data; a platform key (no business) reaches all of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from .. import tables
from ..businesses import get_business
from ..errors import FieldError, NotFound
from ..store import utc_now

PREFIX = "dk_"
_SHOWN = 10  # characters of a key kept to tell keys apart: "dk_" and 7 more


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from. ``business_id`` is None for a platform key."""

    key_id: int
    business_id: int | None

    @property
    def is_platform(self) -> bool:
        return self.business_id is None

    def may_reach(self, business_id: int) -> bool:
        return self.business_id is None or self.business_id == business_id


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A stored key, without the key."""

    id: int
    business_id: int | None
    prefix: str
    label: str
    created_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _info(row: tables.ApiKey) -> KeyInfo:
    if row.id is None:  # pragma: no cover - flushed rows have ids
        raise NotFound("key", "not written")
    return KeyInfo(
        row.id,
        row.business_id,
        row.prefix,
        row.label,
        row.created_by,
        row.created_at,
        row.revoked_at,
    )


def create_key(
    session: Session,
    business: int | str | None,
    *,
    label: str,
    created_by: str,
    now: dt.datetime | None = None,
) -> tuple[KeyInfo, str]:
    """Make a key for ``business`` (None: a platform key); returns it with its record.

    Raises :class:`~dispatcher.errors.NotFound` for an unknown business.
    """
    owner = None if business is None else get_business(session, business).id
    if not label.strip():
        raise FieldError("label", "missing (say what the key is for)")
    key = PREFIX + secrets.token_urlsafe(32)
    row = tables.ApiKey(
        business_id=owner,
        prefix=key[:_SHOWN],
        digest=digest(key),
        label=label.strip()[:200],
        created_by=created_by[:200],
        created_at=now or utc_now(),
    )
    session.add(row)
    session.flush()
    return _info(row), key


def authenticate(session: Session, key: str) -> Principal | None:
    """The principal of an active ``key``; None for an unknown or revoked one."""
    if not key.startswith(PREFIX) or len(key) > 100:
        return None
    found = session.execute(
        select(col(tables.ApiKey.id), col(tables.ApiKey.business_id)).where(
            col(tables.ApiKey.digest) == digest(key),
            col(tables.ApiKey.revoked_at).is_(None),
        )
    ).first()
    if found is None:
        return None
    return Principal(key_id=found[0], business_id=found[1])


def list_keys(session: Session, business: int | str | None = None) -> list[KeyInfo]:
    query = select(tables.ApiKey).order_by(col(tables.ApiKey.id))
    if business is not None:
        owner = get_business(session, business).id
        query = query.where(col(tables.ApiKey.business_id) == owner)
    return [_info(row) for row in session.execute(query).scalars()]


def revoke_key(
    session: Session, key_id: int, now: dt.datetime | None = None
) -> KeyInfo:
    """Revoke a key; it stops working at once. Raises NotFound for an unknown id."""
    row = session.get(tables.ApiKey, key_id)
    if row is None:
        raise NotFound("key", f"no API key with id {key_id}")
    if row.revoked_at is None:
        row.revoked_at = now or utc_now()
        session.add(row)
        session.flush()
    return _info(row)
