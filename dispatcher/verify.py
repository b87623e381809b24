"""Check a policy on every point of its fact space: engines agree, invariants hold,
rules fire.

:func:`verify` enumerates the classes of :mod:`dispatcher.points`, decides each point
with the compiled engine and (unless told otherwise) with durable_rules, and returns a
:class:`Verification` holding every disagreement, every invariant violation with a
concrete counterexample, and the rules that decide no point at all.

An invariant's ``forbid`` names fields of the decision: ``outcome``; ``from``, the role
a send leaves from, where ``message_role`` stands for the message type's own role (the
replied-to role for a reply) and ``reply_role`` for the replied-to role; and
``from_status``, the status of the number the send leaves from. A message that is not
sent leaves from no number, so a condition on ``from`` or ``from_status`` never matches
it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .decision import Decision
from .engine import Engine, fact_value
from .facts import Facts
from .points import Grid, Point
from .policy import FROM_MESSAGE_ROLE, FROM_REPLY_ROLE, Invariant, Policy, Rule

COMPILED = "compiled"
DURABLE = "durable_rules"


@dataclass(frozen=True, slots=True)
class Disagreement:
    facts: Facts
    compiled: Decision
    durable: Decision


@dataclass(frozen=True, slots=True)
class Violation:
    """An invariant broken at one point: the facts, the decision and the rule that made
    it."""

    invariant: Invariant
    facts: Facts
    decision: Decision


@dataclass(slots=True)
class Verification:
    """What :func:`verify` found. ``ok`` when nothing is wrong.

    ``violations`` keeps the first counterexample per invariant; ``violation_counts``
    how many points broke each. ``decided`` counts points per deciding rule, ``sends``
    per (message type, role sent from). ``seconds`` maps each engine (and ``enumerate``)
    to its time.
    """

    policy: Policy
    engines: tuple[str, ...]
    points: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    disagreement_count: int = 0
    violations: list[Violation] = field(default_factory=list)
    violation_counts: Counter[str] = field(default_factory=Counter)
    decided: Counter[str] = field(default_factory=Counter)
    sends: Counter[tuple[str, str]] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def idle_rules(self) -> list[Rule]:
        """Rules that decide no point of the space."""
        return [rule for rule in self.policy.rules if not self.decided[rule.id]]

    @property
    def ok(self) -> bool:
        return not (self.disagreement_count or self.violations or self.idle_rules)


def forbidden(
    policy: Policy, invariant: Invariant, facts: Facts, decision: Decision
) -> bool:
    """True when ``decision`` for ``facts`` is one ``invariant`` forbids."""
    mtype = policy.message_types.get(facts.message_type)
    if mtype is None:
        return False
    for cond in invariant.conditions:
        if not cond.matches(fact_value(policy, mtype, facts, cond.fact)):
            return False
    own_role = facts.reply_role if mtype.is_reply else mtype.role
    aliases = {FROM_MESSAGE_ROLE: own_role, FROM_REPLY_ROLE: facts.reply_role}
    for cond in invariant.forbid:
        if cond.fact == "outcome":
            if not cond.matches(decision.outcome.value):
                return False
            continue
        if not decision.sends or decision.role is None:
            return False
        if cond.fact == "from":
            values = {aliases.get(v, v) for v in cond.values}
            if (decision.role in values) == cond.negated:
                return False
        elif cond.fact == "from_status":
            status = facts.numbers[decision.role].value
            if not cond.matches(status):
                return False
    return True


def verify(
    policy: Policy, *, durable: bool = True, grid: Grid | None = None
) -> Verification:
    """Decide every point of ``policy``'s space and check it; see the module docstring.

    With ``durable`` False only the compiled engine runs. Raises MissingDependencyError
    when ``durable`` is True and durable_rules is not installed.
    """
    engine = Engine(policy)
    second: Any = None
    if durable:
        from .durable_engine import DurableEngine

        second = DurableEngine(policy, engine)
    engines = (COMPILED, DURABLE) if durable else (COMPILED,)
    result = Verification(policy, engines)
    try:
        started = time.perf_counter()
        points: list[Point] = [p for _, p in (grid or Grid([policy])).all_points()]
        result.seconds["enumerate"] = time.perf_counter() - started
        result.points = len(points)

        started = time.perf_counter()
        decisions = [engine.decide(p.facts) for p in points]
        result.seconds[COMPILED] = time.perf_counter() - started
        if second is not None:
            started = time.perf_counter()
            others = [second.decide(p.facts) for p in points]
            result.seconds[DURABLE] = time.perf_counter() - started
            for point, mine, theirs in zip(points, decisions, others, strict=True):
                if mine != theirs:
                    result.disagreement_count += 1
                    if len(result.disagreements) < 20:
                        result.disagreements.append(
                            Disagreement(point.facts, mine, theirs)
                        )
    finally:
        if second is not None:
            second.close()

    for point, decision in zip(points, decisions, strict=True):
        result.decided[decision.rule.id] += 1
        if decision.sends and decision.role:
            result.sends[point.facts.message_type, decision.role] += 1
        for invariant in policy.invariants:
            if forbidden(policy, invariant, point.facts, decision):
                if not result.violation_counts[invariant.id]:
                    result.violations.append(
                        Violation(invariant, point.facts, decision)
                    )
                result.violation_counts[invariant.id] += 1
    return result
