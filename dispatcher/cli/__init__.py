"""The ``dispatcher`` command line: one group, commands grouped by noun in sub-modules.

Exit codes: 0 success, 1 the input is unsound (a rules file, facts), 2 usage errors (Click's
own), 3 the config file is invalid.
"""

from __future__ import annotations

import click

from . import (
    billing_commands,
    consent_commands,
    data_commands,
    policy_commands,
    review_commands,
    send_commands,
    service_commands,
)
from ._state import State


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="DISPATCHER_CONFIG",
    help="Config file (default: $DISPATCHER_CONFIG, else built-in defaults).",
)
@click.version_option(package_name="sms-policy-dispatcher")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """SMS policy dispatcher: which number a message leaves from, and whether it may."""
    ctx.obj = State(config_path)


main.add_command(policy_commands.validate)
main.add_command(policy_commands.explain)
main.add_command(review_commands.verify)
main.add_command(review_commands.diff)
main.add_command(review_commands.report)
main.add_command(review_commands.test_command)
main.add_command(data_commands.db)
main.add_command(data_commands.business)
main.add_command(data_commands.numbers_group)
main.add_command(consent_commands.consent_group)
main.add_command(send_commands.send)
main.add_command(send_commands.campaign)
main.add_command(send_commands.worker)
main.add_command(send_commands.audit_command)
main.add_command(send_commands.deadletters)
main.add_command(billing_commands.usage)
main.add_command(billing_commands.history_command)
main.add_command(service_commands.serve)
main.add_command(service_commands.keys_group)
