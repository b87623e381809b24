"""What the send-pipeline benchmarks share: scratch databases, businesses, recipients.

Not a benchmark itself. The scripts beside it import it as ``_pipeline`` (the directory
of the script is first on ``sys.path``). Every database made here is a scratch one,
dropped or deleted when its ``with`` block ends.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from dispatcher import businesses, numbers, store
from dispatcher.numbers import NumberKind, RegistrationStatus
from dispatcher.phone import Phone
from dispatcher.policy import Policy

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
GLOBAL_NUMBER = "+18002345678"
# Area codes across zones and quiet-hours regimes: one zone each, and a few that span
# two zones (270 Kentucky, 605 South Dakota, 850 Florida), decided once per zone.
AREA_CODES = (
    "201", "305", "512", "312", "415", "206", "602", "808",
    "907", "270", "605", "850", "404", "617", "713", "303",
)  # fmt: skip


def postgres_server(url: str | None) -> str:
    """The server to make scratch databases on: the argument, the tests' variable, or
    the local default."""
    chosen = url or os.environ.get("DISPATCHER_TEST_POSTGRES_URL") or DEFAULT_POSTGRES
    return store.normalise_url(chosen)


@contextmanager
def scratch_database(kind: str, postgres_url: str | None = None) -> Iterator[str]:
    """The URL of a new, migrated database of ``kind`` (sqlite or postgres)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dispatcher-bench-") as directory:
            url = f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
            _upgrade(url)
            yield url
        return
    server = postgres_server(postgres_url)
    name = f"dispatcher_bench_{secrets.token_hex(5)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(server).set(database=name).render_as_string(False)
        _upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _upgrade(url: str) -> None:
    engine = store.open_engine(url)
    try:
        store.upgrade(engine)
    finally:
        engine.dispose()


def recipient(i: int) -> str:
    """The ``i``-th recipient: E.164, spread over :data:`AREA_CODES`."""
    area = AREA_CODES[i % len(AREA_CODES)]
    return f"+1{area}{2_000_000 + i // len(AREA_CODES):07d}"


def add_business(
    db: Engine,
    policy: Policy,
    index: int,
    *,
    segments_per_second: float = 1000.0,
    with_global: bool = False,
) -> int:
    """A business with registered marketing and transactional numbers; its id.

    ``with_global`` also registers the platform's global (OTP) number, once per
    database.
    """
    with store.transaction(db) as session:
        created = businesses.add_business(
            session, f"Bench business {index}", assist=True, accelerate=True
        )
        plan = [
            (f"+1973{5_550_000 + 2 * index:07d}", "marketing", created.id),
            (f"+1973{5_550_001 + 2 * index:07d}", "transactional", created.id),
        ]
        if with_global:
            plan.append((GLOBAL_NUMBER, "global", None))
        for e164, role, owner in plan:
            numbers.add_number(
                session,
                policy,
                Phone.parse(e164),
                role=role,
                business=owner,
                actor="bench",
                kind=NumberKind.TOLL_FREE if role == "global" else NumberKind.LONG_CODE,
                status=RegistrationStatus.REGISTERED,
                segments_per_second=segments_per_second,
            )
    return created.id


def opt_in_all(
    db: Engine, business: int, phones: Sequence[str], scope: str = "marketing"
) -> None:
    """Record an opt-in of every phone for ``scope`` in bulk (ledger and state rows).

    Bulk statements, not the product's write path: seeding is not what is measured.
    """
    at = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    when: Any = at
    if db.dialect.name == "sqlite":
        when = at.replace(tzinfo=None).isoformat(sep=" ")
    with db.begin() as connection:
        first = connection.execute(
            text("SELECT coalesce(max(id), 0) FROM consent_events")
        ).scalar_one()
        events = [
            {
                "id": first + n + 1,
                "business": business,
                "phone": phone,
                "scope": scope,
                "at": when,
            }
            for n, phone in enumerate(phones)
        ]
        connection.execute(
            text(
                "INSERT INTO consent_events (id, business_id, phone, scope, action, at, "
                "source, consent_text, consent_text_version, recorded_by) VALUES "
                "(:id, :business, :phone, :scope, 'opt_in', :at, 'web_form', "
                "'Yes, text me offers', 'v1', 'bench')"
            ),
            events,
        )
        connection.execute(
            text(
                "INSERT INTO consent_states (business_id, phone, scope, state, "
                "event_id, event_at) VALUES (:business, :phone, :scope, 'opted_in', "
                ":id, :at)"
            ),
            events,
        )
        if db.dialect.name == "postgresql":
            connection.execute(
                text(
                    "SELECT setval('consent_events_id_seq', "
                    "(SELECT max(id) FROM consent_events))"
                )
            )
            connection.execute(text("ANALYZE"))


def machine() -> dict[str, Any]:
    """What the figures were measured on, with the load average at the time."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# --- workers against the fake Twilio API ----------------------------------------------


def worker_config(directory: Path, database_url: str, api_base_url: str) -> Path:
    """A config file for ``dispatcher worker``: PostgreSQL, Twilio at the fake API."""
    config = {
        "format": 1,
        "rules": str(ROOT / "rules"),
        "data_dir": str(directory),
        "database_url": database_url,
        "provider": {
            "kind": "twilio",
            "twilio": {
                "account_sid_env": "TWILIO_ACCOUNT_SID",
                "auth_token_env": "TWILIO_AUTH_TOKEN",
                "public_base_url": "https://dispatcher.example.com",
                "api_base_url": api_base_url,
            },
        },
    }
    path = directory / "config.yaml"
    # JSON is YAML: no YAML writer needed.
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


WORKER_APP = "dispatcher-bench-worker"


class Fleet:
    """``count`` ``dispatcher worker`` processes, the first ``priority`` of them kept to
    the OTP and transactional lanes; stopped with SIGTERM on exit."""

    def __init__(
        self,
        config: Path,
        count: int,
        credentials: dict[str, str],
        log: Path,
        batch: int = 20,
        priority: int = 0,
        concurrency: int = 1,
    ) -> None:
        self.config = config
        self.count = count
        self.batch = batch
        self.concurrency = concurrency
        self.priority = priority
        # libpq names the workers' connections, so that readiness can be seen.
        self.env = {**os.environ, **credentials, "PGAPPNAME": WORKER_APP}
        self.log = log
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Fleet:
        command = [str(ROOT / ".venv" / "bin" / "dispatcher"), "--config"]
        with self.log.open("ab") as errors:
            for n in range(self.count):
                # The first ``priority`` workers take OTPs and transactional only.
                lanes = ["--lane", "otp", "--lane", "transactional"]
                options = ["--batch", str(self.batch)]
                options += ["--concurrency", str(self.concurrency)]
                if n < self.priority:
                    options += lanes
                self.processes.append(
                    subprocess.Popen(
                        [*command, str(self.config), "worker", *options],
                        env=self.env,
                        stdout=subprocess.DEVNULL,
                        stderr=errors,
                    )
                )
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def connected(self, db: Engine) -> int:
        """Workers with a database connection: those past start-up."""
        with db.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE "
                        "datname = current_database() AND application_name = :app"
                    ),
                    {"app": WORKER_APP},
                ).scalar_one()
            )

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.processes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time of processes, from /proc (0 for those gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def backend_pids(db: Engine) -> list[int]:
    """The PostgreSQL server processes serving this database."""
    with db.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ).all()
    return [int(pid) for (pid,) in rows]


def new_york_hour() -> float:
    now = dt.datetime.now(ZoneInfo("America/New_York"))
    return now.hour + now.minute / 60


def require_sending_hours() -> None:
    """Workers decide with the wall clock; recipients are in New Jersey (federal window,
    08:00-21:00): outside it everything would be deferred."""
    hour = new_york_hour()
    if not 8.1 <= hour <= 20.5:
        sys.exit(
            f"it is {hour:.1f} h in New York: the benchmark's recipients are in quiet "
            "hours; run it between 08:10 and 20:30 New York time"
        )
