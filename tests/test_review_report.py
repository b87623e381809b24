"""dispatcher report: Markdown and a self-contained HTML page that renders in
Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatcher import load_policy
from dispatcher.cli import main

RULES = Path(__file__).resolve().parent.parent / "rules"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _report(tmp_path: Path, fmt: str) -> str:
    out = tmp_path / f"report.{fmt}"
    outcome = CliRunner().invoke(
        main,
        ["report", str(RULES), "--format", fmt, "-o", str(out), "--engine", "compiled"],
    )
    assert outcome.exit_code == 0, outcome.output
    return out.read_text()


def test_markdown_names_every_rule_and_the_hash(tmp_path: Path) -> None:
    text = _report(tmp_path, "markdown")
    policy = load_policy(RULES)
    for rule in policy.rules:
        assert f"| {rule.id} |" in text
    assert policy.hash in text
    assert "Result: PASS" in text
    assert "US-TX | Texas | mon-sat 09:00-21:00; sun 12:00-21:00" in text


def test_html_is_self_contained(tmp_path: Path) -> None:
    page = _report(tmp_path, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert "http://" not in page
    assert "https://" not in page
    assert "<style>" in page


def _chromium() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("DISPATCHER_TEST_BROWSER_REQUIRED"):
            pytest.fail(f"chromium is required but missing at {CHROMIUM}")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    return CHROMIUM


@pytest.mark.browser
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    page = tmp_path / "report.html"
    page.write_text(_report(tmp_path, "html"))
    shot = tmp_path / "report.png"
    profile = tmp_path / "profile"
    run = subprocess.run(
        [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.exists(), run.stderr
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG")
    assert len(data) > 20_000  # a blank page compresses to a few kilobytes
    dom = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    for rule in load_policy(RULES).rules:
        assert f"<td>{rule.id}</td>" in dom
    assert 'id="policy-hash"' in dom
