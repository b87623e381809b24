"""The facts a decision is made from, as one typed, validated value.

A :class:`Facts` instance is valid by construction: every enumerated field holds its enum, the
jurisdiction has the right shape, the local date and time are real values. What depends on
the policy (is the message type in the catalogue? is there a status for every number role?)
is checked by the engine, which rejects the message when it is not so.

Build facts from untrusted input with :func:`parse_facts`, which reports every bad field at
once::

    parse_facts({
        "message": {"type": "order_status", "channel": "sms"},
        "business": {"assist": False, "accelerate": False},
        "numbers": {"marketing": "registered", "transactional": "registered",
                    "global": "registered"},
        "consent": {"marketing": "none", "transactional": "none", "otp": "none"},
        "recipient": {"jurisdiction": "US-FL", "local_date": "2026-12-03",
                      "local_time": "14:30", "marketing_sent_24h": 0},
        "reply": {"role": None},
    })
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from .errors import FactsError


class Channel(StrEnum):
    SMS = "sms"
    MMS = "mms"


class NumberStatus(StrEnum):
    """Carrier registration state of the business's number in one role."""

    REGISTERED = "registered"
    PENDING = "pending"
    UNREGISTERED = "unregistered"
    ABSENT = "absent"


class ConsentState(StrEnum):
    """The recipient's current consent for one scope."""

    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    NONE = "none"


UNKNOWN_JURISDICTION = "unknown"
_JURISDICTION = re.compile(r"^(?:[A-Z]{2}-[A-Z0-9]{1,3}|unknown)$")


Shape = tuple[tuple[str, ...], tuple[str, ...]]
_SHAPES: dict[Shape, Shape] = {}
_MAX_SHAPES = 64


def shape_of(
    roles: Iterable[str], scopes: Iterable[str], *, keep: bool = False
) -> Shape:
    """The key names of a numbers map and a consent map, in order, as one value.

    Equal shapes are one shared object, so a reader that expects one shape can test for
    it by identity. A shape asked for with ``keep`` (a policy's) is always shared; others
    only while fewer than a few dozen are, so odd input cannot fill the table.
    """
    shape = (tuple(roles), tuple(scopes))
    found = _SHAPES.get(shape)
    if found is None and (keep or len(_SHAPES) < _MAX_SHAPES):
        found = _SHAPES.setdefault(shape, shape)
    return found or shape


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the policy may look at for one message.

    ``numbers`` maps each number role to the status of the business's number in that role;
    ``consent`` maps each opt-out scope to the recipient's state. ``local_date`` and
    ``local_time`` are the recipient's wall clock. ``reply_role`` is the role of the number the
    customer wrote to, for replies; ``None`` otherwise.

    Raises :class:`~dispatcher.errors.FactsError` when a field has the wrong type.
    """

    message_type: str
    channel: Channel
    assist: bool
    accelerate: bool
    numbers: Mapping[str, NumberStatus]
    consent: Mapping[str, ConsentState]
    jurisdiction: str
    local_date: dt.date
    local_time: dt.time
    marketing_sent_24h: int = 0
    reply_role: str | None = None
    minute: int = field(init=False, repr=False, compare=False)
    """Minutes since the recipient's midnight."""
    shape: Shape = field(init=False, repr=False, compare=False)
    """The keys of ``numbers`` and then of ``consent``, in order; see :func:`shape_of`."""
    values: tuple[NumberStatus | ConsentState, ...] = field(
        init=False, repr=False, compare=False
    )
    """The values of ``numbers`` and then of ``consent``, in the order of ``shape``.

    The compiled engine reads a status by its position here when ``shape`` is the one it
    was compiled for: one tuple instead of two maps.
    """

    def __post_init__(self) -> None:
        problems = _type_problems(self)
        if problems:
            raise FactsError(problems)
        numbers, consent = dict(self.numbers), dict(self.consent)
        object.__setattr__(self, "numbers", MappingProxyType(numbers))
        object.__setattr__(self, "consent", MappingProxyType(consent))
        object.__setattr__(self, "shape", shape_of(numbers, consent))
        object.__setattr__(self, "values", (*numbers.values(), *consent.values()))
        object.__setattr__(
            self, "minute", self.local_time.hour * 60 + self.local_time.minute
        )

    def to_mapping(self) -> dict[str, Any]:
        """The JSON form accepted by :func:`parse_facts`; used in audit records."""
        return {
            "message": {"type": self.message_type, "channel": self.channel.value},
            "business": {"assist": self.assist, "accelerate": self.accelerate},
            "numbers": {k: v.value for k, v in self.numbers.items()},
            "consent": {k: v.value for k, v in self.consent.items()},
            "recipient": {
                "jurisdiction": self.jurisdiction,
                "local_date": self.local_date.isoformat(),
                "local_time": self.local_time.strftime("%H:%M"),
                "marketing_sent_24h": self.marketing_sent_24h,
            },
            "reply": {"role": self.reply_role},
        }


def _type_problems(facts: Facts) -> list[str]:
    problems: list[str] = []
    if not isinstance(facts.message_type, str) or not facts.message_type:
        problems.append("message.type: expected a message type name")
    if not isinstance(facts.channel, Channel):
        problems.append("message.channel: expected a Channel")
    if not isinstance(facts.assist, bool):
        problems.append("business.assist: expected true or false")
    if not isinstance(facts.accelerate, bool):
        problems.append("business.accelerate: expected true or false")
    if not _all_of(facts.numbers, NumberStatus):
        problems.append("numbers: expected a NumberStatus for each role")
    if not _all_of(facts.consent, ConsentState):
        problems.append("consent: expected a ConsentState for each scope")
    if not isinstance(facts.jurisdiction, str) or not _JURISDICTION.match(
        facts.jurisdiction
    ):
        problems.append(
            "recipient.jurisdiction: expected a code like 'US-FL' or 'unknown'"
        )
    if type(facts.local_date) is not dt.date:
        problems.append("recipient.local_date: expected a date")
    if not isinstance(facts.local_time, dt.time) or facts.local_time.tzinfo is not None:
        problems.append("recipient.local_time: expected a wall-clock time without zone")
    count = facts.marketing_sent_24h
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        problems.append("recipient.marketing_sent_24h: expected a whole number >= 0")
    if facts.reply_role is not None and not isinstance(facts.reply_role, str):
        problems.append("reply.role: expected a role name or null")
    return problems


def _all_of(mapping: object, enum: type[StrEnum]) -> bool:
    """Whether ``mapping`` is a mapping whose values are all members of ``enum``.

    An enum with members has no subclasses, so comparing types is enough; the plain
    dictionary, the usual case, skips the slower abstract-class test.
    """
    if not isinstance(mapping, dict) and not isinstance(mapping, Mapping):
        return False
    for value in mapping.values():  # noqa: SIM110 - twice as fast as all() on a generator
        if type(value) is not enum:
            return False
    return True


_SECTIONS = ("message", "business", "numbers", "consent", "recipient", "reply")


def parse_facts(raw: Any) -> Facts:
    """Build :class:`Facts` from a JSON-like mapping, reporting every problem at once.

    Every field is required (``reply.role`` may be null, ``marketing_sent_24h`` defaults to 0);
    unknown keys are errors. Raises :class:`~dispatcher.errors.FactsError`.
    """
    if not isinstance(raw, Mapping):
        raise FactsError(["expected an object with " + ", ".join(_SECTIONS)])
    reader = _Reader(raw)
    message = reader.section("message", ("type", "channel"))
    business = reader.section("business", ("assist", "accelerate"))
    numbers = reader.section("numbers", None)
    consent = reader.section("consent", None)
    recipient = reader.section(
        "recipient", ("jurisdiction", "local_date", "local_time", "marketing_sent_24h")
    )
    reply = reader.section("reply", ("role",))
    for key in raw:
        if key not in _SECTIONS:
            reader.problems.append(f"{key}: unknown fact section")

    values = {
        "message_type": reader.string(message, "message.type"),
        "channel": reader.enum(message, "message.channel", Channel),
        "assist": reader.boolean(business, "business.assist"),
        "accelerate": reader.boolean(business, "business.accelerate"),
        "numbers": reader.enum_map(numbers, "numbers", NumberStatus),
        "consent": reader.enum_map(consent, "consent", ConsentState),
        "jurisdiction": reader.string(recipient, "recipient.jurisdiction"),
        "local_date": reader.date(recipient, "recipient.local_date"),
        "local_time": reader.time(recipient, "recipient.local_time"),
        "marketing_sent_24h": reader.count(recipient, "recipient.marketing_sent_24h"),
        "reply_role": reader.optional_string(reply, "reply.role"),
    }
    if reader.problems:
        raise FactsError(reader.problems)
    return Facts(**values)


class _Reader:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def section(self, name: str, keys: tuple[str, ...] | None) -> Mapping[str, Any]:
        value = self.raw.get(name)
        if value is None and name == "reply":
            return {"role": None}
        if not isinstance(value, Mapping):
            self.problems.append(f"{name}: missing (expected an object)")
            return {}
        if keys is not None:
            for key in value:
                if key not in keys:
                    self.problems.append(f"{name}.{key}: unknown fact")
        return value

    def _get(self, section: Mapping[str, Any], path: str) -> Any:
        key = path.rsplit(".", 1)[1]
        if key not in section:
            self.problems.append(f"{path}: missing")
            return None
        return section[key]

    def string(self, section: Mapping[str, Any], path: str) -> Any:
        value = self._get(section, path)
        if value is not None and not isinstance(value, str):
            self.problems.append(f"{path}: expected a string, got {value!r}")
        return value

    def optional_string(self, section: Mapping[str, Any], path: str) -> Any:
        value = section.get(path.rsplit(".", 1)[1])
        if value is not None and not isinstance(value, str):
            self.problems.append(f"{path}: expected a string or null, got {value!r}")
        return value

    def boolean(self, section: Mapping[str, Any], path: str) -> Any:
        value = self._get(section, path)
        if value is not None and not isinstance(value, bool):
            self.problems.append(f"{path}: expected true or false, got {value!r}")
        return value

    def enum(self, section: Mapping[str, Any], path: str, kind: type[StrEnum]) -> Any:
        value = self._get(section, path)
        return self._member(value, path, kind) if value is not None else None

    def _member(self, value: Any, path: str, kind: type[StrEnum]) -> Any:
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            self.problems.append(f"{path}: {value!r} is not one of {allowed}")
            return None

    def enum_map(
        self, section: Mapping[str, Any], path: str, kind: type[StrEnum]
    ) -> dict[str, Any]:
        return {
            str(key): self._member(value, f"{path}.{key}", kind)
            for key, value in section.items()
        }

    def date(self, section: Mapping[str, Any], path: str) -> Any:
        value = self._get(section, path)
        if value is None:
            return None
        try:
            return dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            self.problems.append(f"{path}: expected YYYY-MM-DD, got {value!r}")
            return None

    def time(self, section: Mapping[str, Any], path: str) -> Any:
        value = self._get(section, path)
        if value is None:
            return None
        if isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value):
            try:
                return dt.time.fromisoformat(value)
            except ValueError:
                pass
        self.problems.append(f"{path}: expected HH:MM, got {value!r}")
        return None

    def count(self, section: Mapping[str, Any], path: str) -> Any:
        value = section.get(path.rsplit(".", 1)[1], 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.problems.append(f"{path}: expected a whole number >= 0, got {value!r}")
            return None
        return value


def local_clock(now: dt.datetime, zone: str) -> tuple[dt.date, dt.time]:
    """The recipient's local date and minute for an aware ``now`` and an IANA zone name."""
    from zoneinfo import ZoneInfo

    if now.tzinfo is None:
        raise FactsError(["now: expected an aware datetime"])
    local = now.astimezone(ZoneInfo(zone))
    return local.date(), local.time().replace(second=0, microsecond=0, tzinfo=None)
