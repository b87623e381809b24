"""`dispatcher worker` loads new rules on SIGHUP, and refuses unsound ones."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import RULES

pytestmark = pytest.mark.slow


def _wait_for(log: Path, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(encoding="utf-8", errors="replace")
        if text in content:
            return content
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged within {timeout} s:\n{content}")


def test_sighup_swaps_sound_rules_and_refuses_unsound_ones(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules, ignore=shutil.ignore_patterns("tests"))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"format: 1\nrules: {rules}\ndata_dir: {tmp_path / 'data'}\n"
        "provider:\n  kind: simulator\n",
        encoding="utf-8",
    )
    env = {**os.environ, "DISPATCHER_CONFIG": str(config)}
    command = [str(Path(sys.executable).with_name("dispatcher"))]
    subprocess.run(
        [*command, "db", "upgrade"], env=env, check=True, capture_output=True
    )
    log = tmp_path / "worker.log"
    with log.open("w", encoding="utf-8") as out:
        worker = subprocess.Popen(
            [*command, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_for(log, "worker_started")
        routing = rules / "routing.yaml"
        sound = routing.read_text(encoding="utf-8")
        routing.write_text(
            sound.replace("business.accelerate: false", "business.accelerate: no"),
            encoding="utf-8",
        )
        worker.send_signal(signal.SIGHUP)
        refused = _wait_for(log, "policy_reload_refused")
        assert "is not a possible value" in refused
        routing.write_text(
            sound.replace("Marketing leaves from", "Marketing goes from"),
            encoding="utf-8",
        )
        worker.send_signal(signal.SIGHUP)
        _wait_for(log, "policy_reloaded")
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
