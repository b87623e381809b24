"""The database: engines, transactions, migrations and the dialect details.

SQLite is the embedded default, a file under the data directory; PostgreSQL (psycopg 3)
is the choice at scale. Everything else in the data layer is written once for both::

    engine = open_engine("sqlite:///.dispatcher/dispatcher.sqlite3")
    upgrade(engine)
    with transaction(engine) as session:
        ...

On SQLite every connection runs in WAL mode with foreign keys on and a busy timeout,
and a write transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock before
its first read, so two writers queue instead of failing half-way with "database is
locked". Writers of one process also queue on a lock of their own first: SQLite's busy
handler polls with sleeps of up to 100 ms, so under load a writer that waited there
kept the webhooks waiting for seconds, while a lock hands over at once.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    ColumnElement,
    Engine,
    Insert,
    Table,
    create_engine,
    event,
    exc,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, CursorResult, make_url
from sqlalchemy.pool import Pool
from sqlmodel import Session

from . import tables
from .errors import ConstraintViolation, InternalError, StoreError

BUSY_TIMEOUT_MS = 5000
_SQLITE_BEGIN = "dispatcher_sqlite_begin"
# One per SQLite engine (its pool is shared by the engine's option proxies). Re-entrant,
# so a nested write in one thread meets SQLite's own lock, as it did before, rather
# than deadlocking here.
_WRITERS: weakref.WeakKeyDictionary[Pool, threading.RLock] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()


def normalise_url(url: str) -> str:
    """Point bare PostgreSQL URLs at psycopg 3, the one driver the dispatcher ships."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str, **options: Any) -> Engine:
    """An engine for ``url``; for a SQLite file, its directory is created.

    Raises :class:`~dispatcher.errors.StoreError` for a URL of another database.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **options)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, **options)
    raise StoreError(
        f"database_url: {backend!r} is not supported; use sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST:PORT/DBNAME"
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def transaction(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back when it
    raises, so a refused request leaves nothing half-written.

    Integrity errors the database raises are turned into
    :class:`~dispatcher.errors.ConstraintViolation` naming the field.
    """
    sqlite_writer = write and engine.dialect.name == "sqlite"
    with ExitStack() as held:
        if sqlite_writer:
            held.enter_context(_writer_lock(engine))
        session = Session(bind=engine, expire_on_commit=False)
        try:
            if sqlite_writer:
                # Begin now, with the mode set on this connection only (an engine
                # made with the option for every transaction cost more than the
                # statements of a short one).
                session.connection(execution_options={_SQLITE_BEGIN: "IMMEDIATE"})
            yield session
            session.commit()
        except exc.IntegrityError as error:
            session.rollback()
            raise constraint_violation(error) from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def writer_idle(engine: Engine) -> bool:
    """Whether ``engine`` is SQLite and no write transaction of this process is under
    way: one begun now waits for none of them (another process's can still make it
    wait, up to the busy timeout)."""
    if engine.dialect.name != "sqlite":
        return False
    lock = _writer_lock(engine)
    if not lock.acquire(blocking=False):
        return False
    lock.release()
    return True


def _writer_lock(engine: Engine) -> threading.RLock:
    with _WRITERS_GUARD:
        found = _WRITERS.get(engine.pool)
        if found is None:
            found = _WRITERS[engine.pool] = threading.RLock()
        return found


# What each named rule means to the person whose request broke it. SQLite reports the
# columns of a unique index, PostgreSQL its name: both are listed.
_VIOLATIONS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        (tables.UQ_BUSINESS_ROLE, "numbers.business_id, numbers.role"),
        "role",
        "the business already has an active number in this role (one number per role "
        "per business); retire it first, or use `dispatcher numbers migrate`",
    ),
    (
        (tables.UQ_PLATFORM_ROLE, "numbers.role"),
        "role",
        "the platform already has its number in this role (exactly one global number)",
    ),
    (
        (tables.UQ_ACTIVE_NUMBER, "numbers.e164"),
        "number",
        "already in use by an active number (a number belongs to one business and one "
        "role)",
    ),
    (
        (tables.UQ_BUSINESS_NAME, "businesses.name"),
        "name",
        "a business with this name already exists",
    ),
    (
        (tables.UQ_SECOND_NUMBER, "number_changes.business_id"),
        "business",
        "the second-number change is already recorded for this business",
    ),
    (
        ("append-only",),
        "ledger",
        "records are append-only: they cannot be updated or deleted",
    ),
    (
        ("FOREIGN KEY", "foreign key"),
        "reference",
        "refers to a row that does not exist",
    ),
)


def constraint_violation(error: exc.DBAPIError) -> ConstraintViolation:
    """The :class:`ConstraintViolation` for a database integrity error.

    The driver's message is not passed on: it may quote the values of the row.
    """
    orig = error.orig
    diag = getattr(orig, "diag", None)
    names = [str(getattr(diag, "constraint_name", "") or ""), str(orig)]
    for keys, field, reason in _VIOLATIONS:
        if any(key and key in name for key in keys for name in names):
            return ConstraintViolation(field, reason)
    check = re.search(r"ck_(\w+)", " ".join(names))
    if check:
        return ConstraintViolation(check.group(1), "refused by a check of the database")
    return ConstraintViolation("row", "refused by a constraint of the database")


class InsertOrSkip:
    """``INSERT ... ON CONFLICT DO NOTHING`` on one unique index of ``table``, built
    once for both databases: a row whose key is taken is skipped, not refused, so a
    concurrent writer of the same key cannot slip in between a lookup and the insert.

    ``where`` is the predicate of a partial index; ``returning`` columns come back for
    the rows written only::

        charge = InsertOrSkip(usage, ["source", "source_ref", "entry"], [usage.c.id])
        written = session.execute(charge.statement(session), row).scalar_one_or_none()
    """

    def __init__(
        self,
        table: Table,
        index: Sequence[str],
        returning: Sequence[ColumnElement[Any]] = (),
        *,
        where: ColumnElement[bool] | None = None,
    ) -> None:
        self._by_dialect: dict[str, Insert] = {}
        for name, insert in (
            ("sqlite", sqlite_insert),
            ("postgresql", postgresql_insert),
        ):
            statement = insert(table).on_conflict_do_nothing(
                index_elements=list(index), index_where=where
            )
            self._by_dialect[name] = (
                statement.returning(*returning) if returning else statement
            )

    def statement(self, session: Session) -> Insert:
        return self._by_dialect[session.get_bind().dialect.name]


# -- migrations ------------------------------------------------------------------------


def rowcount(result: object) -> int:
    """Rows an INSERT or UPDATE wrote, summed over an executemany (SQLAlchemy types
    ``Session.execute`` too loosely to say so)."""
    if not isinstance(result, CursorResult):  # pragma: no cover - DML has a cursor
        raise InternalError("a data change returned no cursor")
    return int(result.rowcount)


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    location = resources.files("dispatcher") / "migrations"
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


def revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(_alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise StoreError("no migrations are installed with the dispatcher")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; ``None`` for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply the migrations up to ``revision``; return the revision the database is at.

    Safe to run again: a database at ``revision`` is left as it is.
    """
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)
    return current_revision(engine)


def require_current(engine: Engine) -> None:
    """Raise :class:`~dispatcher.errors.StoreError` unless the schema is at the head."""
    try:
        current = current_revision(engine)
    except exc.OperationalError as error:
        raise StoreError(
            f"cannot reach the database: {type(error.orig).__name__}"
        ) from None
    if current != head_revision():
        raise StoreError(
            f"the database schema is at {current or 'nothing'}, this dispatcher needs "
            f"{head_revision()}: run `dispatcher db upgrade`"
        )


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def lock(session: Session, key: str) -> None:
    """Serialise writers of ``key`` until the transaction ends.

    PostgreSQL takes a transaction-scoped advisory lock; SQLite needs nothing more,
    since a write transaction already holds the database's one write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": key},
        )


def downgrade(engine: Engine, revision: str) -> str | None:
    """Undo migrations down to ``revision`` (``"base"``: an empty database)."""
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)
    return current_revision(engine)
