"""How many SMS segments a text costs: exact GSM-7 and UCS-2 counting.

The rules (3GPP TS 23.038 for the alphabets, TS 23.040 for concatenation):

* A text made only of GSM-7 characters is sent in GSM-7: 160 septets fit one segment; a
  longer text is split into segments of 153 septets (a concatenated segment spends 7 on its
  header). The extension characters ``^ { } \\ [ ] ~ | €`` and form feed are an escape
  septet plus the character: two septets, and the pair is never split across segments.
* One character outside GSM-7 switches the whole text to UCS-2: 70 UTF-16 code units in one
  segment, 67 per segment when split. A character outside the Basic Multilingual Plane (most
  emoji) is a surrogate pair of two units, never split across segments.

``units`` counts septets in GSM-7 and UTF-16 code units in UCS-2; ``chars`` counts code
points, as ``len(text)`` does. An empty text costs no segment.

>>> count("Your order is ready")
Segments(encoding=<Encoding.GSM_7: 'gsm-7'>, segments=1, units=19, chars=19, non_gsm=())
>>> count("It\\u2019s ready").segments, count("It\\u2019s ready").encoding.value
(1, 'ucs-2')
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import NamedTuple

# The GSM 03.38 default alphabet, in code order (0x00-0x7F). 0x1B is the escape to the
# extension table, not a character of its own, so it is left out.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
).replace("\x1b", "")

# The extension table characters that every handset supports: escape septet plus one.
GSM7_EXTENSION = "\f^{}\\[~]|€"

GSM7_SINGLE = 160
GSM7_CONCATENATED = 153
UCS2_SINGLE = 70
UCS2_CONCATENATED = 67

_NON_GSM = re.compile("[^" + re.escape(GSM7_BASIC + GSM7_EXTENSION) + "]")
_EXTENSION = re.compile("[" + re.escape(GSM7_EXTENSION) + "]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")

# Look-alikes a product team can use instead of a character that forces UCS-2.
_LOOKALIKES = {
    "‘": "'",
    "’": "'",
    "‚": "'",
    "′": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "″": '"',
    "–": "-",
    "—": "-",
    "‐": "-",
    "‑": "-",
    "−": "-",
    "…": "...",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "•": "-",
    "\t": " ",
}


class Encoding(StrEnum):
    GSM_7 = "gsm-7"
    UCS_2 = "ucs-2"


class NonGsmChar(NamedTuple):
    """A character that forced UCS-2: its 0-based code point offset, itself, its name."""

    offset: int
    char: str
    name: str

    @property
    def lookalike(self) -> str | None:
        """A GSM-7 replacement that reads the same, if there is an obvious one."""
        return _LOOKALIKES.get(self.char)


class Segments(NamedTuple):
    """The cost of one text. A named tuple: it is built for every message counted."""

    encoding: Encoding
    segments: int
    units: int
    chars: int
    non_gsm: tuple[NonGsmChar, ...] = ()

    def to_mapping(self) -> dict[str, object]:
        """The JSON form used by ``explain`` and the send API."""
        return {
            "encoding": self.encoding.value,
            "segments": self.segments,
            "units": self.units,
            "chars": self.chars,
            "non_gsm": [
                {"offset": c.offset, "char": c.char, "name": c.name}
                for c in self.non_gsm
            ],
        }


def count(text: str) -> Segments:
    """Count the segments of ``text``; ``non_gsm`` lists what forced UCS-2, if anything."""
    chars = len(text)
    if _NON_GSM.search(text) is None:
        extension = len(_EXTENSION.findall(text)) if chars else 0
        units = chars + extension
        if units <= GSM7_SINGLE:
            return Segments(Encoding.GSM_7, 1 if chars else 0, units, chars)
        if not extension:
            return Segments(
                Encoding.GSM_7, -(-units // GSM7_CONCATENATED), units, chars
            )
        return Segments(Encoding.GSM_7, _pack(text, Encoding.GSM_7), units, chars)

    culprits = non_gsm_characters(text)
    astral = len(_ASTRAL.findall(text))
    units = chars + astral
    if units <= UCS2_SINGLE:
        segments = 1
    elif not astral:
        segments = -(-units // UCS2_CONCATENATED)
    else:
        segments = _pack(text, Encoding.UCS_2)
    return Segments(Encoding.UCS_2, segments, units, chars, culprits)


def non_gsm_characters(text: str) -> tuple[NonGsmChar, ...]:
    """Every character of ``text`` outside GSM-7, in order, with its Unicode name."""
    return tuple(
        NonGsmChar(m.start(), m.group(), unicodedata.name(m.group(), _codepoint(m)))
        for m in _NON_GSM.finditer(text)
    )


def split(text: str) -> list[str]:
    """The text of each segment, as a sender would split ``text`` (empty: no segment).

    Escape pairs and surrogate pairs stay whole: a two-unit character that would straddle
    a segment boundary opens the next segment instead.
    """
    encoding = Encoding.GSM_7 if _NON_GSM.search(text) is None else Encoding.UCS_2
    single, size = _limits(encoding)
    costs = [_cost(ch, encoding) for ch in text]
    if sum(costs) <= single:
        return [text] if text else []
    parts: list[str] = []
    start = used = 0
    for i, cost in enumerate(costs):
        if used + cost > size:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return parts


def with_lookalikes(text: str) -> str:
    """``text`` with each non-GSM character replaced by its look-alike, or by ``?``."""
    return _NON_GSM.sub(lambda m: _LOOKALIKES.get(m.group(), "?"), text)


def explain(text: str) -> str:
    """One line for a product team: the cost, and what forced UCS-2 and what that cost.

    >>> print(explain("Sale ends today 🎉 20% off"))
    1 segment (ucs-2, 26 units); UCS-2 forced by PARTY POPPER '🎉' at position 17; in GSM-7 it would be 1 segment
    """
    result = count(text)
    noun = "segment" if result.segments == 1 else "segments"
    line = f"{result.segments} {noun} ({result.encoding.value}, {result.units} units)"
    if not result.non_gsm:
        return line
    shown = ", ".join(_describe(c) for c in result.non_gsm[:3])
    more = len(result.non_gsm) - 3
    if more > 0:
        shown += f" and {more} more"
    alternative = count(with_lookalikes(text)).segments
    alt_noun = "segment" if alternative == 1 else "segments"
    return (
        f"{line}; UCS-2 forced by {shown}; "
        f"in GSM-7 it would be {alternative} {alt_noun}"
    )


def _describe(c: NonGsmChar) -> str:
    hint = f" (use {c.lookalike!r})" if c.lookalike else ""
    return f"{c.name} {c.char!r} at position {c.offset + 1}{hint}"


def _codepoint(m: re.Match[str]) -> str:
    return f"U+{ord(m.group()):04X}"


def _limits(encoding: Encoding) -> tuple[int, int]:
    if encoding is Encoding.GSM_7:
        return GSM7_SINGLE, GSM7_CONCATENATED
    return UCS2_SINGLE, UCS2_CONCATENATED


def _cost(ch: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM_7:
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def _pack(text: str, encoding: Encoding) -> int:
    """Segments of a long text that holds two-unit characters (the rare, slow case)."""
    _, size = _limits(encoding)
    segments, used = 1, 0
    for ch in text:
        cost = _cost(ch, encoding)
        if used + cost > size:
            segments += 1
            used = 0
        used += cost
    return segments
