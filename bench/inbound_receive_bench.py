"""CPU and statements per inbound STOP, in-process: ``inbound.receive`` without HTTP.

    .venv/bin/python bench/inbound_receive_bench.py                  # SQLite, PostgreSQL
    .venv/bin/python bench/inbound_receive_bench.py --databases sqlite --count 1000
    .venv/bin/python bench/inbound_receive_bench.py --profile 500    # cProfile, SQLite

For each database (SQLite in a temporary file, PostgreSQL in a scratch database) a
business with its marketing and transactional numbers and the platform's global number
is made, then ``count`` STOPs to the marketing number are received, each from a new
phone (an opt-out, its ledger row, the inbound row, the usage charge and the confirmation
admitted), and the same messages are delivered again (replays, which change nothing).
Logging is configured as the
service's is (JSON at info), written to /dev/null. Rounds alternate with the replays; each figure is the median over rounds of the CPU time
of this process per message (``time.process_time``), with the wall time beside it and
the statements and transactions per message counted with SQLAlchemy's events.

The same script measures an older commit when run from an export of it (``git archive``):
it imports the ``dispatcher`` package beside it. Writes
``bench/results/inbound_receive.json``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The package beside this script, not the one installed (see the docstring).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _pipeline
from sqlalchemy import Engine, event

from dispatcher import inbound, logging, store
from dispatcher.engine import Engine as PolicyEngine
from dispatcher.inbound import InboundSms, Settings
from dispatcher.keywords import ReplyClassifier
from dispatcher.loader import load_policy
from dispatcher.phone import Phone

MARKETING = "+19735550000"  # the first bench business's marketing number
SETTINGS = Settings("Bench Platform", "bench.example/help")


def _phone(i: int) -> Phone:
    return Phone.parse(f"+1201{5_560_000 + i:07d}")


def _sid() -> str:
    return "SM" + secrets.token_hex(16)


@contextmanager
def _counting(db: Engine) -> Iterator[dict[str, int]]:
    """Statements and transactions ``db`` runs inside the block."""
    counts = {"statements": 0, "transactions": 0}

    def statement(*_args: Any) -> None:
        counts["statements"] += 1

    def begin(*_args: Any) -> None:
        counts["transactions"] += 1

    event.listen(db, "before_cursor_execute", statement)
    event.listen(db, "begin", begin)
    try:
        yield counts
    finally:
        event.remove(db, "before_cursor_execute", statement)
        event.remove(db, "begin", begin)


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        total[key] += value


def _timed(messages: list[InboundSms], receive: Callable[[InboundSms], object]) -> Any:
    cpu, wall = time.process_time(), time.perf_counter()
    for sms in messages:
        receive(sms)
    count = len(messages)
    return (
        (time.process_time() - cpu) * 1000 / count,
        (time.perf_counter() - wall) * 1000 / count,
    )


def run(kind: str, count: int, rounds: int, postgres_url: str | None) -> dict[str, Any]:
    policy = load_policy(_pipeline.ROOT / "rules")
    engine, classifier = PolicyEngine(policy), ReplyClassifier(policy)
    with _pipeline.scratch_database(kind, postgres_url) as url:
        db = store.open_engine(url)
        _pipeline.add_business(db, policy, 0, with_global=True)
        now = dt.datetime.now(dt.UTC)

        def receive(sms: InboundSms) -> object:
            return inbound.receive(db, engine, classifier, sms, SETTINGS, now=now)

        number = Phone.parse(MARKETING)
        warm = [InboundSms(_sid(), _phone(-1 - i), number, "STOP") for i in range(50)]
        _timed(warm, receive)
        first, again = [], []
        new_counts = {"statements": 0, "transactions": 0}
        replay_counts = dict(new_counts)
        for n in range(rounds):
            messages = [
                InboundSms(_sid(), _phone(n * count + i), number, "STOP")
                for i in range(count)
            ]
            with _counting(db) as counted:
                first.append(_timed(messages, receive))
            _add(new_counts, counted)
            with _counting(db) as counted:
                again.append(_timed(messages, receive))
            _add(replay_counts, counted)
        db.dispose()
    total = count * rounds

    def median(pairs: list[tuple[float, float]], at: int) -> float:
        return round(statistics.median(p[at] for p in pairs), 3)

    return {
        "database": kind,
        "stops_per_round": count,
        "rounds": rounds,
        "stop_cpu_ms": median(first, 0),
        "stop_wall_ms": median(first, 1),
        "stop_statements": new_counts["statements"] / total,
        "stop_transactions": new_counts["transactions"] / total,
        "replay_cpu_ms": median(again, 0),
        "replay_wall_ms": median(again, 1),
        "replay_statements": replay_counts["statements"] / total,
        "replay_transactions": replay_counts["transactions"] / total,
        "stops_received": total,
    }


def profile(count: int, kind: str, postgres_url: str | None) -> None:
    """cProfile of ``count`` STOPs; the 30 costliest functions by cumulative time."""
    policy = load_policy(_pipeline.ROOT / "rules")
    engine, classifier = PolicyEngine(policy), ReplyClassifier(policy)
    with _pipeline.scratch_database(kind, postgres_url) as url:
        db = store.open_engine(url)
        _pipeline.add_business(db, policy, 0, with_global=True)
        number = Phone.parse(MARKETING)
        messages = [InboundSms(_sid(), _phone(i), number, "STOP") for i in range(count)]
        for sms in messages[:20]:
            inbound.receive(db, engine, classifier, sms, SETTINGS)
        profiler = cProfile.Profile()
        profiler.enable()
        for sms in messages[20:]:
            inbound.receive(db, engine, classifier, sms, SETTINGS)
        profiler.disable()
        db.dispose()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)


def _commit() -> str:
    found = subprocess.run(
        ["git", "-C", str(_pipeline.ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() or "unknown (not a git checkout)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--count", type=int, default=300, help="STOPs per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres-url")
    parser.add_argument("--profile", type=int, metavar="N", help="profile N and stop")
    parser.add_argument("--label", default="", help="a name for this run's source")
    args = parser.parse_args()
    kinds = args.databases.split(",")
    # As the service logs in production: JSON lines at info, here thrown away.
    logging.configure("json", "info", open(os.devnull, "w"))  # noqa: SIM115
    if args.profile:
        profile(args.profile, kinds[0], args.postgres_url)
        return
    before = _pipeline.machine()
    results = [run(k, args.count, args.rounds, args.postgres_url) for k in kinds]
    print(
        f"\n{'database':<10} {'STOP cpu ms':>11} {'wall ms':>8} {'stmts':>6} "
        f"{'replay cpu ms':>13} {'stmts':>6}"
    )
    for r in results:
        print(
            f"{r['database']:<10} {r['stop_cpu_ms']:>11.2f} {r['stop_wall_ms']:>8.2f} "
            f"{r['stop_statements']:>6.1f} {r['replay_cpu_ms']:>13.2f} "
            f"{r['replay_statements']:>6.1f}"
        )
    path = _pipeline.write_results(
        "inbound_receive",
        {
            "command": " ".join(sys.argv),
            "source": args.label or str(Path(__file__).resolve().parents[1]),
            "commit": _commit(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine_before": before,
            "machine_after": _pipeline.machine(),
            "results": results,
        },
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
