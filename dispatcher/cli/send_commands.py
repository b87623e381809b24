"""Send commands: ``send``, ``campaign``, ``worker``, ``audit`` and ``deadletters``."""

from __future__ import annotations

import csv
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import structlog

from .. import audit, outbox, providers, store
from ..engine import Engine
from ..errors import InputError
from ..outbox import SendRequest
from ..phone import Phone
from ..statuses import apply_status
from ..worker import Worker, WorkerSettings
from ._state import EXIT_UNSOUND, State
from .data_commands import _fail, engine_for, parse_phone


def _request_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--business", required=True, help="Business name or id."),
            click.option("--type", "message_type", required=True, help="Message type."),
            click.option(
                "--reply-role", help="Role of the number the customer wrote to."
            ),
            click.option(
                "--jurisdiction", help="Override the area code's state, e.g. US-FL."
            ),
            click.option(
                "--zone", help="Override the recipient's time zone (IANA name)."
            ),
        ]
    ):
        func = option(func)
    return func


@click.command()
@_request_options
@click.option("--to", "to", required=True, help="Recipient, E.164.")
@click.option("--body", required=True, help="Message text.")
@click.option("--media", multiple=True, help="Media URL (makes it an MMS).")
@click.option(
    "--key",
    "idempotency_key",
    help="Idempotency key: a repeat returns the first result.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def send(
    state: State,
    /,
    to: str,
    body: str,
    media: tuple[str, ...],
    idempotency_key: str | None,
    as_json: bool,
    **request: Any,
) -> None:
    """Decide one message and queue it (or record why not)."""
    db = engine_for(state)
    engine = Engine(state.policy(None))
    try:
        result = outbox.admit(
            db,
            engine,
            SendRequest(
                to=parse_phone(to, "to"),
                body=body,
                media=media,
                idempotency_key=idempotency_key,
                **_request_fields(request),
            ),
        )
    except InputError as exc:
        _fail(str(exc), EXIT_UNSOUND)
        return
    finally:
        db.dispose()
    payload = {
        "message_id": result.message_id,
        "state": result.state,
        "outcome": result.outcome.value,
        "role": result.role,
        "rule": result.rule_id,
        "reason": result.reason,
        "not_before": result.not_before.isoformat(),
        "segments": result.segments,
        "repeated": result.repeated,
    }
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(
        f"message {result.message_id}: {result.state} ({result.outcome.value}"
        f"{' from the ' + result.role + ' number' if result.role else ''}) "
        f"by rule {result.rule_id}; {result.segments} segment(s)"
        + (" [repeated key: first result]" if result.repeated else "")
    )
    click.echo(f"  {result.reason}")


def _request_fields(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "business": values["business"],
        "message_type": values["message_type"],
        "reply_role": values.get("reply_role"),
        "jurisdiction": values.get("jurisdiction"),
        "zone": values.get("zone"),
    }


# A file with thousands of bad rows is refused with the first ones shown and a count.
MAX_PROBLEMS_SHOWN = 50


def _recipients(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a CSV (with a header) or JSON-lines file, with their line number."""
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix in (".jsonl", ".ndjson"):
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise click.ClickException(
                        f"{path}:{number}: not JSON: {exc.msg}"
                    ) from None
                if not isinstance(row, dict):
                    raise click.ClickException(f"{path}:{number}: expected an object")
                yield {"_line": str(number), **{k: str(v) for k, v in row.items()}}
            return
        for number, row in enumerate(csv.DictReader(handle), start=2):
            yield {"_line": str(number), **row}


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_request_options
@click.option(
    "--body", help="Text for every recipient (else the file's 'body' column)."
)
@click.option(
    "--campaign-id", help="Prefix of idempotency keys: a re-run admits only the rest."
)
@click.pass_obj
def campaign(
    state: State,
    /,
    file: Path,
    body: str | None,
    campaign_id: str | None,
    **request: Any,
) -> None:
    """Decide and queue a message for each recipient of FILE (CSV with a 'phone' column,
    or JSON lines), in bulk, and print a summary of outcomes."""
    engine = Engine(state.policy(None))
    fields = _request_fields(request)

    def requests(problems: list[str] | None = None) -> Iterator[SendRequest]:
        for row in _recipients(file):
            text = row.get("body") or body
            try:
                phone = Phone.parse(row.get("phone", ""), field="phone")
                if not text:
                    raise InputError("body: missing (give --body or a column)")
            except InputError as exc:
                if problems is None:
                    raise
                problems.append(f"{file}:{row['_line']}: {exc}")
                continue
            key = row.get("idempotency_key") or (
                f"{campaign_id}:{phone.e164}" if campaign_id else None
            )
            yield SendRequest(to=phone, body=text, idempotency_key=key, **fields)

    # Two passes over the file, so that memory does not grow with its length: the
    # first checks every row and counts them; only a clean file is queued.
    problems: list[str] = []
    total = sum(1 for _ in requests(problems))
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more")
        click.echo("\n".join(shown), err=True)
        click.echo(
            f"campaign refused: {len(problems)} bad row(s), nothing queued", err=True
        )
        sys.exit(EXIT_UNSOUND)
    db = engine_for(state)
    try:
        with click.progressbar(length=total, label="deciding", file=sys.stderr) as bar:
            summary = outbox.admit_many(db, engine, requests(), progress=bar.update)
    except InputError as exc:
        _fail(str(exc), EXIT_UNSOUND)
        return
    finally:
        db.dispose()
    click.echo(f"{summary.admitted} recipients, {summary.repeated} already admitted")
    for outcome, count in sorted(summary.by_outcome.items()):
        click.echo(f"  {outcome:<9} {count}")
    click.echo("by rule:")
    for rule, count in sorted(summary.by_rule.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {rule:<48} {count}")


@click.command()
@click.option("--batch", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option(
    "--until-idle", is_flag=True, help="Stop when nothing is due or in flight."
)
@click.option(
    "--lease", type=float, default=30.0, show_default=True, help="Lease, seconds."
)
@click.option(
    "--provider-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="The provider's request timeout, seconds.",
)
@click.option(
    "--lane",
    "lanes",
    multiple=True,
    type=click.Choice(["otp", "transactional", "marketing", "other"]),
    help="Claim only messages of this lane (repeatable; default: every lane).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Sends of one batch in flight at once (one recipient's stay in order).",
)
@click.option(
    "--no-reconcile",
    is_flag=True,
    hidden=True,
    help="Resend unknown outcomes blindly (only for the crash tests' control run).",
)
@click.pass_obj
def worker(
    state: State,
    /,
    batch: int,
    until_idle: bool,
    lease: float,
    provider_timeout: float,
    lanes: tuple[str, ...],
    concurrency: int,
    no_reconcile: bool,
) -> None:
    """Claim, send and settle messages until stopped (SIGTERM or Ctrl-C).

    SIGHUP loads the rules again: a sound new version is swapped in between two rounds,
    an unsound one is refused with its problems logged and the running one stays.
    """
    import datetime as dt

    from ..errors import RulesError
    from ..logging import configure
    from ..service.reload import PolicyHolder

    configure(state.config.log_format, state.config.log_level)
    db = engine_for(state)
    try:
        holder = PolicyHolder(state.config.rules)
    except RulesError as exc:
        _fail(str(exc), EXIT_UNSOUND)
        return
    provider = providers.from_config(
        state.config,
        hook=lambda url, form: _apply(db, holder.current().policy, url, form),
        timeout=provider_timeout,
    )
    if hasattr(provider, "start"):
        provider.start()
    settings = WorkerSettings(
        batch=batch,
        lease=dt.timedelta(seconds=lease),
        provider_timeout=dt.timedelta(seconds=provider_timeout),
        reconcile=not no_reconcile,
        lanes=tuple(sorted({outbox.lane_of(name) for name in lanes})) or None,
        concurrency=concurrency,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: holder.reload())
    work = Worker(db, holder.engine, provider, settings)
    structlog.get_logger("dispatcher.worker").info(
        "worker_started", worker=work.name, policy=holder.current().policy.short_hash
    )
    try:
        work.run(stop, until_idle=until_idle)
    finally:
        provider.close()
        db.dispose()


def _apply(db: Any, policy: Any, url: str, form: Any) -> None:
    from ..providers.base import StatusReport

    apply_status(db, policy, StatusReport.from_callback(url, form))


@click.command(name="audit")
@click.option("--business", help="Business name or id.")
@click.option("--rule", "rule_id", help="Only decisions of this rule.")
@click.option("--outcome", type=click.Choice(["send", "suppress", "defer", "reject"]))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="jsonl",
    show_default=True,
)
@click.option(
    "--out", type=click.File("w"), default="-", help="Output file (default stdout)."
)
@click.pass_obj
def audit_command(
    state: State,
    /,
    business: str | None,
    rule_id: str | None,
    outcome: str | None,
    fmt: str,
    out: IO[str],
) -> None:
    """Every decision (admissions and re-decisions at claim time), for reviewers."""
    db = engine_for(state)
    try:
        with store.transaction(db, write=False) as session:
            records = audit.decisions(
                session, business=business, rule_id=rule_id, outcome=outcome
            )
    except InputError as exc:
        _fail(str(exc), EXIT_UNSOUND)
        return
    finally:
        db.dispose()
    audit.write(records, out, fmt)


@click.group()
def deadletters() -> None:
    """Messages the workers gave up on."""


@deadletters.command(name="list")
@click.pass_obj
def deadletters_list(state: State, /) -> None:
    """List dead letters with their last error."""
    db = engine_for(state)
    with store.transaction(db, write=False) as session:
        for row in audit.dead_letters(session):
            click.echo(
                f"{row.id}\t{row.message_type}\t{Phone.from_stored(row.phone).masked}\t"
                f"attempts={row.attempts}\terror={row.error_code}\t{row.error or ''}"
            )
    db.dispose()


@deadletters.command(name="requeue")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.pass_obj
def deadletters_requeue(state: State, /, ids: tuple[int, ...]) -> None:
    """Put dead letters back in the queue (they are decided again when claimed)."""
    db = engine_for(state)
    with store.transaction(db) as session:
        moved = audit.requeue(session, list(ids))
    db.dispose()
    click.echo(f"requeued {moved} of {len(ids)}")
