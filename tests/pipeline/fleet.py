"""Real ``dispatcher worker`` processes against the fake Twilio API, for the slow tests.

A :class:`Fleet` writes a config file naming the test database and the fake API, starts
workers as subprocesses, kills them with SIGKILL and starts new ones, and waits for them
to run out of work. Each worker's output goes to its own file, so a failure can be read.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, update
from sqlmodel import col

from dispatcher import tables
from dispatcher.outbox import SendRequest, admit_many
from dispatcher.phone import Phone
from dispatcher.store import transaction

from ..fake_twilio import FakeTwilio
from .conftest import Shop

RULES = Path(__file__).resolve().parents[2] / "rules"
SID_ENV = "FLEET_TWILIO_SID"
TOKEN_ENV = "FLEET_TWILIO_TOKEN"
IN_FLIGHT = ("queued", "sending", "unknown")


def daytime_zone(now: dt.datetime | None = None) -> str:
    """A fixed-offset zone where it is early afternoon now, so quiet hours never apply.

    The workers decide with the real clock; the tests must pass at any hour of the day.
    """
    hour = (now or dt.datetime.now(dt.UTC)).hour
    offset = (13 - hour) % 24
    if offset > 14:
        offset -= 24
    # Etc/GMT zones have the sign inverted: Etc/GMT-3 is UTC+3.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def recipient(n: int) -> Phone:
    return Phone.parse(f"+1201557{n:04d}")


def admit_messages(
    shop: Shop, count: int, message_type: str = "order_status", *, start: int = 0
) -> None:
    """Admit ``count`` messages to distinct recipients, each with its own body."""
    zone = daytime_zone()
    requests = [
        SendRequest(
            business=shop.business_id,
            to=recipient(start + n),
            message_type=message_type,
            body=f"{message_type} {start + n}: your order is ready.",
            zone=zone,
        )
        for n in range(count)
    ]
    admit_many(shop.db.engine, shop.engine, requests)


def set_throughput(shop: Shop, role: str, segments_per_second: float) -> str:
    """Set the pace of the business's (or the platform's) number in ``role``; its E.164."""
    number = tables.Number
    with transaction(shop.db.engine) as session:
        row = session.execute(
            select(number).where(
                col(number.role) == role, col(number.retired_at).is_(None)
            )
        ).scalar_one()
        session.execute(
            update(number)
            .where(col(number.id) == row.id)
            .values(segments_per_second=segments_per_second)
        )
        return row.e164


def in_flight(shop: Shop) -> int:
    """Messages not settled yet (queued, being sent, or with an unknown outcome)."""
    message = tables.Message
    with transaction(shop.db.engine, write=False) as session:
        return int(
            session.execute(
                select(func.count()).where(col(message.state).in_(IN_FLIGHT))
            ).scalar_one()
        )


# Starting a worker costs seconds of imports; dozens of restarts on two busy cores would
# starve the workers that are running. The zygote imports the dispatcher once and forks a
# child per worker; the child runs the ``dispatcher worker`` command itself, with its own
# process id, database connections and HTTP client, and dies by SIGKILL like any process.
ZYGOTE = r"""
import json, os, select, signal, sys, traceback
import dispatcher.cli
import dispatcher.providers.twilio_provider
import twilio.rest.api.v2010.account.message

children = set()
buffer = b""
while True:
    ready, _, _ = select.select([0], [], [], 0.05)
    if ready:
        chunk = os.read(0, 65536)
        if not chunk:
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            log, args = json.loads(line)
            pid = os.fork()
            if pid == 0:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                code = 1
                try:
                    dispatcher.cli.main(args, prog_name="dispatcher")
                    code = 0
                except SystemExit as exit:
                    code = exit.code if isinstance(exit.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            children.add(pid)
            sys.stdout.write(f"pid {pid}\n")
            sys.stdout.flush()
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        children.discard(pid)
        sys.stdout.write(f"exit {pid} {os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()
"""


class Zygote:
    """A process that forks ``dispatcher worker`` children on request and reaps them."""

    def __init__(self, env: dict[str, str]) -> None:
        self._popen = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.exits: dict[int, int] = {}
        self._pids: queue.Queue[int] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for raw in self._popen.stdout:
            kind, pid, *rest = raw.decode().split()
            if kind == "pid":
                self._pids.put(int(pid))
            else:
                self.exits[int(pid)] = int(rest[0])

    def spawn(self, log: Path, args: list[str]) -> int:
        assert self._popen.stdin is not None
        self._popen.stdin.write(json.dumps([str(log), args]).encode() + b"\n")
        self._popen.stdin.flush()
        return self._pids.get(timeout=60)

    def wait(self, pid: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while pid not in self.exits:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {pid} did not end")
            time.sleep(0.01)
        return self.exits[pid]

    def close(self) -> None:
        if self._popen.stdin is not None:
            self._popen.stdin.close()
        try:
            self._popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()
        self._reader.join(timeout=5)
        if self._popen.stdout is not None:
            self._popen.stdout.close()


@dataclass
class Process:
    pid: int
    log: Path
    zygote: Zygote

    @property
    def working(self) -> bool:
        """Past its start-up: it has claimed something (a claim logs a line)."""
        return self.log.exists() and self.log.stat().st_size > 0

    def poll(self) -> int | None:
        return self.zygote.exits.get(self.pid)

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.zygote.wait(self.pid)


@dataclass
class Fleet:
    """Worker processes sharing the test database and the fake Twilio API."""

    shop: Shop
    fake: FakeTwilio
    directory: Path
    lease: float = 3.0
    provider_timeout: float = 1.0
    batch: int = 5
    reconcile: bool = True
    alive: list[Process] = field(default_factory=list)
    finished: list[Process] = field(default_factory=list)
    kills: int = 0
    kills_with_work_left: int = 0
    _started: int = 0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = self.directory / "dispatcher.yaml"
        self.config.write_text(
            "format: 1\n"
            f"rules: {RULES}\n"
            f"data_dir: {self.directory / 'data'}\n"
            f"database_url: {self.shop.db.url}\n"
            "provider:\n"
            "  kind: twilio\n"
            "  twilio:\n"
            f"    account_sid_env: {SID_ENV}\n"
            f"    auth_token_env: {TOKEN_ENV}\n"
            f"    api_base_url: {self.fake.base_url}\n",
            encoding="utf-8",
        )
        self.zygote = Zygote(
            {
                **os.environ,
                SID_ENV: self.fake.account_sid,
                TOKEN_ENV: self.fake.auth_token,
            }
        )

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            self._started += 1
            log = self.directory / f"worker-{self._started}.log"
            args = [
                "--config",
                str(self.config),
                "worker",
                "--until-idle",
                f"--batch={self.batch}",
                f"--lease={self.lease}",
                f"--provider-timeout={self.provider_timeout}",
            ]
            if not self.reconcile:
                args.append("--no-reconcile")
            pid = self.zygote.spawn(log, args)
            self.alive.append(Process(pid, log, self.zygote))

    def kill_one(self, rng: random.Random) -> bool:
        """SIGKILL one working worker and start another; False when none is working."""
        self.reap()
        working = [p for p in self.alive if p.working]
        if not working:
            return False
        victim = rng.choice(working)
        work_left = in_flight(self.shop) > 0
        victim.kill()
        self.alive.remove(victim)
        self.kills += 1
        self.kills_with_work_left += work_left
        self.start()
        return True

    def reap(self) -> None:
        """Move workers that exited on their own to ``finished``; fail on a crash."""
        for process in list(self.alive):
            code = process.poll()
            if code is None:
                continue
            self.alive.remove(process)
            self.finished.append(process)
            if code != 0:
                tail = process.log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"worker exited with {code}:\n{tail}")

    def wait_idle(self, timeout: float) -> None:
        """Wait for every worker to stop by itself (``--until-idle``)."""
        deadline = time.monotonic() + timeout
        while self.alive:
            self.reap()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(self.alive)} workers still busy after {timeout}s, "
                    f"{in_flight(self.shop)} messages in flight"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Kill whatever is left (a failed test must not leave workers behind)."""
        for process in self.alive:
            process.kill()
        self.alive.clear()
        self.zygote.close()
