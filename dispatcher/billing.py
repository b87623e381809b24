"""Usage billing: the ledger of what each business used, and the monthly usage report.

The ledger (table ``usage_events``) is append-only. One charge is written per billable
event, in the transaction that learns of it:

* **Outbound SMS and MMS**: when the provider accepts the send (:func:`bill_message`,
  called by the worker when it settles and by :func:`~dispatcher.statuses.apply_status`
  when a callback reveals an acceptance the worker never heard of). Accepted means
  billed, whatever the later status: the provider charges for a message it took, even if
  it fails later. Sends that never reached the provider (suppressed, rejected, dead after
  retries) are not billed; neither is a send refused with 21610 (the recipient
  unsubscribed from the number): Twilio refuses it on the create call, and should a
  callback ever report 21610 for an accepted send, a credit cancels its charge.
* **Inbound SMS and MMS**: when the message arrives (:func:`record_inbound`). Inbound
  keywords (STOP included) are billed like any other message.
* **Calls**: when Twilio reports a call to or from a business's number completed
  (:func:`record_call`), in started minutes.

SMS are billed per segment (:mod:`dispatcher.segments`), MMS per message, calls per
started minute. Money is priced when the report is made, with the rates of the config
(``billing.rates``), as integer micro-units of the currency: never a float.

>>> rates = Rates.from_config({"rates": {"sms_outbound": {"marketing": "0.01"}}})
>>> rates.micros(Direction.OUTBOUND, Kind.SMS, "marketing"), format_money(15_500)
(10000, '0.0155')
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

import structlog
from sqlalchemy import case, func, select
from sqlmodel import Session, col

from . import segments, tables
from .businesses import get_business
from .calls import CallReport
from .errors import FieldError, InternalError
from .phone import Phone
from .store import InsertOrSkip

log = structlog.get_logger("dispatcher.billing")

MICROS = 1_000_000
ERROR_UNSUBSCRIBED = 21610


class Kind(StrEnum):
    SMS = "sms"
    MMS = "mms"
    CALL = "call"

    @property
    def unit(self) -> str:
        return _UNITS[self]


_UNITS = {Kind.SMS: "segment", Kind.MMS: "message", Kind.CALL: "minute"}


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


def rate_key(direction: Direction, kind: Kind) -> str:
    """The name of a rate in the config: ``sms_outbound``, ``call_inbound``, ..."""
    return f"{kind.value}_{direction.value}"


RATE_KEYS = tuple(rate_key(d, k) for k in Kind for d in Direction)

# Per unit, in US dollars: close to Twilio's US list prices, as a starting point. A
# platform sets its own (with its margin) in the config.
DEFAULT_RATES = {
    "sms_outbound": "0.0083",
    "sms_inbound": "0.0083",
    "mms_outbound": "0.0220",
    "mms_inbound": "0.0200",
    "call_outbound": "0.0140",
    "call_inbound": "0.0085",
}
DEFAULT_ROLE = "default"
_AMOUNT = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")


def to_micros(amount: str, field: str = "rate") -> int:
    """``"0.0083"`` as 8300 micro-units. At most six decimals: no rounding, ever.

    Raises :class:`~dispatcher.errors.FieldError` naming ``field``.
    """
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
        raise FieldError(
            field,
            f"expected a decimal string with at most 6 decimals like '0.0083', "
            f"got {amount!r}",
        )
    try:
        return int(Decimal(amount) * MICROS)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise FieldError(field, f"not a decimal: {amount!r}") from None


def format_money(micros: int) -> str:
    """Micro-units as a decimal string with no trailing zeros beyond two decimals.

    >>> format_money(1_494_000), format_money(8300), format_money(0)
    ('1.494', '0.0083', '0.00')
    """
    text = f"{Decimal(micros).scaleb(-6):.6f}"
    whole, fraction = text.split(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{whole}.{fraction}"


@dataclass(frozen=True, slots=True)
class Rates:
    """Price per unit, in micro-units of ``currency``, per rate key and number role.

    ``by_key[key][role]`` is the price for that role; ``by_key[key]["default"]`` the
    price for every other role.
    """

    currency: str
    by_key: Mapping[str, Mapping[str, int]]

    def micros(self, direction: Direction, kind: Kind, role: str) -> int:
        prices = self.by_key[rate_key(direction, kind)]
        return prices.get(role, prices[DEFAULT_ROLE])

    @classmethod
    def default(cls) -> Rates:
        return cls.from_config(None)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> Rates:
        """The ``billing`` section of the config over :data:`DEFAULT_RATES`.

        A rate is a decimal string (every role) or a mapping from role, or
        ``default``, to a decimal string. Raises
        :class:`~dispatcher.errors.FieldError` naming the rate.
        """
        section = section or {}
        given = section.get("rates", {})
        by_key: dict[str, dict[str, int]] = {}
        for key in RATE_KEYS:
            prices = {DEFAULT_ROLE: to_micros(DEFAULT_RATES[key], key)}
            value = given.get(key)
            if isinstance(value, str):
                prices[DEFAULT_ROLE] = to_micros(value, f"billing.rates.{key}")
            elif isinstance(value, Mapping):
                for role, amount in value.items():
                    prices[role] = to_micros(amount, f"billing.rates.{key}.{role}")
            by_key[key] = prices
        return cls(section.get("currency", "USD"), by_key)

    def to_mapping(self) -> dict[str, object]:
        return {
            "currency": self.currency,
            "rates": {
                key: {role: format_money(m) for role, m in prices.items()}
                for key, prices in self.by_key.items()
            },
        }


# --- the ledger -----------------------------------------------------------------------


def bill_message(session: Session, message_id: int, at: dt.datetime) -> None:
    """Charge an outbound message the provider accepted, once; credit a 21610.

    Call it in the transaction that settles the message or applies its status: it reads
    the message as that transaction left it. A message the provider has not accepted
    (no provider SID) is left alone, so calling it after a failed attempt is harmless.
    """
    message = session.get(tables.Message, message_id)
    if message is None or message.provider_sid is None:
        return
    if message.role is None or message.from_number_id is None:
        raise InternalError(f"message {message_id} was accepted without a number")
    kind = Kind.MMS if message.channel == Kind.MMS.value else Kind.SMS
    units = 1 if kind is Kind.MMS else message.segments
    ref = str(message_id)
    entries = _entries(session, "message", ref)
    charge = tables.UsageEvent(
        business_id=message.business_id,
        number_id=message.from_number_id,
        role=message.role,
        direction=Direction.OUTBOUND.value,
        kind=kind.value,
        units=units,
        entry="charge",
        source="message",
        source_ref=ref,
        message_id=message_id,
        at=at,
    )
    if "charge" not in entries:
        session.add(charge)
        entries.add("charge")
    if message.error_code == ERROR_UNSUBSCRIBED and "credit" not in entries:
        # Twilio does not charge a send refused because the recipient unsubscribed.
        session.add(_credit(charge, at))


class ChargedNumber(Protocol):
    """What a charge needs of the number written to: a row of ``numbers`` or a view."""

    @property
    def id(self) -> int | None: ...

    @property
    def business_id(self) -> int | None: ...

    @property
    def role(self) -> str: ...


_USAGE = tables.table_of(tables.UsageEvent)
# One charge per inbound MessageSid: the unique index skips a replayed one.
_CHARGE_ONCE = InsertOrSkip(
    _USAGE, ["source", "source_ref", "entry"], returning=[_USAGE.c.id]
)


def record_inbound(
    session: Session,
    *,
    message_sid: str,
    to: Phone,
    body: str,
    media: int = 0,
    at: dt.datetime,
    business: int | None = None,
    number: ChargedNumber | None = None,
) -> int | None:
    """Charge an inbound message to the business that owns ``to``, once per MessageSid.

    An MMS (``media`` > 0) is one message; an SMS costs the segments of ``body``.
    ``business`` names who answers for a message to a platform number (the global
    number has no business); otherwise the number's business is used. ``number`` is
    the number ``to`` when the caller has read it already (the inbound webhook does).
    Returns the id of the charge, or ``None`` when ``to`` is none of our numbers or the
    SID was billed.
    """
    if number is None:
        number = _number_at(session, to.e164, at)
    if number is None:
        log.warning("usage_unknown_number", direction="inbound", to=to.masked)
        return None
    kind = Kind.MMS if media else Kind.SMS
    charge = {
        "business_id": number.business_id if business is None else business,
        "number_id": number.id,
        "role": number.role,
        "direction": Direction.INBOUND.value,
        "kind": kind.value,
        "units": 1 if media else max(1, segments.count(body).segments),
        "seconds": None,
        "entry": "charge",
        "source": "inbound",
        "source_ref": message_sid,
        "message_id": None,
        "at": at,
    }
    written = session.execute(_CHARGE_ONCE.statement(session), charge)
    found: int | None = written.scalar_one_or_none()
    return found


def record_call(
    session: Session, report: CallReport, at: dt.datetime
) -> tables.UsageEvent | None:
    """Charge a completed call to the business whose number took or made it, once.

    Busy, unanswered, failed and in-progress reports bill nothing (``None``), nor does
    a call to or from a number that is not ours, nor a CallSid already billed.
    """
    minutes = report.billable_minutes
    if minutes == 0:
        return None
    number = _number_at(session, report.our_number, at)
    if number is None:
        log.warning("usage_unknown_number", direction="call", sid=report.sid)
        return None
    if _entries(session, "call", report.sid):
        return None
    event = tables.UsageEvent(
        business_id=number.business_id,
        number_id=number.id,
        role=number.role,
        direction=(
            Direction.OUTBOUND if report.direction.outbound else Direction.INBOUND
        ).value,
        kind=Kind.CALL.value,
        units=minutes,
        seconds=report.duration,
        entry="charge",
        source="call",
        source_ref=report.sid,
        at=at,
    )
    session.add(event)
    log.info("usage_call", sid=report.sid, minutes=minutes, role=number.role)
    return event


def _credit(charge: tables.UsageEvent, at: dt.datetime) -> tables.UsageEvent:
    return tables.UsageEvent(
        business_id=charge.business_id,
        number_id=charge.number_id,
        role=charge.role,
        direction=charge.direction,
        kind=charge.kind,
        units=-charge.units,
        seconds=None,
        entry="credit",
        source=charge.source,
        source_ref=charge.source_ref,
        message_id=charge.message_id,
        at=at,
    )


def _entries(session: Session, source: str, ref: str) -> set[str]:
    usage = tables.UsageEvent
    return set(
        session.execute(
            select(col(usage.entry)).where(
                col(usage.source) == source, col(usage.source_ref) == ref
            )
        ).scalars()
    )


def _number_at(session: Session, e164: str, at: dt.datetime) -> tables.Number | None:
    """The number with ``e164`` at ``at``: the active one, else the one retired after."""
    number = tables.Number
    rows = session.execute(
        select(number)
        .where(col(number.e164) == e164)
        .where(col(number.retired_at).is_(None) | (col(number.retired_at) > at))
        .order_by(col(number.retired_at).is_(None), col(number.id))
    ).scalars()
    found = list(rows)
    return found[-1] if found else None


# --- the report -----------------------------------------------------------------------

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month in UTC: usage is counted where its event's UTC time falls."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``"2026-12"``; raises :class:`~dispatcher.errors.FieldError` for others."""
        found = _MONTH.fullmatch(text.strip()) if isinstance(text, str) else None
        if found is None:
            raise FieldError("month", f"expected YYYY-MM like 2026-12, got {text!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        """The first instant of the next month (excluded)."""
        if self.month == 12:
            return dt.datetime(self.year + 1, 1, 1, tzinfo=dt.UTC)
        return dt.datetime(self.year, self.month + 1, 1, tzinfo=dt.UTC)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class UsageLine:
    """What one number role used of one kind in one direction, and what it costs.

    ``count`` is messages or calls (a credited message counts out again); ``units`` are
    segments, messages or minutes, as ``kind.unit`` says.
    """

    role: str
    direction: Direction
    kind: Kind
    count: int
    units: int
    rate_micros: int

    @property
    def amount_micros(self) -> int:
        return self.units * self.rate_micros

    def to_mapping(self) -> dict[str, object]:
        return {
            "role": self.role,
            "direction": self.direction.value,
            "kind": self.kind.value,
            "unit": self.kind.unit,
            "count": self.count,
            "units": self.units,
            "rate": format_money(self.rate_micros),
            "amount": format_money(self.amount_micros),
            "amount_micros": self.amount_micros,
        }


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A business's usage in one month, line by line (role, direction, kind)."""

    business_id: int
    business: str
    month: Month
    currency: str
    lines: tuple[UsageLine, ...]

    @property
    def total_micros(self) -> int:
        return sum(line.amount_micros for line in self.lines)

    def units(self, direction: Direction, kind: Kind, role: str | None = None) -> int:
        """Units of one kind and direction, of one role or of all."""
        return sum(
            line.units
            for line in self.lines
            if (line.direction, line.kind) == (direction, kind)
            and role in (None, line.role)
        )

    def by_role(self) -> dict[str, int]:
        """Amount per role, in micro-units."""
        amounts: dict[str, int] = {}
        for line in self.lines:
            amounts[line.role] = amounts.get(line.role, 0) + line.amount_micros
        return amounts

    def to_mapping(self) -> dict[str, object]:
        """The JSON form (``dispatcher usage --format json`` and the API)."""
        return {
            "business": {"id": self.business_id, "name": self.business},
            "month": str(self.month),
            "currency": self.currency,
            "lines": [line.to_mapping() for line in self.lines],
            "totals": {
                rate_key(d, k): self.units(d, k) for k in Kind for d in Direction
            },
            "by_role": {
                role: format_money(amount) for role, amount in self.by_role().items()
            },
            "total": format_money(self.total_micros),
            "total_micros": self.total_micros,
        }


_ORDER = {(d, k): i for i, (d, k) in enumerate((d, k) for d in Direction for k in Kind)}


def usage_report(
    session: Session,
    business: int | str,
    month: Month | str,
    rates: Rates | None = None,
) -> UsageReport:
    """The usage of ``business`` (id or name) in ``month`` (``"2026-12"``), priced.

    Raises :class:`~dispatcher.errors.FieldError` for an unknown business or a bad
    month.
    """
    period = month if isinstance(month, Month) else Month.parse(month)
    prices = rates or Rates.default()
    found = get_business(session, business)
    usage = tables.UsageEvent
    one = case((col(usage.entry) == "charge", 1), else_=-1)
    rows = session.execute(
        select(
            col(usage.role),
            col(usage.direction),
            col(usage.kind),
            func.sum(one),
            func.sum(col(usage.units)),
        )
        .where(
            col(usage.business_id) == found.id,
            col(usage.at) >= period.start,
            col(usage.at) < period.end,
        )
        .group_by(col(usage.role), col(usage.direction), col(usage.kind))
    ).all()
    lines = []
    for role, direction, kind, count, units in rows:
        d, k = Direction(direction), Kind(kind)
        lines.append(
            UsageLine(role, d, k, int(count), int(units), prices.micros(d, k, role))
        )
    lines.sort(key=lambda line: (line.role, _ORDER[(line.direction, line.kind)]))
    return UsageReport(found.id, found.name, period, prices.currency, tuple(lines))
