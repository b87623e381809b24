"""Phone numbers as a value type that cannot leak into logs.

A :class:`Phone` holds a validated E.164 number. Its ``str``, ``repr`` and log form
are masked -- the country code and the last four digits only -- so a phone that ends
up in a log line, an exception or a traceback shows ``+1******0123``. The full number
is read on purpose, through :attr:`Phone.e164`, where it is stored or handed to a
provider::

    >>> phone = Phone.parse("+1 201-555-0123")
    >>> phone
    Phone('+1******0123')
    >>> phone.e164
    '+12015550123'
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import phonenumbers

from .errors import FieldError

_SHOWN_DIGITS = 4


class LineType(StrEnum):
    """What ``phonenumbers`` says a number is, as far as sending cares."""

    TOLL_FREE = "toll_free"
    GEOGRAPHIC = "geographic"
    OTHER = "other"


def mask(e164: str, country_code: int | None = None) -> str:
    """``+1******0123``: the country code, one star per hidden digit, the last four."""
    digits = e164.lstrip("+")
    prefix = str(country_code) if country_code is not None else ""
    if not digits.startswith(prefix):
        prefix = ""
    hidden = len(digits) - len(prefix) - _SHOWN_DIGITS
    if hidden <= 0:
        return "+" + "*" * len(digits)
    return f"+{prefix}{'*' * hidden}{digits[-_SHOWN_DIGITS:]}"


def _describe_bad(value: str) -> str:
    # Enough to find the typo in the caller's data, never the whole number.
    tail = value[-2:] if len(value) > 6 else ""
    shape = f"{len(value)} characters"
    return f"{shape} ending in {tail!r}" if tail else shape


class Phone:
    """A valid E.164 phone number whose printed forms are masked.

    Build one with :meth:`parse`. Equal when the E.164 forms are equal; hashable.
    """

    __slots__ = ("_country_code", "_e164", "_line_type")

    def __init__(self, e164: str, country_code: int, line_type: LineType) -> None:
        self._e164 = e164
        self._country_code = country_code
        self._line_type = line_type

    @classmethod
    def parse(cls, value: str, field: str = "phone") -> Phone:
        """Parse and validate ``value``; formatting (spaces, dashes) is allowed, the
        leading ``+`` and country code are required.

        Raises :class:`~dispatcher.errors.FieldError` naming ``field`` when the value
        is not a valid number. The message shows the value's length and last two
        characters, never the whole of it.
        """
        if not isinstance(value, str) or not value.strip():
            raise FieldError(
                field, "missing (expected an E.164 number like +12015550123)"
            )
        text = value.strip()
        if not text.startswith("+"):
            raise FieldError(
                field,
                f"not in E.164 form ({_describe_bad(text)}): start with '+' and the "
                "country code, like +12015550123",
            )
        try:
            parsed = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            parsed = None
        # A number is valid exactly when phonenumbers finds a type for it (that is how
        # is_valid_number decides); asking once halves the cost of parsing a campaign.
        number_type = phonenumbers.PhoneNumberType.UNKNOWN
        if parsed is not None:
            number_type = phonenumbers.number_type(parsed)
        if parsed is None or number_type == phonenumbers.PhoneNumberType.UNKNOWN:
            raise FieldError(
                field,
                f"not a valid phone number ({_describe_bad(text)}); expected an E.164 "
                "number like +12015550123",
            )
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if number_type == phonenumbers.PhoneNumberType.TOLL_FREE:
            line_type = LineType.TOLL_FREE
        elif number_type in _GEOGRAPHIC:
            line_type = LineType.GEOGRAPHIC
        else:
            line_type = LineType.OTHER
        return cls(e164, parsed.country_code or 0, line_type)

    @classmethod
    def from_stored(cls, e164: str) -> Phone:
        """A phone read back from the database, where only valid numbers are written."""
        return cls.parse(e164, field="stored phone")

    @property
    def e164(self) -> str:
        """The full number. Read it only to store it or to hand it to a provider."""
        return self._e164

    @property
    def masked(self) -> str:
        return mask(self._e164, self._country_code)

    @property
    def line_type(self) -> LineType:
        return self._line_type

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Phone({self.masked!r})"

    def __format__(self, spec: str) -> str:
        return format(self.masked, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Phone) and other._e164 == self._e164

    def __hash__(self) -> int:
        return hash(self._e164)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Phone, (self._e164, self._country_code, self._line_type))


_GEOGRAPHIC = frozenset(
    {
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }
)
