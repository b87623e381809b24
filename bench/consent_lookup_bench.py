"""Consent lookups per second with 1,000,000 ledger rows, SQLite and PostgreSQL.

Seeds a scratch database of each kind with the ledger and its current-state table
(bulk inserts, not the product's write path), then for a fixed time runs the two reads
the send pipeline makes: ``consent.states`` (one indexed read) and ``take_snapshot``
(numbers and consent, two reads), each in its own read transaction, for random
(business, phone) pairs. Prints a table and writes
``bench/results/consent_lookup.json``.

    .venv/bin/python bench/consent_lookup_bench.py            # 1,000,000 rows, 5 s each
    .venv/bin/python bench/consent_lookup_bench.py --rows 100000 --seconds 2

PostgreSQL is used when --postgres-url or $DISPATCHER_TEST_POSTGRES_URL names a server;
the benchmark creates its own scratch database there and drops it at the end.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from dispatcher import consent, store
from dispatcher.loader import load_policy
from dispatcher.phone import Phone
from dispatcher.snapshot import take_snapshot

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "consent_lookup.json"
BUSINESSES = 100
EVENTS_PER_PHONE = 4
BATCH = 20_000
SEED_LIMIT_S = 600.0
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def phone_number(i: int) -> str:
    # +1 201 2xx-xxxx: a valid New Jersey range for up to 8 million phones.
    return f"+1201{2_000_000 + i:07d}"


def ledger_rows(phones: int) -> Iterator[tuple[Any, ...]]:
    """Rows of (id, business, phone, scope, action, at, source, ref, text, version)."""
    event_id = 0
    for i in range(phones):
        business = i % BUSINESSES + 1
        number = phone_number(i)
        at = T0 + dt.timedelta(seconds=i)
        plan = [
            (business, "marketing", "opt_in"),
            (business, "transactional", "opt_in"),
            (business, "marketing", "opt_out"),
            (None, "otp", "opt_out") if i % 2 else (business, "marketing", "re_opt_in"),
        ]
        for step, (owner, scope, action) in enumerate(plan):
            event_id += 1
            opt_in = action != "opt_out"
            yield (
                event_id,
                owner,
                number,
                scope,
                action,
                at + dt.timedelta(minutes=step),
                "keyword" if step >= 2 else "web_form",
                f"SM{event_id}",
                "Yes to texts" if opt_in else None,
                "v1" if opt_in else None,
            )


def state_rows(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    latest: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in events:
        latest[(row[1], row[2], row[3])] = row
    return [
        (
            owner,
            phone,
            scope,
            "opted_out" if row[4] == "opt_out" else "opted_in",
            row[0],
            row[5],
        )
        for (owner, phone, scope), row in latest.items()
    ]


EVENT_COLUMNS = (
    "id, business_id, phone, scope, action, at, source, source_ref, consent_text, "
    "consent_text_version, recorded_by"
)
STATE_COLUMNS = "business_id, phone, scope, state, event_id, event_at"


def seed(engine: Engine, rows: int, started: float) -> None:
    kind = engine.dialect.name
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        for b in range(1, BUSINESSES + 1):
            connection.execute(
                text(
                    "INSERT INTO businesses (id, name, assist, accelerate, created_at, "
                    "updated_at) VALUES (:id, :name, true, false, :now, :now)"
                ),
                {"id": b, "name": f"business {b}", "now": _when(kind, now)},
            )
    phones = rows // EVENTS_PER_PHONE
    batch: list[tuple[Any, ...]] = []
    for row in ledger_rows(phones):
        batch.append(row)
        if len(batch) >= BATCH * EVENTS_PER_PHONE:
            _write(engine, batch)
            batch = []
            if time.monotonic() - started > SEED_LIMIT_S:
                sys.exit(f"seeding {kind} took over {SEED_LIMIT_S:.0f} s; stopped")
    _write(engine, batch)
    if kind == "postgresql":
        with engine.begin() as connection:
            connection.execute(
                text(
                    "SELECT setval('consent_events_id_seq', (SELECT max(id) FROM "
                    "consent_events))"
                )
            )
            connection.execute(text("ANALYZE"))


def _when(kind: str, value: dt.datetime) -> Any:
    # SQLite keeps the UTC wall time as text, as dispatcher.tables.UTCDateTime does.
    if kind == "sqlite":
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    return value


def _write(engine: Engine, events: list[tuple[Any, ...]]) -> None:
    if not events:
        return
    kind = engine.dialect.name
    states = state_rows(events)
    if kind == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(
                f"COPY consent_events ({EVENT_COLUMNS}) FROM STDIN"
            ) as copy:
                for row in events:
                    copy.write_row((*row, "bench"))
            with cursor.copy(
                f"COPY consent_states ({STATE_COLUMNS}) FROM STDIN"
            ) as copy:
                for row in states:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
        return
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"INSERT INTO consent_events ({EVENT_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'bench')",
            [(*row[:5], _when(kind, row[5]), *row[6:]) for row in events],
        )
        connection.exec_driver_sql(
            f"INSERT INTO consent_states ({STATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            [(*row[:5], _when(kind, row[5])) for row in states],
        )


def measure(seconds: float, lookup: Callable[[], object]) -> dict[str, float]:
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while (start := time.perf_counter()) < deadline:
        lookup()
        timings.append(time.perf_counter() - start)
    timings.sort()
    total = sum(timings)
    return {
        "lookups": len(timings),
        "per_second": round(len(timings) / total, 1),
        "p50_ms": round(statistics.median(timings) * 1000, 3),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1] * 1000, 3),
    }


def run(kind: str, url: str, rows: int, seconds: float) -> dict[str, Any]:
    policy = load_policy(ROOT / "rules")
    engine = store.open_engine(url)
    try:
        store.upgrade(engine)
        started = time.monotonic()
        seed(engine, rows, started)
        seed_s = time.monotonic() - started
        with engine.connect() as connection:
            count = connection.execute(
                text("SELECT COUNT(*) FROM consent_events")
            ).scalar_one()
        phones = rows // EVENTS_PER_PHONE
        rng = random.Random(4)
        sample = [
            (rng.randrange(phones), Phone.parse(phone_number(rng.randrange(phones))))
            for _ in range(2000)
        ]
        # Business i % 100 + 1 is the one that holds records for phone i.
        pairs = [(i % BUSINESSES + 1, p) for i, p in sample]
        picks = iter(lambda: rng.choice(pairs), None)

        def consent_only() -> object:
            bid, who = next(picks)
            with store.transaction(engine, write=False) as session:
                return consent.states(session, policy, who, bid)

        def snapshot() -> object:
            bid, who = next(picks)
            with store.transaction(engine, write=False) as session:
                return take_snapshot(session, policy, bid, who)

        consent_only()  # warm the pool and the caches
        return {
            "database": kind,
            "ledger_rows": count,
            "seed_seconds": round(seed_s, 1),
            "consent_states": measure(seconds, consent_only),
            "take_snapshot": measure(seconds, snapshot),
        }
    finally:
        engine.dispose()


@contextmanager
def scratch_postgres(server: str) -> Iterator[str]:
    name = f"dispatcher_bench_{secrets.token_hex(4)}"
    admin = create_engine(store.normalise_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(store.normalise_url(server))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("DISPATCHER_TEST_POSTGRES_URL")
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"sqlite: seeding {args.rows:,} ledger rows ...", flush=True)
        results.append(
            run("sqlite", f"sqlite:///{tmp}/bench.sqlite3", args.rows, args.seconds)
        )
    if args.postgres_url:
        print(f"postgresql: seeding {args.rows:,} ledger rows ...", flush=True)
        with scratch_postgres(args.postgres_url) as url:
            results.append(run("postgresql", url, args.rows, args.seconds))
    else:
        print(
            "postgresql: skipped (no --postgres-url and "
            "DISPATCHER_TEST_POSTGRES_URL unset)"
        )

    print()
    print(
        f"{'database':<11} {'rows':>10} {'seed s':>7}  {'read':<15} {'per s':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7}"
    )
    for result in results:
        for read in ("consent_states", "take_snapshot"):
            m = result[read]
            print(
                f"{result['database']:<11} {result['ledger_rows']:>10,} "
                f"{result['seed_seconds']:>7} {read:<15} {m['per_second']:>8,.0f} "
                f"{m['p50_ms']:>7} {m['p99_ms']:>7}"
            )
    document = {
        "benchmark": "consent_lookup",
        "command": "python " + " ".join(sys.argv),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "seconds_per_measurement": args.seconds,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
