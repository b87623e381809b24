"""Data commands: ``db``, ``business`` and ``numbers``.

Refused input exits 1 with ``FIELD: reason``; a database that cannot be reached or is
not at the current schema exits 4 and says to run ``dispatcher db upgrade``.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlmodel import Session

from .. import businesses, numbers, store
from ..errors import InputError, StoreError
from ..numbers import NumberKind, RegistrationStatus, SenderNumber
from ..phone import Phone
from ._state import EXIT_UNSOUND, State

EXIT_STORE = 4


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def engine_for(state: State, *, check: bool = True) -> Engine:
    """The configured database; exit 4 unless it is at the current schema."""
    try:
        engine = store.open_engine(state.config.effective_database_url)
        if check:
            store.require_current(engine)
    except StoreError as exc:
        _fail(str(exc), EXIT_STORE)
    return engine


@contextmanager
def session_for(state: State, *, write: bool = True) -> Iterator[Session]:
    """One transaction on the configured database; refused input exits 1."""
    engine = engine_for(state)
    try:
        with store.transaction(engine, write=write) as session:
            yield session
    except InputError as exc:
        _fail(str(exc), EXIT_UNSOUND)
    finally:
        engine.dispose()


def parse_phone(value: str, field: str) -> Phone:
    try:
        return Phone.parse(value, field=field)
    except InputError as exc:
        _fail(str(exc), EXIT_UNSOUND)
        raise  # unreachable: _fail exits


def _actor_option(func: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--actor",
        default=lambda: f"cli:{getpass.getuser()}",
        show_default="cli:$USER",
        help="Who makes the change, as the audit trail records it.",
    )(func)


# -- db ------------------------------------------------------------------------------


@click.group()
def db() -> None:
    """The database: schema migrations."""


@db.command()
@click.option("--revision", default="head", show_default=True)
@click.pass_obj
def upgrade(state: State, revision: str) -> None:
    """Apply the schema migrations (safe to run again)."""
    url = state.config.effective_database_url
    engine = engine_for(state, check=False)
    try:
        reached = store.upgrade(engine, revision)
    except Exception as exc:  # the database's own error, shown without its SQL
        _fail(f"migration failed: {type(exc).__name__}", EXIT_STORE)
    finally:
        engine.dispose()
    shown = make_url(store.normalise_url(url)).render_as_string(hide_password=True)
    click.echo(f"database {shown} at revision {reached}")


# -- business ------------------------------------------------------------------------


@click.group()
def business() -> None:
    """Businesses, their stores and their enrolment in Assist and Accelerate."""


def _describe(item: businesses.Business) -> str:
    products = ", ".join(item.enrolments) or "no add-on products"
    stores = ", ".join(item.stores) or "no stores"
    return f"business {item.id} {item.name!r}: {products}; stores: {stores}"


@business.command("add")
@click.argument("name")
@click.option("--store", "stores", multiple=True, help="A store of the business.")
@click.option("--assist", is_flag=True, help="The business uses Assist.")
@click.option("--accelerate", is_flag=True, help="The business uses Accelerate.")
@click.pass_obj
def business_add(
    state: State, name: str, stores: tuple[str, ...], assist: bool, accelerate: bool
) -> None:
    """Create the business NAME."""
    with session_for(state) as session:
        created = businesses.add_business(
            session, name, stores=stores, assist=assist, accelerate=accelerate
        )
    click.echo(_describe(created))


@business.command("enrol")
@click.argument("name")
@click.option("--assist/--no-assist", default=None, help="Turn Assist on or off.")
@click.option(
    "--accelerate/--no-accelerate", default=None, help="Turn Accelerate on or off."
)
@click.pass_obj
def business_enrol(
    state: State, name: str, assist: bool | None, accelerate: bool | None
) -> None:
    """Enrol the business NAME (id or name) in Assist and/or Accelerate."""
    if assist is None and accelerate is None:
        raise click.UsageError("give --assist, --accelerate or their --no- forms")
    with session_for(state) as session:
        changed = businesses.enrol(session, name, assist=assist, accelerate=accelerate)
        has_second = any(
            n.role == numbers.second_number_roles(state.policy(None))[1]
            for n in numbers.list_numbers(session, changed.id)
        )
    click.echo(_describe(changed))
    if changed.enrolments and not has_second:
        click.echo(
            "note: a business that uses Assist or Accelerate needs its second number: "
            f"dispatcher numbers migrate {changed.id} +<new number>"
        )


@business.command("list")
@click.pass_obj
def business_list(state: State) -> None:
    """List the businesses."""
    with session_for(state, write=False) as session:
        for item in businesses.list_businesses(session):
            click.echo(_describe(item))


# -- numbers -------------------------------------------------------------------------


@click.group("numbers")
def numbers_group() -> None:
    """The number registry and the second-number flow."""


def _number_line(item: SenderNumber, names: dict[int, str]) -> str:
    owner = "platform" if item.business_id is None else names.get(item.business_id, "?")
    retired = f"  retired {item.retired_at:%Y-%m-%d}" if item.retired_at else ""
    return (
        f"{item.phone.e164:<16} {owner:<24} {item.role:<14} {item.kind.value:<10} "
        f"{item.status.value:<12} {item.segments_per_second:g}/s{retired}"
    )


_KIND = click.Choice([k.value for k in NumberKind])
_STATUS = click.Choice([s.value for s in RegistrationStatus])


@numbers_group.command("list")
@click.option("--business", "business_ref", help="Only this business (id or name).")
@click.option("--all", "include_retired", is_flag=True, help="Include retired numbers.")
@click.pass_obj
def numbers_list(state: State, business_ref: str | None, include_retired: bool) -> None:
    """List the sending numbers: number, owner, role, kind, status, throughput."""
    with session_for(state, write=False) as session:
        names = {b.id: b.name for b in businesses.list_businesses(session)}
        found = numbers.list_numbers(
            session, business_ref, include_retired=include_retired
        )
    for item in found:
        click.echo(_number_line(item, names))


@numbers_group.command("add")
@click.argument("number")
@click.option("--role", required=True, help="The number's role, from the rules.")
@click.option("--business", "business_ref", help="Owner (id or name); none: platform.")
@click.option(
    "--kind", type=_KIND, default=NumberKind.LONG_CODE.value, show_default=True
)
@click.option(
    "--status",
    type=_STATUS,
    default=RegistrationStatus.PENDING.value,
    show_default=True,
)
@click.option("--throughput", type=float, help="Segments per second (default by kind).")
@click.option("--replace", is_flag=True, help="Retire the number now in this role.")
@_actor_option
@click.pass_obj
def numbers_add(
    state: State,
    number: str,
    role: str,
    business_ref: str | None,
    kind: str,
    status: str,
    throughput: float | None,
    replace: bool,
    actor: str,
) -> None:
    """Register NUMBER (E.164) in a role."""
    policy = state.policy(None)
    phone = parse_phone(number, "number")
    with session_for(state) as session:
        added = numbers.add_number(
            session,
            policy,
            phone,
            role=role,
            business=business_ref,
            actor=actor,
            kind=NumberKind(kind),
            status=RegistrationStatus(status),
            segments_per_second=throughput,
            replace=replace,
        )
    click.echo(f"added {added.phone} as {added.role} number ({added.status.value})")


@numbers_group.command("migrate")
@click.argument("business_ref", metavar="BUSINESS")
@click.argument("number")
@click.option(
    "--kind", type=_KIND, default=NumberKind.LONG_CODE.value, show_default=True
)
@click.option(
    "--status",
    type=_STATUS,
    default=RegistrationStatus.PENDING.value,
    show_default=True,
)
@click.option("--throughput", type=float, help="Segments per second (default by kind).")
@_actor_option
@click.pass_obj
def numbers_migrate(
    state: State,
    business_ref: str,
    number: str,
    kind: str,
    status: str,
    throughput: float | None,
    actor: str,
) -> None:
    """Second-number flow: NUMBER becomes the transactional number of BUSINESS and its
    existing number its marketing number. Running it again changes nothing."""
    policy = state.policy(None)
    phone = parse_phone(number, "number")
    with session_for(state) as session:
        done = numbers.migrate_second_number(
            session,
            policy,
            business_ref,
            phone,
            actor=actor,
            kind=NumberKind(kind),
            status=RegistrationStatus(status),
            segments_per_second=throughput,
        )
    verb = "migrated" if done.changed else "already migrated"
    click.echo(
        f"{verb} (change {done.change_id}): {done.marketing.role} "
        f"{done.marketing.phone}, {done.transactional.role} {done.transactional.phone} "
        f"({done.transactional.status.value})"
    )


@numbers_group.command("retire")
@click.argument("number")
@_actor_option
@click.pass_obj
def numbers_retire(state: State, number: str, actor: str) -> None:
    """Take NUMBER out of service (its history stays)."""
    policy = state.policy(None)
    phone = parse_phone(number, "number")
    with session_for(state) as session:
        retired = numbers.retire_number(session, policy, phone, actor=actor)
    click.echo(f"retired {retired.phone} ({retired.role})")


@numbers_group.command("status")
@click.argument("number")
@click.argument("status", type=_STATUS)
@_actor_option
@click.pass_obj
def numbers_status(state: State, number: str, status: str, actor: str) -> None:
    """Record NUMBER's carrier registration: registered, pending or unregistered."""
    phone = parse_phone(number, "number")
    with session_for(state) as session:
        changed = numbers.set_status(
            session, phone, RegistrationStatus(status), actor=actor
        )
    click.echo(f"{changed.phone} is {changed.status.value}")
