"""Rule tests: YAML cases of facts and the decision a policy must make for them.

Case files live beside the rules, in ``rules/tests/*.yaml`` (the policy loader reads
only the files directly inside ``rules/``), and follow
``schemas/rule_tests.schema.json``::

    format: 1
    baseline:                       # optional, merged over BASELINE
      recipient: {jurisdiction: US-TX}
    cases:
      - name: promotion to an opted-in recipient
        facts:
          message: {type: promotion}
          consent: {marketing: opted_in}
        expect: {outcome: send, from: marketing, rule: marketing-send}

Facts merge section by section: the case's over the file's baseline over
:data:`BASELINE`. Only the keys given under ``expect`` are checked.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _resources, _yaml
from ._validation import schema_problems
from .decision import Decision
from .engine import Engine
from .errors import CasesError, FactsError, Problem
from .facts import parse_facts
from .loader import display_path
from .policy import Policy

# The facts a case starts from; numbers and consent are filled per policy.
BASELINE: dict[str, dict[str, Any]] = {
    "message": {"channel": "sms"},
    "business": {"assist": False, "accelerate": False},
    "numbers": {},
    "consent": {},
    "recipient": {
        "jurisdiction": "unknown",
        "local_date": "2026-06-03",
        "local_time": "12:00",
        "marketing_sent_24h": 0,
    },
    "reply": {"role": None},
}


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    file: str
    line: int
    facts: dict[str, Any]
    expect: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One case run: the decision and what differed from the expectation."""

    case: Case
    decision: Decision | None
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(slots=True)
class CaseRun:
    policy: Policy
    outcomes: list[Outcome] = field(default_factory=list)
    decided: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]

    @property
    def coverage(self) -> float:
        """Percentage of the policy's rules that decided at least one case."""
        rules = self.policy.rules
        if not rules:
            return 100.0
        hit = sum(1 for rule in rules if self.decided[rule.id])
        return 100.0 * hit / len(rules)


def case_files(path: Path) -> list[Path]:
    """The case files of a directory (``*.yaml``/``*.yml``), or the one file given."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    return [path]


def default_cases_dir(rules_path: Path) -> Path:
    return (rules_path if rules_path.is_dir() else rules_path.parent) / "tests"


def load_cases(path: Path) -> list[Case]:
    """Read every case file under ``path``; raise CasesError listing every problem."""
    if not path.exists():
        raise CasesError(
            [Problem(display_path(path), 0, 0, "no such file or directory")]
        )
    schema = _resources.schema("rule_tests")
    problems: list[Problem] = []
    cases: list[Case] = []
    for file in case_files(path):
        name = display_path(file)
        doc, found = _yaml.load(file.read_text(encoding="utf-8"), name)
        problems.extend(found)
        if doc is None or not isinstance(doc.data, dict):
            if doc is not None:
                problems.append(
                    Problem(name, 1, 1, "expected a mapping with format and cases")
                )
            continue
        found = schema_problems(doc, schema)
        problems.extend(found)
        if found:
            continue
        baseline = doc.data.get("baseline", {})
        for index, raw in enumerate(doc.data["cases"]):
            mark = doc.position(("cases", index))
            cases.append(
                Case(
                    raw["name"],
                    name,
                    mark.line,
                    _merge(baseline, raw["facts"]),
                    dict(raw["expect"]),
                )
            )
    if problems:
        raise CasesError(problems)
    if not cases:
        raise CasesError(
            [Problem(display_path(path), 0, 0, "no rule-test cases found")]
        )
    return cases


def _merge(*layers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


def facts_document(policy: Policy, case: Case) -> dict[str, Any]:
    """The complete facts document of ``case``: the baselines with the case's facts on
    top."""
    base = copy.deepcopy(BASELINE)
    base["numbers"] = dict.fromkeys(policy.roles, "registered")
    base["consent"] = dict.fromkeys(policy.scopes, "none")
    return _merge(base, case.facts)


def run_cases(policy: Policy, cases: list[Case]) -> CaseRun:
    """Decide every case with the compiled engine and compare with its expectation."""
    engine = Engine(policy)
    run = CaseRun(policy)
    for case in cases:
        try:
            facts = parse_facts(facts_document(policy, case))
        except FactsError as exc:
            run.outcomes.append(Outcome(case, None, (str(exc),)))
            continue
        decision = engine.decide(facts)
        run.decided[decision.rule.id] += 1
        run.outcomes.append(
            Outcome(case, decision, tuple(_compare(case.expect, decision)))
        )
    return run


def _compare(expect: dict[str, Any], decision: Decision) -> list[str]:
    actual = {
        "outcome": decision.outcome.value,
        "from": decision.role,
        "rule": decision.rule.id,
        "until": decision.until.value if decision.until else None,
        "not_before_local": (
            decision.not_before_local.isoformat(timespec="minutes")
            if decision.not_before_local
            else None
        ),
    }
    return [
        f"{key}: expected {value}, got {actual[key]}"
        for key, value in expect.items()
        if actual[key] != value
    ]
