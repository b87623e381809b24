"""Representative facts for every class of situation a policy (or two) can tell apart.

The fact space of a policy is finite once each fact is reduced to the values its
conditions distinguish. A *slice* fixes the message type and the role of the number a
reply answers; inside a slice the dimensions are the channel, the two enrolments, the
status of each role's number, the consent of each scope, and the *moment*: the
recipient's jurisdiction, local date and minute and the marketing count of the last 24
hours.

Per slice, the values of each dimension are split into classes that no condition of the
policies (their rules, effective dates and invariants) tells apart, and one
representative per class is taken; a :class:`Point` is one combination of classes.
Moments start from concrete cells (each jurisdiction, each weekday of each
effective-date interval, each stretch of minutes between window boundaries, each range
of counts between caps), so a class of moments can be described to a person ("US-FL,
every day 20:00-21:00").

Given two policies (``dispatcher diff``) the classes are cut by the conditions of both,
so the decision of either policy is the same for every member of a class.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .engine import fact_value
from .errors import InputError
from .facts import Channel, ConsentState, Facts, NumberStatus
from .policy import (
    FROM_MESSAGE_ROLE,
    FROM_REPLY_ROLE,
    NO_REPLY,
    Condition,
    DeferUntil,
    MessageType,
    Outcome,
    Policy,
    Rule,
)
from .quiet_hours import MINUTES_PER_DAY, WEEKDAYS, describe, format_minute

_TYPE_FACTS = {
    "message.type": "name",
    "message.category": "category",
    "message.product": "product",
}
# Jurisdiction codes tried, in order, as the stand-in for "a state no policy lists".
_UNLISTED = ("US-NY", "US-GA", "US-AZ", "US-OH", "US-PA", "US-NJ")
# A Monday: the week used when no rule has an effective date.
_BASE_DAY = dt.date(2026, 1, 5)


@dataclass(frozen=True, slots=True)
class Moment:
    """One cell of when and where: all its minutes and counts behave alike in every
    policy.

    ``start``/``end`` are minutes of ``weekday`` (end exclusive); ``sent_from`` and
    ``sent_to`` bound the marketing count (``sent_to`` None: no upper bound).
    """

    jurisdiction: str
    interval: int
    local_date: dt.date
    start: int
    end: int
    sent_from: int
    sent_to: int | None

    @property
    def weekday(self) -> int:
        return self.local_date.weekday()

    @property
    def local_time(self) -> dt.time:
        return dt.time(self.start // 60, self.start % 60)


@dataclass(frozen=True, slots=True)
class Slice:
    """A message type and the role of the number the customer wrote to (None: no
    reply)."""

    message_type: str
    reply_role: str | None

    def __str__(self) -> str:
        if self.reply_role is None:
            return self.message_type
        return f"{self.message_type} (reply to the {self.reply_role} number)"


@dataclass(frozen=True, slots=True)
class Dimension:
    """A dimension of one slice: its name and its classes, each a tuple of values."""

    name: str
    classes: tuple[tuple[Any, ...], ...]
    full: bool

    def describe(self, chosen: int) -> str | None:
        """``name=value[,value]`` for class ``chosen``; None when the class is
        everything."""
        if len(self.classes) == 1:
            return None
        values = self.classes[chosen]
        shown = ",".join(_show(v) for v in values)
        return f"{self.name}={shown}"


@dataclass(frozen=True, slots=True)
class Point:
    """Representative facts of one class combination, with the class chosen per
    dimension."""

    slice: Slice
    facts: Facts
    choice: tuple[int, ...]


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Grid:
    """The classes of situations of one or more policies sharing roles and scopes.

    With ``windows``, jurisdictions with different allowed windows are kept apart
    wherever a rule can defer to the next allowed minute, so that a change of that
    minute shows.

    Raises InputError when the policies declare different number roles or opt-out scopes
    (their facts would not even have the same shape).
    """

    def __init__(self, policies: Sequence[Policy], *, windows: bool = False) -> None:
        first = policies[0]
        for other in policies[1:]:
            if other.roles.keys() != first.roles.keys():
                raise InputError(
                    f"{other.source}: number roles {sorted(other.roles)} differ from "
                    f"{first.source}'s {sorted(first.roles)}; compare policies with "
                    "the "
                    "same roles"
                )
            if other.scopes.keys() != first.scopes.keys():
                raise InputError(
                    f"{other.source}: opt-out scopes {sorted(other.scopes)} differ "
                    "from "
                    f"{first.source}'s {sorted(first.scopes)}; compare policies with "
                    "the "
                    "same scopes"
                )
        self.policies = tuple(policies)
        self.windows = windows
        self.roles = tuple(first.roles)
        self.scopes = tuple(first.scopes)
        types: dict[str, None] = {}
        for policy in policies:
            types.update(dict.fromkeys(policy.message_types))
        self.slices = tuple(
            Slice(name, reply) for name in types for reply in [*self.roles, None]
        )
        self.moments = _moments(policies)
        self._atoms = self._moment_atoms()

    def _moment_atoms(self) -> tuple[tuple[Moment, ...], ...]:
        """Moments grouped by every moment-dependent fact of every policy.

        Only these facts (the recipient facts and the date) vary with the moment, so a
        class of moments in any slice is a union of these groups; classifying one moment
        per group is enough.
        """
        groups: dict[tuple[Any, ...], list[Moment]] = defaultdict(list)
        for moment in self.moments:
            key: list[Any] = []
            for policy in self.policies:
                zone = policy.quiet_hours.lookup(moment.jurisdiction)
                listed = moment.jurisdiction in policy.quiet_hours.jurisdictions
                key += [
                    moment.jurisdiction if listed else moment.jurisdiction == "unknown",
                    zone.is_quiet(moment.weekday, moment.start),
                    zone.cap_reached(moment.sent_from),
                    *(rule.in_effect(moment.local_date) for rule in policy.rules),
                ]
                if self.windows:
                    key.append(zone.allowed)
            groups[tuple(key)].append(moment)
        return tuple(tuple(g) for g in groups.values())

    # --- building facts
    # ------------------------------------------------------------------

    def base(self, piece: Slice) -> dict[str, Any]:
        return {
            "message_type": piece.message_type,
            "channel": Channel.SMS,
            "assist": False,
            "accelerate": False,
            "numbers": dict.fromkeys(self.roles, NumberStatus.REGISTERED),
            "consent": dict.fromkeys(self.scopes, ConsentState.NONE),
            "jurisdiction": self.moments[0].jurisdiction,
            "local_date": self.moments[0].local_date,
            "local_time": self.moments[0].local_time,
            "marketing_sent_24h": 0,
            "reply_role": piece.reply_role,
        }

    @staticmethod
    def apply(fields: dict[str, Any], name: str, value: Any) -> None:
        """Set dimension ``name`` to ``value`` in a dict of Facts keyword arguments."""
        if name == "moment":
            fields["jurisdiction"] = value.jurisdiction
            fields["local_date"] = value.local_date
            fields["local_time"] = value.local_time
            fields["marketing_sent_24h"] = value.sent_from
        elif name.startswith("number."):
            fields["numbers"] = {**fields["numbers"], name[7:]: NumberStatus(value)}
        elif name.startswith("consent."):
            fields["consent"] = {**fields["consent"], name[8:]: ConsentState(value)}
        elif name == "message.channel":
            fields["channel"] = Channel(value)
        else:
            fields[name.split(".")[1]] = value

    # --- classes
    # -------------------------------------------------------------------------

    def dimensions(self, piece: Slice) -> tuple[Dimension, ...]:
        """The dimensions of ``piece``, each cut into classes its conditions tell
        apart."""
        tests = [t for p in self.policies for t in _tests(p, piece, self.windows)]
        base = self.base(piece)
        raw: list[tuple[str, tuple[Any, ...]]] = [
            ("message.channel", tuple(c.value for c in Channel)),
            ("business.assist", (False, True)),
            ("business.accelerate", (False, True)),
            *(
                (f"number.{r}", tuple(s.value for s in NumberStatus))
                for r in self.roles
            ),
            *(
                (f"consent.{s}", tuple(c.value for c in ConsentState))
                for s in self.scopes
            ),
        ]
        out = []
        for name, values in raw:
            groups = self._classify(base, tests, name, [(v,) for v in values])
            out.append(Dimension(name, groups, len(groups) == 1))
        groups = self._classify(base, tests, "moment", self._atoms)
        out.append(Dimension("moment", groups, len(groups) == 1))
        return tuple(out)

    def _classify(
        self,
        base: dict[str, Any],
        tests: list[Callable[[Facts], Any]],
        name: str,
        atoms: Sequence[tuple[Any, ...]],
    ) -> tuple[tuple[Any, ...], ...]:
        groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
        for atom in atoms:
            fields = dict(base)
            self.apply(fields, name, atom[0])
            facts = Facts(**fields)
            groups[tuple(test(facts) for test in tests)].extend(atom)
        return tuple(tuple(g) for g in groups.values())

    def points(self, piece: Slice) -> Iterator[Point]:
        """One point per combination of classes of ``piece``'s dimensions."""
        dims = self.dimensions(piece)
        base = self.base(piece)
        for choice in itertools.product(*(range(len(d.classes)) for d in dims)):
            fields = dict(base)
            for dim, chosen in zip(dims, choice, strict=True):
                self.apply(fields, dim.name, dim.classes[chosen][0])
            yield Point(piece, Facts(**fields), choice)

    def all_points(self) -> Iterator[tuple[tuple[Dimension, ...], Point]]:
        for piece in self.slices:
            dims = self.dimensions(piece)
            for point in self.points(piece):
                yield dims, point


def _send_roles(policy: Policy, mtype: MessageType, piece: Slice) -> set[str]:
    """The roles a send of this slice can leave from."""
    roles = set()
    for rule in policy.rules:
        if rule.outcome is Outcome.SEND and _slice_matches(
            rule.conditions, mtype, piece
        ):
            if rule.from_role == FROM_REPLY_ROLE or (
                rule.from_role == FROM_MESSAGE_ROLE and mtype.is_reply
            ):
                roles.add(piece.reply_role)
            elif rule.from_role == FROM_MESSAGE_ROLE:
                roles.add(mtype.role)
            else:
                roles.add(rule.from_role)
    return {role for role in roles if role is not None}


def _tests(policy: Policy, piece: Slice, windows: bool) -> list[Callable[[Facts], Any]]:
    """Functions of facts whose values split a slice's dimensions into classes."""
    mtype = policy.message_types.get(piece.message_type)
    if mtype is None:
        return []
    out: list[Callable[[Facts], Any]] = []

    def add_conditions(conditions: Sequence[Condition]) -> None:
        for cond in conditions:
            if cond.fact not in _TYPE_FACTS and cond.fact != "reply.role":
                out.append(_condition_test(policy, mtype, cond))

    for rule in policy.rules:
        if _slice_matches(rule.conditions, mtype, piece):
            add_conditions(rule.conditions)
            if rule.effective_from or rule.effective_until:
                out.append(_date_test(rule))
    for inv in policy.invariants:
        if _slice_matches(inv.conditions, mtype, piece):
            add_conditions(inv.conditions)
    # Invariants look at the status of the number a send leaves from: keep every status
    # apart that one of them names.
    senders = _send_roles(policy, mtype, piece)
    for inv in policy.invariants:
        for cond in inv.forbid:
            if cond.fact == "from_status":
                out.extend(_status_test(role, cond) for role in senders)
    # A deferral to the next allowed minute depends on the jurisdiction's windows: keep
    # jurisdictions with different windows apart where a rule can defer that way.
    if windows and any(
        rule.until is DeferUntil.ALLOWED_TIME
        and _slice_matches(rule.conditions, mtype, piece)
        for rule in policy.rules
    ):
        out.append(lambda f: policy.quiet_hours.lookup(f.jurisdiction).allowed)
    return out


def _slice_matches(
    conditions: Sequence[Condition], mtype: MessageType, piece: Slice
) -> bool:
    for cond in conditions:
        if cond.fact in _TYPE_FACTS:
            if not cond.matches(getattr(mtype, _TYPE_FACTS[cond.fact])):
                return False
        elif cond.fact == "reply.role" and not cond.matches(
            piece.reply_role or NO_REPLY
        ):
            return False
    return True


def _condition_test(
    policy: Policy, mtype: MessageType, cond: Condition
) -> Callable[[Facts], Any]:
    return lambda f: cond.matches(fact_value(policy, mtype, f, cond.fact))


def _date_test(rule: Rule) -> Callable[[Facts], Any]:
    return lambda f: rule.in_effect(f.local_date)


def _status_test(role: str, cond: Condition) -> Callable[[Facts], Any]:
    return lambda f: cond.matches(f.numbers[role].value)


# --- moments --------------------------------------------------------------------------


def unlisted_jurisdiction(policies: Sequence[Policy]) -> str:
    """A jurisdiction code no policy lists: it stands for every state under the
    default."""
    listed = {code for p in policies for code in p.quiet_hours.jurisdictions}
    for code in _UNLISTED:
        if code not in listed:
            return code
    return next(f"ZZ-{n}" for n in itertools.count(1) if f"ZZ-{n}" not in listed)


def date_breaks(policies: Sequence[Policy]) -> tuple[dt.date, ...]:
    """Every effective date the rules of ``policies`` mention, sorted."""
    return tuple(
        sorted(
            {
                d
                for p in policies
                for r in p.rules
                for d in (r.effective_from, r.effective_until)
                if d
            }
        )
    )


def _interval_days(breaks: Sequence[dt.date], interval: int) -> list[dt.date]:
    """Up to one date per weekday inside date interval ``interval``."""
    if not breaks:
        return [_BASE_DAY + dt.timedelta(days=n) for n in range(7)]
    if interval == 0:
        return [breaks[0] - dt.timedelta(days=n) for n in range(7, 0, -1)]
    start = breaks[interval - 1]
    end = breaks[interval] if interval < len(breaks) else None
    days = [start + dt.timedelta(days=n) for n in range(7)]
    return [d for d in days if end is None or d < end]


def _moments(policies: Sequence[Policy]) -> tuple[Moment, ...]:
    listed = sorted({code for p in policies for code in p.quiet_hours.jurisdictions})
    codes = [*listed, unlisted_jurisdiction(policies), "unknown"]
    breaks = date_breaks(policies)
    out = []
    for code in codes:
        zones = [p.quiet_hours.lookup(code) for p in policies]
        caps = sorted(
            {z.marketing_cap_24h for z in zones if z.marketing_cap_24h is not None}
        )
        bounds = [0, *(c for c in caps if c > 0)]
        counts = [
            (low, bounds[i + 1] if i + 1 < len(bounds) else None)
            for i, low in enumerate(bounds)
        ]
        for interval in range(len(breaks) + 1):
            for day in _interval_days(breaks, interval):
                cuts = {0, MINUTES_PER_DAY}
                for zone in zones:
                    for start, end in zone.allowed[day.weekday()]:
                        cuts.update((start, end))
                edges = sorted(cuts)
                for start, end in itertools.pairwise(edges):
                    for low, high in counts:
                        out.append(Moment(code, interval, day, start, end, low, high))
    return tuple(out)


def describe_moments(
    moments: Sequence[Moment],
    all_moments: Sequence[Moment],
    breaks: Sequence[dt.date] = (),
) -> str:
    """A reviewer's description of a class of moments, e.g. ``US-FL: every day
    20:00-21:00``.

    Parts that the class does not restrict (every jurisdiction, every time) are left
    out.
    """
    chosen = set(moments)
    codes = sorted({m.jurisdiction for m in all_moments})
    intervals = {m.interval for m in all_moments}
    parts = []
    by_code: dict[str, list[Moment]] = defaultdict(list)
    for m in moments:
        by_code[m.jurisdiction].append(m)
    whole_code = {
        code
        for code in by_code
        if {m for m in all_moments if m.jurisdiction == code} <= chosen
    }
    if whole_code == set(codes):
        return "any recipient, any time"
    texts: dict[str, list[str]] = defaultdict(list)
    for code in sorted(by_code):
        if code in whole_code:
            texts["any time"].append(code)
            continue
        texts[_describe_cells(by_code[code], intervals, breaks)].append(code)
    for text, group in texts.items():
        parts.append(f"{', '.join(group)}: {text}")
    return "; ".join(parts)


def interval_text(interval: int, breaks: Sequence[dt.date]) -> str:
    """``before 2027-01-31``, ``from 2027-01-31`` or ``from A until B``."""
    if not breaks:
        return "any day"
    if interval == 0:
        return f"before {breaks[0].isoformat()}"
    if interval == len(breaks):
        return f"from {breaks[-1].isoformat()}"
    return (
        f"from {breaks[interval - 1].isoformat()} until {breaks[interval].isoformat()}"
    )


def _describe_cells(
    cells: Sequence[Moment], intervals: set[int], breaks: Sequence[dt.date]
) -> str:
    pieces = []
    by_interval: dict[int, list[Moment]] = defaultdict(list)
    for cell in cells:
        by_interval[cell.interval].append(cell)
    texts: dict[str, list[int]] = defaultdict(list)
    for interval, group in sorted(by_interval.items()):
        week: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
        for cell in group:
            week[cell.weekday].append((cell.start, cell.end))
        merged = tuple(tuple(_merge(day)) for day in week)
        text = describe(merged).replace("never", "-")
        text = "; ".join(part for part in text.split("; ") if not part.endswith(" -"))
        counts = {(c.sent_from, c.sent_to) for c in group}
        if len(counts) == 1:
            low, high = next(iter(counts))
            if high is not None or low:
                text += f" ({_count_text(low, high)} marketing sent in 24 h)"
        texts[text].append(interval)
    for text, found in texts.items():
        if len(found) < len(intervals):
            days = " or ".join(interval_text(i, breaks) for i in found)
            text = f"{text}, {days}"
        pieces.append(text)
    return "; ".join(pieces)


def _count_text(low: int, high: int | None) -> str:
    if high is None:
        return f"{low} or more"
    if high == low + 1:
        return str(low)
    return f"{low}-{high - 1}"


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(set(spans)):
        if out and out[-1][1] >= start:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def minute_text(start: int, end: int) -> str:
    return f"{format_minute(start)}-{format_minute(end)}"
