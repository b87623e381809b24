"""Where the JSON Schemas and the example rules live, in a checkout or an installed wheel."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name


def schemas_dir() -> Path:
    return _data_dir("schemas")


def example_rules_dir() -> Path:
    """The example policy shipped with the product (``rules/`` in a checkout)."""
    return _data_dir("rules")


@cache
def schema(name: str) -> dict[str, Any]:
    """A JSON Schema by file stem, for example ``schema("rules")``."""
    path = schemas_dir() / f"{name}.schema.json"
    with path.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded
