"""Twilio's voice status callbacks, parsed: the calls to and from a business's numbers.

Only what billing needs is read: ``CallSid``, ``CallStatus``, ``CallDuration`` (whole
seconds, sent with the ``completed`` status), ``From``, ``To`` and ``Direction``
(``inbound``, ``outbound-api`` or ``outbound-dial``). The webhook checks the signature
before it calls :meth:`CallReport.from_callback`, as it does for message statuses.

>>> report = CallReport.from_callback({"CallSid": "CA" + "0" * 32,
...     "CallStatus": "completed", "CallDuration": "61", "From": "+12015550199",
...     "To": "+12015550124", "Direction": "inbound"})
>>> report.billable_minutes, report.our_number
(2, '+12015550124')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from .errors import InvalidStatusCallback
from .phone import mask as mask_phone

# Not imported from the providers package, which imports the config, which imports this.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


E = TypeVar("E", bound=StrEnum)


class CallStatus(StrEnum):
    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND_API = "outbound-api"
    OUTBOUND_DIAL = "outbound-dial"

    @property
    def outbound(self) -> bool:
        return self is not CallDirection.INBOUND


@dataclass(frozen=True, slots=True)
class CallReport:
    """One voice status callback. ``duration`` is in seconds, ``None`` until completed."""

    sid: str
    status: CallStatus
    duration: int | None
    from_: str
    to: str
    direction: CallDirection

    def __repr__(self) -> str:
        return (
            f"CallReport(sid={self.sid!r}, status={self.status.value!r}, "
            f"duration={self.duration!r}, from_={mask_phone(self.from_)!r}, "
            f"to={mask_phone(self.to)!r}, direction={self.direction.value!r})"
        )

    @property
    def our_number(self) -> str:
        """The business's side of the call: who was called, or who called out."""
        return self.from_ if self.direction.outbound else self.to

    @property
    def customer(self) -> str:
        return self.to if self.direction.outbound else self.from_

    @property
    def billable_minutes(self) -> int:
        """Started minutes, as carriers bill a call: 61 seconds are 2 minutes.

        Zero unless the call completed.
        """
        if self.status is not CallStatus.COMPLETED or not self.duration:
            return 0
        return -(-self.duration // 60)

    @classmethod
    def from_callback(cls, form: Mapping[str, str]) -> CallReport:
        """Parse the POST form fields of a voice status callback.

        Raises :class:`~dispatcher.errors.InvalidStatusCallback` listing every field
        that is missing or malformed.
        """
        problems = []
        sid = form.get("CallSid", "")
        if not sid:
            problems.append("CallSid is missing")
        status = _enum(CallStatus, form, "CallStatus", problems)
        direction = _enum(CallDirection, form, "Direction", problems)
        phones = {}
        for name in ("From", "To"):
            value = form.get(name, "")
            if not E164.fullmatch(value):
                problems.append(
                    f"{name}: expected an E.164 number, got {mask_phone(value)!r}"
                )
            phones[name] = value
        duration = _duration(form, problems)
        if status is CallStatus.COMPLETED and duration is None:
            problems.append("CallDuration is missing from a completed call")
        if problems or status is None or direction is None:
            raise InvalidStatusCallback("voice status callback: " + "; ".join(problems))
        return cls(sid, status, duration, phones["From"], phones["To"], direction)


def _enum(
    kind: type[E], form: Mapping[str, str], name: str, problems: list[str]
) -> E | None:
    raw = form.get(name, "")
    try:
        return kind(raw)
    except ValueError:
        expected = ", ".join(member.value for member in kind)
        problems.append(f"{name} {raw!r} is not one of {expected}")
        return None


def _duration(form: Mapping[str, str], problems: list[str]) -> int | None:
    raw = form.get("CallDuration")
    if raw in (None, ""):
        return None
    if not raw.isdigit():
        problems.append(f"CallDuration must be whole seconds, got {raw!r}")
        return None
    return int(raw)
