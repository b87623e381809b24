"""The example policy decides each message type the way the product brief says."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from dispatcher import Decision, Engine, Facts, Outcome
from dispatcher.facts import Channel, ConsentState, NumberStatus

REG, PEND, UNREG, ABSENT = (
    NumberStatus.REGISTERED,
    NumberStatus.PENDING,
    NumberStatus.UNREGISTERED,
    NumberStatus.ABSENT,
)
IN, OUT, NONE = ConsentState.OPTED_IN, ConsentState.OPTED_OUT, ConsentState.NONE
THURSDAY = dt.date(2026, 12, 3)
SUNDAY = dt.date(2026, 12, 6)
REVOKE_ALL_DAY = dt.date(2027, 1, 31)

# (case id, facts changed from the baseline, expected outcome, role, rule id)
CASES: list[tuple[str, dict[str, Any], Outcome, str | None, str]] = [
    (
        "promotion leaves from marketing",
        {"message_type": "promotion"},
        Outcome.SEND,
        "marketing",
        "marketing-send",
    ),
    (
        "accelerate campaign leaves from marketing",
        {"message_type": "accelerate_campaign"},
        Outcome.SEND,
        "marketing",
        "marketing-send",
    ),
    (
        "accelerate needs enrolment",
        {"message_type": "accelerate_campaign", "accelerate": False},
        Outcome.REJECT,
        None,
        "accelerate-needs-enrolment",
    ),
    (
        "order status leaves from transactional",
        {"message_type": "order_status"},
        Outcome.SEND,
        "transactional",
        "transactional-send",
    ),
    (
        "ready for pickup leaves from transactional",
        {"message_type": "ready_for_pickup"},
        Outcome.SEND,
        "transactional",
        "transactional-send",
    ),
    (
        "delivery leaves from transactional",
        {"message_type": "delivery_notification"},
        Outcome.SEND,
        "transactional",
        "transactional-send",
    ),
    (
        "assist escalation leaves from transactional",
        {"message_type": "assist_escalation"},
        Outcome.SEND,
        "transactional",
        "transactional-send",
    ),
    (
        "assist needs enrolment",
        {"message_type": "assist_escalation", "assist": False},
        Outcome.REJECT,
        None,
        "assist-needs-enrolment",
    ),
    (
        "otp leaves from global",
        {"message_type": "otp_code"},
        Outcome.SEND,
        "global",
        "otp-from-global",
    ),
    (
        "otp ignores quiet hours",
        {"message_type": "otp_code", "local_time": dt.time(23, 30)},
        Outcome.SEND,
        "global",
        "otp-from-global",
    ),
    (
        "otp stopped on the global number",
        {"message_type": "otp_code", "consent": {"otp": OUT}},
        Outcome.SUPPRESS,
        None,
        "otp-opted-out",
    ),
    (
        "otp ignores a marketing stop",
        {"message_type": "otp_code", "consent": {"marketing": OUT}},
        Outcome.SEND,
        "global",
        "otp-from-global",
    ),
    (
        "otp as mms is invalid",
        {"message_type": "otp_code", "channel": Channel.MMS},
        Outcome.REJECT,
        None,
        "sms-only-for-otp-and-compliance",
    ),
    (
        "otp with the global number pending",
        {"message_type": "otp_code", "numbers": {"global": PEND}},
        Outcome.SUPPRESS,
        None,
        "otp-global-number-not-registered",
    ),
    (
        "help reply from the number written to",
        {"message_type": "help_reply", "reply_role": "marketing"},
        Outcome.SEND,
        "marketing",
        "compliance-reply",
    ),
    (
        "help reply without an inbound message",
        {"message_type": "help_reply"},
        Outcome.REJECT,
        None,
        "compliance-needs-inbound-message",
    ),
    (
        "confirmation after a stop is allowed",
        {
            "message_type": "opt_out_confirmation",
            "reply_role": "transactional",
            "consent": {"transactional": OUT},
            "local_time": dt.time(23, 0),
        },
        Outcome.SEND,
        "transactional",
        "compliance-reply",
    ),
    (
        "opt-in confirmation from the number written to",
        {"message_type": "opt_in_confirmation", "reply_role": "global"},
        Outcome.SEND,
        "global",
        "compliance-reply",
    ),
    (
        "reply from an unregistered number",
        {
            "message_type": "help_reply",
            "reply_role": "global",
            "numbers": {"global": UNREG},
        },
        Outcome.SUPPRESS,
        None,
        "compliance-reply-number-not-registered",
    ),
    (
        "marketing stop suppresses promotions",
        {"message_type": "promotion", "consent": {"marketing": OUT}},
        Outcome.SUPPRESS,
        None,
        "opted-out-of-scope",
    ),
    (
        "marketing needs express opt-in",
        {"message_type": "promotion", "consent": {"marketing": NONE}},
        Outcome.SUPPRESS,
        None,
        "marketing-needs-opt-in",
    ),
    (
        "transactional stop suppresses order updates",
        {"consent": {"transactional": OUT}},
        Outcome.SUPPRESS,
        None,
        "opted-out-of-scope",
    ),
    (
        "marketing stop keeps order updates",
        {"consent": {"marketing": OUT}},
        Outcome.SEND,
        "transactional",
        "transactional-send",
    ),
    (
        "transactional stop keeps promotions",
        {"message_type": "promotion", "consent": {"transactional": OUT}},
        Outcome.SEND,
        "marketing",
        "marketing-send",
    ),
    (
        "revoke-all from its effective date",
        {"consent": {"marketing": OUT}, "local_date": REVOKE_ALL_DAY},
        Outcome.SUPPRESS,
        None,
        "revoke-all-from-marketing-stop",
    ),
    (
        "revoke-all not the day before",
        {
            "consent": {"marketing": OUT},
            "local_date": REVOKE_ALL_DAY - dt.timedelta(days=1),
        },
        Outcome.SEND,
        "transactional",
        "transactional-send",
    ),
    (
        "revoke-all for promotions after a transactional stop",
        {
            "message_type": "promotion",
            "consent": {"transactional": OUT},
            "local_date": REVOKE_ALL_DAY,
        },
        Outcome.SUPPRESS,
        None,
        "revoke-all-from-transactional-stop",
    ),
    (
        "single-number business falls back",
        {"assist": False, "accelerate": False, "numbers": {"transactional": ABSENT}},
        Outcome.SEND,
        "marketing",
        "transactional-falls-back-to-only-number",
    ),
    (
        "assist business without transactional number is held",
        {"accelerate": False, "numbers": {"transactional": ABSENT}},
        Outcome.DEFER,
        None,
        "transactional-held-for-second-number-assist",
    ),
    (
        "accelerate business without transactional number is held",
        {"assist": False, "numbers": {"transactional": ABSENT}},
        Outcome.DEFER,
        None,
        "transactional-held-for-second-number-accelerate",
    ),
    (
        "fallback needs a registered number",
        {
            "assist": False,
            "accelerate": False,
            "numbers": {"transactional": ABSENT, "marketing": PEND},
        },
        Outcome.SUPPRESS,
        None,
        "number-missing",
    ),
    (
        "pending registration waits",
        {"numbers": {"transactional": PEND}},
        Outcome.DEFER,
        None,
        "number-registration-pending",
    ),
    (
        "unregistered number carries nothing",
        {"message_type": "promotion", "numbers": {"marketing": UNREG}},
        Outcome.SUPPRESS,
        None,
        "number-not-registered",
    ),
    (
        "no marketing number",
        {"message_type": "promotion", "numbers": {"marketing": ABSENT}},
        Outcome.SUPPRESS,
        None,
        "number-missing",
    ),
    (
        "florida quiet hours start at 20:00",
        {
            "message_type": "promotion",
            "jurisdiction": "US-FL",
            "local_time": dt.time(20, 0),
        },
        Outcome.DEFER,
        None,
        "quiet-hours",
    ),
    (
        "federal window still open at 20:59",
        {"message_type": "promotion", "local_time": dt.time(20, 59)},
        Outcome.SEND,
        "marketing",
        "marketing-send",
    ),
    (
        "order updates observe quiet hours",
        {"local_time": dt.time(7, 59)},
        Outcome.DEFER,
        None,
        "quiet-hours",
    ),
    (
        "florida cap of three",
        {"message_type": "promotion", "jurisdiction": "US-FL", "marketing_sent_24h": 3},
        Outcome.SUPPRESS,
        None,
        "marketing-cap",
    ),
    (
        "florida below the cap",
        {"message_type": "promotion", "jurisdiction": "US-FL", "marketing_sent_24h": 2},
        Outcome.SEND,
        "marketing",
        "marketing-send",
    ),
    (
        "no cap in new york",
        {"message_type": "promotion", "marketing_sent_24h": 9},
        Outcome.SEND,
        "marketing",
        "marketing-send",
    ),
    (
        "cap does not limit order updates",
        {"jurisdiction": "US-FL", "marketing_sent_24h": 9},
        Outcome.SEND,
        "transactional",
        "transactional-send",
    ),
]


@pytest.mark.parametrize(
    ("changes", "outcome", "role", "rule_id"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_example_policy_decides(
    engine: Engine,
    facts: Callable[..., Facts],
    changes: dict[str, Any],
    outcome: Outcome,
    role: str | None,
    rule_id: str,
) -> None:
    decision = engine.decide(facts(**changes))
    assert (decision.outcome, decision.role, decision.rule.id) == (
        outcome,
        role,
        rule_id,
    )


def test_every_message_type_is_covered_by_a_case(engine: Engine) -> None:
    covered = {case[1].get("message_type", "order_status") for case in CASES}
    assert covered == set(engine.policy.message_types)


def test_explain_agrees_with_decide_on_every_case(
    engine: Engine, facts: Callable[..., Facts]
) -> None:
    for _, changes, *_ in CASES:
        f = facts(**changes)
        assert engine.explain(f)._replace(trace=()) == engine.decide(f)


def test_quiet_hours_deferral_names_the_next_allowed_minute(
    engine: Engine, facts: Callable[..., Facts]
) -> None:
    late = engine.decide(
        facts(
            message_type="promotion", jurisdiction="US-FL", local_time=dt.time(20, 30)
        )
    )
    assert late.not_before_local == dt.datetime(2026, 12, 4, 8, 0)

    texas_sunday = engine.decide(
        facts(jurisdiction="US-TX", local_date=SUNDAY, local_time=dt.time(10, 15))
    )
    assert texas_sunday.not_before_local == dt.datetime(2026, 12, 6, 12, 0)


def test_unknown_jurisdiction_uses_the_strictest_window(
    engine: Engine, facts: Callable[..., Facts]
) -> None:
    # Kentucky opens at 10:00 and several states close at 20:00: unknown gets 10:00-20:00.
    early = engine.decide(
        facts(
            message_type="promotion", jurisdiction="unknown", local_time=dt.time(9, 30)
        )
    )
    assert (early.outcome, early.not_before_local) == (
        Outcome.DEFER,
        dt.datetime(2026, 12, 3, 10, 0),
    )
    late = engine.decide(
        facts(
            message_type="promotion", jurisdiction="unknown", local_time=dt.time(20, 0)
        )
    )
    assert late.outcome is Outcome.DEFER
    capped = engine.decide(
        facts(message_type="promotion", jurisdiction="unknown", marketing_sent_24h=3)
    )
    assert capped.rule.id == "marketing-cap"


def test_scope_of_a_reply_is_the_scope_of_the_number_written_to(
    engine: Engine, facts: Callable[..., Facts]
) -> None:
    for role, scope in [
        ("marketing", "marketing"),
        ("transactional", "transactional"),
        ("global", "otp"),
    ]:
        decision = engine.decide(facts(message_type="help_reply", reply_role=role))
        assert (decision.role, decision.scope) == (role, scope)


def test_decision_carries_provenance(
    engine: Engine, facts: Callable[..., Facts]
) -> None:
    decision: Decision = engine.decide(facts(message_type="otp_code"))
    assert decision.rule.file.endswith("routing.yaml")
    assert decision.rule.line > 0
    assert decision.policy_hash == engine.policy.hash
    assert decision.to_mapping()["rule"]["id"] == "otp-from-global"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"message_type": "newsletter"},
            "message.type: unknown message type 'newsletter'",
        ),
        ({"reply_role": "store"}, "reply.role: unknown role 'store'"),
    ],
)
def test_unknown_names_are_rejected(
    engine: Engine, facts: Callable[..., Facts], changes: dict[str, Any], problem: str
) -> None:
    decision = engine.decide(facts(**changes))
    assert decision.outcome is Outcome.REJECT
    assert decision.rule.id == "invalid-facts"
    assert problem in decision.reason
    assert engine.explain(facts(**changes)).outcome is Outcome.REJECT


def test_missing_number_status_is_rejected(engine: Engine, policy: Any) -> None:
    f = Facts(
        message_type="promotion",
        channel=Channel.SMS,
        assist=True,
        accelerate=True,
        numbers={"marketing": REG},
        consent=dict.fromkeys(policy.scopes, IN),
        jurisdiction="US-NY",
        local_date=THURSDAY,
        local_time=dt.time(12, 0),
    )
    decision = engine.decide(f)
    assert decision.outcome is Outcome.REJECT
    assert "numbers: missing ['global', 'transactional']" in decision.reason


def test_missing_consent_is_rejected_not_sent(engine: Engine, policy: Any) -> None:
    f = Facts(
        message_type="order_status",
        channel=Channel.SMS,
        assist=True,
        accelerate=True,
        numbers=dict.fromkeys(policy.roles, REG),
        consent={"marketing": IN},
        jurisdiction="US-NY",
        local_date=THURSDAY,
        local_time=dt.time(12, 0),
    )
    assert engine.decide(f).outcome is Outcome.REJECT
