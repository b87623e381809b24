"""The data commands end to end, through Click, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatcher.cli import main

from .conftest import Database

RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture
def run(db: Database, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "dispatcher.yaml"
    config.write_text(
        f"format: 1\nrules: {RULES}\ndata_dir: {tmp_path}\n"
        f"database_url: {json.dumps(db.url)}\n"
    )
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["--config", str(config), *args])
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def test_second_number_flow_from_the_command_line(run) -> None:  # type: ignore[no-untyped-def]
    run("db", "upgrade")
    run("business", "add", "Sudsy Laundry", "--store", "Main")
    run(
        "numbers",
        "add",
        "+12015550123",
        "--role",
        "marketing",
        "--business",
        "Sudsy Laundry",
        "--status",
        "registered",
    )
    refused = run("numbers", "migrate", "Sudsy Laundry", "+12015550124", code=1)
    assert "uses neither Assist nor Accelerate" in refused
    run("business", "enrol", "Sudsy Laundry", "--assist")
    assert run("numbers", "migrate", "Sudsy Laundry", "+12015550124").startswith(
        "migrated"
    )
    assert run("numbers", "migrate", "Sudsy Laundry", "+12015550124").startswith(
        "already migrated"
    )
    refused = run(
        "numbers",
        "add",
        "+12015550125",
        "--role",
        "transactional",
        "--business",
        "1",
        code=1,
    )
    assert refused.startswith("error: role: business 1 already has a transactional")
    listing = run("numbers", "list")
    assert "marketing" in listing
    assert "transactional" in listing
    assert "retired +1******0124 (transactional)" in run(
        "numbers", "retire", "+12015550124"
    )


def test_consent_from_the_command_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("business", "add", "Sudsy")
    refused = run(
        "consent",
        "opt-in",
        "+12015550199",
        "--scope",
        "marketing",
        "--business",
        "Sudsy",
        code=1,
    )
    assert refused == (
        "error: source: an opt-in needs its source (one of web_form, keyword, agent, "
        "provider_error_21610, import)\n"
    )
    run(
        "consent",
        "opt-in",
        "+12015550199",
        "--scope",
        "marketing",
        "--business",
        "Sudsy",
        "--source",
        "web_form",
        "--text",
        "Yes to offers",
        "--text-version",
        "v1",
    )
    run(
        "consent",
        "opt-out",
        "+12015550199",
        "--scope",
        "otp",
        "--source",
        "keyword",
        "--source-ref",
        "SM42",
    )
    shown = run("consent", "show", "+12015550199")
    assert "Sudsy: marketing=opted_in, transactional=none, otp=opted_out" in shown
    assert "12015550199" not in shown
    assert "wrote 2 records" in run("consent", "export", "--out", str(tmp_path / "b"))
    assert (tmp_path / "b" / "consent_evidence.json").exists()


def test_bad_number_is_refused_with_the_field(run) -> None:  # type: ignore[no-untyped-def]
    out = run("numbers", "add", "12345", "--role", "marketing", code=1)
    assert out.startswith("error: number: not in E.164 form")
