"""What the engine answers: a typed decision that carries its own provenance."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

from .policy import DeferUntil, Outcome, SourceRef


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One rule as the engine considered it: matched, or the first condition that failed."""

    rule: SourceRef
    matched: bool
    detail: str

    def to_mapping(self) -> dict[str, Any]:
        return {
            "rule": self.rule.id,
            "file": self.rule.file,
            "line": self.rule.line,
            "matched": self.matched,
            "detail": self.detail,
        }


class Decision(NamedTuple):
    """The outcome for one message, with the rule and policy version that produced it.

    A named tuple rather than a frozen dataclass: it is built on every send, and a tuple is
    three times cheaper to build (see ``bench/engine_bench.py``).

    ``role`` is the number role a send leaves from; ``scope`` the opt-out scope that guards
    the message; ``until`` says what a deferral waits for and ``not_before_local`` the
    recipient-local time it may go (for quiet hours). ``trace`` is filled by
    :meth:`dispatcher.engine.Engine.explain` only.
    """

    outcome: Outcome
    reason: str
    rule: SourceRef
    policy_hash: str
    message_type: str | None = None
    category: str | None = None
    scope: str | None = None
    role: str | None = None
    until: DeferUntil | None = None
    not_before_local: dt.datetime | None = None
    trace: tuple[TraceStep, ...] = ()

    @property
    def sends(self) -> bool:
        return self.outcome is Outcome.SEND

    def to_mapping(self) -> dict[str, Any]:
        """The JSON form used by ``dispatcher explain --json`` and audit records."""
        out: dict[str, Any] = {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "rule": {
                "id": self.rule.id,
                "file": self.rule.file,
                "line": self.rule.line,
                "column": self.rule.column,
            },
            "policy_hash": self.policy_hash,
            "message_type": self.message_type,
            "category": self.category,
            "scope": self.scope,
            "role": self.role,
            "until": self.until.value if self.until else None,
            "not_before_local": (
                self.not_before_local.isoformat(timespec="minutes")
                if self.not_before_local
                else None
            ),
        }
        if self.trace:
            out["trace"] = [step.to_mapping() for step in self.trace]
        return out
