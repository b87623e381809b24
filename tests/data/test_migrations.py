"""Migrations: from empty, and from every earlier revision, to the head, on both
databases; the migrated schema matches the SQLModel tables."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from dispatcher import store
from dispatcher import tables as _tables  # noqa: F401  (registers the tables)
from dispatcher.errors import StoreError

# "base" is the empty database; every revision but the head is an earlier one.
STARTS = ["base", *store.revisions()[:-1]]


def _schema_differences(url: str) -> list[object]:
    engine = store.open_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True}
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


@pytest.mark.parametrize("start", STARTS)
def test_upgrade_to_head_from(start: str, empty_url: str) -> None:
    engine = store.open_engine(empty_url)
    try:
        if start != "base":
            assert store.upgrade(engine, start) == start
        assert store.upgrade(engine) == store.head_revision()
        # Running it again is a no-op.
        assert store.upgrade(engine) == store.head_revision()
        store.require_current(engine)
        names = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"businesses", "numbers", "consent_events", "consent_states"} <= names
    assert _schema_differences(empty_url) == []


def test_downgrade_to_base_and_back(empty_url: str) -> None:
    engine = store.open_engine(empty_url)
    try:
        store.upgrade(engine)
        assert store.downgrade(engine, "base") is None
        assert store.upgrade(engine) == store.head_revision()
    finally:
        engine.dispose()


def test_an_old_schema_is_refused_with_the_fix(empty_url: str) -> None:
    engine = store.open_engine(empty_url)
    try:
        with pytest.raises(StoreError, match="run `dispatcher db upgrade`"):
            store.require_current(engine)
    finally:
        engine.dispose()
