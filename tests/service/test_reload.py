"""Hot reload: a sound version is swapped in; an unsound one is refused, the old stays."""

from __future__ import annotations

import pytest

from dispatcher.errors import RulesError
from dispatcher.service.reload import PolicyHolder

from ..conftest import RulesCopy


def test_a_bad_version_is_refused_and_the_running_one_stays(
    rules_copy: RulesCopy, caplog: pytest.LogCaptureFixture
) -> None:
    holder = PolicyHolder(rules_copy.root)
    running = holder.current()
    rules_copy.replace("routing.yaml", "outcome: suppress", "outcome: maybe")

    outcome = holder.reload()

    assert not outcome.applied
    assert outcome.problems
    assert holder.current() is running


def test_a_sound_version_is_swapped_in(rules_copy: RulesCopy) -> None:
    holder = PolicyHolder(rules_copy.root)
    before = holder.current().policy.hash
    rules_copy.replace("keywords.yaml", "fr: [ARRET]", "fr: [ARRET, ARRETEZ]")

    outcome = holder.reload()

    assert outcome.applied
    assert holder.current().policy.hash == outcome.policy_hash != before
    assert holder.engine() is holder.current().engine


def test_a_service_does_not_start_on_unsound_rules(rules_copy: RulesCopy) -> None:
    rules_copy.replace("routing.yaml", "outcome: suppress", "outcome: maybe")
    with pytest.raises(RulesError):
        PolicyHolder(rules_copy.root)
