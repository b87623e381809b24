"""The dispatcher's configuration file: read strictly, checked against its JSON Schema.

Secrets are never read from the file: it names the environment variables that hold them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _resources, _yaml
from ._validation import schema_problems
from .billing import Rates
from .errors import ConfigError, Problem

ENV_VAR = "DISPATCHER_CONFIG"


@dataclass(frozen=True, slots=True)
class Config:
    """Settings with relative paths already resolved against the config file's directory."""

    rules: Path
    data_dir: Path
    database_url: str | None
    platform_name: str
    help_contact: str
    log_format: str
    log_level: str
    provider: str
    twilio: dict[str, str]
    source: str | None = None
    billing: Rates = field(default_factory=Rates.default)

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or SQLite in a file under ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'dispatcher.sqlite3'}"


def default_config() -> Config:
    """The embedded default: example rules, SQLite under ./.dispatcher, the simulator."""
    return _build({"format": 1}, Path.cwd(), None)


def _build(raw: dict[str, Any], base: Path, source: str | None) -> Config:
    rules = raw.get("rules")
    rules_path = base / rules if rules else _default_rules(base)
    log = raw.get("log", {})
    provider = raw.get("provider", {"kind": "simulator"})
    return Config(
        rules=rules_path,
        data_dir=base / raw.get("data_dir", ".dispatcher"),
        database_url=raw.get("database_url"),
        platform_name=raw.get("platform_name", "Cents"),
        help_contact=raw.get("help_contact", "help.example.com"),
        log_format=log.get("format", "console"),
        log_level=log.get("level", "info"),
        provider=provider["kind"],
        twilio=dict(provider.get("twilio", {})),
        source=source,
        billing=Rates.from_config(raw.get("billing")),
    )


def _default_rules(base: Path) -> Path:
    local = base / "rules"
    return local if local.is_dir() else _resources.example_rules_dir()


def load_config(path: str | Path | None = None) -> Config:
    """Read the config at ``path``, else at ``$DISPATCHER_CONFIG``, else the defaults.

    Raises :class:`~dispatcher.errors.ConfigError` listing every problem.
    """
    chosen = path or os.environ.get(ENV_VAR)
    if not chosen:
        return default_config()
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [Problem(str(file), 0, 0, f"cannot read the config: {exc}")]
        ) from None
    doc, problems = _yaml.load(text, str(file))
    if doc is not None:
        if not isinstance(doc.data, dict):
            problems.append(
                Problem(str(file), 1, 1, "expected a mapping with 'format: 1'")
            )
        else:
            problems.extend(schema_problems(doc, _resources.schema("config")))
    if problems or doc is None:
        raise ConfigError(problems)
    return _build(doc.data, file.resolve().parent, str(file))
