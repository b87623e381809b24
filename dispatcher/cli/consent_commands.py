"""Consent commands: record, show and export the ledger."""

from __future__ import annotations

from pathlib import Path

import click

from .. import consent, evidence
from ..businesses import list_businesses
from ..consent import ConsentSource
from ._state import State
from .data_commands import _actor_option, parse_phone, session_for

_SOURCE = click.Choice([s.value for s in ConsentSource])


@click.group("consent")
def consent_group() -> None:
    """The consent ledger: opt-ins and opt-outs per business, phone and scope."""


def _record_options(func: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option("--scope", required=True, help="The scope, from the rules."),
            click.option(
                "--business",
                "business_ref",
                help="Business (id or name); none for platform scopes such as otp.",
            ),
            click.option("--source", type=_SOURCE, help="How it reached us."),
            click.option(
                "--source-ref", help="URL, inbound message id (keyword) or reference."
            ),
        ]
    ):
        func = option(func)
    return func


@consent_group.command("opt-in")
@click.argument("phone")
@_record_options
@click.option("--text", "consent_text", help="The exact consent text shown.")
@click.option("--text-version", "consent_text_version", help="Its version.")
@_actor_option
@click.pass_obj
def opt_in(
    state: State,
    phone: str,
    scope: str,
    business_ref: str | None,
    source: str | None,
    source_ref: str | None,
    consent_text: str | None,
    consent_text_version: str | None,
    actor: str,
) -> None:
    """Record that PHONE opted in to a scope."""
    entry = _record(
        state,
        phone,
        scope,
        business_ref,
        source,
        source_ref,
        actor,
        opt_in=True,
        consent_text=consent_text,
        consent_text_version=consent_text_version,
    )
    click.echo(f"recorded {entry.action.value} of {entry.phone} to {entry.scope}")


@consent_group.command("opt-out")
@click.argument("phone")
@_record_options
@_actor_option
@click.pass_obj
def opt_out(
    state: State,
    phone: str,
    scope: str,
    business_ref: str | None,
    source: str | None,
    source_ref: str | None,
    actor: str,
) -> None:
    """Record that PHONE revoked its consent to a scope."""
    entry = _record(
        state, phone, scope, business_ref, source, source_ref, actor, opt_in=False
    )
    click.echo(f"recorded {entry.action.value} of {entry.phone} from {entry.scope}")


def _record(
    state: State,
    phone: str,
    scope: str,
    business_ref: str | None,
    source: str | None,
    source_ref: str | None,
    actor: str,
    *,
    opt_in: bool,
    consent_text: str | None = None,
    consent_text_version: str | None = None,
) -> consent.LedgerEntry:
    """One ledger record from the command line; refused input exits 1."""
    policy = state.policy(None)
    who = parse_phone(phone, "phone")
    with session_for(state) as session:
        return consent.record(
            session,
            policy,
            phone=who,
            scope=scope,
            business=business_ref,
            opt_in=opt_in,
            source=ConsentSource(source) if source else None,
            source_ref=source_ref,
            consent_text=consent_text,
            consent_text_version=consent_text_version,
            recorded_by=actor,
        )


@consent_group.command("show")
@click.argument("phone")
@click.option("--business", "business_ref", help="Only this business (id or name).")
@click.pass_obj
def show(state: State, phone: str, business_ref: str | None) -> None:
    """Show PHONE's current consent per business and scope, then its records."""
    policy = state.policy(None)
    who = parse_phone(phone, "phone")
    with session_for(state, write=False) as session:
        everyone = list_businesses(session)
        chosen = [
            b
            for b in everyone
            if business_ref is None or business_ref in (str(b.id), b.name)
        ]
        if business_ref is not None and not chosen:
            raise click.BadParameter("no such business", param_hint="--business")
        entries = consent.history(session, who, business_ref)
        states = {b.id: consent.states(session, policy, who, b.id) for b in chosen}
    click.echo(f"consent of {who}")
    if not chosen and everyone == []:
        click.echo("  (no businesses)")
    for item in chosen:
        shown = ", ".join(
            f"{scope}={value.value}" for scope, value in states[item.id].items()
        )
        click.echo(f"  {item.name}: {shown}")
    click.echo("records:")
    names = {b.id: b.name for b in everyone}
    for entry in entries:
        owner = "platform" if entry.business_id is None else names[entry.business_id]
        text = (
            f" text {entry.consent_text_version}" if entry.consent_text_version else ""
        )
        ref = f" ({entry.source_ref})" if entry.source_ref else ""
        click.echo(
            f"  {entry.at:%Y-%m-%d %H:%M:%S}Z {owner:<20} {entry.scope:<14} "
            f"{entry.action.value:<10} {entry.source.value}{ref}{text} by "
            f"{entry.recorded_by}"
        )
    if not entries:
        click.echo("  (none)")


@consent_group.command("export")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for consent_events.csv and consent_evidence.json.",
)
@click.option("--business", "business_ref", help="Only this business (id or name).")
@click.option("--phone", help="Only this phone.")
@click.pass_obj
def export(
    state: State, out_dir: Path, business_ref: str | None, phone: str | None
) -> None:
    """Write the evidence bundle (CSV and JSON). It holds full phone numbers."""
    who = parse_phone(phone, "phone") if phone else None
    with session_for(state, write=False) as session:
        bundle = evidence.export_bundle(
            session, out_dir, business=business_ref, phone=who
        )
    click.echo(
        f"wrote {bundle.records} records to {bundle.csv_path} and {bundle.json_path}"
    )
