"""The policy in force, and loading a new version without a restart.

A new version is read and checked completely first (:func:`dispatcher.loader.load_policy`
lists every problem), compiled, and only then swapped in, by replacing one reference:
a request or a worker round that already took the old version finishes with it, the
next one takes the new one. A version that fails is refused with its problems logged,
and the running one stays in force.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import structlog

from ..engine import Engine
from ..errors import RulesError
from ..keywords import ReplyClassifier
from ..loader import load_policy
from ..policy import Policy

log = structlog.get_logger("dispatcher.service.reload")


@dataclass(frozen=True, slots=True)
class Loaded:
    """One policy version with what is built from it: its engine and reply classifier."""

    engine: Engine
    classifier: ReplyClassifier

    @property
    def policy(self) -> Policy:
        return self.engine.policy

    @classmethod
    def build(cls, policy: Policy) -> Loaded:
        return cls(Engine(policy), ReplyClassifier(policy))


@dataclass(frozen=True, slots=True)
class Reload:
    """The outcome of a reload: ``applied`` false when the new version was refused."""

    applied: bool
    policy_hash: str
    problems: tuple[str, ...] = ()


class PolicyHolder:
    """Holds the policy version in force; :meth:`reload` replaces it atomically.

    Raises :class:`~dispatcher.errors.RulesError` at construction when ``rules`` is not
    a sound policy (a service does not start without one).
    """

    def __init__(self, rules: Path | str, loaded: Loaded | None = None) -> None:
        self.rules = Path(rules)
        self._loaded = loaded or Loaded.build(load_policy(self.rules))
        self._lock = threading.Lock()

    def current(self) -> Loaded:
        return self._loaded

    def engine(self) -> Engine:
        """The engine in force (workers call this once per round)."""
        return self._loaded.engine

    def reload(self) -> Reload:
        """Load the rules again; swap them in only if they are sound."""
        with self._lock:
            running = self._loaded.policy.hash
            try:
                loaded = Loaded.build(load_policy(self.rules))
            except RulesError as error:
                problems = tuple(str(p) for p in error.problems)
                log.error(
                    "policy_reload_refused",
                    rules=str(self.rules),
                    problems=list(problems),
                    running=running[:12],
                )
                return Reload(False, running, problems)
            self._loaded = loaded
        log.info(
            "policy_reloaded",
            rules=str(self.rules),
            previous=running[:12],
            policy=loaded.policy.short_hash,
            changed=loaded.policy.hash != running,
        )
        return Reload(True, loaded.policy.hash)
