"""The policy as typed values: what a loaded, validated set of rules files says.

Nothing here reads files or decides messages: :mod:`dispatcher.loader` builds a
:class:`Policy`, :mod:`dispatcher.engine` compiles it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .facts import ConsentState, NumberStatus
from .quiet_hours import QuietHours

# The pseudo-role and pseudo-scope of a message type that answers an inbound message: it
# leaves from the number the customer wrote to, under that number's scope.
REPLY = "reply"
# Values of ``then.from`` besides a role name.
FROM_MESSAGE_ROLE = "message_role"
FROM_REPLY_ROLE = "reply_role"
NO_REPLY = "none"
OTHER_JURISDICTION = "other"


class Outcome(StrEnum):
    SEND = "send"
    SUPPRESS = "suppress"
    DEFER = "defer"
    REJECT = "reject"


class DeferUntil(StrEnum):
    ALLOWED_TIME = "allowed_time"
    NUMBER_REGISTERED = "number_registered"


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where something was written: a rule id and its file, line and column."""

    id: str
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.id} ({self.file}:{self.line})"


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    owner: str
    description: str
    carries: frozenset[str]
    stands_in_for: frozenset[str]


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    owner: str
    number_role: str
    description: str


@dataclass(frozen=True, slots=True)
class MessageType:
    name: str
    description: str
    product: str
    category: str
    role: str
    scope: str

    @property
    def is_reply(self) -> bool:
        return self.role == REPLY


@dataclass(frozen=True, slots=True)
class Condition:
    """``fact`` must (or, when ``negated``, must not) take one of ``values``.

    ``text`` is the condition as written, for traces and reports.
    """

    fact: str
    values: frozenset[Any]
    negated: bool
    text: str

    def matches(self, value: Any) -> bool:
        return (value in self.values) != self.negated

    def allowed(self, domain: frozenset[Any]) -> frozenset[Any]:
        """The values of ``domain`` this condition accepts."""
        return domain - self.values if self.negated else domain & self.values


@dataclass(frozen=True, slots=True)
class Rule:
    """One routing rule. ``from_role`` is set for sends only; ``until`` for deferrals only."""

    ref: SourceRef
    index: int
    description: str
    conditions: tuple[Condition, ...]
    outcome: Outcome
    reason: str
    from_role: str | None = None
    until: DeferUntil | None = None
    effective_from: dt.date | None = None
    effective_until: dt.date | None = None

    @property
    def id(self) -> str:
        return self.ref.id

    def in_effect(self, day: dt.date) -> bool:
        if self.effective_from is not None and day < self.effective_from:
            return False
        return self.effective_until is None or day < self.effective_until


@dataclass(frozen=True, slots=True)
class Invariant:
    """A decision that must never be made when ``conditions`` hold.

    ``forbid`` maps ``outcome``, ``from`` and ``from_status`` to conditions on the decision.
    """

    ref: SourceRef
    description: str
    conditions: tuple[Condition, ...]
    forbid: tuple[Condition, ...]

    @property
    def id(self) -> str:
        return self.ref.id


KEYWORD_KINDS = ("opt_out", "opt_in", "help")


@dataclass(frozen=True, slots=True)
class Keywords:
    """Keyword sets and revocation phrases.

    ``by_scope[scope][kind]`` maps each upper-case keyword to its language; it already holds
    the defaults. ``revocation_phrases`` maps a lower-case phrase to its language.
    """

    by_scope: dict[str, dict[str, dict[str, str]]]
    revocation_phrases: dict[str, str]


@dataclass(frozen=True, slots=True)
class Policy:
    """A sound policy, ready to compile. ``hash`` identifies its content (sha256 hex)."""

    source: str
    files: tuple[str, ...]
    hash: str
    products: dict[str, Product]
    categories: dict[str, Category]
    roles: dict[str, Role]
    scopes: dict[str, Scope]
    message_types: dict[str, MessageType]
    rules: tuple[Rule, ...]
    default_ref: SourceRef
    quiet_hours: QuietHours
    keywords: Keywords
    replies: dict[str, dict[str, dict[str, str]]]
    invariants: tuple[Invariant, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def scope_of_role(self, role: str) -> str:
        """The scope a STOP sent to the number of ``role`` revokes."""
        for scope in self.scopes.values():
            if scope.number_role == role:
                return scope.name
        raise KeyError(role)

    def fact_domains(self) -> dict[str, frozenset[Any]]:
        """Every fact a condition may name, with the values it can take."""
        statuses = frozenset(s.value for s in NumberStatus)
        consent = frozenset(c.value for c in ConsentState)
        domains: dict[str, frozenset[Any]] = {
            "message.type": frozenset(self.message_types),
            "message.category": frozenset(self.categories),
            "message.product": frozenset(self.products),
            "message.channel": frozenset({"sms", "mms"}),
            "business.assist": frozenset({True, False}),
            "business.accelerate": frozenset({True, False}),
            "number.message_role": statuses,
            "number.reply_role": statuses,
            "consent.message_scope": consent,
            "recipient.jurisdiction": frozenset(self.quiet_hours.jurisdictions)
            | {OTHER_JURISDICTION, "unknown"},
            "recipient.quiet_hours": frozenset({True, False}),
            "recipient.cap_reached": frozenset({True, False}),
            "reply.role": frozenset(self.roles) | {NO_REPLY},
        }
        for role in self.roles:
            domains[f"number.{role}"] = statuses
        for scope in self.scopes:
            domains[f"consent.{scope}"] = consent
        return domains
