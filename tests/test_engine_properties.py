"""Properties of the compiled engine on the example policy, over generated facts."""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher import Engine, Facts, Outcome, Policy, load_policy
from dispatcher.engine import fact_value
from dispatcher.facts import Channel, ConsentState, NumberStatus
from dispatcher.testing import facts, policies

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


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(policies(POLICY), st.lists(facts(POLICY), min_size=1, max_size=30))
def test_compiled_engine_agrees_with_the_interpreter_on_policy_variants(
    variant: Policy, cases: list[Facts]
) -> None:
    """Variants have shadowed rules, shared first tests and rules without conditions,
    which the compiler drops, nests and stops at."""
    engine = Engine(variant)
    for f in cases:
        assert engine.explain(f)._replace(trace=()) == engine.decide(f)


@given(facts(POLICY))
def test_maps_in_another_key_order_decide_the_same(f: Facts) -> None:
    turned = dataclasses.replace(
        f,
        numbers=dict(reversed(f.numbers.items())),
        consent=dict(reversed(f.consent.items())),
    )
    assert turned.shape is not f.shape
    assert ENGINE.decide(turned) == ENGINE.decide(f)


@given(facts(POLICY), st.sampled_from(["numbers", "consent"]), st.data())
def test_a_renamed_fact_is_rejected(
    f: Facts, section: str, data: st.DataObject
) -> None:
    """Same number of entries, one of them under a name the policy does not know."""
    mapping = dict(getattr(f, section))
    mapping["unknown"] = mapping.pop(data.draw(st.sampled_from(sorted(mapping))))
    broken = dataclasses.replace(f, **{section: mapping})
    for decision in (ENGINE.decide(broken), ENGINE.explain(broken)):
        assert decision.rule.id == "invalid-facts"


def test_deferrals_kept_for_reuse_stay_bounded() -> None:
    """Each deferral rule keeps the decisions it built, up to a fixed number."""
    f = next(
        case
        for case in (
            Facts(
                message_type="order_status",
                channel=Channel.SMS,
                assist=False,
                accelerate=False,
                numbers=dict.fromkeys(POLICY.roles, NumberStatus.REGISTERED),
                consent=dict.fromkeys(POLICY.scopes, ConsentState.NONE),
                jurisdiction="US-FL",
                local_date=dt.date(2026, 12, 1),
                local_time=dt.time(hour, 0),
            )
            for hour in range(24)
        )
        if ENGINE.decide(case).rule.id == "quiet-hours"
    )
    memos = [
        value
        for name, value in ENGINE.decide.__globals__.items()
        if name.startswith("M") and isinstance(value, dict)
    ]
    for day in range(2500):
        later = dataclasses.replace(f, local_date=f.local_date + dt.timedelta(days=day))
        first = ENGINE.decide(later)
        assert ENGINE.decide(later) is first
        assert first == ENGINE.explain(later)._replace(trace=())
    sizes = [len(memo) for memo in memos]
    assert max(sizes) <= 1024
    assert 0 < sum(sizes) < 2500


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
