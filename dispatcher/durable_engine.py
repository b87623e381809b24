"""The policy compiled into a durable_rules ruleset: a second engine, built apart.

:class:`DurableEngine` answers the same question as :class:`~dispatcher.engine.Engine`
with a different evaluator, so that ``dispatcher verify`` can compare the two on every
point of a policy's fact space. It is the only module that imports ``durable``.

durable_rules 2.0.28 has traps; each is closed here rather than documented for callers:

* A condition on a missing field never matches, so ``{"$neq": ...}`` on a missing fact
  would fail open. Every event carries every fact the policy can name, already derived
  (message category, the status of the message's own number, quiet hours, ...), as a
  flat string field, plus the policy's hash: every rule requires that hash, so an event
  missing it matches nothing and is reported as a bug instead of falling through to a
  default.
* ``True == 1`` and ``1 == "1"`` inside the engine: booleans travel as
  ``"true"``/``"false"`` and dates as their ordinal number, so no two values of a fact
  compare equal by accident.
* ``post_batch`` returns before its actions run, and the host's timer threads can run
  actions on another thread: events are posted one at a time with :meth:`Host.post`, the
  host runs without its timer threads, and each decision checks that exactly one action
  ran, on the calling thread.
* At most 1,024 live states per ruleset: every event goes to the one default state, and
  an action can never leave an exception behind in it (the state is dropped if it does).
* A registered ruleset cannot be replaced: each engine registers a ruleset under a name
  of its own and deletes it on :meth:`DurableEngine.close`.
* 512 rules in one ruleset fail and 513 or more hang while registering: a policy with
  more than :data:`MAX_RULES` rules is refused with a clear error.

First match is expressed with rule priorities (a lower number runs first, and the
matched event is consumed by the first action). A last, catch-all rule stands for "no
rule matched".
"""

from __future__ import annotations

import importlib
import itertools
import sys
import threading
from types import ModuleType, TracebackType
from typing import Any

from .decision import Decision
from .engine import Engine, fact_value
from .errors import InputError, InternalError, MissingDependencyError
from .facts import Facts
from .policy import Condition, DeferUntil, Policy, Rule

# durable_rules 2.0.28 registers at most 511 rules in one ruleset: 512 fail when an event
# is posted and 513 or more hang while registering. One slot is the catch-all.
MAX_RULES = 510
_GUARD = "policy"
_DATE = "local_date"
_names = itertools.count(1)

INSTALL_HINT = (
    "durable_rules is not installed: install the 'durable' extra "
    "(pip install -e '.[durable]'); it builds from source with gcc on CPython 3.11 and "
    "3.12 only"
)


def _durable() -> ModuleType:
    """The ``durable.engine`` module; raises MissingDependencyError when it cannot
    load."""
    if sys.version_info >= (3, 13):
        raise MissingDependencyError(
            f"{INSTALL_HINT} (this is Python {sys.version_info.major}."
            f"{sys.version_info.minor})"
        )
    try:
        return importlib.import_module("durable.engine")
    except ImportError as exc:
        raise MissingDependencyError(f"{INSTALL_HINT} ({exc})") from exc


def available() -> bool:
    """True when durable_rules can be imported here."""
    try:
        _durable()
    except MissingDependencyError:
        return False
    return True


def field_name(fact: str) -> str:
    """The event field of a condition fact: flat, because a dot means a nested path."""
    return fact.replace(".", "__")


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        raise InternalError(f"fact value {value!r} is neither a string nor a boolean")
    return value


def _condition(cond: Condition) -> list[dict[str, Any]]:
    field = field_name(cond.fact)
    values = sorted(_encode(v) for v in cond.values)
    if cond.negated:
        return [{"$neq": {field: v}} for v in values]
    if len(values) == 1:
        return [{field: values[0]}]
    return [{"$or": [{field: v} for v in values]}]


def _rule_expression(policy: Policy, rule: Rule | None) -> dict[str, Any]:
    terms: list[dict[str, Any]] = [{_GUARD: policy.hash}]
    if rule is not None:
        if rule.effective_from is not None:
            terms.append({"$gte": {_DATE: rule.effective_from.toordinal()}})
        if rule.effective_until is not None:
            terms.append({"$lt": {_DATE: rule.effective_until.toordinal()}})
        for cond in rule.conditions:
            terms.extend(_condition(cond))
    return terms[0] if len(terms) == 1 else {"$and": terms}


def rule_name(index: int) -> str:
    return f"r{index:05d}"


def ruleset_definition(policy: Policy) -> dict[str, dict[str, Any]]:
    """The policy's rules in durable_rules' dict form, without actions.

    Rule ``r00000`` is the policy's first rule, with priority 1; the last entry is the
    catch-all ``no_rule``. Raises InputError when the policy has more rules than
    durable_rules can order.
    """
    if len(policy.rules) > MAX_RULES:
        raise InputError(
            f"{policy.source}: {len(policy.rules)} rules; durable_rules orders at most "
            f"{MAX_RULES}"
        )
    rules: dict[str, dict[str, Any]] = {
        rule_name(rule.index): {
            "pri": rule.index + 1,
            "all": [{"m": _rule_expression(policy, rule)}],
        }
        for rule in policy.rules
    }
    rules["no_rule"] = {
        "pri": len(policy.rules) + 1,
        "all": [{"m": _rule_expression(policy, None)}],
    }
    return rules


class DurableEngine:
    """A policy running on durable_rules. ``decide`` equals :meth:`Engine.decide`.

    Decisions are serialised by a lock: durable_rules is driven from one thread at a
    time. Use as a context manager, or call :meth:`close`, to unregister the ruleset.

    Raises MissingDependencyError when durable_rules is not installed.
    """

    def __init__(self, policy: Policy, engine: Engine | None = None) -> None:
        durable = _durable()
        self.policy = policy
        self._engine = engine or Engine(policy)
        self._facts = sorted(policy.fact_domains())
        self._fired: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._not_handled: type[BaseException] = durable.MessageNotHandledException
        self.name = f"policy_{policy.short_hash}_{next(_names)}"

        definition = ruleset_definition(policy)
        for name, spec in definition.items():
            index = len(policy.rules) if name == "no_rule" else int(name[1:])
            spec["run"] = self._action(index)
        # The host's _run starts two timer threads that dispatch actions in the
        # background; without them every action runs inside post(), on our thread.
        host_class = type(
            "_ForegroundHost", (durable.Host,), {"_run": lambda self: None}
        )
        self._host: Any = host_class()
        self._host.register_rulesets({self.name: definition})
        self._closed = False

    def _action(self, index: int) -> Any:
        def record(context: Any) -> None:
            self._fired.append((index, threading.get_ident()))

        return record

    def event(self, facts: Facts) -> dict[str, Any]:
        """The flat event posted for ``facts``: every condition fact, derived and
        encoded."""
        mtype = self.policy.message_types[facts.message_type]
        event: dict[str, Any] = {
            field_name(fact): _encode(fact_value(self.policy, mtype, facts, fact))
            for fact in self._facts
        }
        event[_GUARD] = self.policy.hash
        event[_DATE] = facts.local_date.toordinal()
        return event

    def decide(self, facts: Facts) -> Decision:
        """The decision for ``facts``; bad facts are rejected before durable_rules sees
        them."""
        engine = self._engine
        problem = engine.fact_problem(facts)
        if problem:
            return engine.invalid(facts, problem)
        index = self._matched_index(self.event(facts))
        mtype = self.policy.message_types[facts.message_type]
        if index == len(self.policy.rules):
            return engine.default_decision(mtype, facts.reply_role)
        rule = self.policy.rules[index]
        decision = engine.make_decision(rule, mtype, facts.reply_role)
        if rule.until is DeferUntil.ALLOWED_TIME:
            decision = engine.with_window(facts, decision)
        return decision

    def _matched_index(self, event: dict[str, Any]) -> int:
        if self._closed:
            raise InternalError(f"durable engine {self.name} is closed")
        with self._lock:
            self._fired.clear()
            try:
                state = self._host.post(self.name, event)
            except self._not_handled as exc:
                raise InternalError(
                    f"durable_rules matched no rule, not even the catch-all: {exc}"
                ) from exc
            fired = list(self._fired)
            if "exception" in state:
                self._host.delete_state(self.name, None)
                raise InternalError(
                    f"a durable_rules action failed: {state['exception']}"
                )
        caller = threading.get_ident()
        if len(fired) != 1 or fired[0][1] != caller:
            raise InternalError(
                f"durable_rules ran {len(fired)} actions for one event, expected one "
                "on "
                "the calling thread"
            )
        return fired[0][0]

    def close(self) -> None:
        """Unregister the ruleset and free its memory; the engine cannot decide
        afterwards."""
        if self._closed:
            return
        self._closed = True
        native = importlib.import_module("durable_rules_engine")
        # Host has no public way to drop a ruleset; the handle is the extension's own.
        native.delete_ruleset(self._host.get_ruleset(self.name)._handle)

    def __enter__(self) -> DurableEngine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
