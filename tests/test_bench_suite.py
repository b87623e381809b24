"""The benchmark suite's summary: each result file becomes rows with baseline, ratio and
target (bench/suite.py; the benchmarks themselves are not run here)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "suite.py"


@pytest.fixture
def suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_suite", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_suite", module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    return module


def write(directory: Path, name: str, payload: object) -> None:
    (directory / f"{name}.json").write_text(json.dumps(payload), encoding="utf-8")


def test_each_figure_is_shown_with_its_baseline_ratio_and_target(
    suite: ModuleType, tmp_path: Path
) -> None:
    queueing = {"database": "sqlite", "recipients": 10_000, "ratio": 0.31}
    queueing |= {"queueing_rows_per_s": 7_395, "bulk_insert_rows_per_s": 23_348}
    write(tmp_path, "queueing", {"results": [queueing]})
    load = {"target_rate": 200, "seconds": 30, "database": "sqlite", "p50_ms": 9.5}
    load |= {"p99_ms": 31.0, "achieved_rate": 199.8, "opt_outs_present": 6_000}
    write(tmp_path, "inbound_load", load | {"requests": 6_000})
    write(tmp_path, "inbound_idle", {"target_rate": 10, "p50_ms": 4.0, "p99_ms": 6.2})
    write(tmp_path, "memory", {"decisions": {"oops": 1}})

    summary = suite.summarize([], "2026-12-03T16:00:00+00:00", quick=False)

    assert (
        "| campaign queueing, sqlite, 10,000 recipients, rows/s | 7,395 "
        "| bulk insert 23,348 | 0.31 | >= 0.30 | yes |"
    ) in summary
    assert "| 10/s: 4 / 6 | p99 5.0x | 200/s, p99 < 20 ms | **no** |" in summary
    assert "| memory | unreadable result (KeyError('decisions'))" in summary
    assert "engine" not in summary  # no result file, no row


def test_an_unknown_step_is_refused_with_the_known_ones() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "engine,nope"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "unknown steps ['nope']; known: engine, verify, queueing" in done.stderr
