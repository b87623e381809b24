"""Databases for the data-layer tests: every test that takes ``db`` runs on SQLite and
on PostgreSQL.

PostgreSQL runs when ``DISPATCHER_TEST_POSTGRES_URL`` names a server: the session makes
its own scratch database there (``dispatcher_test_<random>``) and drops it at the end.
Unset, those tests skip; set but unreachable, they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from dispatcher import store
from dispatcher.loader import load_policy
from dispatcher.policy import Policy

POSTGRES_ENV = "DISPATCHER_TEST_POSTGRES_URL"
TABLES = (
    "usage_events",
    "api_keys",
    "inbound_messages",
    "lane_clocks",
    "fair_tags",
    "pacers",
    "message_events",
    "decision_events",
    "messages",
    "consent_states",
    "consent_events",
    "number_changes",
    "numbers",
    "stores",
    "businesses",
)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(Path(__file__).resolve().parents[2] / "rules")


def postgres_server_url() -> str:
    """The configured server, or skip; fail when it is configured but unreachable."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests skipped")
    engine = create_engine(store.normalise_url(url))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"{POSTGRES_ENV} is set but the server does not answer: {exc}")
    finally:
        engine.dispose()
    return store.normalise_url(url)


@contextmanager
def scratch_postgres(server_url: str) -> Iterator[str]:
    """A new empty database on the server, dropped afterwards."""
    name = f"dispatcher_test_{secrets.token_hex(6)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(server_url)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Database:
    """An upgraded database, emptied before each test."""

    kind: str
    url: str
    engine: Engine

    def reset(self) -> None:
        if self.kind == "postgres":
            with self.engine.begin() as connection:
                connection.execute(
                    text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
                )
            return
        # SQLite has no TRUNCATE, and the append-only triggers refuse DELETE: start
        # again from the freshly upgraded template file.
        self.engine.dispose()
        database = make_url(self.url).database
        if database is None:
            raise RuntimeError("SQLite test database without a file")
        for suffix in ("-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)
        shutil.copyfile(_template_for(Path(database)), database)


def _template_for(path: Path) -> Path:
    return path.parent / "template.sqlite3"


@pytest.fixture(scope="session")
def _sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    directory = tmp_path_factory.mktemp("sqlite")
    template = _template_for(directory / "db.sqlite3")
    template_engine = store.open_engine(f"sqlite:///{template}")
    store.upgrade(template_engine)
    template_engine.dispose()
    url = f"sqlite:///{directory / 'db.sqlite3'}"
    database = Database("sqlite", url, store.open_engine(url))
    yield database
    database.engine.dispose()


@pytest.fixture(scope="session")
def _postgres_database() -> Iterator[Database]:
    with scratch_postgres(postgres_server_url()) as url:
        engine = store.open_engine(url)
        store.upgrade(engine)
        yield Database("postgres", url, engine)
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Database:
    """An upgraded, empty database of each kind."""
    database: Database = request.getfixturevalue(f"_{request.param}_database")
    database.reset()
    return database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database of each kind (for migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with scratch_postgres(postgres_server_url()) as url:
        yield url
