"""Policy commands: ``validate`` and ``explain``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import click

from .. import segments
from ..decision import Decision
from ..engine import Engine
from ..errors import FactsError
from ..facts import Channel, ConsentState, Facts, NumberStatus, parse_facts
from ..policy import Outcome, Policy
from ._state import EXIT_UNSOUND, State


@click.command()
@click.argument("path", required=False, type=click.Path())
@click.pass_obj
def validate(state: State, path: str | None) -> None:
    """Check a policy (a rules directory or file); list every problem as file:line:column.

    Exits 0 when the policy is sound, 1 when it is not.
    """
    policy = state.policy(path)
    click.echo(
        f"{policy.source}: sound policy {policy.short_hash} -- "
        f"{len(policy.message_types)} message types, {len(policy.rules)} rules, "
        f"{len(policy.invariants)} invariants, {len(policy.files)} files"
    )


_BASELINE_HELP = (
    "Facts not given fall back to a baseline that is printed with the decision: SMS, no "
    "enrolment, every number registered, no consent recorded, jurisdiction 'unknown', "
    "today at 12:00, nothing sent in 24 h, not a reply."
)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(
                f"expected NAME=VALUE, got {item!r}", param_hint=option
            )
        out[key] = value
    return out


@click.command()
@click.option(
    "--rules", "rules_path", type=click.Path(), help="Rules directory or file."
)
@click.option(
    "--facts",
    "facts_file",
    type=click.File("r"),
    help="A JSON document of facts (see docs/rules.md); '-' reads standard input.",
)
@click.option("--type", "message_type", help="Message type, for example order_status.")
@click.option(
    "--all-types", is_flag=True, help="Decide every message type of the policy."
)
@click.option("--channel", type=click.Choice([c.value for c in Channel]))
@click.option("--assist/--no-assist", default=None, help="Business uses Assist.")
@click.option(
    "--accelerate/--no-accelerate", default=None, help="Business uses Accelerate."
)
@click.option(
    "--number",
    "numbers",
    multiple=True,
    metavar="ROLE=STATUS",
    help="Status of a number: registered, pending, unregistered, absent.",
)
@click.option(
    "--consent",
    "consents",
    multiple=True,
    metavar="SCOPE=STATE",
    help="Consent of a scope: opted_in, opted_out, none.",
)
@click.option("--jurisdiction", help="Recipient's jurisdiction, for example US-FL.")
@click.option("--date", "local_date", help="Recipient's local date, YYYY-MM-DD.")
@click.option("--time", "local_time", help="Recipient's local time, HH:MM.")
@click.option(
    "--sent-24h",
    type=click.IntRange(min=0),
    help="Marketing messages sent to the recipient in the last 24 hours.",
)
@click.option("--reply-role", help="Role of the number the customer wrote to.")
@click.option(
    "--body",
    help="Message text: show its encoding, its segments and what forced UCS-2.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for a program.")
@click.pass_obj
def explain(
    state: State,
    /,
    rules_path: str | None,
    facts_file: Any,
    message_type: str | None,
    all_types: bool,
    body: str | None,
    as_json: bool,
    **given: Any,
) -> None:
    """Decide one message and show why, rule by rule.

    Facts come from --facts and/or the options (options win). With --body, the text's
    cost in segments is shown too.
    """
    policy = state.policy(rules_path)
    engine = Engine(policy)
    raw, assumed = _facts_document(policy, facts_file, message_type, given)
    if all_types:
        types = list(policy.message_types)
    elif raw["message"].get("type"):
        types = [raw["message"]["type"]]
    else:
        raise click.UsageError(
            "name a message type with --type, --facts or --all-types"
        )

    results = []
    for name in types:
        document = json.loads(json.dumps(raw))
        document["message"]["type"] = name
        if policy.message_types.get(name) and policy.message_types[name].is_reply:
            document["reply"].setdefault("role", None)
        try:
            facts = parse_facts(document)
        except FactsError as exc:
            click.echo(str(exc), err=True)
            sys.exit(EXIT_UNSOUND)
        results.append((facts, engine.explain(facts)))

    if as_json:
        payload: list[dict[str, Any]] = [
            {
                "facts": f.to_mapping(),
                "assumed": sorted(assumed),
                "decision": d.to_mapping(),
            }
            for f, d in results
        ]
        if body is not None:
            cost = {**segments.count(body).to_mapping(), "text": segments.explain(body)}
            for item in payload:
                item["segments"] = cost
        click.echo(json.dumps(payload if all_types else payload[0], indent=2))
        return
    if all_types:
        _print_table(policy, results, assumed)
    else:
        _print_explanation(policy, *results[0], assumed)
    if body is not None:
        _print_segments(body)


def _print_segments(body: str) -> None:
    """The body's encoding, segment count, and each character that forced UCS-2."""
    cost = segments.count(body)
    click.echo(
        f"segments: {cost.segments} ({cost.encoding.value}, {cost.units} units, "
        f"{cost.chars} characters)"
    )
    click.echo(f"  {segments.explain(body)}")
    for char in cost.non_gsm:
        hint = f", use {char.lookalike!r}" if char.lookalike else ""
        click.echo(
            f"  position {char.offset + 1}: {char.name} {char.char!r} forces ucs-2{hint}"
        )


def _facts_document(
    policy: Policy, facts_file: Any, message_type: str | None, given: dict[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """Merge baseline, --facts and options; return the document and the assumed fact names."""
    supplied: dict[str, Any] = {}
    if facts_file is not None:
        try:
            supplied = json.load(facts_file)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--facts") from None
        if not isinstance(supplied, dict):
            raise click.BadParameter("expected a JSON object", param_hint="--facts")

    today = dt.date.today().isoformat()
    baseline: dict[str, dict[str, Any]] = {
        "message": {"type": None, "channel": Channel.SMS.value},
        "business": {"assist": False, "accelerate": False},
        "numbers": dict.fromkeys(policy.roles, NumberStatus.REGISTERED.value),
        "consent": dict.fromkeys(policy.scopes, ConsentState.NONE.value),
        "recipient": {
            "jurisdiction": "unknown",
            "local_date": today,
            "local_time": "12:00",
            "marketing_sent_24h": 0,
        },
        "reply": {"role": None},
    }
    document: dict[str, Any] = {k: dict(v) for k, v in baseline.items()}
    explicit: set[str] = set()
    for section, values in supplied.items():
        if isinstance(values, dict) and section in document:
            document[section].update(values)
            explicit.update(f"{section}.{key}" for key in values)
        else:
            document[section] = values
    options = {
        ("message", "type"): message_type,
        ("message", "channel"): given["channel"],
        ("business", "assist"): given["assist"],
        ("business", "accelerate"): given["accelerate"],
        ("recipient", "jurisdiction"): given["jurisdiction"],
        ("recipient", "local_date"): given["local_date"],
        ("recipient", "local_time"): given["local_time"],
        ("recipient", "marketing_sent_24h"): given["sent_24h"],
        ("reply", "role"): given["reply_role"],
    }
    options.update(
        {("numbers", k): v for k, v in _pairs(given["numbers"], "--number").items()}
    )
    options.update(
        {("consent", k): v for k, v in _pairs(given["consents"], "--consent").items()}
    )
    for (section, key), value in options.items():
        if value is not None:
            document[section][key] = value
            explicit.add(f"{section}.{key}")
    assumed = (
        {f"{section}.{key}" for section, values in baseline.items() for key in values}
        - explicit
        - {"message.type"}
    )
    return document, assumed


_OUTCOME_WORDS = {
    Outcome.SEND: "SEND",
    Outcome.SUPPRESS: "SUPPRESS",
    Outcome.DEFER: "DEFER",
    Outcome.REJECT: "REJECT",
}


def _headline(decision: Decision) -> str:
    word = _OUTCOME_WORDS[decision.outcome]
    if decision.outcome is Outcome.SEND:
        return f"{word} from the {decision.role} number"
    if decision.outcome is Outcome.DEFER and decision.not_before_local:
        return f"{word} until {decision.not_before_local:%Y-%m-%d %H:%M} recipient time"
    if decision.outcome is Outcome.DEFER and decision.until:
        return f"{word} until {decision.until.value.replace('_', ' ')}"
    return word


def _print_explanation(
    policy: Policy, facts: Facts, decision: Decision, assumed: set[str]
) -> None:
    echo = click.echo
    echo(f"{facts.message_type}: {_headline(decision)}")
    echo(f"  reason  {decision.reason}")
    echo(f"  rule    {decision.rule.id} ({decision.rule.file}:{decision.rule.line})")
    echo(f"  scope   {decision.scope or '-'}")
    echo(f"  policy  {policy.short_hash} ({policy.source})")
    echo("facts:")
    for section, values in facts.to_mapping().items():
        for key, value in values.items():
            name = f"{section}.{key}"
            shown = json.dumps(value) if not isinstance(value, str) else value
            echo(f"  {name:<32} {shown}{'   (assumed)' if name in assumed else ''}")
    echo("trace:")
    for step in decision.trace:
        mark = "MATCH" if step.matched else "  -  "
        echo(f"  {mark} {step.rule.id:<48} {step.detail}")


def _print_table(
    policy: Policy, results: list[tuple[Facts, Decision]], assumed: set[str]
) -> None:
    click.echo(f"policy {policy.short_hash} ({policy.source})")
    width = max(len(f.message_type) for f, _ in results)
    for facts, decision in results:
        click.echo(
            f"  {facts.message_type:<{width}}  {_headline(decision):<44} "
            f"rule {decision.rule.id}"
        )
    if assumed:
        click.echo("assumed: " + ", ".join(sorted(assumed)))
