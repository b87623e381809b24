"""Where a recipient is, from the number, and the strictest decision across candidates."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher import Engine, Facts, Policy
from dispatcher.errors import InputError
from dispatcher.facts import local_clock
from dispatcher.policy import Outcome
from dispatcher.recipients import (
    FALLBACK_ZONES,
    Candidate,
    FactsFor,
    Location,
    decide_strictest,
    locate,
    to_utc,
)
from dispatcher.testing import facts as facts_strategy

from .conftest import baseline_facts


@pytest.mark.parametrize(
    ("number", "jurisdiction", "zones"),
    [
        ("+13052240000", "US-FL", ("America/New_York",)),  # Miami
        ("+15124720000", "US-TX", ("America/Chicago",)),  # Austin
        ("+16023330000", "US-AZ", ("America/Phoenix",)),  # Phoenix: no DST
        ("+19152220000", "US-TX", ("America/Denver",)),  # El Paso: Texas, Mountain
        ("+12082220000", "US-ID", ("America/Boise", "America/Los_Angeles")),
        ("+13012220000", "US-MD", ("America/New_York",)),  # Maryland presumption
        ("+12029990000", "US-DC", ("America/New_York",)),
        ("+17875550000", "US-PR", ("America/Puerto_Rico",)),
        ("+18002224444", "unknown", ()),  # toll-free: no place at all
        ("+15148720000", "CA-QC", ("America/Toronto",)),  # Montreal
        ("+12502220000", "CA-BC", ("America/Vancouver",)),
        ("+442071838750", "unknown", ("Europe/London",)),  # abroad: zone, no state
    ],
)
def test_locate_reads_the_area_code(
    number: str, jurisdiction: str, zones: tuple[str, ...]
) -> None:
    assert locate(number) == Location(jurisdiction, zones)


def test_what_the_caller_knows_overrides_the_area_code() -> None:
    miami = "+13052240000"
    assert locate(miami, jurisdiction="US-CA") == Location(
        "US-CA", ("America/New_York",)
    )
    assert locate(miami, zone="America/Los_Angeles") == Location(
        "US-FL", ("America/Los_Angeles",)
    )


@pytest.mark.parametrize(
    ("number", "overrides", "message"),
    [
        ("3052240000", {}, "recipient ***0000: expected an E.164 number"),
        ("+1305224000x", {}, "recipient ***4000: expected an E.164 number"),
        ("+13052240000", {"jurisdiction": "Florida"}, "jurisdiction: 'Florida'"),
        ("+13052240000", {"zone": "Mars/Olympus"}, "zone: 'Mars/Olympus'"),
    ],
)
def test_bad_input_is_refused_without_showing_the_number(
    number: str, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        locate(number, **overrides)
    assert str(caught.value).startswith(message)
    assert "305224" not in str(caught.value)


# --- to_utc ---------------------------------------------------------------------------


def test_to_utc_reads_ordinary_times_with_the_zone_offset() -> None:
    assert to_utc(dt.datetime(2026, 12, 3, 9, 0), "America/Chicago") == dt.datetime(
        2026, 12, 3, 15, 0, tzinfo=dt.UTC
    )


def test_to_utc_moves_a_skipped_time_to_the_end_of_the_gap() -> None:
    # New York springs forward at 02:00 on 8 March 2026: 02:30 never happens.
    skipped = dt.datetime(2026, 3, 8, 2, 30)
    assert to_utc(skipped, "America/New_York") == dt.datetime(
        2026, 3, 8, 7, 0, tzinfo=dt.UTC
    )
    # Samoa skipped 30 December 2011 whole.
    assert to_utc(dt.datetime(2011, 12, 30, 12, 0), "Pacific/Apia") == dt.datetime(
        2011, 12, 30, 10, 0, tzinfo=dt.UTC
    )


def test_to_utc_takes_the_first_of_a_repeated_time() -> None:
    repeated = dt.datetime(2026, 11, 1, 1, 30)  # 01:30 EDT, then 01:30 EST
    assert to_utc(repeated, "America/New_York") == dt.datetime(
        2026, 11, 1, 5, 30, tzinfo=dt.UTC
    )


ZONES = st.sampled_from(
    [*FALLBACK_ZONES, "America/Boise", "America/St_Johns", "Pacific/Apia", "UTC"]
)
NEAR_TRANSITIONS = st.builds(
    dt.datetime,
    st.just(2026),
    st.sampled_from([3, 11]),
    st.sampled_from([1, 8]),
    st.integers(0, 3),
    st.integers(0, 59),
)
LOCAL_TIMES = NEAR_TRANSITIONS | st.datetimes(
    min_value=dt.datetime(2011, 1, 1), max_value=dt.datetime(2030, 12, 31)
).map(lambda d: d.replace(microsecond=0))


@given(LOCAL_TIMES, ZONES)
def test_to_utc_is_the_first_instant_the_clock_reaches_the_time(
    local: dt.datetime, zone: str
) -> None:
    instant = to_utc(local, zone)
    tz = ZoneInfo(zone)

    def wall(moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(tz).replace(tzinfo=None)

    assert instant.tzinfo is dt.UTC
    assert wall(instant) >= local
    assert wall(instant - dt.timedelta(seconds=1)) < local


# --- decide_strictest -------------------------------------------------------------------


def _promotion(policy: Policy) -> FactsFor:
    def facts_for(candidate: Candidate) -> Facts:
        return baseline_facts(
            policy,
            message_type="promotion",
            jurisdiction=candidate.jurisdiction,
            local_date=candidate.local_date,
            local_time=candidate.local_time,
        )

    return facts_for


IDAHO = Location("US-ID", ("America/Boise", "America/Los_Angeles"))


def test_a_zone_still_in_quiet_hours_holds_the_message(
    policy: Policy, engine: Engine
) -> None:
    # 08:30 in Boise, 07:30 in Los Angeles: wait for 08:00 Pacific.
    now = dt.datetime(2026, 12, 3, 15, 30, tzinfo=dt.UTC)
    result = decide_strictest(engine, _promotion(policy), IDAHO, now)
    assert result.decision.outcome is Outcome.DEFER
    assert result.candidate.zone == "America/Los_Angeles"
    assert result.not_before == dt.datetime(2026, 12, 3, 16, 0, tzinfo=dt.UTC)


def test_the_latest_not_before_wins(policy: Policy, engine: Engine) -> None:
    # 21:30 in Boise (quiet until 08:00 tomorrow), 20:30 in Los Angeles (allowed).
    now = dt.datetime(2026, 12, 4, 4, 30, tzinfo=dt.UTC)
    result = decide_strictest(engine, _promotion(policy), IDAHO, now)
    assert result.candidate.zone == "America/Boise"
    assert result.not_before == dt.datetime(2026, 12, 4, 15, 0, tzinfo=dt.UTC)


def test_sends_when_every_candidate_sends(policy: Policy, engine: Engine) -> None:
    now = dt.datetime(2026, 12, 3, 19, 0, tzinfo=dt.UTC)
    result = decide_strictest(engine, _promotion(policy), IDAHO, now)
    assert result.decision.outcome is Outcome.SEND
    assert result.candidate.zone == "America/Boise"  # ties keep the first zone
    assert result.not_before is None


def test_no_zone_means_every_fallback_zone(policy: Policy, engine: Engine) -> None:
    seen: list[Candidate] = []

    def facts_for(candidate: Candidate) -> Facts:
        seen.append(candidate)
        return _promotion(policy)(candidate)

    now = dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.UTC)  # 05:00 in Honolulu
    result = decide_strictest(engine, facts_for, locate("+18002224444"), now)
    assert [c.zone for c in seen] == list(FALLBACK_ZONES)
    assert {c.jurisdiction for c in seen} == {"unknown"}
    assert result.candidate.zone == "Pacific/Honolulu"
    # The unknown jurisdiction's window opens at 10:00 on a Thursday.
    assert result.not_before == dt.datetime(2026, 12, 3, 20, 0, tzinfo=dt.UTC)


def test_a_naive_now_is_refused(policy: Policy, engine: Engine) -> None:
    with pytest.raises(InputError, match="now: expected an aware datetime"):
        decide_strictest(engine, _promotion(policy), IDAHO, dt.datetime(2026, 12, 3))


SEVERITY = [Outcome.SEND, Outcome.DEFER, Outcome.SUPPRESS, Outcome.REJECT]
CANDIDATE_ZONES = st.lists(
    st.sampled_from(
        [
            *FALLBACK_ZONES,
            "America/Boise",
            "America/St_Johns",
            "America/Adak",
            "Pacific/Guam",
        ]
    ),
    min_size=1,
    max_size=4,
    unique=True,
)
NOWS = st.datetimes(
    min_value=dt.datetime(2024, 1, 1),
    max_value=dt.datetime(2030, 12, 31),
    timezones=st.just(dt.UTC),
)


@given(data=st.data(), zones=CANDIDATE_ZONES, now=NOWS)
def test_strictest_is_never_less_restrictive_than_any_candidate(
    policy: Policy,
    engine: Engine,
    data: st.DataObject,
    zones: list[str],
    now: dt.datetime,
) -> None:
    template = data.draw(facts_strategy(policy))
    jurisdiction = data.draw(st.sampled_from(["unknown", "US-TX", "US-FL", "US-NY"]))

    def facts_for(candidate: Candidate) -> Facts:
        return dataclasses.replace(
            template,
            jurisdiction=candidate.jurisdiction,
            local_date=candidate.local_date,
            local_time=candidate.local_time,
        )

    location = Location(jurisdiction, tuple(zones))
    result = decide_strictest(engine, facts_for, location, now)

    singles = []
    for zone in zones:
        date, time = local_clock(now, zone)
        single = engine.decide(
            dataclasses.replace(
                template, jurisdiction=jurisdiction, local_date=date, local_time=time
            )
        )
        local = single.not_before_local
        singles.append((single, to_utc(local, zone) if local else None))
    assert result.decision in [single for single, _ in singles]
    rank = SEVERITY.index(result.decision.outcome)
    for single, not_before in singles:
        assert rank >= SEVERITY.index(single.outcome)
        if single.outcome is Outcome.DEFER and result.decision.outcome is Outcome.DEFER:
            # A deferral without a time waits at least as long as any with one.
            assert result.not_before is None or (
                not_before is not None and result.not_before >= not_before
            )


def test_an_unknown_candidate_zone_is_refused(policy: Policy, engine: Engine) -> None:
    now = dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.UTC)
    with pytest.raises(InputError, match="zone: 'Mars/Olympus' is not an IANA"):
        decide_strictest(
            engine, _promotion(policy), Location("US-TX", ("Mars/Olympus",)), now
        )
