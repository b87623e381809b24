"""Allowed sending windows and marketing caps, in the recipient's local time.

A jurisdiction's windows are kept per weekday as sorted ``(start, end)`` minute pairs, end
exclusive, so "is this minute allowed?" is a short scan and "when is the next allowed
minute?" a walk over at most eight days.
"""

from __future__ import annotations

import datetime as dt
from array import array
from dataclasses import dataclass

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60

# Per weekday (Monday first), the allowed intervals as (start_minute, end_minute).
WeekWindows = tuple[tuple[tuple[int, int], ...], ...]


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    code: str
    name: str
    allowed: WeekWindows
    marketing_cap_24h: int | None

    def is_quiet(self, weekday: int, minute: int) -> bool:
        return not any(start <= minute < end for start, end in self.allowed[weekday])

    def cap_reached(self, sent_24h: int) -> bool:
        return self.marketing_cap_24h is not None and sent_24h >= self.marketing_cap_24h

    def next_allowed(self, local: dt.datetime) -> dt.datetime | None:
        """The first allowed minute at or after ``local`` (naive), or None if there is none."""
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        minute = local.hour * 60 + local.minute
        for offset in range(8):
            weekday = (local.weekday() + offset) % 7
            for start, end in self.allowed[weekday]:
                first = max(start, minute) if offset == 0 else start
                if first < end:
                    return day + dt.timedelta(days=offset, minutes=first)
        return None

    def wait_table(self) -> array[int]:
        """Minutes to wait for the next allowed minute, indexed by ``weekday * 1440 + minute``.

        -1 where no minute of the week is allowed. Built by one backwards sweep over two
        weeks, so that the waits at the end of Sunday see Monday's windows.
        """
        week = 7 * MINUTES_PER_DAY
        allowed = array("b", [0]) * week
        for day, intervals in enumerate(self.allowed):
            for start, end in intervals:
                for minute in range(start, end):
                    allowed[day * MINUTES_PER_DAY + minute] = 1
        table = array("i", [-1]) * week
        wait = -1
        for step in range(2 * week - 1, -1, -1):
            index = step % week
            if allowed[index]:
                wait = 0
            elif wait >= 0:
                wait += 1
            table[index] = wait
        return table

    def has_quiet_minutes(self) -> bool:
        return any(self.is_quiet_somewhere(day) for day in range(7))

    def is_quiet_somewhere(self, weekday: int) -> bool:
        return (
            sum(end - start for start, end in self.allowed[weekday]) < MINUTES_PER_DAY
        )

    def has_allowed_minutes(self) -> bool:
        return any(self.allowed[day] for day in range(7))


@dataclass(frozen=True, slots=True)
class QuietHours:
    """The default (federal) window, the jurisdictions and the one used when unknown."""

    exempt_categories: frozenset[str]
    default: Jurisdiction
    jurisdictions: dict[str, Jurisdiction]
    unknown: Jurisdiction

    def lookup(self, code: str) -> Jurisdiction:
        if code == "unknown":
            return self.unknown
        return self.jurisdictions.get(code, self.default)


def intersect(
    a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    """The minutes allowed by both sorted, disjoint interval lists."""
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def strictest(name: str, candidates: list[Jurisdiction]) -> Jurisdiction:
    """A jurisdiction allowing only the minutes every candidate allows, with the lowest cap."""
    allowed = candidates[0].allowed
    for other in candidates[1:]:
        allowed = tuple(intersect(allowed[d], other.allowed[d]) for d in range(7))
    caps = [c.marketing_cap_24h for c in candidates if c.marketing_cap_24h is not None]
    return Jurisdiction("unknown", name, allowed, min(caps) if caps else None)


def parse_minute(text: str) -> int:
    """``"HH:MM"`` to minutes after midnight; ``"24:00"`` is the end of the day."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def describe(windows: WeekWindows) -> str:
    """A short human description, grouping days with equal windows: 'mon-sat 09:00-21:00'."""
    groups: list[tuple[list[int], tuple[tuple[int, int], ...]]] = []
    for day, intervals in enumerate(windows):
        if groups and groups[-1][1] == intervals and groups[-1][0][-1] == day - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], intervals))
    parts = []
    for days, intervals in groups:
        span = (
            WEEKDAYS[days[0]]
            if len(days) == 1
            else f"{WEEKDAYS[days[0]]}-{WEEKDAYS[days[-1]]}"
        )
        if len(days) == 7:
            span = "every day"
        times = ", ".join(
            f"{format_minute(s)}-{format_minute(e)}" for s, e in intervals
        )
        parts.append(f"{span} {times or 'never'}")
    return "; ".join(parts)
