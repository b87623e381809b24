"""The validate and explain commands, through Click's runner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dispatcher.cli import main

from .conftest import RULES, RulesCopy


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_validate_reports_a_sound_policy() -> None:
    code, out, _ = run("validate", str(RULES))
    assert code == 0
    assert "sound policy" in out
    assert "10 message types" in out


def test_validate_exits_1_with_positioned_problems(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "routing.yaml", "business.accelerate: false", "business.accelerate: no"
    )
    code, out, err = run("validate", str(rules_copy.root))
    assert code == 1
    assert out == ""
    assert err.startswith(
        "rules: 1 problem\nrules/routing.yaml:37:28: business.accelerate:"
    )


def test_explain_traces_rule_by_rule() -> None:
    code, out, _ = run(
        "explain",
        "--rules",
        str(RULES),
        "--type",
        "promotion",
        "--consent",
        "marketing=opted_in",
        "--jurisdiction",
        "US-FL",
        "--date",
        "2026-12-03",
        "--time",
        "20:30",
    )
    assert code == 0
    assert out.startswith("promotion: DEFER until 2026-12-04 08:00 recipient time\n")
    assert "  MATCH quiet-hours" in out
    assert "recipient.jurisdiction           US-FL\n" in out
    assert "consent.transactional            none   (assumed)" in out


def test_explain_json_reads_facts_from_stdin() -> None:
    facts = {"message": {"type": "otp_code"}, "consent": {"otp": "opted_out"}}
    code, out, _ = run(
        "explain",
        "--rules",
        str(RULES),
        "--facts",
        "-",
        "--json",
        input=json.dumps(facts),
    )
    assert code == 0
    payload = json.loads(out)
    assert payload["decision"]["outcome"] == "suppress"
    assert payload["decision"]["rule"]["id"] == "otp-opted-out"
    assert payload["decision"]["trace"][-1]["matched"] is True
    assert "consent.otp" not in payload["assumed"]


def test_explain_all_types_prints_one_line_each() -> None:
    code, out, _ = run(
        "explain", "--rules", str(RULES), "--all-types", "--reply-role", "global"
    )
    assert code == 0
    assert "  help_reply" in out
    assert "SEND from the global number" in out
    assert len([line for line in out.splitlines() if line.startswith("  ")]) == 10


def test_explain_refuses_bad_facts_with_every_problem() -> None:
    code, _, err = run(
        "explain",
        "--rules",
        str(RULES),
        "--type",
        "promotion",
        "--number",
        "marketing=maybe",
        "--time",
        "25:00",
    )
    assert code == 1
    assert "numbers.marketing: 'maybe' is not one of" in err
    assert "recipient.local_time: expected HH:MM, got '25:00'" in err


def test_explain_needs_a_message_type() -> None:
    code, _, err = run("explain", "--rules", str(RULES))
    assert code == 2
    assert "name a message type" in err


def test_bad_config_exits_3(tmp_path: object) -> None:
    from pathlib import Path

    config = Path(str(tmp_path)) / "config.yaml"
    config.write_text(
        "format: 1\nprovider:\n  kind: carrier-pigeon\n", encoding="utf-8"
    )
    code, _, err = run("--config", str(config), "validate")
    assert code == 3
    assert "provider.kind: 'carrier-pigeon' is not one of simulator, twilio" in err


def test_example_config_is_valid() -> None:
    from dispatcher.config import load_config

    config = load_config(RULES.parent / "config.example.yaml")
    assert config.rules == RULES
    assert config.provider == "simulator"
    assert config.effective_database_url.startswith("sqlite:///")
