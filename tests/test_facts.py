"""Facts from untrusted JSON: every bad field is reported, nothing half-built."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dispatcher import FactsError, parse_facts
from dispatcher import facts as facts_module
from dispatcher.facts import (
    Channel,
    ConsentState,
    Facts,
    NumberStatus,
    local_clock,
    shape_of,
)

GOOD: dict[str, Any] = {
    "message": {"type": "order_status", "channel": "sms"},
    "business": {"assist": False, "accelerate": True},
    "numbers": {
        "marketing": "registered",
        "transactional": "pending",
        "global": "registered",
    },
    "consent": {"marketing": "none", "transactional": "opted_in", "otp": "none"},
    "recipient": {
        "jurisdiction": "US-FL",
        "local_date": "2026-12-03",
        "local_time": "14:30",
        "marketing_sent_24h": 2,
    },
    "reply": {"role": None},
}


def test_round_trip() -> None:
    facts = parse_facts(GOOD)
    assert facts.numbers["transactional"] is NumberStatus.PENDING
    assert facts.minute == 14 * 60 + 30
    assert facts.to_mapping() == GOOD


def test_every_problem_is_listed() -> None:
    bad = {
        **GOOD,
        "message": {"type": 7, "channel": "fax"},
        "business": {"assist": "no"},
        "numbers": {"marketing": "REGISTERED"},
        "recipient": {
            "jurisdiction": "Florida",
            "local_date": "03/12/2026",
            "local_time": "2pm",
            "marketing_sent_24h": -1,
        },
        "extra": {},
    }
    with pytest.raises(FactsError) as caught:
        parse_facts(bad)
    assert caught.value.problems == (
        "extra: unknown fact section",
        "message.type: expected a string, got 7",
        "message.channel: 'fax' is not one of sms, mms",
        "business.assist: expected true or false, got 'no'",
        "business.accelerate: missing",
        "numbers.marketing: 'REGISTERED' is not one of registered, pending, unregistered, absent",
        "recipient.local_date: expected YYYY-MM-DD, got '03/12/2026'",
        "recipient.local_time: expected HH:MM, got '2pm'",
        "recipient.marketing_sent_24h: expected a whole number >= 0, got -1",
    )


def test_malformed_jurisdiction_is_refused_at_construction() -> None:
    with pytest.raises(FactsError, match=r"recipient\.jurisdiction"):
        Facts(
            "promotion",
            Channel.SMS,
            False,
            False,
            {},
            {},
            "Florida",
            dt.date(2026, 12, 3),
            dt.time(9, 0),
        )


def test_plain_strings_are_not_accepted_as_statuses() -> None:
    with pytest.raises(FactsError, match="expected a NumberStatus"):
        Facts(
            "promotion",
            Channel.SMS,
            False,
            False,
            {"marketing": "registered"},  # type: ignore[dict-item]
            {"marketing": ConsentState.NONE},
            "US-FL",
            dt.date(2026, 12, 3),
            dt.time(9, 0),
        )


def test_facts_cannot_be_changed_after_construction() -> None:
    facts = parse_facts(GOOD)
    with pytest.raises(TypeError):
        facts.numbers["marketing"] = NumberStatus.ABSENT  # type: ignore[index]


def test_local_clock_converts_to_the_recipients_zone() -> None:
    now = dt.datetime(2026, 12, 4, 1, 30, tzinfo=dt.UTC)
    assert local_clock(now, "America/New_York") == (
        dt.date(2026, 12, 3),
        dt.time(20, 30),
    )
    assert local_clock(now, "America/Phoenix") == (
        dt.date(2026, 12, 3),
        dt.time(18, 30),
    )
    with pytest.raises(FactsError):
        local_clock(now.replace(tzinfo=None), "America/New_York")


def test_facts_with_the_same_keys_share_one_shape() -> None:
    first, second = parse_facts(GOOD), parse_facts(GOOD)
    assert first.shape is second.shape
    assert first.shape == (
        ("marketing", "transactional", "global"),
        ("marketing", "transactional", "otp"),
    )


@pytest.mark.parametrize(
    "numbers",
    [
        ["registered"],
        {"marketing": NumberStatus.REGISTERED, "global": ConsentState.NONE},
    ],
)
def test_numbers_must_map_roles_to_statuses(numbers: object) -> None:
    with pytest.raises(FactsError, match="numbers: expected a NumberStatus"):
        Facts(
            "promotion",
            Channel.SMS,
            False,
            False,
            numbers,  # type: ignore[arg-type]
            {"marketing": ConsentState.NONE},
            "US-FL",
            dt.date(2026, 12, 3),
            dt.time(9, 0),
        )


def test_a_policys_shape_stays_shared_when_odd_input_has_filled_the_table() -> None:
    saved = dict(facts_module._SHAPES)
    try:
        for n in range(100):
            shape_of([f"role{n}"], ["scope"])
        odd = (("odd",), ("scope",))
        assert shape_of(*odd) is not shape_of(*odd)
        kept = shape_of(["a", "b"], ["c"], keep=True)
        assert shape_of(["a", "b"], ["c"]) is kept
    finally:
        facts_module._SHAPES.clear()
        facts_module._SHAPES.update(saved)
