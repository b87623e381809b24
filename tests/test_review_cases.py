"""dispatcher test: YAML rule tests with per-rule coverage."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dispatcher.cli import main

RULES = Path(__file__).resolve().parent.parent / "rules"


def test_example_cases_pass_with_full_coverage() -> None:
    outcome = CliRunner().invoke(main, ["test", str(RULES), "--min-coverage", "100"])
    assert outcome.exit_code == 0, outcome.output
    assert "0 failed; rule coverage 100.0%" in outcome.output


def test_a_wrong_expectation_fails_with_position_and_rule(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "format: 1\n"
        "cases:\n"
        "  - name: promotion without opt-in\n"
        "    facts:\n"
        "      message: {type: promotion}\n"
        "    expect: {outcome: send, from: marketing}\n"
    )
    outcome = CliRunner().invoke(main, ["test", str(RULES), "--cases", str(cases)])
    assert outcome.exit_code == 1
    assert "FAIL" in outcome.output
    assert "cases.yaml:3 promotion without opt-in" in outcome.output
    assert "outcome: expected send, got suppress" in outcome.output
    assert "decided by marketing-needs-opt-in" in outcome.output


def test_minimum_coverage_is_enforced(tmp_path: Path) -> None:
    cases = tmp_path / "one.yaml"
    cases.write_text(
        "format: 1\n"
        "cases:\n"
        "  - name: otp\n"
        "    facts: {message: {type: otp_code}}\n"
        "    expect: {outcome: send, from: global, rule: otp-from-global}\n"
    )
    runner = CliRunner()
    ok = runner.invoke(main, ["test", str(RULES), "--cases", str(cases)])
    assert ok.exit_code == 0, ok.output
    low = runner.invoke(
        main, ["test", str(RULES), "--cases", str(cases), "--min-coverage", "50"]
    )
    assert low.exit_code == 1
    assert "<- no case" in low.output


def test_schema_errors_in_case_files_are_positioned(tmp_path: Path) -> None:
    cases = tmp_path / "bad.yaml"
    cases.write_text(
        "format: 1\n"
        "cases:\n"
        "  - name: typo\n"
        "    facts: {message: {type: otp_code}}\n"
        "    expect: {outcom: send}\n"
    )
    outcome = CliRunner().invoke(main, ["test", str(RULES), "--cases", str(cases)])
    assert outcome.exit_code == 1
    assert "bad.yaml:5:" in outcome.output
