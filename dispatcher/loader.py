"""Read a policy from rules files: strict YAML, JSON Schema, then the meaning.

:func:`load_policy` either returns a sound :class:`~dispatcher.policy.Policy` or raises
:class:`~dispatcher.errors.RulesError` listing every problem as ``file:line:column``. The
checks that need the whole policy (unknown names, roles that may not carry a category, rules
that can never fire) live in :mod:`dispatcher.checks`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _resources, _yaml
from ._validation import schema_problems
from ._yaml import Document
from .errors import Problem, RulesError
from .policy import Policy

SECTIONS = (
    "products",
    "categories",
    "roles",
    "scopes",
    "message_types",
    "rules",
    "quiet_hours",
    "keywords",
    "replies",
    "invariants",
)
OPTIONAL_SECTIONS = frozenset({"invariants"})
RULES_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Sources:
    """The parsed files of a policy and which file holds each section."""

    root: str
    documents: tuple[Document, ...]
    sections: dict[str, Document]

    def data(self, section: str) -> Any:
        doc = self.sections.get(section)
        return None if doc is None else doc.data.get(section)


def rules_files(path: Path) -> list[Path]:
    """The rules files of ``path``: the file itself, or the YAML files directly inside it."""
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.suffix in RULES_SUFFIXES and p.is_file()
        )
    return [path]


def display_path(path: Path) -> str:
    """A path as a person would type it: relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_sources(path: str | Path) -> Sources:
    """Parse and schema-check every file of a policy; raise RulesError listing all problems."""
    root = Path(path)
    problems: list[Problem] = []
    if not root.exists():
        raise RulesError(
            [Problem(display_path(root), 0, 0, "no such file or directory")]
        )
    files = rules_files(root)
    if not files:
        raise RulesError(
            [
                Problem(
                    display_path(root),
                    0,
                    0,
                    "no rules files (*.yaml) in this directory",
                )
            ]
        )

    schema = _resources.schema("rules")
    documents: list[Document] = []
    sections: dict[str, Document] = {}
    for file in files:
        name = display_path(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(name, 0, 0, f"cannot read the file: {exc}"))
            continue
        doc, found = _yaml.load(text, name)
        problems.extend(found)
        if doc is None:
            continue
        if not isinstance(doc.data, dict):
            problems.append(
                Problem(
                    name,
                    1,
                    1,
                    "expected a mapping with 'format: 1' and policy sections",
                )
            )
            continue
        problems.extend(schema_problems(doc, schema))
        documents.append(doc)
        for section in doc.data:
            if section not in SECTIONS:
                continue
            if section in sections:
                first = sections[section]
                mark = first.key_position((section,))
                here = doc.key_position((section,))
                problems.append(
                    Problem(
                        name,
                        here.line,
                        here.column,
                        f"section {section!r} is already defined in {first.file}:"
                        f"{mark.line}",
                        "each section lives in exactly one file; merge the two",
                    )
                )
                continue
            sections[section] = doc

    if not problems:
        for section in SECTIONS:
            if section not in sections and section not in OPTIONAL_SECTIONS:
                problems.append(
                    Problem(
                        display_path(root),
                        0,
                        0,
                        f"no file defines the required section {section!r}",
                    )
                )
    if problems:
        raise RulesError(problems)
    return Sources(display_path(root), tuple(documents), sections)


def content_hash(sources: Sources) -> str:
    """sha256 of the policy's content: comments and formatting do not change it."""
    merged = {section: sources.data(section) for section in SECTIONS}
    canonical = json.dumps(
        merged, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_policy(path: str | Path) -> Policy:
    """Load, validate and check the policy at ``path`` (a rules directory or one file).

    Raises :class:`~dispatcher.errors.RulesError` with every problem found.
    """
    from .checks import build_policy

    sources = read_sources(path)
    return build_policy(sources, content_hash(sources))
