"""Commands for reviewers: ``verify``, ``diff``, ``report`` and ``test``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cases import default_cases_dir, load_cases, run_cases
from ..diff import FORMATS, diff_policies, effect, render
from ..errors import CasesError, InputError, MissingDependencyError
from ..policy import Policy
from ..report import render_html, render_markdown, verify_summary
from ..verify import Verification
from ..verify import verify as run_verify
from ._state import EXIT_UNSOUND, State

ENGINES = ("both", "compiled")


def _verify(policy: Policy, engine: str) -> Verification:
    try:
        return run_verify(policy, durable=engine == "both")
    except MissingDependencyError as exc:
        click.echo(f"error: {exc}", err=True)
        click.echo(
            "hint: run with --engine compiled to check the compiled engine only",
            err=True,
        )
        sys.exit(EXIT_UNSOUND)


@click.command()
@click.argument("path", required=False, type=click.Path())
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="both",
    show_default=True,
    help="'compiled' skips the comparison with durable_rules.",
)
@click.pass_obj
def verify(state: State, path: str | None, engine: str) -> None:
    """Check a policy on every point of its fact space.

    Checks that the compiled engine and durable_rules agree, that every invariant holds
    and that every rule decides something. Prints each problem with a concrete
    counterexample. Exits 0 when all holds, 1 otherwise.
    """
    policy = state.policy(path)
    result = _verify(policy, engine)
    echo = click.echo
    echo(f"{policy.source}: policy {policy.short_hash}, {result.points} points")
    for d in result.disagreements:
        echo("DISAGREEMENT between the engines")
        echo(f"  facts     {d.facts.to_mapping()}")
        echo(f"  compiled  {effect(d.compiled)} by {d.compiled.rule}")
        echo(f"  durable   {effect(d.durable)} by {d.durable.rule}")
    for v in result.violations:
        inv, dec = v.invariant, v.decision
        count = result.violation_counts[inv.id]
        echo(
            f"VIOLATION of invariant {inv.id} ({inv.ref.file}:{inv.ref.line}) "
            f"at {count} points"
        )
        echo(f"  {inv.description}")
        echo("  counterexample:")
        for section, values in v.facts.to_mapping().items():
            shown = ", ".join(f"{k}={_show(val)}" for k, val in values.items())
            echo(f"    {section:<10} {shown}")
        echo(
            f"  decision  {dec.outcome.value}{' from ' + dec.role if dec.role else ''}"
        )
        echo(f"  rule      {dec.rule.id} ({dec.rule.file}:{dec.rule.line})")
    for rule in result.idle_rules:
        echo(f"NEVER DECIDES: rule {rule.id} ({rule.ref.file}:{rule.ref.line})")
    for line in verify_summary(result):
        if not line.startswith("Invariant "):
            echo(line)
    if not result.ok:
        sys.exit(EXIT_UNSOUND)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


@click.command()
@click.argument("old", type=click.Path())
@click.argument("new", type=click.Path())
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True
)
@click.pass_obj
def diff(state: State, old: str, new: str, fmt: str) -> None:
    """Show every class of facts whose decision changes from policy OLD to policy NEW.

    Exits 0 whether or not decisions change; 1 when a policy is unsound.
    """
    before, after = state.policy(old), state.policy(new)
    try:
        result = diff_policies(before, after)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNSOUND)
    click.echo(render(result, fmt))


@click.command()
@click.argument("path", required=False, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "markdown"]),
    default="html",
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="File to write (default: stdout).",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="both",
    show_default=True,
    help="Engines the embedded verify results use.",
)
@click.pass_obj
def report(
    state: State, path: str | None, fmt: str, output: str | None, engine: str
) -> None:
    """Write a review page for a policy: HTML (self-contained) or Markdown."""
    policy = state.policy(path)
    result = _verify(policy, engine)
    text = (
        render_html(policy, result)
        if fmt == "html"
        else render_markdown(policy, result)
    )
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@click.command("test")
@click.argument("path", required=False, type=click.Path())
@click.option(
    "--cases",
    "cases_path",
    type=click.Path(),
    help="Case file or directory (default: PATH/tests).",
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    default=0.0,
    help="Fail unless this percentage of the rules decides at least one case.",
)
@click.pass_obj
def test_command(
    state: State, path: str | None, cases_path: str | None, min_coverage: float
) -> None:
    """Run the rule-test cases kept beside a policy and show per-rule coverage.

    Exits 0 when every case passes and coverage is at least --min-coverage, 1 otherwise.
    """
    rules_path = Path(path or state.config.rules)
    policy = state.policy(str(rules_path))
    try:
        cases = load_cases(
            Path(cases_path) if cases_path else default_cases_dir(rules_path)
        )
    except CasesError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_UNSOUND)
    run = run_cases(policy, cases)
    for outcome in run.outcomes:
        mark = "ok  " if outcome.passed else "FAIL"
        click.echo(f"{mark} {outcome.case.where} {outcome.case.name}")
        for failure in outcome.failures:
            click.echo(f"       {failure}")
        if outcome.failures and outcome.decision is not None:
            d = outcome.decision
            click.echo(
                f"       decided by {d.rule.id} ({d.rule.file}:{d.rule.line}): "
                f"{d.reason}"
            )
    click.echo("coverage:")
    for rule in policy.rules:
        hits = run.decided[rule.id]
        click.echo(
            f"  {hits:>3}  {rule.id} ({rule.ref.file}:{rule.ref.line})"
            + ("" if hits else "   <- no case")
        )
    failed = len(run.failed)
    click.echo(
        f"{len(run.outcomes) - failed} passed, {failed} failed; "
        f"rule coverage {run.coverage:.1f}% (minimum {min_coverage:g}%)"
    )
    if failed or run.coverage < min_coverage:
        sys.exit(EXIT_UNSOUND)
