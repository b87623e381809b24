"""The consent ledger: what each customer agreed to or revoked, per scope, with proof.

Every opt-in and opt-out is appended to ``consent_events`` and never changed: the
database refuses UPDATE and DELETE on it. The current state per (business, phone, scope)
is written to ``consent_states`` in the same transaction, so the send pipeline reads one
indexed row per scope instead of replaying history.

Scopes and their owners come from the policy. A business scope (marketing,
transactional) is recorded per business; a platform scope (the global number's OTP
scope) is platform-wide, stored under no business.

The state follows the event with the latest time: an imported opt-in dated before a
STOP recorded later is kept as evidence, but does not undo the STOP.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Row, Select, bindparam, insert, update
from sqlmodel import Session, col, or_, select

from . import tables
from .businesses import business_id
from .errors import FieldError
from .facts import ConsentState
from .phone import Phone
from .policy import Policy
from .store import lock, utc_now


class ConsentAction(StrEnum):
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    RE_OPT_IN = "re_opt_in"


class ConsentSource(StrEnum):
    """How the consent or the revocation reached us."""

    WEB_FORM = "web_form"
    KEYWORD = "keyword"
    AGENT = "agent"
    PROVIDER_ERROR_21610 = "provider_error_21610"
    IMPORT = "import"


SOURCES = ", ".join(s.value for s in ConsentSource)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One record of the ledger, as written."""

    id: int
    business_id: int | None
    phone: Phone
    scope: str
    action: ConsentAction
    at: dt.datetime
    source: ConsentSource
    source_ref: str | None
    number_id: int | None
    consent_text: str | None
    consent_text_version: str | None
    recorded_by: str

    @property
    def state(self) -> ConsentState:
        if self.action is ConsentAction.OPT_OUT:
            return ConsentState.OPTED_OUT
        return ConsentState.OPTED_IN


def _view(row: tables.ConsentEvent) -> LedgerEntry:
    if row.id is None:
        raise FieldError("ledger", "the record has not been written yet")
    return LedgerEntry(
        id=row.id,
        business_id=row.business_id,
        phone=Phone.from_stored(row.phone),
        scope=row.scope,
        action=ConsentAction(row.action),
        at=row.at,
        source=ConsentSource(row.source),
        source_ref=row.source_ref,
        number_id=row.number_id,
        consent_text=row.consent_text,
        consent_text_version=row.consent_text_version,
        recorded_by=row.recorded_by,
    )


def scope_owner(
    session: Session, policy: Policy, scope: str, business: int | str | None
) -> int | None:
    """The business id a record of ``scope`` is kept under (``None``: platform-wide).

    Raises :class:`FieldError` for an unknown scope, a business scope without a
    business, or a platform scope given one; :class:`NotFound` for an unknown business.
    """
    known = policy.scopes.get(scope)
    if known is None:
        raise FieldError(
            "scope",
            f"unknown scope {scope!r}; expected one of {', '.join(policy.scopes)}",
        )
    if known.owner == "platform":
        if business is not None:
            raise FieldError(
                "business",
                f"scope {scope!r} is platform-wide; record it without a business",
            )
        return None
    if business is None:
        raise FieldError("business", f"scope {scope!r} is kept per business; name one")
    return business_id(session, business)


def _required(value: str | None, field: str, reason: str) -> str:
    if value is None or not str(value).strip():
        raise FieldError(field, reason)
    return str(value).strip()


@dataclass(frozen=True, slots=True)
class Recorded(LedgerEntry):
    """A record just written, with ``before``: the state of its scope before it."""

    before: ConsentState

    @property
    def changed(self) -> bool:
        """Whether the record moved its scope to another state."""
        return self.before is not self.state


def record(
    session: Session,
    policy: Policy,
    *,
    phone: Phone,
    scope: str,
    business: int | str | None,
    opt_in: bool,
    source: ConsentSource | None,
    recorded_by: str,
    source_ref: str | None = None,
    number_id: int | None = None,
    consent_text: str | None = None,
    consent_text_version: str | None = None,
    at: dt.datetime | None = None,
) -> Recorded:
    """Append one opt-in (``opt_in=True``) or opt-out and update the current state.

    An opt-in after an opt-out is written as ``re_opt_in``. An opt-in needs its source,
    the exact consent text and its version; a keyword needs the inbound message id in
    ``source_ref``. ``at`` (default: now) must carry a zone. Returns the record as
    written with the scope's state before it. Raises :class:`FieldError` or
    :class:`NotFound` naming the field; nothing is written then.
    """
    owner = scope_owner(session, policy, scope, business)
    who = _required(recorded_by, "recorded_by", "missing (say who or what records it)")
    if source is None:
        kind = "an opt-in" if opt_in else "an opt-out"
        raise FieldError("source", f"{kind} needs its source (one of {SOURCES})")
    try:
        source = ConsentSource(source)
    except ValueError:
        raise FieldError(
            "source", f"unknown source; expected one of {SOURCES}"
        ) from None
    if opt_in:
        if source is ConsentSource.PROVIDER_ERROR_21610:
            raise FieldError("source", "provider error 21610 records an opt-out only")
        consent_text = _required(
            consent_text, "consent_text", "an opt-in needs the exact consent text shown"
        )
        consent_text_version = _required(
            consent_text_version, "consent_text_version", "an opt-in needs its version"
        )
    if source is ConsentSource.KEYWORD:
        source_ref = _required(
            source_ref, "source_ref", "a keyword needs the inbound message id"
        )
    when = at or utc_now()
    if when.tzinfo is None or when.utcoffset() is None:
        raise FieldError("at", "a time without zone; give it with its UTC offset")

    lock(session, f"consent:{owner}:{phone.e164}:{scope}")
    state = _state_row(session, owner, phone, scope)
    newer = state is None or when >= state.event_at
    action = ConsentAction.OPT_OUT
    if opt_in:
        reopens = newer and state is not None and state.state == "opted_out"
        action = ConsentAction.RE_OPT_IN if reopens else ConsentAction.OPT_IN
    written = session.execute(
        _APPEND,
        {
            "business_id": owner,
            "phone": phone.e164,
            "scope": scope,
            "action": action.value,
            "at": when,
            "source": source.value,
            "source_ref": source_ref,
            "number_id": number_id,
            "consent_text": consent_text,
            "consent_text_version": consent_text_version,
            "recorded_by": who,
        },
    )
    entry = Recorded(
        id=written.scalar_one(),
        business_id=owner,
        phone=phone,
        scope=scope,
        action=action,
        at=when,
        source=source,
        source_ref=source_ref,
        number_id=number_id,
        consent_text=consent_text,
        consent_text_version=consent_text_version,
        recorded_by=who,
        before=ConsentState.NONE if state is None else ConsentState(state.state),
    )
    if newer:
        current = {
            "state": entry.state.value,
            "event_id": entry.id,
            "event_at": when,
        }
        if state is None:
            session.execute(
                _NEW_STATE,
                {"business_id": owner, "phone": phone.e164, "scope": scope, **current},
            )
        else:
            session.execute(_SET_STATE, {"row": state.id, **current})
    return entry


_EVENTS = tables.table_of(tables.ConsentEvent)
_STATES_TABLE = tables.table_of(tables.ConsentStateRow)
# Built once: every opt-out and opt-in runs them.
_APPEND = insert(_EVENTS).returning(_EVENTS.c.id)
_NEW_STATE = insert(_STATES_TABLE)
_SET_STATE = (
    update(_STATES_TABLE)
    .where(_STATES_TABLE.c.id == bindparam("row"))
    .values(
        state=bindparam("state"),
        event_id=bindparam("event_id"),
        event_at=bindparam("event_at"),
    )
)


def _state_of(platform: bool) -> Select[int, str, dt.datetime]:
    row = _STATES_TABLE.c
    # Two statements rather than one with IS NOT DISTINCT FROM, which PostgreSQL
    # cannot answer from the unique indexes.
    whose = (
        row.business_id.is_(None) if platform else row.business_id == bindparam("owner")
    )
    return select(row.id, row.state, row.event_at).where(
        row.phone == bindparam("phone"), row.scope == bindparam("scope"), whose
    )


_STATE_OF_BUSINESS = _state_of(platform=False)
_STATE_OF_PLATFORM = _state_of(platform=True)


def _state_row(
    session: Session, owner: int | None, phone: Phone, scope: str
) -> Row[int, str, dt.datetime] | None:
    """The scope's current-state row ``(id, state, event_at)``, if any."""
    if owner is None:
        return session.execute(
            _STATE_OF_PLATFORM, {"phone": phone.e164, "scope": scope}
        ).first()
    return session.execute(
        _STATE_OF_BUSINESS, {"owner": owner, "phone": phone.e164, "scope": scope}
    ).first()


def current_state(
    session: Session,
    policy: Policy,
    phone: Phone,
    scope: str,
    business: int | str | None,
) -> ConsentState:
    """The state of one scope; ``none`` when nothing was ever recorded."""
    owner = scope_owner(session, policy, scope, business)
    row = _state_row(session, owner, phone, scope)
    return ConsentState.NONE if row is None else ConsentState(row.state)


# Built once, on the table's columns (no ORM work): the send pipeline runs it for
# every message.
_STATES = select(
    _STATES_TABLE.c.scope, _STATES_TABLE.c.state, _STATES_TABLE.c.business_id
).where(
    _STATES_TABLE.c.phone == bindparam("phone"),
    or_(
        _STATES_TABLE.c.business_id == bindparam("business_id"),
        _STATES_TABLE.c.business_id.is_(None),
    ),
)


def states(
    session: Session, policy: Policy, phone: Phone, business_id: int
) -> dict[str, ConsentState]:
    """Every scope of the policy for ``phone`` as ``business_id`` sees it: its own
    business scopes and the platform scopes. One indexed read."""
    found = session.execute(
        _STATES, {"phone": phone.e164, "business_id": business_id}
    ).all()
    result = dict.fromkeys(policy.scopes, ConsentState.NONE)
    for scope, state, owner in found:
        known = policy.scopes.get(scope)
        if known is None:
            continue
        if (known.owner == "platform") == (owner is None):
            result[scope] = ConsentState(state)
    return result


def history(
    session: Session,
    phone: Phone | None = None,
    business: int | str | None = None,
    *,
    with_platform: bool = True,
) -> list[LedgerEntry]:
    """Ledger records, oldest first; all of them unless filtered.

    ``phone`` keeps that phone's records. ``business`` keeps that business's records
    and, with ``with_platform``, the platform-wide ones, which also decide what the
    business may send.
    """
    event = tables.ConsentEvent
    query = select(event).order_by(col(event.at), col(event.id))
    if phone is not None:
        query = query.where(event.phone == phone.e164)
    if business is not None:
        mine = col(event.business_id) == business_id(session, business)
        platform = col(event.business_id).is_(None)
        query = query.where(or_(mine, platform) if with_platform else mine)
    return [_view(row) for row in session.exec(query).all()]


def states_many(
    session: Session, policy: Policy, phones: list[Phone], business_id: int
) -> dict[str, dict[str, ConsentState]]:
    """:func:`states` for many phones of one business, keyed by E.164; one read per
    thousand phones. Phones with nothing recorded are left out."""
    row = tables.ConsentStateRow
    numbers = sorted({phone.e164 for phone in phones})
    result: dict[str, dict[str, ConsentState]] = {}
    for start in range(0, len(numbers), 1000):
        chunk = numbers[start : start + 1000]
        found = session.exec(
            select(row.phone, row.scope, row.state, row.business_id).where(
                col(row.phone).in_(chunk),
                or_(
                    col(row.business_id) == business_id, col(row.business_id).is_(None)
                ),
            )
        ).all()
        for phone, scope, state, owner in found:
            known = policy.scopes.get(scope)
            if known is None or (known.owner == "platform") != (owner is None):
                continue
            entry = result.setdefault(
                phone, dict.fromkeys(policy.scopes, ConsentState.NONE)
            )
            entry[scope] = ConsentState(state)
    return result
