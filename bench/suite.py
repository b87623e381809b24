"""The whole benchmark suite in one command, bounded in time, with a Markdown summary.

    .venv/bin/python bench/suite.py                  # everything (about 45 minutes)
    .venv/bin/python bench/suite.py --quick          # small sizes (about 8 minutes)
    .venv/bin/python bench/suite.py --only engine,queueing
    .venv/bin/python bench/suite.py --summarize      # rewrite the summary, run nothing

Runs each benchmark script of this directory as its own process, one after the other
(they would disturb each other's figures otherwise), each under a time limit: a step
that overruns is stopped and reported as such, and the suite goes on. Each script writes
its own ``bench/results/<name>.json``, every contender measured side by side in the same
run. Afterwards this script collects them into ``bench/results/suite.json`` (with the
load average around each step) and writes ``docs/bench-summary.md``: each figure with
its baseline, the ratio and the target.

PostgreSQL: ``--postgres-url``, else ``$DISPATCHER_TEST_POSTGRES_URL``, else the local
server. The delivery and delay steps send with the wall clock to New Jersey numbers and
refuse to run outside 08:10-20:30 New York time; the suite then reports them as skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SUMMARY = ROOT / "docs" / "bench-summary.md"
PYTHON = sys.executable


@dataclass(frozen=True)
class Step:
    """One script run: its arguments (full and ``--quick``), result file and limit."""

    name: str
    script: str
    args: tuple[str, ...]
    quick: tuple[str, ...]
    results: tuple[str, ...]
    minutes: float
    needs_postgres: bool = False


STEPS = (
    Step(
        "engine",
        "engine_bench.py",
        (),
        ("--facts", "5000", "--rounds", "3"),
        ("engine",),
        5,
    ),
    Step("verify", "verify_bench.py", (), (), ("verify",), 3),
    Step(
        "queueing",
        "queueing_bench.py",
        ("--sizes", "10000,100000,1000000", "--rounds", "3", "--limit", "420"),
        ("--sizes", "10000", "--rounds", "2"),
        ("queueing",),
        40,
        needs_postgres=True,
    ),
    Step(
        "delivery",
        "delivery_bench.py",
        ("--seconds", "15"),
        ("--workers", "1,2,4", "--seconds", "5", "--messages", "3000"),
        ("delivery",),
        8,
        needs_postgres=True,
    ),
    Step(
        "delivery-latency",
        "delivery_bench.py",
        ("--latency-ms", "150", "--seconds", "15", "--results", "delivery-latency"),
        (
            *("--latency-ms", "150", "--workers", "1,4", "--seconds", "5"),
            *("--messages", "3000", "--warmup", "10", "--results", "delivery-latency"),
        ),
        ("delivery-latency",),
        8,
        needs_postgres=True,
    ),
    Step(
        "delivery-concurrency",
        "delivery_bench.py",
        (
            *("--latency-ms", "150", "--workers", "1,2,4", "--concurrency", "8"),
            *("--seconds", "15", "--results", "delivery-concurrency"),
        ),
        (
            *("--latency-ms", "150", "--workers", "1,4", "--concurrency", "8"),
            *("--seconds", "5", "--messages", "3000", "--warmup", "10"),
            *("--results", "delivery-concurrency"),
        ),
        ("delivery-concurrency",),
        6,
        needs_postgres=True,
    ),
    Step(
        "pacing",
        "delivery_bench.py",
        # 8 numbers at 5/s: 40 messages a second, half of what 4 workers manage on 2
        # cores, so that the pacers and not the workers set the rate.
        ("--workers", "4", "--pace", "5", "--seconds", "30", "--results", "pacing"),
        (
            *("--workers", "4", "--pace", "5", "--seconds", "10"),
            *("--messages", "3000", "--results", "pacing"),
        ),
        ("pacing",),
        5,
        needs_postgres=True,
    ),
    Step(
        "otp-delay",
        "otp_delay_bench.py",
        (),
        ("--campaign", "10000", "--seconds", "10", "--batches", "20"),
        ("otp_delay",),
        15,
        needs_postgres=True,
    ),
    Step(
        "webhooks",
        "inbound_load.py",
        # The baseline: the same server (no in-process workers) at a twentieth of the rate.
        (
            "--rate",
            "10",
            "--seconds",
            "30",
            "--workers",
            "0",
            "--results",
            "inbound_idle",
        ),
        (
            "--rate",
            "10",
            "--seconds",
            "5",
            "--workers",
            "0",
            "--results",
            "inbound_idle",
        ),
        ("inbound_idle",),
        3,
    ),
    Step(
        "webhooks-load",
        "inbound_load.py",
        ("--rate", "200", "--seconds", "30", "--workers", "0"),
        ("--rate", "200", "--seconds", "5", "--workers", "0"),
        ("inbound_load",),
        5,
    ),
    Step(
        "memory",
        "memory_bench.py",
        ("--campaign", "1000000"),
        ("--decisions", "200000", "--campaign", "100000", "--databases", "sqlite"),
        ("memory",),
        25,
        needs_postgres=True,
    ),
)


def run_step(step: Step, quick: bool, env: dict[str, str]) -> dict[str, Any]:
    """Run one script under its limit; what happened, without its figures."""
    command = [PYTHON, str(ROOT / "bench" / step.script)]
    command += step.quick if quick else step.args
    shown = " ".join(["bench/" + step.script, *(step.quick if quick else step.args)])
    print(f"\n== {step.name}: {shown}", flush=True)
    load = os.getloadavg()[0]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            timeout=step.minutes * 60,
            capture_output=True,
            text=True,
        )
    except subprocess.TimeoutExpired:
        status, tail = f"stopped after {step.minutes:g} min", ""
    else:
        lines = (done.stdout + done.stderr).strip().splitlines()
        tail = "\n".join(lines[-12:])
        status = "ok" if done.returncode == 0 else f"failed ({done.returncode})"
        if done.returncode and "New York" in done.stdout + done.stderr:
            status = "skipped: outside sending hours"
    seconds = time.monotonic() - started
    print(tail)
    print(f"-- {step.name}: {status} in {seconds:.0f} s", flush=True)
    return {
        "step": step.name,
        "command": ".venv/bin/python " + shown,
        "status": status,
        "seconds": round(seconds, 1),
        "load_average_before": round(load, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def _read(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


# --- the summary ----------------------------------------------------------------------
# One function per result file: the rows it adds to the table, each
# (what, figure, baseline, ratio, target, met).

Row = tuple[str, str, str, str, str, str]


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _engine(data: dict[str, Any]) -> list[Row]:
    results = data["results"]
    compiled = results["compiled engine"]
    hand = results["hand-written function"]
    rows: list[Row] = [
        (
            "policy engine, decisions/s",
            f"{compiled['decisions_per_second']:,}",
            f"hand-written function {hand['decisions_per_second']:,}",
            f"{compiled['ratio_to_hand_written']:.2f}x",
            "",
            "",
        )
    ]
    durable = results.get("durable_rules (same policy)")
    if durable:
        ratio = compiled["decisions_per_second"] / durable["decisions_per_second"]
        rows.append(
            (
                "policy engine vs durable_rules",
                f"{compiled['decisions_per_second']:,}",
                f"durable_rules {durable['decisions_per_second']:,}",
                f"{ratio:.0f}x",
                ">= 100x",
                _met(ratio >= 100),
            )
        )
    return rows


def _verify(data: dict[str, Any]) -> list[Row]:
    return [
        (
            f"verify the whole fact space ({data['points']:,} points), s",
            f"{data['verify_wall_s']:.2f}",
            f"durable_rules alone {data['durable_rules_s']:.2f} s",
            f"compiled {data['compiled_speed_over_durable_rules']:.0f}x durable_rules",
            "< 2 s",
            _met(data["verify_wall_s"] < 2),
        )
    ]


def _queueing(data: dict[str, Any]) -> list[Row]:
    return [
        (
            f"campaign queueing, {r['database']}, {r['recipients']:,} recipients, rows/s",
            f"{r['queueing_rows_per_s']:,}",
            f"bulk insert {r['bulk_insert_rows_per_s']:,}",
            f"{r['ratio']:.2f}",
            ">= 0.30",
            _met(r["ratio"] >= 0.30),
        )
        for r in data["results"]
    ]


def _delivery(label: str) -> Callable[[dict[str, Any]], list[Row]]:
    def rows(data: dict[str, Any]) -> list[Row]:
        out: list[Row] = []
        single = next((r for r in data["results"] if r["workers"] == 1), None)
        for r in data["results"]:
            if single is None or r["workers"] == 1:
                continue
            speedup = r["messages_per_s"] / single["messages_per_s"]
            target = ">= 3x" if r["workers"] == 4 else ""
            out.append(
                (
                    f"delivery{label}, {r['workers']} workers, msg/s",
                    f"{r['messages_per_s']:.1f}",
                    f"1 worker {single['messages_per_s']:.1f}",
                    f"{speedup:.2f}x (efficiency {speedup / r['workers']:.2f})",
                    target,
                    _met(speedup >= 3) if target else "",
                )
            )
        return out

    return rows


def _pacing(data: dict[str, Any]) -> list[Row]:
    pace = data["pace_segments_per_s"]
    rates = [rate for r in data["results"] for rate in r["per_number_per_s"].values()]
    if not rates:
        return []
    worst = max(rates, key=lambda rate: abs(rate - pace))
    return [
        (
            f"pacing, {len(rates)} numbers, measured msg/s per number (1 segment each)",
            f"{min(rates):.2f}-{max(rates):.2f}",
            f"configured {pace:g}",
            f"{worst / pace:.3f} (furthest)",
            "within 5%",
            _met(abs(worst - pace) <= 0.05 * pace),
        )
    ]


def _otp_delay(data: dict[str, Any]) -> list[Row]:
    idle = data["idle"]
    rows: list[Row] = []
    for phase in data["during_campaign"]:
        lane = phase["priority_workers"]
        what = f"with {lane} lane worker(s)" if lane else f"batch {phase['batch']}"
        for kind in ("otp_code", "order_status"):
            delays = phase["delays"][kind]
            rows.append(
                (
                    f"{kind} queue delay during a {data['campaign']:,} campaign, "
                    f"{what}, p50 / p99 ms",
                    f"{delays['p50_ms']:.0f} / {delays['p99_ms']:.0f}",
                    f"idle {idle[kind]['p50_ms']:.0f} / {idle[kind]['p99_ms']:.0f}",
                    f"p99 {delays['p99_ms'] / idle[kind]['p99_ms']:.1f}x idle",
                    "p99 < 1 s" if lane else "",
                    _met(delays["p99_ms"] < 1000) if lane else "",
                )
            )
    return rows


def _webhooks(data: dict[str, Any]) -> list[Row]:
    idle = _read("inbound_idle")
    baseline = (
        f"{idle['target_rate']:g}/s: {idle['p50_ms']:.0f} / {idle['p99_ms']:.0f}"
        if idle
        else "not measured"
    )
    ratio = f"p99 {data['p99_ms'] / idle['p99_ms']:.1f}x" if idle else ""
    return [
        (
            f"STOP webhooks at {data['target_rate']:g}/s for {data['seconds']:g} s "
            f"({data['database']}), p50 / p99 ms",
            f"{data['p50_ms']:.0f} / {data['p99_ms']:.0f} "
            f"(answered {data['achieved_rate']:g}/s, opt-outs "
            f"{data['opt_outs_present']:,} of {data['requests']:,})",
            baseline,
            ratio,
            "200/s, p99 < 20 ms",
            _met(
                data["p99_ms"] < 20
                and data["target_rate"] >= 200
                and data["opt_outs_present"] == data["requests"]
            ),
        )
    ]


def _memory(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    decided = data.get("decisions")
    if decided:
        rows.append(
            (
                f"resident MiB after {decided['decisions']:,} decisions",
                f"{decided['rss_mib_after']:.1f}",
                f"before {decided['rss_mib_before']:.1f}, "
                f"warm {decided['rss_mib_after_100k']:.1f}",
                f"+{decided['growth_after_warm_mib']:.1f} MiB after warm",
                "no growth",
                _met(decided["growth_after_warm_mib"] < 1),
            )
        )
    for c in data.get("campaigns", []):
        by_size = c["database_mib_by_recipients"]
        rows.append(
            (
                f"resident MiB after a {c['recipients']:,}-recipient campaign "
                f"({c['database']})",
                f"{c['rss_mib_after']:.1f}",
                f"before {c['rss_mib_before']:.1f}, warm {c['rss_mib_after_100k']:.1f}",
                f"+{c['growth_after_warm_mib']:.1f} MiB after warm (database "
                f"{min(by_size.values()):.0f} -> {max(by_size.values()):.0f} MiB)",
                "no growth",
                _met(c["growth_after_warm_mib"] < 10),
            )
        )
    return rows


SUMMARIES: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "engine": _engine,
    "verify": _verify,
    "queueing": _queueing,
    "delivery": _delivery(""),
    "delivery-latency": _delivery(" (fake API answers in 150 ms)"),
    "delivery-concurrency": _delivery(
        " (fake API answers in 150 ms, 8 sends in flight per worker)"
    ),
    "pacing": _pacing,
    "otp_delay": _otp_delay,
    "inbound_load": _webhooks,
    "memory": _memory,
}


def summarize(runs: list[dict[str, Any]], started: str, quick: bool) -> str:
    """The Markdown summary of the result files as they are now."""
    lines = [
        "# Benchmark summary",
        "",
        "Written by `.venv/bin/python bench/suite.py"
        + (" --quick" if quick else "")
        + "`; the details of each figure are in `bench/results/<name>.json` and in",
        "[benchmarks.md](benchmarks.md). Every ratio compares two contenders measured one",
        "after the other in the same run, on this 2-core machine, which is shared: read",
        "the load average beside each step.",
        "",
        f"Suite started {started}.",
        "",
        "| what | figure | baseline (same run) | ratio | target | met |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    for name, rows_of in SUMMARIES.items():
        data = _read(name)
        if data is None:
            continue
        try:
            rows = rows_of(data)
        except (KeyError, TypeError, ZeroDivisionError) as error:
            rows = [(name, f"unreadable result ({error!r})", "", "", "", "")]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    if runs:
        lines += [
            "",
            "## Steps",
            "",
            "| step | command | status | seconds | load before | load after |",
            "| --- | --- | --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r['step']} | `{r['command']}` | {r['status']} | {r['seconds']:.0f} "
            f"| {r['load_average_before']:.2f} | {r['load_average_after']:.2f} |"
            for r in runs
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs")
    parser.add_argument("--only", help="comma-separated step names")
    parser.add_argument("--postgres-url")
    parser.add_argument(
        "--summarize", action="store_true", help="only rewrite the summary"
    )
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    steps = list(STEPS)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in STEPS}
        if unknown:
            parser.error(
                f"unknown steps {sorted(unknown)}; known: "
                + ", ".join(s.name for s in STEPS)
            )
        steps = [s for s in STEPS if s.name in wanted]
    env = dict(os.environ)
    if args.postgres_url:
        env["DISPATCHER_TEST_POSTGRES_URL"] = args.postgres_url
    runs: list[dict[str, Any]] = []
    if not args.summarize:
        bound = sum(s.minutes for s in steps)
        print(f"{len(steps)} steps, at most {bound:g} minutes")
        runs = [run_step(step, args.quick, env) for step in steps]
        previous = _read("suite") if args.only else None
        if previous:
            # A partial run replaces its own steps in the last full one.
            ran = {r["step"] for r in runs}
            runs = [r for r in previous["steps"] if r["step"] not in ran] + runs
            started = previous["started"]
        suite = {
            "command": " ".join(["bench/suite.py", *sys.argv[1:]]),
            "started": started,
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "steps": runs,
            "results": {name: _read(name) for step in STEPS for name in step.results},
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "suite.json").write_text(
            json.dumps(suite, indent=2, default=str) + "\n", encoding="utf-8"
        )
    else:
        previous = _read("suite")
        if previous:
            runs, started = previous["steps"], previous["started"]
    SUMMARY.write_text(summarize(runs, started, args.quick), encoding="utf-8")
    print(f"\nwrote {SUMMARY.relative_to(ROOT)}")
    failed = [r["step"] for r in runs if r["status"] != "ok"]
    if failed:
        print("not ok: " + ", ".join(failed))


if __name__ == "__main__":
    main()
