"""``dispatcher serve --processes N``: several API processes on one port, PostgreSQL only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatcher.cli import main

from ..data.conftest import postgres_server_url

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from inbound_load import run  # noqa: E402


def test_several_processes_are_refused_on_sqlite(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"format: 1\nrules: {REPO / 'rules'}\ndata_dir: {tmp_path / 'data'}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    upgraded = runner.invoke(main, ["--config", str(config), "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output

    served = runner.invoke(main, ["--config", str(config), "serve", "--processes", "2"])

    assert served.exit_code == 2
    # Log lines of the start-up may come before it.
    assert served.stderr.endswith(
        "error: --processes: several API processes need PostgreSQL (SQLite takes one "
        "writer at a time) and cannot run --check; use --processes 1\n"
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_stops_sent_to_two_api_processes_all_land() -> None:
    result = run(
        rate=20,
        seconds=5,
        workers=0,
        threads=8,
        database_url=postgres_server_url(),
        processes=2,
    )
    assert result["statuses"] == {200: 100}
    assert result["opt_outs_present"] == 100
