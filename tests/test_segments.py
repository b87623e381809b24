"""Segment counting: reference cases from the encodings' specifications, and properties.

Reference figures: 3GPP TS 23.038 (the GSM-7 default alphabet and its extension table) and
TS 23.040 (a concatenated segment spends 6 octets on its user data header, which leaves 153
septets or 67 UCS-2 characters of the 140 octets).
"""

from __future__ import annotations

import doctest
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher import segments
from dispatcher.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Encoding,
    count,
    explain,
    non_gsm_characters,
    split,
    with_lookalikes,
)

CYRILLIC = "ж"
EMOJI = "😀"


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units"),
    [
        ("", Encoding.GSM_7, 0, 0),
        ("a" * 160, Encoding.GSM_7, 1, 160),
        ("a" * 161, Encoding.GSM_7, 2, 161),
        ("a" * 306, Encoding.GSM_7, 2, 306),
        ("a" * 307, Encoding.GSM_7, 3, 307),
        ("a" * 1530, Encoding.GSM_7, 10, 1530),
        ("{" * 80, Encoding.GSM_7, 1, 160),
        ("a" * 159 + "€", Encoding.GSM_7, 2, 161),
        # The escape pair would straddle septets 153/154: it opens segment 2, and the
        # remaining 152 + 2 + 152 septets need a third segment although 306 = 2 x 153.
        ("a" * 152 + "[" + "a" * 152, Encoding.GSM_7, 3, 306),
        (CYRILLIC * 70, Encoding.UCS_2, 1, 70),
        (CYRILLIC * 71, Encoding.UCS_2, 2, 71),
        (CYRILLIC * 134, Encoding.UCS_2, 2, 134),
        (CYRILLIC * 135, Encoding.UCS_2, 3, 135),
        (EMOJI * 35, Encoding.UCS_2, 1, 70),
        (EMOJI * 36, Encoding.UCS_2, 2, 72),
        # The surrogate pair would straddle units 67/68: it opens segment 2.
        (CYRILLIC * 66 + EMOJI + CYRILLIC * 66, Encoding.UCS_2, 3, 134),
        # In UCS-2 the extension characters cost one unit each.
        ("€" + EMOJI, Encoding.UCS_2, 1, 3),
        ("[]{}" + CYRILLIC, Encoding.UCS_2, 1, 5),
    ],
)
def test_reference_cases(
    text: str, encoding: Encoding, segments: int, units: int
) -> None:
    result = count(text)
    assert (result.encoding, result.segments, result.units) == (
        encoding,
        segments,
        units,
    )
    assert result.chars == len(text)


def test_every_basic_character_is_one_septet_and_every_extension_two() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes less the escape
    assert count(GSM7_BASIC).units == 127
    assert count(GSM7_EXTENSION).units == 2 * len(GSM7_EXTENSION)
    assert count(GSM7_BASIC + GSM7_EXTENSION).encoding is Encoding.GSM_7


@pytest.mark.parametrize("char", ["ç", "á", "’", "“", "—", "\t", "\x1b", "α", "ı"])
def test_one_non_gsm_character_switches_the_whole_text(char: str) -> None:
    result = count("Hello " + char + " there")
    assert result.encoding is Encoding.UCS_2
    assert [c.offset for c in result.non_gsm] == [6]


def test_a_curly_quote_triples_the_cost() -> None:
    plain = "Fall sale: 20% off every wash & fold order this week. Show this text at the counter, or use code FALL20 online. Reply STOP to opt out of marketing."
    assert count(plain).segments == 1
    curly = plain.replace("this text", "this text’s", 1)
    result = count(curly)
    assert (result.encoding, result.segments) == (Encoding.UCS_2, 3)
    assert result.non_gsm[0].name == "RIGHT SINGLE QUOTATION MARK"
    assert result.non_gsm[0].lookalike == "'"


def test_non_gsm_characters_names_each_culprit_in_order() -> None:
    found = non_gsm_characters("Café ok — 😀\U000e0001")
    assert [(c.offset, c.char, c.name) for c in found] == [
        (8, "—", "EM DASH"),
        (10, EMOJI, "GRINNING FACE"),
        (11, "\U000e0001", "LANGUAGE TAG"),
    ]
    assert non_gsm_characters("\U000f0000")[0].name == "U+F0000"


def test_explain_wording() -> None:
    assert explain("Order 12 is ready") == "1 segment (gsm-7, 17 units)"
    text = "a" * 100 + "’" + "b" * 5 + "😀"
    assert explain(text) == (
        "2 segments (ucs-2, 108 units); UCS-2 forced by RIGHT SINGLE QUOTATION MARK '’'"
        " at position 101 (use \"'\"), GRINNING FACE '😀' at position 107;"
        " in GSM-7 it would be 1 segment"
    )
    many = explain("—" * 5)
    assert "and 2 more" in many


def test_with_lookalikes_is_gsm() -> None:
    assert with_lookalikes("“Hi”… – ok 😀") == '"Hi"... - ok ?'


def test_to_mapping() -> None:
    assert count("a’").to_mapping() == {
        "encoding": "ucs-2",
        "segments": 1,
        "units": 2,
        "chars": 2,
        "non_gsm": [{"offset": 1, "char": "’", "name": "RIGHT SINGLE QUOTATION MARK"}],
    }


def test_docstring_examples() -> None:
    assert doctest.testmod(segments).failed == 0


# A reference implementation written the slow, obvious way, to check the fast one against.
def reference(text: str) -> tuple[Encoding, int, int]:
    gsm = all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)
    if gsm:
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        single, size, encoding = 160, 153, Encoding.GSM_7
    else:
        costs = [len(ch.encode("utf-16-le")) // 2 for ch in text]
        single, size, encoding = 70, 67, Encoding.UCS_2
    units = sum(costs)
    if not text:
        return encoding, 0, 0
    if units <= single:
        return encoding, 1, units
    count_, used = 1, 0
    for cost in costs:
        if used + cost > size:
            count_, used = count_ + 1, 0
        used += cost
    return encoding, count_, units


basic = st.sampled_from(GSM7_BASIC)
mixed_chars = st.one_of(
    basic,
    st.sampled_from(GSM7_EXTENSION),
    st.sampled_from("’“”—éçжα"),
    st.sampled_from([EMOJI, "🎉", "\U0001f9fa"]),
    st.characters(codec="utf-8"),
)
gsm_texts = st.text(
    alphabet=st.one_of(basic, st.sampled_from(GSM7_EXTENSION)), max_size=700
)
texts = st.one_of(gsm_texts, st.text(alphabet=mixed_chars, max_size=400))


@given(texts)
def test_count_agrees_with_the_reference(text: str) -> None:
    result = count(text)
    assert (result.encoding, result.segments, result.units) == reference(text)


@given(texts, mixed_chars)
def test_appending_a_character_never_lowers_the_count(text: str, char: str) -> None:
    assert count(text + char).segments >= count(text).segments


@given(st.text(alphabet=basic, min_size=161, max_size=2000))
def test_long_basic_gsm_text_takes_ceil_n_over_153(text: str) -> None:
    assert count(text).segments == math.ceil(len(text) / 153)


@given(texts)
def test_split_keeps_pairs_whole_and_matches_the_count(text: str) -> None:
    parts = split(text)
    assert "".join(parts) == text
    assert len(parts) == count(text).segments
    encoding = count(text).encoding
    limit = (
        (160 if len(parts) == 1 else 153)
        if encoding is Encoding.GSM_7
        else (70 if len(parts) == 1 else 67)
    )
    for part in parts:
        # Each part is a whole number of characters, so no escape pair and no surrogate
        # pair is cut; its cost in the message's encoding fits one segment.
        if encoding is Encoding.GSM_7:
            cost = len(part) + sum(part.count(c) for c in GSM7_EXTENSION)
        else:
            utf16 = part.encode("utf-16-le")
            cost = len(utf16) // 2
            assert not 0xD800 <= int.from_bytes(utf16[-2:], "little") <= 0xDBFF
        assert cost <= limit
