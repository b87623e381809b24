"""Decide messages: the policy compiled into Python functions, and a tracing interpreter.

:class:`Engine` compiles a policy once. For each message type it generates one function
holding only the rules that can match that type, with conditions on the type already
settled, and returns decisions built ahead of time. :meth:`Engine.explain` walks the same
rules one condition at a time and records why each rule did or did not match; the two must
always agree, which the test suite checks on generated facts.

Fail closed: facts that name an unknown message type or role, or lack the status of a number
or the consent of a scope, yield a rejection by the ``invalid-facts`` pseudo-rule.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from typing import Any

from .decision import Decision, TraceStep
from .facts import ConsentState, Facts, NumberStatus
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
            N_ROLES=len(policy.roles),
            N_SCOPES=len(policy.scopes),
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
            SCOPE_OF={role: policy.scope_of_role(role) for role in policy.roles},
            invalid=engine.invalid,
        )
        # Minutes to wait for the jurisdiction's next allowed minute: 0 means allowed now,
        # -1 never. A named tuple is rebuilt directly: _replace() costs four times more.
        self.lines += [
            "def wait(f):",
            "    table = WAITS.get(f.jurisdiction, DEFAULT_WAITS)",
            "    return table[f.local_date.weekday() * 1440 + f.minute]",
            "",
            "def with_window(f, d):",
            "    minutes = wait(f)",
            "    at = None",
            "    if minutes >= 0:",
            "        at = combine(f.local_date, MIDNIGHT) + MINUTES[f.minute + minutes]",
            "    return new_decision(Decision, (*d[:AT], at, *d[AT + 1 :]))",
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
        body: list[str] = []
        for rule in self.policy.rules:
            tests = self.rule_tests(rule, mtype)
            if tests is None:
                continue
            result = self.result(rule, mtype)
            if not tests:
                body.append(f"    return {result}")
                break
            body += [f"    if {' and '.join(tests)}:", f"        return {result}"]
        else:
            default = self.per_reply(
                mtype, lambda rr: self.engine.default_decision(mtype, rr)
            )
            body.append(f"    return {default}")
        # Every entry is read, so that a map missing one is rejected whatever the
        # rules test; with the lengths, the maps then name exactly the policy's keys.
        reads = [
            f"{prefix}_{key} = {prefix}[{key!r}]"
            for prefix, keys in (("n", self.policy.roles), ("c", self.policy.scopes))
            for key in keys
        ]
        self.lines += [
            f"def {fn}(f):",
            "    n = f.numbers",
            "    c = f.consent",
            "    rr = f.reply_role",
            f"    {'; '.join(reads)}",
            "    if len(n) != N_ROLES or len(c) != N_SCOPES or (",
            "        rr is not None and rr not in ROLE_KEYS",
            "    ):",
            "        return invalid(f)",
            *body,
            "",
        ]
        return fn

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

    def result(self, rule: Rule, mtype: MessageType) -> str:
        decision = self.per_reply(
            mtype,
            lambda rr: self.engine.make_decision(rule, mtype, rr),
            dynamic=rule.from_role == FROM_REPLY_ROLE,
        )
        if rule.until is DeferUntil.ALLOWED_TIME:
            return f"with_window(f, {decision})"
        return decision

    def rule_tests(self, rule: Rule, mtype: MessageType) -> list[str] | None:
        """Python tests for ``rule`` on ``mtype``; None when it can never match this type."""
        tests = []
        if rule.effective_from is not None:
            tests.append(f"f.local_date >= {self.const(rule.effective_from)}")
        if rule.effective_until is not None:
            tests.append(f"f.local_date < {self.const(rule.effective_until)}")
        for cond in rule.conditions:
            if cond.fact in _TYPE_FACTS:
                if not cond.matches(getattr(mtype, _TYPE_FACTS[cond.fact])):
                    return None
                continue
            test = self.test(cond, mtype)
            if test is False:
                return None
            if test is not True:
                tests.append(test)
        return tests

    def test(self, cond: Condition, mtype: MessageType) -> str | bool:
        expr = self.expression(cond.fact, mtype)
        if cond.fact in (
            "business.assist",
            "business.accelerate",
            "recipient.quiet_hours",
            "recipient.cap_reached",
        ):
            allowed = cond.allowed(frozenset({True, False}))
            if len(allowed) == 2:
                return True
            if not allowed:
                return False
            return expr if True in allowed else f"not {expr}"
        if len(cond.values) == 1:
            (value,) = cond.values
            return f"{expr} {'!=' if cond.negated else '=='} {value!r}"
        values = self.const(frozenset(cond.values), "S")
        return f"{expr} {'not in' if cond.negated else 'in'} {values}"

    def expression(self, fact: str, mtype: MessageType) -> str:
        if fact == "message.channel":
            return "f.channel"
        if fact.startswith("business."):
            return f"f.{fact.split('.')[1]}"
        if fact == "number.message_role" and not mtype.is_reply:
            return f"n_{mtype.role}"
        if fact in ("number.message_role", "number.reply_role"):
            return "(n[rr] if rr is not None else 'absent')"
        if fact.startswith("number."):
            return f"n_{fact.split('.', 1)[1]}"
        if fact == "consent.message_scope" and not mtype.is_reply:
            return f"c_{mtype.scope}"
        if fact == "consent.message_scope":
            return "(c[SCOPE_OF[rr]] if rr is not None else 'none')"
        if fact.startswith("consent."):
            return f"c_{fact.split('.', 1)[1]}"
        if fact == "recipient.jurisdiction":
            return f"JCLASS.get(f.jurisdiction, {OTHER_JURISDICTION!r})"
        if fact == "recipient.quiet_hours":
            return "(wait(f) != 0)"
        if fact == "recipient.cap_reached":
            return "(f.marketing_sent_24h >= CAPS.get(f.jurisdiction, DEFAULT_CAP))"
        if fact == "reply.role":
            return f"(rr or {NO_REPLY!r})"
        raise KeyError(fact)  # pragma: no cover - the loader accepts no other fact
