"""The Phone value type: validation, normalisation and masking."""

from __future__ import annotations

import pickle

import pytest

from dispatcher.errors import FieldError
from dispatcher.phone import LineType, Phone, mask


def test_parse_normalises_formatting_to_e164() -> None:
    assert Phone.parse("+1 (201) 555-0123").e164 == "+12015550123"


def test_printed_forms_are_masked() -> None:
    phone = Phone.parse("+12015550123")
    assert str(phone) == "+1******0123"
    assert repr(phone) == "Phone('+1******0123')"
    assert f"{phone}" == "+1******0123"
    assert "2015550123" not in f"{phone!r} {phone!s} {[phone]} { ({'p': phone}) }"


def test_mask_keeps_country_code_and_last_four() -> None:
    assert mask("+33612345678", 33) == "+33*****5678"
    assert mask("+1234", 1) == "+****"


def test_equality_hash_and_pickle_follow_the_number() -> None:
    a, b = Phone.parse("+12015550123"), Phone.parse("+1 201 555 0123")
    assert a == b
    assert len({a, b}) == 1
    assert pickle.loads(pickle.dumps(a)) == a


def test_line_type() -> None:
    assert Phone.parse("+18002345678").line_type is LineType.TOLL_FREE
    assert Phone.parse("+12015550123").line_type is LineType.GEOGRAPHIC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "phone: missing (expected an E.164 number like +12015550123)"),
        (
            "2015550123",
            "phone: not in E.164 form (10 characters ending in '23'): start with '+' "
            "and the country code, like +12015550123",
        ),
        (
            "+15555555555",
            "phone: not a valid phone number (12 characters ending in '55'); expected "
            "an E.164 number like +12015550123",
        ),
        (
            "+1abc",
            "phone: not a valid phone number (5 characters); expected an E.164 number "
            "like +12015550123",
        ),
    ],
)
def test_bad_numbers_are_refused_without_showing_them(value: str, message: str) -> None:
    with pytest.raises(FieldError) as caught:
        Phone.parse(value)
    assert str(caught.value) == message
    assert caught.value.field == "phone"
