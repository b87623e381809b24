"""The durable_rules engine decides exactly as the compiled engine, and its traps are
shut."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher import Engine, Facts, durable_engine, load_policy, parse_facts
from dispatcher.errors import MissingDependencyError
from dispatcher.policy import Policy
from dispatcher.testing import facts, policies

pytest.importorskip(
    "durable.engine", reason="durable_rules builds on Python 3.11/3.12 only"
)

POLICY = load_policy("rules")
ENGINE = Engine(POLICY)
DURABLE = durable_engine.DurableEngine(POLICY, ENGINE)
SAMPLE = parse_facts(
    {
        "message": {"type": "promotion", "channel": "sms"},
        "business": {"assist": False, "accelerate": False},
        "numbers": {
            "marketing": "registered",
            "transactional": "registered",
            "global": "registered",
        },
        "consent": {"marketing": "opted_in", "transactional": "none", "otp": "none"},
        "recipient": {
            "jurisdiction": "US-FL",
            "local_date": "2026-12-03",
            "local_time": "20:30",
            "marketing_sent_24h": 0,
        },
    }
)


@settings(max_examples=1500, deadline=None)
@given(facts(POLICY))
def test_engines_agree_on_generated_facts(f: Facts) -> None:
    assert DURABLE.decide(f) == ENGINE.decide(f)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(POLICY), st.lists(facts(POLICY), min_size=1, max_size=40))
def test_engines_agree_on_policy_variants(variant: Policy, cases: list[Facts]) -> None:
    engine = Engine(variant)
    with durable_engine.DurableEngine(variant, engine) as other:
        for f in cases:
            assert other.decide(f) == engine.decide(f)


def test_every_event_carries_every_condition_fact_as_a_string() -> None:
    f = SAMPLE
    event = DURABLE.event(f)
    for fact in POLICY.fact_domains():
        assert isinstance(event[durable_engine.field_name(fact)], str)
    assert event["policy"] == POLICY.hash


def test_rules_are_ordered_by_priority_with_a_catch_all_last() -> None:
    definition = durable_engine.ruleset_definition(POLICY)
    priorities = [spec["pri"] for spec in definition.values()]
    assert priorities == list(range(1, len(POLICY.rules) + 2))
    assert list(definition)[-1] == "no_rule"


def test_negated_condition_needs_the_field_present() -> None:
    """A {not: ...} condition compiles to $neq on a field every event carries."""
    rule = next(r for r in POLICY.rules if any(c.negated for c in r.conditions))
    spec = durable_engine.ruleset_definition(POLICY)[
        durable_engine.rule_name(rule.index)
    ]
    terms = spec["all"][0]["m"]["$and"]
    assert {"policy": POLICY.hash} in terms
    assert any("$neq" in term for term in terms)


def test_many_decisions_stay_within_the_state_limit() -> None:
    f = SAMPLE
    expected = ENGINE.decide(f)
    for _ in range(3000):
        assert DURABLE.decide(f) == expected


def test_invalid_facts_are_rejected_before_durable_rules() -> None:
    f = SAMPLE
    bad = dataclasses.replace(f, message_type="fax")
    assert DURABLE.decide(bad) == ENGINE.decide(bad)
    assert DURABLE.decide(bad).outcome.value == "reject"


def test_two_engines_for_one_policy_register_distinct_rulesets() -> None:
    with (
        durable_engine.DurableEngine(POLICY) as a,
        durable_engine.DurableEngine(POLICY) as b,
    ):
        assert a.name != b.name


def test_missing_durable_rules_is_reported_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.import_module

    def fail(name: str, package: str | None = None) -> object:
        if name.startswith("durable"):
            raise ImportError("No module named 'durable'")
        return real(name, package)

    monkeypatch.setattr(durable_engine.importlib, "import_module", fail)
    with pytest.raises(MissingDependencyError, match=r"install the 'durable' extra"):
        durable_engine.DurableEngine(POLICY)
    assert not durable_engine.available()
