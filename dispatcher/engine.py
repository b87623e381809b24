"""Decide messages: the policy compiled into Python functions, and a tracing interpreter.

:class:`Engine` compiles a policy once. For each message type it generates one function
holding only the rules that can match that type, with conditions on the type already
settled, and returns decisions built ahead of time. Within a function:

- the statuses the rules test are read by position from ``Facts.values`` when the facts
  carry the policy's shape (the usual case; others are put in that order first);
- enumerated facts are tested by identity, and each rule's tests run cheapest first;
- a rule that an earlier rule shadows (its tests include all of the earlier one's) is
  left out, and consecutive rules that begin with the same test share one ``if``;
- a deferral until the end of quiet hours is built once per local date and end time and
  then reused, up to a bounded number per rule.

:meth:`Engine.explain` walks the same rules one condition at a time and records why each
rule did or did not match; the two must always agree, which the test suite checks on
generated facts and on generated variants of the policy.

Fail closed: facts that name an unknown message type or role, or lack the status of a number
or the consent of a scope, yield a rejection by the ``invalid-facts`` pseudo-rule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from .decision import Decision, TraceStep
from .facts import Channel, ConsentState, Facts, NumberStatus, shape_of
from .policy import (
    FROM_MESSAGE_ROLE,
    FROM_REPLY_ROLE,
    NO_REPLY,
    OTHER_JURISDICTION,
    Condition,
    DeferUntil,
    MessageType,
    Outcome,
    Policy,
    Rule,
    SourceRef,
)

Decide = Callable[[Facts], Decision]
_NO_CAP = sys.maxsize
_MEMO_SIZE = 1024
_ENUM_FACTS = {
    "message.channel": Channel,
    "number.": NumberStatus,
    "consent.": ConsentState,
}
# Minutes until the recipient's next allowed minute (0: now, -1: never), from the
# jurisdiction's table; and the quiet-hours test, which keeps them in ``w``.
_WAIT = (
    "WAITS.get(f.jurisdiction, DEFAULT_WAITS)[f.local_date.weekday() * 1440 + f.minute]"
)
_QUIET = f"((w := {_WAIT}) != 0)"
_TYPE_FACTS = {
    "message.type": "name",
    "message.category": "category",
    "message.product": "product",
}


class Engine:
    """A compiled policy. ``decide`` is the fast path; ``explain`` adds a trace."""

    decide: Decide
    """The decision for ``facts``. Never raises for bad facts: it rejects them.

    The generated function itself, not a method around it: one call less on the
    hot path (about a tenth of a decision's cost).
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.shape = shape_of(policy.roles, policy.scopes, keep=True)
        self._invalid_ref = SourceRef("invalid-facts", policy.source, 0, 0)
        self.decide = _Compiler(policy, self).compile()

    def explain(self, facts: Facts) -> Decision:
        """The same decision as :meth:`decide`, with a step for every rule considered."""
        problem = self.fact_problem(facts)
        if problem:
            return self.invalid(facts, problem)
        mtype = self.policy.message_types[facts.message_type]
        steps: list[TraceStep] = []
        for rule in self.policy.rules:
            failed = self._first_failure(rule, mtype, facts)
            steps.append(
                TraceStep(rule.ref, failed is None, failed or "all conditions hold")
            )
            if failed is None:
                decision = self.make_decision(rule, mtype, facts.reply_role)
                if rule.until is DeferUntil.ALLOWED_TIME:
                    decision = self.with_window(facts, decision)
                return decision._replace(trace=tuple(steps))
        steps.append(TraceStep(self.policy.default_ref, True, "no rule matched"))
        default = self.default_decision(mtype, facts.reply_role)
        return default._replace(trace=tuple(steps))

    # --- shared by the compiled code and the interpreter ---------------------------------

    def fact_problem(self, facts: Facts) -> str | None:
        policy = self.policy
        if facts.message_type not in policy.message_types:
            return f"message.type: unknown message type {facts.message_type!r}"
        if facts.numbers.keys() != policy.roles.keys():
            missing = sorted(set(policy.roles) - set(facts.numbers))
            extra = sorted(set(facts.numbers) - set(policy.roles))
            return f"numbers: missing {missing}, unknown {extra}"
        if facts.consent.keys() != policy.scopes.keys():
            missing = sorted(set(policy.scopes) - set(facts.consent))
            extra = sorted(set(facts.consent) - set(policy.scopes))
            return f"consent: missing {missing}, unknown {extra}"
        if facts.reply_role is not None and facts.reply_role not in policy.roles:
            return f"reply.role: unknown role {facts.reply_role!r}"
        return None

    def reshaped(self, facts: Facts) -> Decision:
        """The compiled decision for facts whose maps are not in the policy's shape."""
        problem = self.fact_problem(facts)
        if problem:
            return self.invalid(facts, problem)
        ordered = dataclasses.replace(
            facts,
            numbers={role: facts.numbers[role] for role in self.policy.roles},
            consent={scope: facts.consent[scope] for scope in self.policy.scopes},
        )
        # In the policy's order the facts carry its shape (shape_of keeps a policy's),
        # so this decides them on the fast path.
        return self.decide(ordered)

    def invalid(self, facts: Facts, problem: str | None = None) -> Decision:
        problem = problem or self.fact_problem(facts) or "malformed facts"
        return Decision(
            Outcome.REJECT,
            f"Invalid facts, nothing is sent: {problem}.",
            self._invalid_ref,
            self.policy.hash,
            message_type=facts.message_type
            if facts.message_type in self.policy.message_types
            else None,
        )

    def _scope(self, mtype: MessageType, reply_role: str | None) -> str | None:
        if not mtype.is_reply:
            return mtype.scope
        return self.policy.scope_of_role(reply_role) if reply_role else None

    def make_decision(
        self, rule: Rule, mtype: MessageType, reply_role: str | None
    ) -> Decision:
        role = None
        if rule.outcome is Outcome.SEND:
            role = _send_role(rule.from_role, mtype, reply_role)
            if role is None:
                return Decision(
                    Outcome.REJECT,
                    "The message answers no inbound message, so there is no number to "
                    "reply from.",
                    rule.ref,
                    self.policy.hash,
                    mtype.name,
                    mtype.category,
                    self._scope(mtype, reply_role),
                )
        return Decision(
            rule.outcome,
            rule.reason or f"Sent from the {role} number.",
            rule.ref,
            self.policy.hash,
            mtype.name,
            mtype.category,
            self._scope(mtype, reply_role),
            role,
            rule.until,
        )

    def default_decision(self, mtype: MessageType, reply_role: str | None) -> Decision:
        return Decision(
            Outcome.SUPPRESS,
            "No rule allows this message.",
            self.policy.default_ref,
            self.policy.hash,
            mtype.name,
            mtype.category,
            self._scope(mtype, reply_role),
        )

    def with_window(self, facts: Facts, decision: Decision) -> Decision:
        """``decision`` with the recipient-local time the quiet hours end."""
        jurisdiction = self.policy.quiet_hours.lookup(facts.jurisdiction)
        local = dt.datetime.combine(
            facts.local_date, dt.time(*divmod(facts.minute, 60))
        )
        return decision._replace(not_before_local=jurisdiction.next_allowed(local))

    # --- the interpreter --------------------------------------------------------------

    def _first_failure(
        self, rule: Rule, mtype: MessageType, facts: Facts
    ) -> str | None:
        if not rule.in_effect(facts.local_date):
            start = rule.effective_from.isoformat() if rule.effective_from else "-"
            end = rule.effective_until.isoformat() if rule.effective_until else "-"
            return f"not in effect on {facts.local_date.isoformat()} (from {start} until {end})"
        for cond in rule.conditions:
            value = fact_value(self.policy, mtype, facts, cond.fact)
            if not cond.matches(value):
                shown = str(value).lower() if isinstance(value, bool) else value
                return f"{cond.text}: was {shown}"
        return None


def fact_value(policy: Policy, mtype: MessageType, facts: Facts, fact: str) -> Any:
    """The value of a condition fact (including the derived ones) for ``facts``."""
    rr = facts.reply_role
    if fact in _TYPE_FACTS:
        return getattr(mtype, _TYPE_FACTS[fact])
    if fact == "message.channel":
        return facts.channel.value
    if fact.startswith("business."):
        return getattr(facts, fact.split(".")[1])
    if fact == "number.message_role":
        role = rr if mtype.is_reply else mtype.role
        return facts.numbers[role].value if role else NumberStatus.ABSENT.value
    if fact == "number.reply_role":
        return facts.numbers[rr].value if rr else NumberStatus.ABSENT.value
    if fact.startswith("number."):
        return facts.numbers[fact.split(".", 1)[1]].value
    if fact == "consent.message_scope":
        scope = policy.scope_of_role(rr) if mtype.is_reply and rr else None
        scope = mtype.scope if not mtype.is_reply else scope
        return facts.consent[scope].value if scope else ConsentState.NONE.value
    if fact.startswith("consent."):
        return facts.consent[fact.split(".", 1)[1]].value
    quiet = policy.quiet_hours
    if fact == "recipient.jurisdiction":
        code = facts.jurisdiction
        return (
            code
            if code in quiet.jurisdictions or code == "unknown"
            else OTHER_JURISDICTION
        )
    if fact == "recipient.quiet_hours":
        return quiet.lookup(facts.jurisdiction).is_quiet(
            facts.local_date.weekday(), facts.minute
        )
    if fact == "recipient.cap_reached":
        return quiet.lookup(facts.jurisdiction).cap_reached(facts.marketing_sent_24h)
    if fact == "reply.role":
        return rr or NO_REPLY
    raise KeyError(fact)


def _send_role(
    from_role: str | None, mtype: MessageType, reply_role: str | None
) -> str | None:
    if from_role == FROM_REPLY_ROLE or (
        from_role == FROM_MESSAGE_ROLE and mtype.is_reply
    ):
        return reply_role
    if from_role == FROM_MESSAGE_ROLE:
        return mtype.role
    return from_role


class _Compiler:
    """Generates the Python source of the decision functions, one per message type."""

    def __init__(self, policy: Policy, engine: Engine) -> None:
        self.policy = policy
        self.engine = engine
        self.names: dict[str, Any] = {}
        self.lines: list[str] = []
        self.source = ""
        self.domains = policy.fact_domains()

    def const(self, value: Any, prefix: str = "K") -> str:
        name = f"{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def compile(self) -> Decide:
        policy, engine = self.policy, self.engine
        quiet = policy.quiet_hours
        caps = {
            code: j.marketing_cap_24h or _NO_CAP
            for code, j in quiet.jurisdictions.items()
        }
        caps["unknown"] = quiet.unknown.marketing_cap_24h or _NO_CAP
        jclass = {code: code for code in quiet.jurisdictions} | {"unknown": "unknown"}
        waits = {code: j.wait_table() for code, j in quiet.jurisdictions.items()}
        waits["unknown"] = quiet.unknown.wait_table()
        self.names.update(
            ROLE_KEYS=policy.roles.keys(),
            SHAPE=engine.shape,
            reshaped=engine.reshaped,
            WAITS=waits,
            DEFAULT_WAITS=quiet.default.wait_table(),
            MINUTES=[dt.timedelta(minutes=m) for m in range(8 * 24 * 60)],
            MIDNIGHT=dt.time(0, 0),
            combine=dt.datetime.combine,
            new_decision=tuple.__new__,
            Decision=Decision,
            AT=Decision._fields.index("not_before_local"),
            CAPS=caps,
            DEFAULT_CAP=quiet.default.marketing_cap_24h or _NO_CAP,
            JCLASS=jclass,
            # Where the replied-to role's status, and its scope's consent, sit in
            # ``Facts.values``.
            AT_ROLE={role: index for index, role in enumerate(policy.roles)},
            AT_SCOPE_OF={
                role: len(policy.roles) + list(policy.scopes).index(scope)
                for role in policy.roles
                for scope in [policy.scope_of_role(role)]
            },
            invalid=engine.invalid,
            MEMO_SIZE=_MEMO_SIZE,
        )
        # A deferral until the allowed time needs the recipient-local moment the quiet
        # hours end, from wait(). It depends only on the rule, the local date and that
        # moment, so each rule keeps the ones it has built (a named tuple costs far more
        # to build than to find), and drops them all when it holds MEMO_SIZE.
        self.lines += [
            "def wait(f):",
            f"    return {_WAIT}",
            "",
            "def deferred(f, minutes, d, memo):",
            "    if minutes < 0:",
            "        return d",
            "    key = (f.local_date, f.minute + minutes)",
            "    found = memo.get(key)",
            "    if found is None:",
            "        if len(memo) >= MEMO_SIZE:",
            "            memo.clear()",
            "        at = combine(f.local_date, MIDNIGHT) + MINUTES[key[1]]",
            "        found = memo[key] = new_decision(Decision, (*d[:AT], at, *d[AT + 1 :]))",
            "    return found",
            "",
        ]
        table = {
            mtype.name: self.type_function(mtype)
            for mtype in policy.message_types.values()
        }
        entries = ", ".join(f"{name!r}: {fn}" for name, fn in table.items())
        # One dictionary lookup and one call per decision. Any KeyError or TypeError
        # on the way (an unknown type, a fact map that is not one) rejects the facts.
        self.lines += [
            f"BY_TYPE = {{{entries}}}",
            "",
            "def decide(f):",
            "    try:",
            "        return BY_TYPE[f.message_type](f)",
            "    except (KeyError, TypeError):",
            "        return invalid(f)",
        ]
        self.source = "\n".join(self.lines)
        namespace = dict(self.names)
        # Our own generated source, built from a policy that passed every check.
        exec(compile(self.source, f"<policy {policy.short_hash}>", "exec"), namespace)
        decide: Decide = namespace["decide"]
        return decide

    def type_function(self, mtype: MessageType) -> str:
        """Emit the function deciding ``mtype`` and return its name.

        It reads the fact maps into locals, checks that they name exactly the policy's
        roles and scopes, and runs the rules in order.
        """
        fn = f"decide_{mtype.name}"
        self.reads: set[str] = set()
        chosen: list[tuple[tuple[str, ...], str]] = []
        for rule in self.policy.rules:
            known = set(self.reads)
            tests = self.rule_tests(rule, mtype)
            # A rule whose tests include all of an earlier rule's can never be the
            # first to match: the earlier one always matches too.
            if tests is None or any(set(seen) <= set(tests) for seen, _ in chosen):
                self.reads = known
                continue
            chosen.append((tuple(tests), self.result(rule, mtype, tests)))
            if not tests:
                break
        else:
            default = self.per_reply(
                mtype, lambda rr: self.engine.default_decision(mtype, rr)
            )
            chosen.append(((), default))
        body = self.branches(chosen, 1)
        # Facts whose maps have the policy's keys in the policy's order carry its shape
        # object; the statuses the rules test are then read by position from
        # ``f.values``. Any other facts, and an unknown replied-to role, take the slow
        # path: rejected, or put in the policy's order and decided again.
        names = [f"n_{role}" for role in self.policy.roles]
        names += [f"c_{scope}" for scope in self.policy.scopes]
        reads = [
            f"{name} = v[{index}]"
            for index, name in enumerate(names)
            if name in self.reads
        ]
        if reads or "v" in self.reads:
            reads.insert(0, "v = f.values")
        self.lines += [
            f"def {fn}(f):",
            "    rr = f.reply_role",
            "    if f.shape is not SHAPE or (rr is not None and rr not in ROLE_KEYS):",
            "        return reshaped(f)",
            *(f"    {line}" for line in reads),
            *body,
            "",
        ]
        return fn

    def branches(
        self, rules: list[tuple[tuple[str, ...], str]], depth: int
    ) -> list[str]:
        """``if`` statements for ``rules`` in order, up to the first one without tests.

        Consecutive rules that begin with the same test share one ``if`` for it, so a
        fact that sends several rules the same way is tested once. When none of them
        matches, the code falls through to the rules after them.
        """
        pad = "    " * depth
        out: list[str] = []
        i = 0
        while i < len(rules):
            tests, result = rules[i]
            if not tests:
                return [*out, f"{pad}return {result}"]
            j = i + 1
            while j < len(rules) and rules[j][0][:1] == tests[:1]:
                j += 1
            if j - i == 1:
                out += [f"{pad}if {' and '.join(tests)}:", f"{pad}    return {result}"]
            else:
                out.append(f"{pad}if {tests[0]}:")
                shared = [(rest[1:], then) for rest, then in rules[i:j]]
                out += self.branches(shared, depth + 1)
            i = j
        return out

    def per_reply(
        self,
        mtype: MessageType,
        make: Callable[[str | None], Decision],
        *,
        dynamic: bool = False,
    ) -> str:
        """A prebuilt decision, or a table by replied-to role when it depends on it."""
        if not (mtype.is_reply or dynamic):
            return self.const(make(None), "D")
        table = {rr: make(rr) for rr in [*self.policy.roles, None]}
        return f"{self.const(table, 'T')}[rr]"

    def result(self, rule: Rule, mtype: MessageType, tests: list[str]) -> str:
        decision = self.per_reply(
            mtype,
            lambda rr: self.engine.make_decision(rule, mtype, rr),
            dynamic=rule.from_role == FROM_REPLY_ROLE,
        )
        if rule.until is DeferUntil.ALLOWED_TIME:
            # When the rule tests the quiet hours and matches, every test ran: ``w`` is set.
            memo = self.const({}, "M")
            if any(_QUIET in test for test in tests):
                found = f"{memo}.get((f.local_date, f.minute + w))"
                return f"{found} or deferred(f, w, {decision}, {memo})"
            return f"deferred(f, wait(f), {decision}, {memo})"
        return decision

    def rule_tests(self, rule: Rule, mtype: MessageType) -> list[str] | None:
        """Python tests for ``rule`` on ``mtype``, cheapest first; None when it can never
        match this type. The tests have no side effects, so their order is free."""
        tests: list[tuple[int, str]] = []
        if rule.effective_from is not None:
            tests.append((2, f"f.local_date >= {self.const(rule.effective_from)}"))
        if rule.effective_until is not None:
            tests.append((2, f"f.local_date < {self.const(rule.effective_until)}"))
        for cond in rule.conditions:
            if cond.fact in _TYPE_FACTS:
                if not cond.matches(getattr(mtype, _TYPE_FACTS[cond.fact])):
                    return None
                continue
            test = self.test(cond, mtype)
            if test is False:
                return None
            if test is not True:
                tests.append((self.cost(cond.fact, mtype), test))
        return [test for _, test in sorted(tests, key=lambda pair: pair[0])]

    @staticmethod
    def cost(fact: str, mtype: MessageType) -> int:
        """A rough rank of what a test costs: 0 reads a local, 4 a table of minutes."""
        if fact.startswith(("number.", "consent.")):
            return 2 if mtype.is_reply and fact.endswith(("_role", "_scope")) else 0
        if fact in ("recipient.jurisdiction", "recipient.cap_reached"):
            return 3
        if fact == "recipient.quiet_hours":
            return 4
        return 2 if fact == "reply.role" else 1

    def test(self, cond: Condition, mtype: MessageType) -> str | bool:
        """A Python test for ``cond``, or True/False when it holds for every value or none.

        The enumerated facts hold enum members (a :class:`Facts` guarantees it), so they
        are tested by identity, which is cheaper than comparing strings.
        """
        expr = self.expression(cond.fact, mtype)
        domain = self.domains[cond.fact]
        allowed = cond.allowed(domain)
        if not allowed:
            return False
        if allowed == domain:
            return True
        if domain == {True, False}:
            return expr if True in allowed else f"not {expr}"
        if cond.fact == "reply.role" and {NO_REPLY} in (allowed, domain - allowed):
            return "rr is None" if allowed == {NO_REPLY} else "rr is not None"
        enum = self.enum_of(cond.fact)
        if enum is None:
            if len(allowed) == 1:
                return f"{expr} == {next(iter(allowed))!r}"
            return f"{expr} in {self.const(allowed, 'S')}"
        if len(allowed) == 1:
            return f"{expr} is {self.member(enum(next(iter(allowed))))}"
        if len(domain - allowed) == 1:
            return f"{expr} is not {self.member(enum(next(iter(domain - allowed))))}"
        members = frozenset(enum(value) for value in allowed)
        return f"{expr} in {self.const(members, 'S')}"

    @staticmethod
    def enum_of(fact: str) -> type[StrEnum] | None:
        for prefix, enum in _ENUM_FACTS.items():
            if fact.startswith(prefix):
                return enum
        return None

    def member(self, value: StrEnum) -> str:
        name = f"{type(value).__name__}_{value.name}"
        self.names[name] = value
        return name

    def read(self, name: str) -> str:
        """``name``, a local the function must set: ``v`` (``f.values``) or a status in it."""
        self.reads.add(name)
        return name

    def expression(self, fact: str, mtype: MessageType) -> str:
        if fact == "message.channel":
            return "f.channel"
        if fact.startswith("business."):
            return f"f.{fact.split('.')[1]}"
        if fact == "number.message_role" and not mtype.is_reply:
            return self.read(f"n_{mtype.role}")
        if fact in ("number.message_role", "number.reply_role"):
            absent = self.member(NumberStatus.ABSENT)
            return f"({self.read('v')}[AT_ROLE[rr]] if rr is not None else {absent})"
        if fact.startswith("number."):
            return self.read(f"n_{fact.split('.', 1)[1]}")
        if fact == "consent.message_scope" and not mtype.is_reply:
            return self.read(f"c_{mtype.scope}")
        if fact == "consent.message_scope":
            none = self.member(ConsentState.NONE)
            at = "AT_SCOPE_OF[rr]"
            return f"({self.read('v')}[{at}] if rr is not None else {none})"
        if fact.startswith("consent."):
            return self.read(f"c_{fact.split('.', 1)[1]}")
        if fact == "recipient.jurisdiction":
            return f"JCLASS.get(f.jurisdiction, {OTHER_JURISDICTION!r})"
        if fact == "recipient.quiet_hours":
            return _QUIET
        if fact == "recipient.cap_reached":
            return "(f.marketing_sent_24h >= CAPS.get(f.jurisdiction, DEFAULT_CAP))"
        if fact == "reply.role":
            return f"(rr or {NO_REPLY!r})"
        raise KeyError(fact)  # pragma: no cover - the loader accepts no other fact
