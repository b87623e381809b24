"""Billing commands: ``usage`` (a business's monthly usage) and ``history`` (a chat)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import click

from .. import billing, history
from ..billing import Month, UsageReport, format_money
from ..errors import InputError
from ._state import EXIT_UNSOUND, State
from .data_commands import _fail, parse_phone, session_for

_CSV_FIELDS = (
    "role",
    "direction",
    "kind",
    "unit",
    "count",
    "units",
    "rate",
    "amount",
)


def _month(_ctx: click.Context, _param: click.Parameter, value: str) -> Month:
    try:
        return Month.parse(value)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--business", required=True, help="Business name or id.")
@click.option(
    "--month",
    required=True,
    callback=_month,
    metavar="YYYY-MM",
    help="Calendar month, in UTC.",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.pass_obj
def usage(state: State, business: str, month: Month, output: str) -> None:
    """A business's usage in one month by number role and kind, priced with the
    config's rates (billing.rates)."""
    rates = state.config.billing
    with session_for(state, write=False) as session:
        report = billing.usage_report(session, business, month, rates)
    if output == "json":
        click.echo(json.dumps(report.to_mapping(), indent=2))
    elif output == "csv":
        click.echo(usage_csv(report), nl=False)
    else:
        click.echo(usage_table(report))


def usage_csv(report: UsageReport) -> str:
    """One row per line, then a ``total`` row; amounts as decimal strings."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for line in report.lines:
        row = line.to_mapping()
        writer.writerow({name: row[name] for name in _CSV_FIELDS})
    writer.writerow({"role": "total", "amount": format_money(report.total_micros)})
    return out.getvalue()


def usage_table(report: UsageReport) -> str:
    head = (
        f"Usage of {report.business} (business {report.business_id}) in "
        f"{report.month}, {report.currency}"
    )
    if not report.lines:
        return f"{head}\n  no usage"
    rows = [("role", "direction", "kind", "count", "units", "unit", "rate", "amount")]
    for line in report.lines:
        rows.append(
            (
                line.role,
                line.direction.value,
                line.kind.value,
                str(line.count),
                str(line.units),
                line.kind.unit,
                format_money(line.rate_micros),
                format_money(line.amount_micros),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {3, 4, 6, 7}
    lines = [head]
    for row in rows:
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    total = format_money(report.total_micros)
    lines.append(
        f"  {'total':<{sum(widths) + 2 * (len(widths) - 1) - len(total)}}{total}"
    )
    by_role = ", ".join(
        f"{role} {format_money(amount)}" for role, amount in report.by_role().items()
    )
    lines.append(f"  by role: {by_role}")
    return "\n".join(lines)


@click.command("history")
@click.argument("phone")
@click.option("--business", required=True, help="Business name or id.")
@click.option(
    "--limit",
    type=click.IntRange(1, history.MAX_LIMIT),
    default=history.DEFAULT_LIMIT,
    show_default=True,
    help="The newest entries to show.",
)
@click.option(
    "--before",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    help="Only entries before this UTC time (to page back).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def history_command(
    state: State,
    phone: str,
    business: str,
    limit: int,
    before: dt.datetime | None,
    as_json: bool,
) -> None:
    """The chat history of PHONE with a business: messages sent from each number role
    (with the rule that decided them and their status) and the replies, in order."""
    customer = parse_phone(phone, "phone")
    cutoff = before.replace(tzinfo=dt.UTC) if before else None
    with session_for(state, write=False) as session:
        try:
            entries = history.conversation(session, business, customer, limit, cutoff)
        except InputError as exc:
            _fail(str(exc), EXIT_UNSOUND)
            return
    if as_json:
        click.echo(json.dumps([entry.to_mapping() for entry in entries], indent=2))
        return
    click.echo(f"{customer.masked} and business {business}: {len(entries)} entries")
    for entry in entries:
        click.echo(_history_line(entry))


def _history_line(entry: history.Entry) -> str:
    when = entry.at.strftime("%Y-%m-%d %H:%M")
    if isinstance(entry, history.Outbound):
        status = entry.state + (
            f"/{entry.provider_status}" if entry.provider_status else ""
        )
        if entry.error_code:
            status += f" (error {entry.error_code})"
        sender = f"{entry.role} {entry.number}" if entry.number else "-"
        media = f" +{entry.media} media" if entry.media else ""
        return (
            f"{when}  -> {sender:<28} {entry.message_type} [{status}] "
            f"rule {entry.rule}\n"
            f"{'':18}{entry.body!r}{media}"
        )
    keyword = (
        f" [{entry.keyword_kind}: {entry.keyword or '?'}]" if entry.keyword_kind else ""
    )
    to = f"{entry.role} {entry.number}" if entry.number else "-"
    body = repr(entry.body) if entry.body is not None else "(text not kept)"
    return f"{when}  <- {to:<28} reply{keyword}\n{'':18}{body}"
