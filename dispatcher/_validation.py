"""JSON Schema validation of a positioned YAML document, with readable messages.

jsonschema's own messages name the failing keyword of the schema; a person editing a rules
file wants the key, the value, what was expected and, where it helps, a hint. Every error is
reported, each at the line and column of the offending key or value.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from ._yaml import YAML11_BOOLEAN_WORDS, Document, Path
from .errors import Problem


def dotted(path: Sequence[str | int]) -> str:
    """``("rules", 3, "then")`` -> ``"rules[3].then"``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def schema_problems(doc: Document, schema: dict[str, Any]) -> list[Problem]:
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    problems: list[Problem] = []
    for error in validator.iter_errors(doc.data):
        problems.extend(_explain(doc, error))
    return problems


def _explain(doc: Document, error: ValidationError) -> list[Problem]:
    if error.validator == "oneOf" and error.context:
        # Report the alternative that got furthest, not "is not valid under any schema".
        deepest = best_match(error.context)
        if deepest is not None:
            return _explain(doc, deepest)
    path: Path = tuple(error.absolute_path)
    where = dotted(path)
    value: Any = error.instance
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    expected: Any = error.validator_value
    if "propertyNames" in error.relative_schema_path:
        # The failing instance is a key of the mapping at ``path``: point at the key.
        mark = doc.key_position((*path, value))
        detail = _pattern_problem(doc, path, value, str(expected))
        message = f"{where}: key {value!r} is not a valid name"
        if error.validator == "pattern":
            message += f" (expected {expected})"
        return [Problem(doc.file, mark.line, mark.column, message, detail.hint)]

    if error.validator == "additionalProperties" and isinstance(value, dict):
        allowed = list(schema.get("properties", {}))
        problems = []
        for key in value:
            if key in allowed:
                continue
            hint = did_you_mean(key, allowed) or (
                f"allowed keys: {', '.join(allowed)}" if allowed else None
            )
            mark = doc.key_position((*path, key))
            problems.append(
                Problem(
                    doc.file,
                    mark.line,
                    mark.column,
                    f"{where}: unknown key {key!r}",
                    hint,
                )
            )
        if problems:
            return problems
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return [doc.problem(path, f"{where}: missing required key {missing!r}")]
    if error.validator == "const":
        return [doc.problem(path, f"{where}: expected {expected!r}, got {value!r}")]
    if error.validator == "enum":
        allowed = [str(v) for v in expected]
        return [
            doc.problem(
                path,
                f"{where}: {value!r} is not one of {', '.join(allowed)}",
                did_you_mean(str(value), allowed),
            )
        ]
    if error.validator == "type":
        return [_type_problem(doc, path, value, expected)]
    if error.validator == "pattern":
        return [_pattern_problem(doc, path, value, str(expected))]
    return [doc.problem(path, f"{where}: {error.message}")]


def _type_problem(doc: Document, path: Path, value: Any, expected: Any) -> Problem:
    names = expected if isinstance(expected, list) else [expected]
    wanted = " or ".join(names)
    hint = None
    if "boolean" in names and isinstance(value, str) and value in YAML11_BOOLEAN_WORDS:
        hint = (
            f"{value!r} is a string here (YAML 1.2); YAML 1.1 tools would read it as a "
            "boolean. Write true or false"
        )
    elif "string" in names and isinstance(value, bool):
        hint = 'quote the value if you meant the word, for example "no"'
    return doc.problem(path, f"{dotted(path)}: expected {wanted}, got {value!r}", hint)


def _pattern_problem(doc: Document, path: Path, value: Any, pattern: str) -> Problem:
    hint = None
    if ":" in pattern and "[0-5][0-9]" in pattern:
        hint = 'write times as quoted "HH:MM", for example "08:00"'
    elif "[0-9]{4}" in pattern:
        hint = 'write dates as quoted "YYYY-MM-DD"'
    elif pattern.startswith("^[a-z]"):
        hint = "use lower-case letters, digits and underscores (or hyphens in ids)"
    elif "message" in pattern and "recipient" in pattern:
        hint = (
            "facts are message.*, business.*, number.<role>, consent.<scope>, "
            "recipient.jurisdiction|quiet_hours|cap_reached, reply.role"
        )
    return doc.problem(
        path, f"{dotted(path)}: {value!r} does not match {pattern}", hint
    )
