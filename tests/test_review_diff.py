"""dispatcher diff: the exact change set between two known versions of the rules."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from dispatcher import load_policy
from dispatcher.cli import main
from dispatcher.diff import diff_policies

RULES = Path(__file__).resolve().parent.parent / "rules"


def _florida_until_21(tmp_path: Path) -> Path:
    """The example policy as it would be if Florida allowed sends until 21:00."""
    target = tmp_path / "old"
    shutil.copytree(RULES, target, ignore=shutil.ignore_patterns("tests"))
    path = target / "quiet_hours.yaml"
    text = path.read_text()
    start = text.index("    US-FL:")
    end = text.index("    US-OK:")
    block = text[start:end].replace('to: "20:00"', 'to: "21:00"')
    path.write_text(text[:start] + block + text[end:])
    return target


EXPECTED = {
    ("promotion", "send from marketing", "marketing-send"),
    ("promotion", "suppress", "marketing-cap"),
    ("accelerate_campaign", "send from marketing", "marketing-send"),
    ("accelerate_campaign", "suppress", "marketing-cap"),
    *(
        (name, "send from transactional", "transactional-send")
        for name in (
            "order_status",
            "ready_for_pickup",
            "delivery_notification",
            "assist_escalation",
        )
    ),
    *(
        (name, "send from marketing", "transactional-falls-back-to-only-number")
        for name in ("order_status", "ready_for_pickup", "delivery_notification")
    ),
}


def test_florida_window_change_is_exactly_20_to_21_in_florida(tmp_path: Path) -> None:
    old = load_policy(_florida_until_21(tmp_path))
    new = load_policy(RULES)
    diff = diff_policies(old, new)
    found = {(g.slice_text, g.old, g.rules[0]) for g in diff.groups}
    assert found == EXPECTED
    for group in diff.groups:
        assert group.where.startswith("US-FL: every day 20:00-21:00")
        assert group.new.startswith("defer until allowed time")
        for change in group.changes:
            f = change.point.facts
            assert f.jurisdiction == "US-FL"
            assert dt.time(20) <= f.local_time < dt.time(21)
    assert diff.rule_changes == {}


def test_identical_policies_have_no_changes() -> None:
    policy = load_policy(RULES)
    diff = diff_policies(policy, policy)
    assert diff.groups == []
    assert diff.points > 0


def test_diff_command_formats(tmp_path: Path) -> None:
    old = _florida_until_21(tmp_path)
    runner = CliRunner()
    text = runner.invoke(main, ["diff", str(old), str(RULES)])
    assert text.exit_code == 0, text.output
    assert (
        "promotion -- US-FL: every day 20:00-21:00 (0-2 marketing sent in 24 h)"
        in text.output
    )
    assert ": send from marketing -> defer until allowed time" in text.output
    as_json = runner.invoke(main, ["diff", str(old), str(RULES), "--format", "json"])
    payload = json.loads(as_json.output)
    assert payload["changed_points"] == sum(g["count"] for g in payload["groups"])
    assert len(payload["groups"]) == len(EXPECTED)
    markdown = runner.invoke(
        main, ["diff", str(old), str(RULES), "--format", "markdown"]
    )
    assert "| message | where and when |" in markdown.output
