"""What every command shares: the config and the policy, loaded once, errors printed."""

from __future__ import annotations

import sys

import click

from ..config import Config, load_config
from ..errors import ConfigError, RulesError
from ..loader import load_policy
from ..policy import Policy

EXIT_UNSOUND = 1
EXIT_CONFIG = 3


class State:
    """The context object of the ``dispatcher`` group."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                click.echo(str(exc), err=True)
                sys.exit(EXIT_CONFIG)
        return self._config

    def policy(self, path: str | None) -> Policy:
        """The policy at ``path`` (default: the config's rules); exit 1 with its problems."""
        try:
            return load_policy(path or self.config.rules)
        except RulesError as exc:
            click.echo(str(exc), err=True)
            sys.exit(EXIT_UNSOUND)
