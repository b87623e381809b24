"""Queue delay of one business's OTPs and order updates while another's campaign drains.

    .venv/bin/python bench/otp_delay_bench.py          # 100,000 campaign, 3 x 30 s
    .venv/bin/python bench/otp_delay_bench.py --campaign 20000 --seconds 20 --batches 5

A scratch PostgreSQL database holds two businesses. "Campaign" has ``--campaign``
opted-in recipients and a marketing promotion for each of them, admitted with
``admit_many`` before the workers start; "Laundry" sends OTP codes (from the platform's
global number) and order updates (from its transactional number) while the campaign
drains. Every number is paced at 100,000 segments per second: the workers, not the
pacers, are the limit, so they are busy with the campaign the whole time.

Each probe is one ``admit`` call on a thread of this process at ``--rate`` probes per
second (OTP and order update alternately, each to a recipient of its own); its delay is
from just before ``admit`` to the moment the fake Twilio API (in this process, on
loopback) accepts it. The same probes run first for ``--idle-seconds`` with an empty
queue (workers at ``--batch 5``), side by side as the baseline. Then the campaign drains
in one phase per ``--batches`` value (the workers' ``--batch``: how many messages one
claim takes, and so how long a worker is deaf to new OTPs), each stopped after
``--seconds``: the campaign need not drain; how many of its messages were sent meanwhile
is reported per phase. A last phase (``--priority-workers``) keeps that many of the
workers to the OTP and transactional lanes (``dispatcher worker --lane``).
Writes ``bench/results/otp_delay.json``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _pipeline
from sqlalchemy import Engine, text

sys.path.insert(0, str(_pipeline.ROOT))

from dispatcher import outbox, store
from dispatcher.engine import Engine as PolicyEngine
from dispatcher.loader import load_policy
from dispatcher.outbox import SendRequest
from dispatcher.phone import Phone
from tests.fake_twilio import FakeMessage, FakeTwilio

PACE = 100_000.0
PROMOTION = (
    "Sudsy: 20% off wash & fold this week, show this text at the counter. "
    "Reply STOP to opt out."
)


class Arrivals(list[FakeMessage]):
    """The fake API's message list, noting when each recipient's message came in."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, float] = {}

    def append(self, message: FakeMessage) -> None:
        self.at.setdefault(message.to, time.monotonic())
        super().append(message)


def campaign_recipient(i: int) -> str:
    # New Jersey (federal 08:00-21:00 window), one exchange per 10,000.
    return f"+1201{5_000_000 + i:07d}"


def probe_recipient(i: int) -> str:
    return f"+1973{4_000_000 + i:07d}"


class Prober:
    """Admits an OTP or an order update ``rate`` times a second until stopped."""

    def __init__(
        self, db: Engine, engine: PolicyEngine, business: int, rate: float, first: int
    ) -> None:
        self.db, self.engine, self.business = db, engine, business
        self.rate = rate
        self.next = first
        self.sent: dict[str, tuple[str, float]] = {}
        self.admit_s: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        period = 1.0 / self.rate
        due = time.monotonic()
        while not self.stop.is_set():
            kind = "otp_code" if self.next % 2 == 0 else "order_status"
            phone = probe_recipient(self.next)
            body = (
                f"Your Laundry code is {100000 + self.next % 900000}."
                if kind == "otp_code"
                else f"Laundry: order {self.next} is out for delivery."
            )
            request = SendRequest(
                business=self.business,
                to=Phone.parse(phone),
                message_type=kind,
                body=body,
            )
            start = time.monotonic()
            result = outbox.admit(self.db, self.engine, request)
            self.admit_s.append(time.monotonic() - start)
            if result.state != "queued":
                sys.exit(f"probe {kind} not queued: {result.rule_id}")
            self.sent[phone] = (kind, start)
            self.next += 1
            due += period
            self.stop.wait(max(0.0, due - time.monotonic()))

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def claim_waits(db: Engine, phones: list[str]) -> list[float]:
    """Seconds from admission to the first claim of these phones' messages, sorted."""
    with db.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT extract(epoch FROM min(e.at) - m.created_at) FROM messages m "
                "JOIN message_events e ON e.message_id = m.id AND e.kind = 'attempt' "
                "WHERE m.phone = ANY(:phones) GROUP BY m.id, m.created_at"
            ),
            {"phones": phones},
        ).all()
    return sorted(float(wait) for (wait,) in rows)


def delays(
    db: Engine, prober: Prober, arrivals: Arrivals, grace: float
) -> dict[str, Any]:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(
        phone not in arrivals.at for phone in prober.sent
    ):
        time.sleep(0.05)
    report: dict[str, Any] = {}
    for kind in ("otp_code", "order_status"):
        waited = sorted(
            arrivals.at[phone] - start
            for phone, (k, start) in prober.sent.items()
            if k == kind and phone in arrivals.at
        )
        probes = sum(k == kind for k, _ in prober.sent.values())
        report[kind] = {
            "probes": probes,
            "arrived": len(waited),
            "p50_ms": round(1000 * statistics.median(waited), 1) if waited else None,
            "p99_ms": round(1000 * _quantile(waited, 0.99), 1) if waited else None,
            "max_ms": round(1000 * waited[-1], 1) if waited else None,
        }
    report["admit_p50_ms"] = round(1000 * statistics.median(prober.admit_s), 1)
    # Where the time goes: waiting in the queue until a worker claims the message.
    claimed = claim_waits(db, list(prober.sent))
    if claimed:
        report["queued_until_claim_p50_ms"] = round(
            1000 * statistics.median(claimed), 1
        )
        report["queued_until_claim_p99_ms"] = round(1000 * _quantile(claimed, 0.99), 1)
    return report


def drain(
    db: Engine,
    engine: PolicyEngine,
    laundry: int,
    arrivals: Arrivals,
    fleet: _pipeline.Fleet,
    marketing: str,
    args: argparse.Namespace,
    first: int,
) -> dict[str, Any]:
    """Probe for ``args.seconds`` while ``fleet`` drains the campaign."""
    print(
        f"draining for {args.seconds:.0f} s with {fleet.count} workers, "
        f"batch {fleet.batch}, {fleet.priority} of them kept to OTP/transactional",
        flush=True,
    )
    with fleet:
        base = len(arrivals)
        wait_for(
            lambda: (
                len(arrivals) > base + 20
                and arrivals[-1].from_ == marketing
                and fleet.connected(db) >= fleet.count
            ),
            fleet,
            fleet.log,
        )
        load = os.getloadavg()[0]
        sent0 = sum(m.from_ == marketing for m in list(arrivals))
        t0 = time.monotonic()
        with Prober(db, engine, laundry, args.rate, first) as busy:
            time.sleep(args.seconds)
        t1 = time.monotonic()
        sent1 = sum(m.from_ == marketing for m in list(arrivals))
        report = delays(db, busy, arrivals, grace=10)
        alive = fleet.alive()
    with db.connect() as connection:
        left = connection.execute(
            text(
                "SELECT count(*) FROM messages WHERE state = 'queued' "
                "AND category = 'marketing'"
            )
        ).scalar_one()
    return {
        "batch": fleet.batch,
        "priority_workers": fleet.priority,
        "seconds": round(t1 - t0, 1),
        "delays": report,
        "campaign_sent": sent1 - sent0,
        "campaign_per_s": round((sent1 - sent0) / (t1 - t0), 1),
        "campaign_left_queued": left,
        "workers_alive_at_end": alive,
        "load_average_at_start": round(load, 2),
    }


def _phase_name(phase: dict[str, Any]) -> str:
    name = f"batch {phase['batch']}"
    if phase["priority_workers"]:
        name += f" +{phase['priority_workers']} prio"
    return name


def wait_for(ready: Callable[[], bool], fleet: _pipeline.Fleet, log: Path) -> None:
    """Until ``ready()``; exits when the workers die or take over a minute to start."""
    deadline = time.monotonic() + 60
    while not ready():
        if time.monotonic() > deadline or fleet.alive() < fleet.count:
            sys.exit(f"workers did not start sending; see {log}")
        time.sleep(0.02)


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaign", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="draining time per phase"
    )
    parser.add_argument(
        "--batches",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[20, 5],
        help="the workers' --batch, one draining phase each",
    )
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument(
        "--priority-workers",
        type=int,
        default=1,
        help="a last phase where this many of the workers take only OTP and "
        "transactional lanes (0: no such phase)",
    )
    parser.add_argument("--rate", type=float, default=4.0, help="probes per second")
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    _pipeline.require_sending_hours()
    policy = load_policy(_pipeline.ROOT / "rules")
    engine = PolicyEngine(policy)
    before = _pipeline.machine()
    fake = FakeTwilio()
    arrivals = Arrivals()
    fake.messages = arrivals
    with (
        _pipeline.scratch_database("postgres", args.postgres_url) as url,
        tempfile.TemporaryDirectory(prefix="dispatcher-bench-") as directory,
        fake,
    ):
        db = store.open_engine(url)
        try:
            sender = _pipeline.add_business(
                db, policy, 0, segments_per_second=PACE, with_global=True
            )
            laundry = _pipeline.add_business(db, policy, 1, segments_per_second=PACE)
            config = _pipeline.worker_config(Path(directory), url, fake.base_url)
            credentials = {
                "TWILIO_ACCOUNT_SID": fake.account_sid,
                "TWILIO_AUTH_TOKEN": fake.auth_token,
            }
            log = _pipeline.RESULTS / "otp-delay-workers.log"
            log.unlink(missing_ok=True)

            print(f"idle: {args.idle_seconds:.0f} s of probes, empty queue", flush=True)
            fleet = _pipeline.Fleet(config, args.workers, credentials, log, 5)
            with fleet:
                # One probe that nobody times: the workers are up once it arrives.
                with Prober(db, engine, laundry, args.rate, 500_000) as warm:
                    wait_for(
                        lambda: (
                            len(arrivals) > 0 and fleet.connected(db) >= fleet.count
                        ),
                        fleet,
                        log,
                    )
                delays(db, warm, arrivals, grace=10)
                with Prober(db, engine, laundry, args.rate, 0) as idle:
                    time.sleep(args.idle_seconds)
                idle_report = delays(db, idle, arrivals, grace=10)

            phones = [campaign_recipient(i) for i in range(args.campaign)]
            _pipeline.opt_in_all(db, sender, phones)
            started = time.monotonic()
            summary = outbox.admit_many(
                db,
                engine,
                (
                    SendRequest(
                        business=sender,
                        to=Phone.parse(p),
                        message_type="promotion",
                        body=PROMOTION,
                    )
                    for p in phones
                ),
            )
            admitted_s = time.monotonic() - started
            if summary.by_outcome != {"send": args.campaign}:
                sys.exit(f"campaign not all sends: {summary.by_outcome}")
            print(
                f"campaign of {args.campaign:,} queued in {admitted_s:.1f} s",
                flush=True,
            )
            marketing = f"+1973{5_550_000:07d}"
            phases = []
            plan = [(batch, 0) for batch in args.batches]
            if args.priority_workers:
                plan.append((args.batches[0], args.priority_workers))
            for n, (batch, priority) in enumerate(plan):
                fleet = _pipeline.Fleet(
                    config, args.workers, credentials, log, batch, priority
                )
                phases.append(
                    drain(
                        db,
                        engine,
                        laundry,
                        arrivals,
                        fleet,
                        marketing,
                        args,
                        first=1_000_000 * (n + 1),
                    )
                )
        finally:
            db.dispose()
    if log.exists() and not log.stat().st_size:
        log.unlink()
    print(f"\n{'phase':<20} {'type':<13} {'probes':>6} {'p50 ms':>8} {'p99 ms':>8}")
    rows = [("idle", idle_report)] + [(_phase_name(p), p["delays"]) for p in phases]
    for phase, report in rows:
        for kind in ("otp_code", "order_status"):
            r = report[kind]
            print(
                f"{phase:<20} {kind:<13} {r['probes']:>6} {r['p50_ms'] or 0:>8.1f} "
                f"{r['p99_ms'] or 0:>8.1f}"
            )
    for p in phases:
        print(
            f"{_phase_name(p)}: {p['campaign_sent']:,} campaign messages sent "
            f"in {p['seconds']} s ({p['campaign_per_s']}/s), "
            f"{p['campaign_left_queued']:,} still queued after"
        )
    path = _pipeline.write_results(
        "otp_delay",
        {
            "command": " ".join(["bench/otp_delay_bench.py", *sys.argv[1:]]),
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine_before": before,
            "machine_after": _pipeline.machine(),
            "workers": args.workers,
            "campaign": args.campaign,
            "campaign_admitted_s": round(admitted_s, 1),
            "probes_per_s": args.rate,
            "target": "p99 under 1 s during the campaign",
            "idle": idle_report,
            "during_campaign": phases,
        },
    )
    print(f"wrote {path.relative_to(_pipeline.ROOT)}")


if __name__ == "__main__":
    main()
