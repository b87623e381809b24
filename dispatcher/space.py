"""The finite space of facts a policy can tell apart, and which rules can ever decide.

Once the message type and the replied-to role are fixed (a *slice*), every condition of a
rule restricts one independent dimension to a set of values: the rule matches a *box*.
A rule can never fire when, in every slice, its box is covered by the boxes of the rules
above it. Box difference over finite sets keeps this exact, with no sampling.

Dimensions inside a slice: the channel, the two enrolments, the status of each role's number,
the consent state of each scope, the recipient (jurisdiction, in quiet hours, cap reached)
and the date interval between the effective dates the rules mention.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .facts import ConsentState, NumberStatus
from .policy import (
    NO_REPLY,
    OTHER_JURISDICTION,
    Condition,
    MessageType,
    Policy,
    Rule,
)

Box = tuple[frozenset[Any], ...]
_STATUSES = frozenset(s.value for s in NumberStatus)
_CONSENT = frozenset(c.value for c in ConsentState)
_TYPE_FACTS = {
    "message.type": "name",
    "message.category": "category",
    "message.product": "product",
}
_RECIPIENT_FACTS = (
    "recipient.jurisdiction",
    "recipient.quiet_hours",
    "recipient.cap_reached",
)


def matching_types(
    conditions: Iterable[Condition], types: dict[str, MessageType]
) -> list[MessageType]:
    """The message types a list of conditions can match, judging only message.type etc."""
    conditions = [c for c in conditions if c.fact in _TYPE_FACTS]
    return [
        mtype
        for mtype in types.values()
        if all(c.matches(getattr(mtype, _TYPE_FACTS[c.fact])) for c in conditions)
    ]


@dataclass(frozen=True, slots=True)
class Slice:
    """One message type, with the role of the number a reply answers (or ``none``)."""

    mtype: MessageType
    reply_role: str


@dataclass(frozen=True, slots=True)
class Space:
    """The dimensions of a policy's fact space and the value each can take."""

    names: tuple[str, ...]
    domains: tuple[frozenset[Any], ...]
    slices: tuple[Slice, ...]
    date_breaks: tuple[dt.date, ...]

    def full_box(self) -> Box:
        return self.domains

    def index(self, name: str) -> int:
        return self.names.index(name)

    def date_of(self, interval: int) -> dt.date:
        """A representative recipient-local date inside date interval ``interval``."""
        if not self.date_breaks:
            return dt.date(2026, 1, 1)
        if interval == 0:
            return self.date_breaks[0] - dt.timedelta(days=1)
        return self.date_breaks[interval - 1]


def build_space(policy: Policy) -> Space:
    """The dimensions of ``policy``'s fact space."""
    quiet = policy.quiet_hours
    recipients: set[tuple[str, bool, bool]] = set()
    for code in [*quiet.jurisdictions, OTHER_JURISDICTION, "unknown"]:
        jurisdiction = quiet.lookup("" if code == OTHER_JURISDICTION else code)
        quiet_values = set()
        if jurisdiction.has_quiet_minutes():
            quiet_values.add(True)
        if jurisdiction.has_allowed_minutes():
            quiet_values.add(False)
        caps = {False, True} if jurisdiction.marketing_cap_24h is not None else {False}
        recipients.update((code, q, c) for q in quiet_values for c in caps)

    breaks = sorted(
        {d for r in policy.rules for d in (r.effective_from, r.effective_until) if d}
    )
    names = [
        "message.channel",
        "business.assist",
        "business.accelerate",
        *(f"number.{role}" for role in policy.roles),
        *(f"consent.{scope}" for scope in policy.scopes),
        "recipient",
        "date",
    ]
    domains = [
        frozenset({"sms", "mms"}),
        frozenset({True, False}),
        frozenset({True, False}),
        *(_STATUSES for _ in policy.roles),
        *(_CONSENT for _ in policy.scopes),
        frozenset(recipients),
        frozenset(range(len(breaks) + 1)),
    ]
    slices = tuple(
        Slice(mtype, reply)
        for mtype in policy.message_types.values()
        for reply in [*policy.roles, NO_REPLY]
    )
    return Space(tuple(names), tuple(domains), slices, tuple(breaks))


def condition_box(
    space: Space, policy: Policy, piece: Slice, conditions: Iterable[Condition]
) -> Box | None:
    """The box ``conditions`` match inside ``piece``, or None if they match nothing there."""
    box = list(space.full_box())
    for cond in conditions:
        target = _dimension(policy, piece, cond.fact)
        if isinstance(target, bool):
            if not target:
                return None
            continue
        if target is None:
            if not cond.matches(_constant(piece, cond.fact)):
                return None
            continue
        i = space.index(target)
        if target == "recipient":
            part = _RECIPIENT_FACTS.index(cond.fact)
            box[i] = frozenset(v for v in box[i] if cond.matches(v[part]))
        else:
            box[i] = cond.allowed(box[i])
        if not box[i]:
            return None
    return tuple(box)


def rule_box(space: Space, policy: Policy, piece: Slice, rule: Rule) -> Box | None:
    box = condition_box(space, policy, piece, rule.conditions)
    if box is None:
        return None
    i = space.index("date")
    dates = frozenset(d for d in box[i] if rule.in_effect(space.date_of(d)))
    if not dates:
        return None
    return (*box[:i], dates, *box[i + 1 :])


def _dimension(policy: Policy, piece: Slice, fact: str) -> str | bool | None:
    """Which dimension a fact reads in this slice; None for a slice constant."""
    mtype, reply = piece.mtype, piece.reply_role
    if fact in _TYPE_FACTS or fact == "reply.role":
        return None
    if fact.startswith("recipient."):
        return "recipient"
    if fact == "number.message_role":
        role = reply if mtype.is_reply else mtype.role
        return None if role == NO_REPLY else f"number.{role}"
    if fact == "number.reply_role":
        return None if reply == NO_REPLY else f"number.{reply}"
    if fact == "consent.message_scope":
        if not mtype.is_reply:
            return f"consent.{mtype.scope}"
        return None if reply == NO_REPLY else f"consent.{policy.scope_of_role(reply)}"
    return fact


def _constant(piece: Slice, fact: str) -> Any:
    mtype = piece.mtype
    if fact in _TYPE_FACTS:
        return getattr(mtype, _TYPE_FACTS[fact])
    if fact == "reply.role":
        return piece.reply_role
    if fact in ("number.message_role", "number.reply_role"):
        return NumberStatus.ABSENT.value
    if fact == "consent.message_scope":
        return ConsentState.NONE.value
    raise KeyError(fact)  # pragma: no cover - every constant fact is listed above


def subtract(a: Box, b: Box) -> Iterator[Box]:
    """Disjoint boxes covering exactly the points of ``a`` that are not in ``b``."""
    if any(not (x & y) for x, y in zip(a, b, strict=True)):
        yield a
        return
    rest = list(a)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        outside = x - y
        if outside:
            yield (*rest[:i], outside, *rest[i + 1 :])
        rest[i] = x & y


def unreachable_rules(policy: Policy) -> list[tuple[Rule, str]]:
    """Rules that decide no possible set of facts, each with the reason."""
    space = build_space(policy)
    boxes = {
        piece: [rule_box(space, policy, piece, rule) for rule in policy.rules]
        for piece in space.slices
    }
    found = []
    for rule in policy.rules:
        applies = False
        blockers: set[str] = set()
        live = False
        for piece in space.slices:
            own = boxes[piece][rule.index]
            if own is None:
                continue
            applies = True
            remaining = [own]
            for earlier in policy.rules[: rule.index]:
                other = boxes[piece][earlier.index]
                if other is None:
                    continue
                after = [part for box in remaining for part in subtract(box, other)]
                if after != remaining:
                    blockers.add(earlier.id)
                remaining = after
                if not remaining:
                    break
            if remaining:
                live = True
                break
        if live:
            continue
        if not applies:
            found.append((rule, "its conditions match no possible message"))
        else:
            names = ", ".join(r.id for r in policy.rules if r.id in blockers)
            found.append(
                (rule, f"the rules above it ({names}) decide every case it matches")
            )
    return found
