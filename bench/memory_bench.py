"""Memory: resident size before and after 1,000,000 decisions and after a
1,000,000-recipient campaign (no growth with volume).

    .venv/bin/python bench/memory_bench.py [--decisions 1000000]
    .venv/bin/python bench/memory_bench.py --campaign 1000000 [--databases sqlite,postgres]

Decisions: decides the seeded corpus of bench/engine_bench.py over and over, reading the
process's resident set size (``/proc/self/statm``) before, after the first 100,000
decisions (the warm state) and at the end.

Campaign: a scratch database (SQLite in a temporary file, or a scratch PostgreSQL
database) with one business and its opted-in recipients, then ``outbox.admit_many`` fed
by a generator, as ``dispatcher campaign`` feeds it from its file, so that nothing of
the list is held beyond a chunk. The resident size is read before the campaign, after
its first 100,000 recipients (warm: caches, SQLite's page cache, the statement cache)
and at the end; the database's own growth (file or relation size) is reported beside it.

Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import _pipeline  # noqa: E402
from engine_bench import corpus  # noqa: E402
from queueing_bench import parse  # noqa: E402
from sqlalchemy import text  # noqa: E402

from dispatcher import Engine, load_policy, outbox, store  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * PAGE / 2**20


def decisions(count: int) -> dict[str, object]:
    policy = load_policy(REPO / "rules")
    engine = Engine(policy)
    facts = corpus(policy, 10_000)
    before = rss_mib()
    done = 0
    warm = None
    while done < count:
        for f in facts:
            engine.decide(f)
        done += len(facts)
        if warm is None and done >= 100_000:
            warm = rss_mib()
    after = rss_mib()
    return {
        "decisions": done,
        "rss_mib_before": round(before, 1),
        "rss_mib_after_100k": round(warm or after, 1),
        "rss_mib_after": round(after, 1),
        "growth_after_warm_mib": round(after - (warm or after), 2),
    }


def _database_mib(db: object, url: str) -> float:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        files = [path, path.with_name(path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists()) / 2**20
    with db.connect() as connection:  # type: ignore[attr-defined]
        size = connection.execute(text("SELECT pg_database_size(current_database())"))
        return int(size.scalar_one()) / 2**20


def campaign(size: int, kind: str, postgres_url: str | None) -> dict[str, object]:
    """Resident size around one ``admit_many`` of ``size`` recipients on ``kind``."""
    policy = load_policy(REPO / "rules")
    engine = Engine(policy)
    seed = 10_000
    with _pipeline.scratch_database(kind, postgres_url) as url:
        db = store.open_engine(url)
        try:
            business = _pipeline.add_business(db, policy, 1)
            for start in range(0, size, seed):
                phones = [_pipeline.recipient(i) for i in range(start, start + seed)]
                _pipeline.opt_in_all(db, business, phones[: size - start])
            del phones
            # Seeding is not measured: hand what it freed back before the first reading.
            gc.collect()
            ctypes.CDLL("libc.so.6").malloc_trim(0)

            def requests() -> object:
                for start in range(0, size, 1000):
                    yield from parse(
                        business,
                        [_pipeline.recipient(i) for i in range(start, start + 1000)],
                    )

            readings: dict[int, float] = {}
            database: dict[int, float] = {}
            done = 0
            readings[0] = rss_mib()
            database[0] = _database_mib(db, url)

            def progress(count: int) -> None:
                nonlocal done
                done += count
                if done in (100_000, size) or done % 250_000 == 0:
                    readings[done] = rss_mib()
                    database[done] = _database_mib(db, url)
                    print(f"  {kind} {done:>9,}: {readings[done]:.1f} MiB", flush=True)

            summary = outbox.admit_many(
                db,
                engine,
                requests(),  # type: ignore[arg-type]
                now=_pipeline_now(),
                progress=progress,
            )
        finally:
            db.dispose()
    warm = readings.get(100_000, readings[0])
    return {
        "database": kind,
        "recipients": summary.admitted,
        "rss_mib_before": round(readings[0], 1),
        "rss_mib_after_100k": round(warm, 1),
        "rss_mib_after": round(readings[size], 1),
        "growth_after_warm_mib": round(readings[size] - warm, 2),
        "rss_mib_by_recipients": {k: round(v, 1) for k, v in readings.items()},
        "database_mib_by_recipients": {k: round(v, 1) for k, v in database.items()},
    }


def _pipeline_now() -> dt.datetime:
    from queueing_bench import NOW

    return NOW


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument(
        "--campaign", type=int, default=0, help="recipients (0: no campaign part)"
    )
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--postgres-url")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "memory.json"
    )
    args = parser.parse_args()
    result: dict[str, object] = {
        "command": " ".join(["bench/memory_bench.py", *sys.argv[1:]]),
        "date": dt.date.today().isoformat(),
        "machine_before": _pipeline.machine(),
    }
    if args.decisions:
        result["decisions"] = decisions(args.decisions)
        print(json.dumps(result["decisions"], indent=2), flush=True)
    if args.campaign:
        result["campaigns"] = [
            campaign(args.campaign, kind, args.postgres_url)
            for kind in args.databases.split(",")
        ]
        print(json.dumps(result["campaigns"], indent=2))
    result["machine_after"] = _pipeline.machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
