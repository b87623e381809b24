"""What a change of rules does: every class of facts decided differently, grouped.

:func:`diff_policies` cuts the fact space by the conditions of both versions
(:class:`~dispatcher.points.Grid`), so inside a class both versions decide alike, and
compares one representative per class. A *change* alters what happens to the message:
its outcome, the role it leaves from, its scope, what a deferral waits for or the
recipient time it waits until. A change of only the deciding rule or its reason is
reported apart, as a *rule change*.

Changes are grouped by message type, the old and new decision and the moments (where and
when) they cover; a group also names the other facts its points have in common.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .decision import Decision
from .engine import Engine
from .points import Dimension, Grid, Point, date_breaks, describe_moments
from .policy import Outcome, Policy

FORMATS = ("text", "json", "markdown")


def effect(decision: Decision) -> str:
    """What a decision does to the message, in a few words: ``send from marketing``."""
    text = decision.outcome.value
    if decision.outcome is Outcome.SEND:
        text += f" from {decision.role}"
    if decision.outcome is Outcome.DEFER and decision.until:
        text += f" until {decision.until.value.replace('_', ' ')}"
        if decision.not_before_local:
            text += f" (next allowed {decision.not_before_local:%H:%M})"
    return text


def _key(decision: Decision) -> tuple[Any, ...]:
    return (
        decision.outcome,
        decision.role,
        decision.scope,
        decision.until,
        decision.not_before_local,
    )


@dataclass(frozen=True, slots=True)
class Change:
    point: Point
    old: Decision
    new: Decision
    dims: tuple[Dimension, ...]


@dataclass(slots=True)
class Group:
    """Changes of one message type from one effect to another by the same two rules.

    ``where`` describes the moments the changes cover and ``given`` the other facts
    their points share; together they bound the group (the JSON form lists every point).
    """

    slice_text: str
    old: str
    new: str
    rules: tuple[str, str]
    changes: list[Change] = field(default_factory=list)
    where: str = ""
    given: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        given = f" [{', '.join(self.given)}]" if self.given else ""
        return f"{self.slice_text} -- {self.where}{given}: {self.old} -> {self.new}"


@dataclass(slots=True)
class PolicyDiff:
    old: Policy
    new: Policy
    points: int = 0
    groups: list[Group] = field(default_factory=list)
    rule_changes: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def changed_points(self) -> int:
        return sum(len(g.changes) for g in self.groups)

    def to_mapping(self) -> dict[str, Any]:
        return {
            "old": {"source": self.old.source, "hash": self.old.hash},
            "new": {"source": self.new.source, "hash": self.new.hash},
            "points": self.points,
            "changed_points": self.changed_points,
            "groups": [
                {
                    "summary": g.summary,
                    "message": g.slice_text,
                    "where": g.where,
                    "given": list(g.given),
                    "old": g.old,
                    "new": g.new,
                    "old_rule": g.rules[0],
                    "new_rule": g.rules[1],
                    "count": len(g.changes),
                    "points": [
                        {
                            "facts": c.point.facts.to_mapping(),
                            "old": c.old.to_mapping(),
                            "new": c.new.to_mapping(),
                        }
                        for c in g.changes
                    ],
                }
                for g in self.groups
            ],
            "rule_changes": [
                {"old_rule": old, "new_rule": new, "count": count}
                for (old, new), count in self.rule_changes.items()
            ],
        }


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    """Every class of facts decided differently by ``old`` and ``new``.

    Raises InputError when the two policies declare different roles or scopes.
    """
    grid = Grid([old, new], windows=True)
    engines = Engine(old), Engine(new)
    result = PolicyDiff(old, new)
    groups: dict[tuple[str, ...], Group] = {}
    rule_changes: dict[tuple[str, str], int] = defaultdict(int)
    for dims, point in grid.all_points():
        result.points += 1
        before, after = (engine.decide(point.facts) for engine in engines)
        if _key(before) == _key(after):
            if before.rule.id != after.rule.id or before.reason != after.reason:
                rule_changes[before.rule.id, after.rule.id] += 1
            continue
        name = point.slice.message_type
        key = (name, effect(before), effect(after), before.rule.id, after.rule.id)
        group = groups.get(key)
        if group is None:
            group = Group(name, key[1], key[2], (key[3], key[4]))
            groups[key] = group
        group.changes.append(Change(point, before, after, dims))
    breaks = date_breaks([old, new])
    for group in groups.values():
        moments = [
            m for c in group.changes for m in c.dims[-1].classes[c.point.choice[-1]]
        ]
        group.where = describe_moments(moments, grid.moments, breaks)
        group.given = _common(grid, group.changes)
    result.groups = list(groups.values())
    result.rule_changes = dict(rule_changes)
    return result


def _common(grid: Grid, changes: Sequence[Change]) -> tuple[str, ...]:
    """The facts besides the moment that bound a group:
    ``consent.marketing=opted_in``."""
    out = []
    replies = {c.point.slice.reply_role for c in changes}
    if len(replies) < len(grid.roles) + 1:
        shown = sorted(r or "none" for r in replies)
        out.append(f"reply.role={','.join(shown)}")
    names = [d.name for d in changes[0].dims[:-1]]
    for i, name in enumerate(names):
        seen: set[Any] = set()
        domain: set[Any] = set()
        for change in changes:
            dim = change.dims[i]
            seen.update(dim.classes[change.point.choice[i]])
            domain.update(v for cls in dim.classes for v in cls)
        if seen != domain:
            out.append(f"{name}={','.join(sorted(_show(v) for v in seen))}")
    return tuple(out)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(diff: PolicyDiff, fmt: str) -> str:
    """The diff as ``text``, ``json`` or ``markdown`` (for a pull request comment)."""
    if fmt == "json":
        return json.dumps(diff.to_mapping(), indent=2)
    old, new = diff.old, diff.new
    lines: list[str] = []
    markdown = fmt == "markdown"
    title = (
        f"{old.source} ({old.short_hash}) -> {new.source} ({new.short_hash}): "
        f"{diff.changed_points} of {diff.points} points change "
        f"in {len(diff.groups)} groups"
    )
    lines.append(f"### Policy diff\n\n{title}\n" if markdown else title)
    if markdown and diff.groups:
        lines += [
            "| message | where and when | given | before | after | points |",
            "| --- | --- | --- | --- | --- | ---: |",
        ]
    for group in diff.groups:
        if markdown:
            given = ", ".join(f"`{g}`" for g in group.given) or "-"
            lines.append(
                f"| {group.slice_text} | {group.where} | {given} | {group.old} "
                f"(`{group.rules[0]}`) | {group.new} (`{group.rules[1]}`) | "
                f"{len(group.changes)} |"
            )
        else:
            lines.append(f"  {group.summary}  ({len(group.changes)} points)")
            lines.append(f"      rules: {group.rules[0]} -> {group.rules[1]}")
    if diff.rule_changes:
        total = sum(diff.rule_changes.values())
        lines.append(
            f"\n{total} more points keep their effect but change rule or reason:"
            if not markdown
            else f"\n{total} more points keep their effect but change rule or reason:\n"
        )
        for (before, after), count in diff.rule_changes.items():
            bullet = "-" if markdown else " "
            lines.append(f"{bullet} {before} -> {after}: {count} points")
    return "\n".join(lines)
