"""Shared fixtures: the example policy, its engine, editable copies of the rules."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from dispatcher import Engine, Facts, Policy, load_policy
from dispatcher.facts import Channel, ConsentState, NumberStatus

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "rules"

settings.register_profile("dev", max_examples=150, deadline=None)
settings.register_profile(
    "ci", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(RULES)


@pytest.fixture(scope="session")
def engine(policy: Policy) -> Engine:
    return Engine(policy)


def baseline_facts(policy: Policy, **changes: Any) -> Facts:
    """A customer who agreed to everything, on a Thursday afternoon in New York.

    Pass ``numbers={...}`` or ``consent={...}`` to change single entries of those maps.
    """
    numbers = dict.fromkeys(policy.roles, NumberStatus.REGISTERED)
    numbers.update(changes.pop("numbers", {}))
    consent = dict.fromkeys(policy.scopes, ConsentState.OPTED_IN)
    consent.update(changes.pop("consent", {}))
    values: dict[str, Any] = {
        "message_type": "order_status",
        "channel": Channel.SMS,
        "assist": True,
        "accelerate": True,
        "numbers": numbers,
        "consent": consent,
        "jurisdiction": "US-NY",
        "local_date": dt.date(2026, 12, 3),
        "local_time": dt.time(14, 0),
        "marketing_sent_24h": 0,
        "reply_role": None,
    }
    values.update(changes)
    return Facts(**values)


@pytest.fixture
def facts(policy: Policy) -> Callable[..., Facts]:
    return lambda **changes: baseline_facts(policy, **changes)


class RulesCopy:
    """A writable copy of the example rules in a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def replace(self, name: str, old: str, new: str) -> None:
        file = self.root / name
        text = file.read_text(encoding="utf-8")
        if old not in text:
            raise AssertionError(f"{old!r} is not in {name}")
        file.write_text(text.replace(old, new, 1), encoding="utf-8")

    def append(self, name: str, text: str) -> None:
        file = self.root / name
        file.write_text(file.read_text(encoding="utf-8") + text, encoding="utf-8")

    def write(self, name: str, text: str) -> None:
        (self.root / name).write_text(text, encoding="utf-8")


@pytest.fixture
def rules_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RulesCopy:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target, ignore=shutil.ignore_patterns("tests"))
    # Problems are reported relative to the working directory: keep them short.
    monkeypatch.chdir(tmp_path)
    return RulesCopy(target)
