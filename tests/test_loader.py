"""The loader reports every problem of a rules change, positioned and worded for people."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher import RulesError, load_policy
from dispatcher.errors import Problem

from .conftest import RulesCopy


def problems_of(path: Path) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_policy(path)
    return [str(p) for p in caught.value.problems]


def test_example_policy_is_sound(policy: object) -> None:
    assert policy is not None


def test_duplicate_key_is_refused_with_both_positions(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "routing.yaml",
        "      message.channel: mms\n",
        "      message.channel: mms\n      message.channel: sms\n",
    )
    assert problems_of(rules_copy.root) == [
        "rules/routing.yaml:29:7: duplicate key 'message.channel' (first defined at line 28,"
        " column 7)\n    hint: YAML keeps only the last of two equal keys; remove or rename one"
    ]


def test_yaml11_no_is_not_read_as_false(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "routing.yaml", "business.accelerate: false", "business.accelerate: no"
    )
    assert problems_of(rules_copy.root) == [
        "rules/routing.yaml:37:28: business.accelerate: 'no' is not a possible value "
        "(expected one of false, true)\n"
        "    hint: write true or false (YAML 1.1 'yes'/'no' are strings here)"
    ]


def test_unquoted_times_keep_their_meaning(rules_copy: RulesCopy) -> None:
    # YAML 1.1 reads 20:00 as 1200; this loader keeps what a reviewer reads.
    rules_copy.replace(
        "quiet_hours.yaml", 'from: "09:00", to: "20:00"', "from: 09:00, to: 20:00"
    )
    policy = load_policy(rules_copy.root)
    assert policy.quiet_hours.jurisdictions["US-CT"].allowed[0] == ((9 * 60, 20 * 60),)


def test_octal_looking_time_is_refused_with_a_hint(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "quiet_hours.yaml", 'from: "09:00", to: "20:00"', "from: 0900, to: 2000"
    )
    found = problems_of(rules_copy.root)
    assert found[0].startswith(
        "rules/quiet_hours.yaml:59:61: quiet_hours.jurisdictions.US-CT.allowed[0].from: "
        "'0900' does not match"
    )
    assert found[0].endswith('hint: write times as quoted "HH:MM", for example "08:00"')
    assert "allowed[0].to: 2000 " in found[1] or "allowed[0].to: expected" in found[1]


def test_unknown_message_type_in_a_rule_gets_a_suggestion(
    rules_copy: RulesCopy,
) -> None:
    rules_copy.replace(
        "routing.yaml",
        "      message.product: assist\n",
        "      message.type: asist_escalation\n",
    )
    assert problems_of(rules_copy.root) == [
        "rules/routing.yaml:45:21: message.type: 'asist_escalation' is not a possible value "
        "(expected one of accelerate_campaign, assist_escalation, delivery_notification, "
        "help_reply, opt_in_confirmation, opt_out_confirmation, order_status, otp_code, "
        "promotion, ready_for_pickup)\n    hint: did you mean 'assist_escalation'?"
    ]


def test_unknown_role_and_scope_are_named(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "routing.yaml",
        "      consent.otp: opted_out\n",
        "      consent.otps: opted_out\n",
    )
    rules_copy.replace(
        "routing.yaml", "      from: message_role\n", "      from: marketting\n"
    )
    assert problems_of(rules_copy.root) == [
        "rules/routing.yaml:58:7: unknown fact 'consent.otps'\n"
        "    hint: did you mean 'consent.otp'?",
        "rules/routing.yaml:267:13: unknown role 'marketting'\n"
        "    hint: did you mean 'marketing'?",
    ]


def test_message_type_without_role_is_refused(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "catalogue.yaml",
        "    role: transactional\n    scope: transactional\n  ready_for_pickup",
        "    scope: transactional\n  ready_for_pickup",
    )
    assert problems_of(rules_copy.root) == [
        "rules/catalogue.yaml:85:5: message_types.order_status: missing required key 'role'"
    ]


def test_otp_routed_to_a_business_number_is_refused(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "routing.yaml",
        "      outcome: send\n      from: global\n",
        "      outcome: send\n      from: marketing\n",
    )
    assert problems_of(rules_copy.root) == [
        "rules/routing.yaml:80:13: rule 'otp-from-global' would send otp_code (category "
        "'otp') from the 'marketing' number, which does not carry it\n"
        "    hint: OTP codes leave only from the platform's global number"
    ]


def test_otp_message_type_on_a_business_role_is_refused(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "catalogue.yaml",
        "    role: global\n    scope: otp\n",
        "    role: marketing\n    scope: marketing\n",
    )
    found = problems_of(rules_copy.root)
    assert found[0] == (
        "rules/catalogue.yaml:112:11: role 'marketing' does not carry category 'otp' "
        "(roles.marketing.carries)\n"
        "    hint: OTP codes leave only from the platform's global number"
    )


def test_business_role_may_not_carry_otp(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "catalogue.yaml",
        "    carries: [marketing, compliance]",
        "    carries: [marketing, compliance, otp]",
    )
    assert problems_of(rules_copy.root)[0] == (
        "rules/catalogue.yaml:38:14: role 'marketing' belongs to a business and cannot carry "
        "'otp'\n    hint: OTP codes leave only from the platform's global number"
    )


def test_scope_must_follow_the_number(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "catalogue.yaml",
        "    role: marketing\n    scope: marketing\n",
        "    role: marketing\n    scope: transactional\n",
    )
    assert problems_of(rules_copy.root) == [
        "rules/catalogue.yaml:77:12: scope 'transactional' belongs to the 'transactional' "
        "number, but this message leaves from the 'marketing' number\n"
        "    hint: the opt-out scope follows the number: use scope 'marketing'"
    ]


def test_fallback_without_absent_condition_is_refused(rules_copy: RulesCopy) -> None:
    anchor = (
        "until it adds a transactional one.\n    when:\n"
        "      message.category: transactional\n"
    )
    rules_copy.replace(
        "routing.yaml",
        anchor + "      number.transactional: absent\n",
        anchor,
    )
    found = problems_of(rules_copy.root)
    assert found[0].startswith(
        "rules/routing.yaml:182:13: rule 'transactional-falls-back-to-only-number' would send "
        "order_status, ready_for_pickup, delivery_notification, assist_escalation (category "
        "'transactional') from the 'marketing' number, which does not carry it"
    )
    assert found[0].endswith("e.g. number.transactional: absent")


SHADOWED = """  - id: late-promotion
    description: The rules above decide every case this one matches.
    when:
      message.type: promotion
      consent.marketing: opted_out
    then:
      outcome: send
      from: marketing

  - id: otp-from-assist
    description: No message type is both OTP and an Assist message.
    when:
      message.category: otp
      message.product: assist
    then:
      outcome: suppress
      reason: Never.

  - id: marketing-send
"""


def test_rules_that_can_never_fire_are_reported(rules_copy: RulesCopy) -> None:
    rules_copy.replace("routing.yaml", "  - id: marketing-send\n", SHADOWED)
    assert problems_of(rules_copy.root) == [
        "rules/routing.yaml:261:9: rule 'late-promotion' can never fire: the rules above it "
        "(opted-out-of-scope) decide every case it matches",
        "rules/routing.yaml:270:9: rule 'otp-from-assist' can never fire: its conditions "
        "match no possible message",
    ]


def test_partly_shadowed_rule_is_accepted(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "routing.yaml",
        "  - id: marketing-send\n",
        SHADOWED.split("\n\n")[0].replace("opted_out", "{in: [opted_out, opted_in]}")
        + "\n\n"
        "  - id: marketing-send\n",
    )
    policy = load_policy(rules_copy.root)
    assert "late-promotion" in [r.id for r in policy.rules]


def test_overlapping_windows_are_reported(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "quiet_hours.yaml",
        "      marketing_cap_24h: 3\n    US-OK",
        '        - {days: [mon], from: "19:00", to: "21:00"}\n'
        "      marketing_cap_24h: 3\n    US-OK",
    )
    assert problems_of(rules_copy.root) == [
        "rules/quiet_hours.yaml:25:11: US-FL: allowed[1] overlaps allowed[0] on mon\n"
        "    hint: merge the two windows"
    ]


def test_window_crossing_midnight_is_reported(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "quiet_hours.yaml", 'from: "10:00", to: "21:00"', 'from: "22:00", to: "06:00"'
    )
    assert problems_of(rules_copy.root) == [
        "rules/quiet_hours.yaml:84:74: window ends at 06:00 before it starts at 22:00\n"
        "    hint: a window cannot cross midnight; split it into two windows"
    ]


def test_section_in_two_files_is_reported(rules_copy: RulesCopy) -> None:
    rules_copy.write(
        "extra.yaml",
        "format: 1\nroles:\n  store:\n    owner: business\n"
        "    description: A store's own number.\n    carries: [marketing]\n",
    )
    assert problems_of(rules_copy.root) == [
        "rules/extra.yaml:2:1: section 'roles' is already defined in rules/catalogue.yaml:32\n"
        "    hint: each section lives in exactly one file; merge the two"
    ]


def test_unknown_key_suggests_the_right_one(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "routing.yaml",
        "    description: Marketing needs",
        "    descripton: Marketing needs",
    )
    assert problems_of(rules_copy.root) == [
        "rules/routing.yaml:145:5: rules[12]: missing required key 'description'",
        "rules/routing.yaml:146:5: rules[12]: unknown key 'descripton'\n"
        "    hint: did you mean 'description'?",
    ]


def test_every_problem_is_reported_at_once(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "routing.yaml", "business.accelerate: false", "business.accelerate: no"
    )
    rules_copy.replace(
        "routing.yaml", "message.product: assist", "message.product: asist"
    )
    rules_copy.replace(
        "routing.yaml", "      from: message_role\n", "      from: marketting\n"
    )
    rules_copy.replace(
        "catalogue.yaml",
        "    role: global\n    scope: otp\n",
        "    role: marketing\n    scope: marketing\n",
    )
    found = problems_of(rules_copy.root)
    assert len(found) == 4
    assert [p.split(":")[0] for p in found] == [
        "rules/catalogue.yaml",
        "rules/routing.yaml",
        "rules/routing.yaml",
        "rules/routing.yaml",
    ]


def test_invalid_yaml_is_positioned(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: 1\nrules:\n  - id: [unclosed\n", encoding="utf-8")
    (problem,) = problems_of(bad)
    assert problem.endswith(
        "bad.yaml:4:1: invalid YAML: expected ',' or ']', but got '<stream end>'"
    )


def test_merge_keys_and_tags_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "tagged.yaml"
    bad.write_text(
        "format: 1\nproducts:\n  core: &c\n    description: !!python/name:os.system x"
        "\n  assist:\n    <<: *c\n",
        encoding="utf-8",
    )
    found = problems_of(bad)
    assert any(
        "unsupported tag 'tag:yaml.org,2002:python/name:os.system'" in p for p in found
    )
    assert any("merge keys ('<<') are not supported" in p for p in found)


def test_missing_sections_and_empty_directories(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == [
        f"{tmp_path}: no rules files (*.yaml) in this directory"
    ]
    (tmp_path / "only.yaml").write_text("format: 1\n", encoding="utf-8")
    found = problems_of(tmp_path)
    assert f"{tmp_path}: no file defines the required section 'rules'" in found


def test_problem_without_position_prints_the_file_only() -> None:
    assert str(Problem("rules", 0, 0, "empty")) == "rules: empty"


def test_comments_do_not_change_the_policy_hash(rules_copy: RulesCopy) -> None:
    before = load_policy(rules_copy.root).hash
    rules_copy.append("routing.yaml", "# a reviewer's note\n")
    assert load_policy(rules_copy.root).hash == before
    rules_copy.replace(
        "quiet_hours.yaml", "marketing_cap_24h: 3", "marketing_cap_24h: 4"
    )
    assert load_policy(rules_copy.root).hash != before
