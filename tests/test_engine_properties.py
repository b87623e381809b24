"""Properties of the compiled engine on the example policy, over generated facts."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from dispatcher import Engine, Facts, Outcome, load_policy
from dispatcher.engine import fact_value
from dispatcher.facts import ConsentState, NumberStatus
from dispatcher.testing import facts

from .conftest import RULES

POLICY = load_policy(RULES)
ENGINE = Engine(POLICY)
RULE_IDS = {rule.id for rule in POLICY.rules}


def quiet(f: Facts) -> bool:
    mtype = POLICY.message_types[f.message_type]
    return bool(fact_value(POLICY, mtype, f, "recipient.quiet_hours"))


@given(facts(POLICY))
def test_compiled_engine_agrees_with_the_tracing_interpreter(f: Facts) -> None:
    explained = ENGINE.explain(f)
    assert explained._replace(trace=()) == ENGINE.decide(f)
    assert explained.trace[-1].matched
    assert not any(step.matched for step in explained.trace[:-1])


@given(facts(POLICY))
def test_otp_never_leaves_from_a_business_number(f: Facts) -> None:
    decision = ENGINE.decide(f)
    if decision.sends and decision.category == "otp":
        assert decision.role == "global"
    if decision.sends and decision.role == "global":
        assert decision.category in ("otp", "compliance")


@given(facts(POLICY))
def test_marketing_number_carries_marketing_only(f: Facts) -> None:
    """Besides marketing: replies to it, and the declared single-number fallback."""
    decision = ENGINE.decide(f)
    if not (decision.sends and decision.role == "marketing"):
        return
    if decision.category == "compliance":
        assert f.reply_role == "marketing"
    elif decision.category != "marketing":
        assert decision.category == "transactional"
        assert decision.rule.id == "transactional-falls-back-to-only-number"
        assert f.numbers["transactional"] is NumberStatus.ABSENT
        assert not f.assist
        assert not f.accelerate


@given(
    facts(POLICY, message_type=st.sampled_from(["promotion", "accelerate_campaign"]))
)
def test_no_marketing_without_consent_inside_quiet_hours_or_over_the_cap(
    f: Facts,
) -> None:
    decision = ENGINE.decide(f)
    if not decision.sends:
        return
    assert f.consent["marketing"] is ConsentState.OPTED_IN
    assert not quiet(f)
    jurisdiction = POLICY.quiet_hours.lookup(f.jurisdiction)
    assert not jurisdiction.cap_reached(f.marketing_sent_24h)


@given(facts(POLICY))
def test_opt_out_wins_for_its_scope(f: Facts) -> None:
    decision = ENGINE.decide(f)
    guarded = decision.category in ("marketing", "transactional", "otp")
    if (
        guarded
        and decision.scope
        and f.consent[decision.scope] is ConsentState.OPTED_OUT
    ):
        assert not decision.sends


@given(facts(POLICY))
def test_sends_leave_only_from_registered_numbers(f: Facts) -> None:
    decision = ENGINE.decide(f)
    if decision.sends:
        assert decision.role is not None
        assert f.numbers[decision.role] is NumberStatus.REGISTERED


@given(facts(POLICY))
def test_every_decision_names_the_rule_that_made_it(f: Facts) -> None:
    decision = ENGINE.decide(f)
    assert decision.rule.id in RULE_IDS | {"no-rule-matched", "invalid-facts"}
    assert decision.policy_hash == POLICY.hash
    if decision.rule.id in RULE_IDS:
        assert decision.rule.file.endswith(".yaml")
        assert decision.rule.line > 0
    if decision.outcome is Outcome.DEFER:
        assert decision.until is not None


@given(
    facts(POLICY),
    st.sampled_from(["numbers", "consent"]),
    st.data(),
)
def test_a_missing_fact_never_yields_a_send(
    f: Facts, section: str, data: st.DataObject
) -> None:
    mapping = dict(getattr(f, section))
    del mapping[data.draw(st.sampled_from(sorted(mapping)))]
    broken = dataclasses.replace(f, **{section: mapping})
    for decision in (ENGINE.decide(broken), ENGINE.explain(broken)):
        assert decision.outcome is Outcome.REJECT
        assert decision.rule.id == "invalid-facts"


@given(facts(POLICY), st.text(min_size=1, max_size=12))
def test_unknown_message_types_are_rejected(f: Facts, name: str) -> None:
    if name in POLICY.message_types:
        return
    decision = ENGINE.decide(dataclasses.replace(f, message_type=name))
    assert decision.outcome is Outcome.REJECT
