"""dispatcher verify: the example policy passes; planted faults give counterexamples."""

from __future__ import annotations

import dataclasses
import importlib
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatcher import durable_engine, load_policy
from dispatcher.cli import main
from dispatcher.verify import verify

RULES = Path(__file__).resolve().parent.parent / "rules"


def _copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target, ignore=shutil.ignore_patterns("tests"))
    return target


def _drop_rule(rules_dir: Path, rule_id: str) -> None:
    path = rules_dir / "routing.yaml"
    text = path.read_text()
    start = text.index(f"  - id: {rule_id}\n")
    end = text.find("\n  - id: ", start + 1)
    path.write_text(text[:start] + text[end + 1 :])


def test_example_policy_verifies_with_both_engines() -> None:
    pytest.importorskip("durable.engine")
    result = verify(load_policy(RULES))
    assert result.ok
    assert result.points > 1000
    assert result.disagreement_count == 0
    assert not result.idle_rules


def test_verify_command_exits_0_on_the_example() -> None:
    outcome = CliRunner().invoke(main, ["verify", str(RULES), "--engine", "compiled"])
    assert outcome.exit_code == 0, outcome.output
    assert "Result: PASS" in outcome.output


def test_planted_violation_prints_a_counterexample(tmp_path: Path) -> None:
    rules = _copy_rules(tmp_path)
    _drop_rule(rules, "marketing-needs-opt-in")
    outcome = CliRunner().invoke(main, ["verify", str(rules), "--engine", "compiled"])
    assert outcome.exit_code == 1
    out = outcome.output
    assert "VIOLATION of invariant no-marketing-without-opt-in" in out
    block = out[out.index("VIOLATION of invariant no-marketing-without-opt-in") :]
    assert re.search(r"message\s+type=(promotion|accelerate_campaign)", block)
    assert re.search(r"consent\s+marketing=(none|opted_out)", block)
    assert "decision  send from marketing" in block
    assert "rule      marketing-send (" in block
    assert "Result: FAIL" in out


def test_counterexample_really_breaks_the_invariant(tmp_path: Path) -> None:
    rules = _copy_rules(tmp_path)
    _drop_rule(rules, "marketing-needs-opt-in")
    result = verify(load_policy(rules), durable=False)
    (violation,) = [
        v for v in result.violations if v.invariant.id == "no-marketing-without-opt-in"
    ]
    assert violation.facts.consent["marketing"].value != "opted_in"
    assert violation.decision.sends
    assert violation.decision.rule.id == "marketing-send"


def test_a_rule_that_never_decides_is_reported_with_its_position() -> None:
    policy = load_policy(RULES)
    send = next(r for r in policy.rules if r.id == "marketing-send")
    shadowed = dataclasses.replace(
        send,
        ref=dataclasses.replace(send.ref, id="shadowed-send"),
        index=len(policy.rules),
    )
    planted = dataclasses.replace(policy, rules=(*policy.rules, shadowed))
    result = verify(planted, durable=False)
    assert [r.id for r in result.idle_rules] == ["shadowed-send"]
    assert not result.ok


def test_verify_without_durable_rules_says_so_and_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.import_module

    def fail(name: str, package: str | None = None) -> object:
        if name.startswith("durable"):
            raise ImportError("No module named 'durable'")
        return real(name, package)

    monkeypatch.setattr(durable_engine.importlib, "import_module", fail)
    outcome = CliRunner().invoke(main, ["verify", str(RULES)])
    assert outcome.exit_code == 1
    assert "durable_rules is not installed" in outcome.output
    assert "--engine compiled" in outcome.output
