"""Delivery rate with 1, 2, 4 and 8 worker processes on PostgreSQL against the fake Twilio.

    .venv/bin/python bench/delivery_bench.py                 # 1,2,4,8 workers, 15 s each
    .venv/bin/python bench/delivery_bench.py --workers 1,4 --seconds 10
    .venv/bin/python bench/delivery_bench.py --latency-ms 150      # Twilio-like answers
    .venv/bin/python bench/delivery_bench.py --workers 4 --pace 10 # pacing on

A scratch PostgreSQL database gets ``--businesses`` businesses, each with its own
registered numbers paced at 100,000 segments per second (pacing effectively off), and
``--messages`` order updates spread over them, admitted once through ``admit_many`` and
read back. Before each run the message tables are emptied and those rows written back
(a bulk insert), so every worker count starts from the same queue. The fake Twilio API
(``tests/fake_twilio.py``) runs in this process on loopback; the workers are
``dispatcher worker`` subprocesses driving the real ``twilio`` client at it.

A run starts the workers, waits for the first ``--warmup`` arrivals (so process start-up
is not timed), then counts the messages the fake API accepts in ``--seconds``. CPU time
of the workers, of this process (the fake API) and of the database's server processes is
read from /proc over the same window, to tell what limits the rate on this machine.
Scaling efficiency: rate with N workers / (N x rate with one).

``--latency-ms`` makes the fake API take that long to answer each send, as Twilio's API
does: a worker sending one message at a time is then bound by the answer time, and
``--concurrency N`` lets each worker have N sends in flight. ``--pace S`` paces every
number at S segments per second instead, and reports the measured rate of each number
over the window against S. Writes
``bench/results/delivery.json`` (``--results NAME`` for another name). Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _pipeline
from sqlalchemy import Engine, insert, select, text

sys.path.insert(0, str(_pipeline.ROOT))

from dispatcher import outbox, store, tables
from dispatcher.engine import Engine as PolicyEngine
from dispatcher.loader import load_policy
from dispatcher.outbox import SendRequest
from dispatcher.phone import Phone
from tests.fake_twilio import FakeTwilio

PACE = 100_000.0
RESET = (
    "TRUNCATE messages, message_events, decision_events, pacers, fair_tags, "
    "lane_clocks CASCADE"
)


def customer(i: int) -> str:
    # New Jersey: the federal 08:00-21:00 window, so the wall clock rarely defers.
    return f"+1201{3_000_000 + i:07d}"


def queue(
    db: Engine, policy_engine: PolicyEngine, businesses: list[int], n: int
) -> None:
    for b, business in enumerate(businesses):
        requests = [
            SendRequest(
                business=business,
                to=Phone.parse(customer(i)),
                message_type="order_status",
                body=f"Sudsy: order {i} is washed, folded and ready for pickup.",
            )
            for i in range(b, n, len(businesses))
        ]
        summary = outbox.admit_many(db, policy_engine, requests)
        if summary.by_outcome != {"send": len(requests)}:
            sys.exit(f"not every message is a send: {summary.by_outcome}")


def saved_rows(db: Engine) -> list[dict[str, Any]]:
    message = tables.Message.__table__
    columns = [c for c in message.columns if c.name != "id"]
    with db.connect() as connection:
        rows = connection.execute(select(*columns).order_by(message.c.id))
        return [dict(row._mapping) for row in rows]


def restore(db: Engine, rows: list[dict[str, Any]]) -> None:
    with db.begin() as connection:
        connection.execute(text(RESET))
    for start in range(0, len(rows), 2000):
        with store.transaction(db) as session:
            session.execute(insert(tables.Message), rows[start : start + 2000])
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE messages"))


def run(
    db: Engine,
    fake: FakeTwilio,
    config: Path,
    workers: int,
    seconds: float,
    warmup: int,
    log: Path,
    concurrency: int = 1,
) -> dict[str, Any]:
    credentials = {
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
    }
    base = len(fake.messages)
    fleet = _pipeline.Fleet(config, workers, credentials, log, concurrency=concurrency)
    with fleet:
        deadline = time.monotonic() + 60
        while len(fake.messages) - base < warmup or fleet.connected(db) < workers:
            if time.monotonic() > deadline or fleet.alive() < workers:
                sys.exit(f"workers did not start sending; see {log}")
            time.sleep(0.01)
        servers = _pipeline.backend_pids(db)
        own = os.getpid()
        cpu0 = (
            _pipeline.cpu_seconds(fleet.pids),
            _pipeline.cpu_seconds([own]),
            _pipeline.cpu_seconds(servers),
        )
        count0, t0 = len(fake.messages), time.monotonic()
        load0 = os.getloadavg()[0]
        time.sleep(seconds)
        count1, t1 = len(fake.messages), time.monotonic()
        with fake.lock:
            by_number = Counter(m.from_ for m in fake.messages[count0:count1])
        cpu1 = (
            _pipeline.cpu_seconds(fleet.pids),
            _pipeline.cpu_seconds([own]),
            _pipeline.cpu_seconds(servers),
        )
    elapsed = t1 - t0
    sent = count1 - count0
    with db.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM messages WHERE state = 'queued'")
        ).scalar_one()
    cpu = {
        name: round((after - before) / elapsed, 2)
        for name, before, after in zip(
            ("workers", "fake_api", "postgres"), cpu0, cpu1, strict=True
        )
    }
    return {
        "workers": workers,
        "seconds": round(elapsed, 2),
        "sent": sent,
        "messages_per_s": round(sent / elapsed, 1),
        "queued_left": left,
        "cpu_cores_used": cpu,
        "cpu_ms_per_message": {
            name: round(1000 * used / (sent / elapsed), 2) if sent else None
            for name, used in cpu.items()
        },
        "load_average_at_start": round(load0, 2),
        "per_number_per_s": {
            number: round(count / elapsed, 2)
            for number, count in sorted(by_number.items())
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 4, 8],
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--businesses", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="how long the fake API takes to answer a send (Twilio's takes 100s of ms)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="each worker's sends in flight at once (dispatcher worker --concurrency)",
    )
    parser.add_argument(
        "--pace", type=float, default=PACE, help="segments per second of every number"
    )
    parser.add_argument("--postgres-url")
    parser.add_argument(
        "--results",
        default="delivery",
        help="name of the results file in bench/results",
    )
    args = parser.parse_args()
    _pipeline.require_sending_hours()
    policy = load_policy(_pipeline.ROOT / "rules")
    policy_engine = PolicyEngine(policy)
    before = _pipeline.machine()
    results = []
    with (
        _pipeline.scratch_database("postgres", args.postgres_url) as url,
        tempfile.TemporaryDirectory(prefix="dispatcher-bench-") as directory,
        FakeTwilio(latency=args.latency_ms / 1000) as fake,
    ):
        db = store.open_engine(url)
        try:
            businesses = [
                _pipeline.add_business(
                    db, policy, i, segments_per_second=args.pace, with_global=i == 0
                )
                for i in range(args.businesses)
            ]
            queue(db, policy_engine, businesses, args.messages)
            rows = saved_rows(db)
            config = _pipeline.worker_config(Path(directory), url, fake.base_url)
            log = _pipeline.RESULTS / "delivery-workers.log"
            log.unlink(missing_ok=True)
            for workers in args.workers:
                restore(db, rows)
                result = run(
                    *(db, fake, config, workers, args.seconds, args.warmup, log),
                    concurrency=args.concurrency,
                )
                results.append(result)
                print(
                    f"  {workers} worker(s): {result['messages_per_s']:>7.1f} msg/s, "
                    f"cpu cores: {result['cpu_cores_used']}",
                    flush=True,
                )
                if result["queued_left"] == 0:
                    print("  the queue ran dry: raise --messages for a fair figure")
            repeated = [
                n
                for n in Counter(m.body + m.to for m in fake.messages).values()
                if n > len(args.workers)
            ]
            if repeated:
                sys.exit(f"{len(repeated)} messages sent more than once per run")
        finally:
            db.dispose()
    if log.exists() and not log.stat().st_size:
        log.unlink()
    single = next((r for r in results if r["workers"] == 1), None)
    for r in results:
        if single:
            r["speedup_vs_1"] = round(r["messages_per_s"] / single["messages_per_s"], 2)
            r["efficiency"] = round(r["speedup_vs_1"] / r["workers"], 2)
    print(f"\n{'workers':>7} {'msg/s':>8} {'vs 1':>6} {'efficiency':>10}")
    for r in results:
        print(
            f"{r['workers']:>7} {r['messages_per_s']:>8.1f} "
            f"{r.get('speedup_vs_1', 0):>5.2f}x {r.get('efficiency', 0):>10.2f}"
        )
    path = _pipeline.write_results(
        args.results,
        {
            "command": " ".join(["bench/delivery_bench.py", *sys.argv[1:]]),
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine_before": before,
            "machine_after": _pipeline.machine(),
            "businesses": args.businesses,
            "messages_queued": args.messages,
            "api_latency_ms": args.latency_ms,
            "pace_segments_per_s": args.pace,
            "concurrency": args.concurrency,
            "target": "4 workers >= 3x one worker",
            "results": results,
        },
    )
    print(f"wrote {path.relative_to(_pipeline.ROOT)}")


if __name__ == "__main__":
    main()
