"""Windows, the next allowed minute and the strictest window."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from dispatcher import Policy
from dispatcher.quiet_hours import Jurisdiction, describe, intersect, strictest

EVERY_DAY = tuple(((8 * 60, 21 * 60),) for _ in range(7))
TEXAS = Jurisdiction("US-TX", "Texas", (*[((540, 1260),)] * 6, ((720, 1260),)), None)


def test_window_edges_are_half_open() -> None:
    federal = Jurisdiction("US", "Federal", EVERY_DAY, None)
    assert federal.is_quiet(0, 8 * 60 - 1)
    assert not federal.is_quiet(0, 8 * 60)
    assert not federal.is_quiet(0, 21 * 60 - 1)
    assert federal.is_quiet(0, 21 * 60)


def test_next_allowed_crosses_days_and_weekdays() -> None:
    saturday_night = dt.datetime(2026, 12, 5, 21, 30)
    assert TEXAS.next_allowed(saturday_night) == dt.datetime(2026, 12, 6, 12, 0)
    assert TEXAS.next_allowed(dt.datetime(2026, 12, 7, 10, 5)) == dt.datetime(
        2026, 12, 7, 10, 5
    )
    never = Jurisdiction("X", "Never", tuple(() for _ in range(7)), None)
    assert never.next_allowed(saturday_night) is None


def test_strictest_intersects_every_window_and_takes_the_lowest_cap() -> None:
    kentucky = Jurisdiction(
        "US-KY", "Kentucky", tuple(((600, 1260),) for _ in range(7)), None
    )
    florida = Jurisdiction(
        "US-FL", "Florida", tuple(((480, 1200),) for _ in range(7)), 3
    )
    worst = strictest("worst", [kentucky, florida, TEXAS])
    assert worst.allowed[0] == ((600, 1200),)
    assert worst.allowed[6] == ((720, 1200),)
    assert worst.marketing_cap_24h == 3


def test_example_unknown_window(policy: Policy) -> None:
    assert (
        describe(policy.quiet_hours.unknown.allowed)
        == "mon-sat 10:00-20:00; sun 12:00-20:00"
    )


intervals = st.lists(
    st.tuples(st.integers(0, 1439), st.integers(1, 240)), max_size=4
).map(lambda pairs: tuple((s, min(s + d, 1440)) for s, d in sorted(pairs)))


def _minutes(spans: tuple[tuple[int, int], ...]) -> set[int]:
    return {m for s, e in spans for m in range(s, e)}


@given(intervals, intervals)
def test_intersect_keeps_exactly_the_common_minutes(
    a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]
) -> None:
    # Only disjoint sorted lists are meaningful: merge overlaps first.
    def normal(spans: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        minutes = sorted(_minutes(spans))
        out: list[tuple[int, int]] = []
        for m in minutes:
            if out and out[-1][1] == m:
                out[-1] = (out[-1][0], m + 1)
            else:
                out.append((m, m + 1))
        return tuple(out)

    a, b = normal(a), normal(b)
    assert _minutes(intersect(a, b)) == _minutes(a) & _minutes(b)
