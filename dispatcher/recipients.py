"""Where a recipient is, told from the phone number, and how to decide when it is unsure.

:func:`locate` reads the area code the way marketing platforms do: the number's area code
names a state (Maryland even presumes that a Maryland area code means a Maryland resident),
and the time zones that area code covers. :func:`decide_strictest` then decides a message
once for every candidate zone and keeps the most restrictive answer, so that uncertainty
about the place can only hold a message back, never let it through.

Phone numbers never appear in exception messages: only their last four digits do.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import geocoder, timezone

from .decision import Decision
from .engine import Engine
from .errors import InputError
from .facts import Facts, local_clock
from .policy import Outcome

UNKNOWN = "unknown"
# What phonenumbers answers when it cannot place a number.
_UNKNOWN_ZONE = "Etc/Unknown"
# The zones tried when the number tells none (toll-free, non-geographic): the main zones of
# the US states, east to west. Every NANP zone would be useless: Guam and Adak are 20 hours
# apart, so no minute would be allowed everywhere.
FALLBACK_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
)

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_JURISDICTION = re.compile(r"^(?:[A-Z]{2}-[A-Z0-9]{1,3}|unknown)$")

_US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas",
    "CA": "California", "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware",
    "DC": "Washington D.C.", "FL": "Florida", "GA": "Georgia", "HI": "Hawaii",
    "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
    "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi",
    "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
    "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah",
    "VT": "Vermont", "VA": "Virginia", "WA": "Washington", "WV": "West Virginia",
    "WI": "Wisconsin", "WY": "Wyoming",
}  # fmt: skip
_CA_PROVINCES = {
    "AB": "Alberta", "BC": "British Columbia", "MB": "Manitoba", "NB": "New Brunswick",
    "NL": "Newfoundland and Labrador", "NS": "Nova Scotia", "NT": "Northwest Territories",
    "NU": "Nunavut", "ON": "Ontario", "PE": "Prince Edward Island", "QC": "Quebec",
    "SK": "Saskatchewan", "YT": "Yukon",
}  # fmt: skip
_SUBDIVISIONS = {"US": _US_STATES, "CA": _CA_PROVINCES}
_NAMES = {
    region: {name.casefold(): code for code, name in table.items()}
    for region, table in _SUBDIVISIONS.items()
}
# Other spellings found in phonenumbers' geocoding data (one of them misspelled there).
_NAMES["US"] |= {"washington state": "WA", "district of columbia": "DC"}
_NAMES["CA"] |= {"british colombia": "BC", "québec": "QC", "newfoundland": "NL"}
# NANP territories have their own region codes; ISO 3166-2 lists them under US.
_US_TERRITORIES = frozenset({"PR", "VI", "GU", "AS", "MP"})


@dataclass(frozen=True, slots=True)
class Location:
    """Where a recipient probably is.

    ``jurisdiction`` is a code as the rules use it (``'US-FL'``, ``'CA-QC'``) or
    ``'unknown'``. ``zones`` are the candidate IANA zones, several when the area code spans
    zones, empty when the number tells none.
    """

    jurisdiction: str
    zones: tuple[str, ...]


def locate(
    number: str, *, jurisdiction: str | None = None, zone: str | None = None
) -> Location:
    """The location of the recipient of ``number`` (E.164, such as ``'+13055550123'``).

    The state comes from the area code, the zones from ``phonenumbers``' time zone data. A
    ``jurisdiction`` or ``zone`` the caller knows better (from the customer's address, say)
    replaces what the number suggests.

    >>> locate("+15124720000")
    Location(jurisdiction='US-TX', zones=('America/Chicago',))

    Raises :class:`~dispatcher.errors.InputError` when ``number`` is not in E.164 form or the
    overrides are malformed; the message shows only the last four digits of the number.
    """
    parsed = _parse(number)
    # The number's type decides both answers; phonenumbers' own helpers would work it
    # out again for each (four times per number), which dominates a campaign's cost.
    geographical = phonenumbers.is_number_type_geographical(
        phonenumbers.number_type(parsed), parsed.country_code or 0
    )
    if jurisdiction is None:
        jurisdiction = _jurisdiction_of(parsed, geographical)
    elif not _JURISDICTION.match(jurisdiction):
        raise InputError(
            f"jurisdiction: {jurisdiction!r} is not a code like 'US-FL' or 'unknown'"
        )
    if zone is None:
        return Location(jurisdiction, _zones_of(parsed, geographical))
    _zone_info(zone)
    return Location(jurisdiction, (zone,))


def _parse(number: str) -> phonenumbers.PhoneNumber:
    if not isinstance(number, str) or not _E164.match(number):
        raise InputError(
            f"recipient {_masked(number)}: expected an E.164 number such as +13055550123"
        )
    try:
        return phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        # The library's message does not quote the number, but its context might.
        raise InputError(f"recipient {_masked(number)}: not a phone number") from None


def _masked(number: object) -> str:
    digits = re.sub(r"\D", "", number) if isinstance(number, str) else ""
    return "***" + digits[-4:] if len(digits) > 4 else "***"


def _jurisdiction_of(parsed: phonenumbers.PhoneNumber, geographical: bool) -> str:
    region = phonenumbers.region_code_for_number(parsed) or ""
    if region in _US_TERRITORIES:
        return f"US-{region}"
    names = _NAMES.get(region)
    if names is None or not geographical:
        return UNKNOWN
    # 'Florida', 'Miami, FL', 'Washington D.C.', 'Toronto, ON'. For a geographical
    # number, description_for_number() is exactly this call after checking the type.
    description = geocoder.description_for_valid_number(parsed, "en")
    _, comma, tail = description.rpartition(", ")
    if comma and tail in _SUBDIVISIONS[region]:
        return f"{region}-{tail}"
    code = names.get(description.casefold())
    return f"{region}-{code}" if code else UNKNOWN


def _zones_of(parsed: phonenumbers.PhoneNumber, geographical: bool) -> tuple[str, ...]:
    # A NANP number not tied to an area (toll-free, premium) gets every zone of the plan,
    # from Guam to Newfoundland: that says nothing, so it counts as unknown.
    if parsed.country_code == 1 and not geographical:
        return ()
    # For a geographical number, time_zones_for_number() is exactly this lookup after
    # checking the type again.
    zones = (
        timezone.time_zones_for_geographical_number(parsed)
        if geographical
        else timezone.time_zones_for_number(parsed)
    )
    return tuple(z for z in zones if z != _UNKNOWN_ZONE)


# Every candidate zone of every recipient is checked here; ZoneInfo's own cache keeps
# only the last few zones alive and otherwise reads the zone file again. The names are
# the IANA database's (a bad one raises, and is not cached), so the cache stays small.
@functools.cache
def _zone_info(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"zone: {zone!r} is not an IANA time zone such as 'America/Chicago'"
        ) from None


# --- deciding under uncertainty -------------------------------------------------------


class Candidate(NamedTuple):
    """One place the recipient may be, with its wall clock at ``now`` (aware, UTC)."""

    jurisdiction: str
    zone: str
    now: dt.datetime
    local_date: dt.date
    local_time: dt.time


FactsFor = Callable[[Candidate], Facts]


@dataclass(frozen=True, slots=True)
class StrictestDecision:
    """The most restrictive candidate's decision, the candidate, and for a deferral with a
    time, the instant (aware, UTC) before which the message must not go."""

    decision: Decision
    candidate: Candidate
    not_before: dt.datetime | None


# Reject (the request is invalid) > suppress (never) > defer (later) > send (now).
_SEVERITY = {Outcome.SEND: 0, Outcome.DEFER: 1, Outcome.SUPPRESS: 2, Outcome.REJECT: 3}
_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)


def decide_strictest(
    engine: Engine,
    facts_for: FactsFor,
    location: Location,
    now: dt.datetime,
    *,
    fallback_zones: tuple[str, ...] = FALLBACK_ZONES,
) -> StrictestDecision:
    """Decide a message for every zone the recipient may be in; keep the strictest answer.

    Each zone of ``location`` (or of ``fallback_zones`` when it has none) becomes a
    :class:`Candidate` with ``location.jurisdiction``; ``facts_for`` turns it into facts and
    ``engine`` decides them. The answer is never less restrictive than any candidate's:
    reject beats suppress, suppress beats defer, defer beats send; among deferrals, one
    without a time (waiting for a registration, or no allowed minute at all) beats any with
    a time, and otherwise the latest ``not_before`` in UTC wins. Ties keep the earlier zone.

    The winning ``not_before`` is a lower bound, not a promise: at that instant another
    candidate may be in its quiet hours, so the caller decides again when it comes.

    Raises :class:`~dispatcher.errors.InputError` for a naive ``now``, no candidate zone
    at all, or a zone name that is not an IANA zone.
    """
    if now.tzinfo is None:
        raise InputError("now: expected an aware datetime (UTC)")
    zones = location.zones or fallback_zones
    if not zones:
        raise InputError("fallback_zones: expected at least one zone")
    for zone in zones:
        _zone_info(zone)
    now = now.astimezone(dt.UTC)
    answers = [
        _decide_in(
            engine,
            facts_for,
            Candidate(location.jurisdiction, zone, now, *local_clock(now, zone)),
        )
        for zone in zones
    ]
    # max() keeps the first of equals: ties go to the earlier zone.
    return max(answers, key=_restrictiveness)


def _decide_in(
    engine: Engine, facts_for: FactsFor, candidate: Candidate
) -> StrictestDecision:
    decision = engine.decide(facts_for(candidate))
    local = decision.not_before_local
    if decision.outcome is Outcome.DEFER and local is not None:
        return StrictestDecision(decision, candidate, to_utc(local, candidate.zone))
    return StrictestDecision(decision, candidate, None)


def _restrictiveness(answer: StrictestDecision) -> tuple[int, dt.datetime]:
    outcome = answer.decision.outcome
    if outcome is not Outcome.DEFER:
        return (_SEVERITY[outcome], _NEVER)
    return (_SEVERITY[outcome], answer.not_before or _NEVER)


def to_utc(local: dt.datetime, zone: str) -> dt.datetime:
    """The UTC instant of the naive wall-clock time ``local`` in ``zone``.

    A time the clocks show twice (the hour repeated when daylight saving ends) means its
    first occurrence. A time the clocks skip (the hour lost when it starts) moves forward
    to the first instant after the jump: 02:30 on the day New York springs forward is
    03:00 EDT, 07:00 UTC.
    """
    if local.tzinfo is not None:
        raise InputError("local: expected a naive wall-clock datetime")
    tz = _zone_info(zone)
    first = local.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)
    if first.astimezone(tz).replace(tzinfo=None) == local:
        return first
    return _end_of_gap(local, tz)


def _end_of_gap(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    # Inside a gap the two folds read ``local`` with the offsets before and after the jump,
    # giving instants either side of it; search between them for the first second whose
    # wall clock has reached ``local``.
    ends = sorted(
        int(local.replace(tzinfo=tz, fold=fold).timestamp()) for fold in (0, 1)
    )
    low, high = ends
    while high - low > 1:
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, tz).replace(tzinfo=None) >= local:
            high = middle
        else:
            low = middle
    return dt.datetime.fromtimestamp(high, dt.UTC)
