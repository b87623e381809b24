"""Inbound STOP webhooks on loopback at a fixed rate: latency, and every opt-out present.

    .venv/bin/python bench/inbound_load.py [--rate 200] [--seconds 30] [--workers 2]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Starts `dispatcher serve --demo` in its own process on 127.0.0.1 (SQLite under a temporary
directory, the simulator, in-process workers sending the confirmations), then sends
rate x seconds inbound STOP webhooks to the marketing number, each from a different phone
and signed as Twilio signs them, on an open-loop schedule (request i leaves at t0 + i/rate,
whatever the earlier ones did). It stops by itself. Afterwards it counts, in the database,
the phones whose marketing consent is opted out. With ``--database-url`` the service runs
on PostgreSQL instead, in a scratch database made on that server and dropped at the end.

Besides the latencies it reports the CPU time the server process spent per request
(from /proc, start-up excluded) and the load average before and after. Writes
bench/results/inbound_load.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import _pipeline  # noqa: E402

from dispatcher import store  # noqa: E402
from dispatcher.providers.credentials import Secret  # noqa: E402
from dispatcher.providers.twilio_provider import signature_for  # noqa: E402
from dispatcher.service.demo import MARKETING  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _phone(i: int) -> str:
    return f"+1201{556 + i // 10000:03d}{i % 10000:04d}"


def run(
    rate: float,
    seconds: float,
    workers: int,
    threads: int = 48,
    database_url: str | None = None,
    processes: int = 1,
) -> dict[str, object]:
    token = secrets.token_hex(16)
    with contextlib.ExitStack() as held:
        tmp = held.enter_context(tempfile.TemporaryDirectory())
        if database_url:
            database_url = held.enter_context(
                _pipeline.scratch_database("postgres", database_url)
            )
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        config = Path(tmp) / "config.yaml"
        config.write_text(
            "format: 1\n"
            f"rules: {REPO / 'rules'}\n"
            f"data_dir: {tmp}/data\n"
            + (f"database_url: {database_url}\n" if database_url else "")
            + "log: {format: json, level: warning}\n"
            "provider:\n  kind: simulator\n  twilio:\n"
            f"    public_base_url: {base}\n",
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "DISPATCHER_CONFIG": str(config),
            "TWILIO_AUTH_TOKEN": token,
        }
        dispatcher = str(Path(sys.executable).parent / "dispatcher")
        subprocess.run(
            [dispatcher, "db", "upgrade"], env=env, check=True, capture_output=True
        )
        server = subprocess.Popen(
            [
                dispatcher,
                "serve",
                "--demo",
                "--port",
                str(port),
                *(
                    ["--processes", str(processes)]
                    if processes > 1
                    else ["--workers", str(workers)]
                ),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if processes > 1:
                # /readyz below answers from whichever process is up first: give
                # all of them time to start.
                time.sleep(3)
            result = _drive(base, Secret(token), rate, seconds, threads, server.pid)
        finally:
            server.terminate()
            server.wait(30)
        engine = store.open_engine(
            database_url or f"sqlite:///{tmp}/data/dispatcher.sqlite3"
        )
        with engine.connect() as connection:
            present = connection.execute(
                text(
                    "SELECT count(*) FROM consent_states WHERE scope = 'marketing' "
                    "AND state = 'opted_out' AND phone LIKE '+1201%' "
                    "AND phone != '+12015550142'"
                )
            ).scalar_one()
        engine.dispose()
    result["opt_outs_present"] = int(present)
    return result


def _server_pids(server: int) -> list[int]:
    """The server and the processes it started (``--processes``), from /proc."""
    try:
        children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
    except OSError:
        children = []
    return [server, *(int(pid) for pid in children)]


def _drive(
    base: str, token: Secret, rate: float, seconds: float, threads: int, server: int
) -> dict[str, object]:
    with httpx.Client(base_url=base, timeout=10) as probe:
        deadline = time.monotonic() + 30
        while True:
            try:
                if probe.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.1)
    total = int(rate * seconds)
    url = base + "/webhooks/twilio/sms"
    forms = []
    for i in range(total):
        form = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "AccountSid": "AC" + "0" * 32,
            "From": _phone(i),
            "To": MARKETING.e164,
            "Body": "STOP",
        }
        forms.append((form, signature_for(token, url, form)))
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    client = httpx.Client(base_url=base, timeout=10, limits=limits)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.monotonic() + 0.2
    pids = _server_pids(server)
    cpu_before = _pipeline.cpu_seconds(pids)
    client_before = time.process_time()

    def one(i: int) -> tuple[int, float]:
        form, signature = forms[i]
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        answer = client.post(
            "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
        )
        return answer.status_code, time.perf_counter() - began

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for status, seconds_taken in pool.map(one, range(total)):
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(seconds_taken * 1000)
    elapsed = time.monotonic() - start
    cpu = _pipeline.cpu_seconds(pids) - cpu_before
    client_cpu = time.process_time() - client_before
    within = _handled_within(client.get("/metrics").text)
    client.close()
    latencies.sort()
    return {
        "requests": total,
        "target_rate": rate,
        "achieved_rate": round(total / elapsed, 1),
        "statuses": statuses,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "max_ms": round(latencies[-1], 2),
        "server_cpu_ms_per_request": round(cpu * 1000 / total, 2),
        "server_handled_within_ms": within,
        "client_cpu_ms_per_request": round(client_cpu * 1000 / total, 2),
    }


def _handled_within(metrics: str) -> dict[str, float]:
    """The share of inbound webhooks the server's handler finished within each bucket
    of its histogram (from the body read to the response; HTTP and queueing before
    the handler not included), in percent."""
    buckets: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("dispatcher_webhook_seconds_bucket") and '"sms"' in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = float(line.rsplit(" ", 1)[1])
    total = buckets.get("+Inf", 0.0)
    return {
        f"{float(bound) * 1000:g}": round(100 * count / total, 2)
        for bound, count in buckets.items()
        if bound in ("0.005", "0.01", "0.02", "0.05") and total
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="API processes (PostgreSQL; more than one runs no workers).",
    )
    parser.add_argument(
        "--database-url",
        help="A PostgreSQL server to make a scratch database on (default: SQLite).",
    )
    parser.add_argument(
        "--results", default="inbound_load", help="name of the file in bench/results"
    )
    args = parser.parse_args()
    load_before = _pipeline.machine()["load_average"]
    result = run(
        args.rate,
        args.seconds,
        args.workers,
        database_url=args.database_url,
        processes=args.processes,
    )
    result["database"] = "postgresql" if args.database_url else "sqlite"
    result.update(
        seconds=args.seconds,
        workers=0 if args.processes > 1 else args.workers,
        processes=args.processes,
        python=platform.python_version(),
        cpus=os.cpu_count(),
        load_average_before=load_before,
        load_average_after=_pipeline.machine()["load_average"],
        date=time.strftime("%Y-%m-%d %H:%M"),
        command=" ".join(sys.argv),
    )
    out = REPO / "bench" / "results" / f"{args.results}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
