"""Strict YAML reading with source positions.

PyYAML follows YAML 1.1, where ``no`` and ``on`` are booleans, ``20:00`` is the integer
1200, ``0700`` is octal and a duplicate key silently replaces the first. A rules file is
reviewed by people, so none of that may change what they read. This module reads plain
scalars the YAML 1.2 way (only ``true``/``false`` are booleans, only decimal integers are
integers, dates and times stay strings), refuses duplicate keys, merge keys and custom tags,
and remembers where every key and value came from so that later checks can report
``file:line:column``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from .errors import Problem

Path = tuple[str | int, ...]

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

# Plain scalars that YAML 1.1 would read as something other than what a reviewer sees.
YAML11_BOOLEAN_WORDS = frozenset(
    {
        "y",
        "n",
        "yes",
        "no",
        "on",
        "off",
        "Y",
        "N",
        "Yes",
        "No",
        "On",
        "Off",
        "YES",
        "NO",
    }
    | {"ON", "OFF"}
)


class _Resolver(BaseResolver):
    """YAML 1.2 core-schema resolution of plain scalars, minus octal and hex forms."""


_Resolver.add_implicit_resolver(
    _NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_Resolver.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Resolver.add_implicit_resolver(
    _INT, re.compile(r"^(?:0|[-+]?[1-9][0-9]*)$"), list("-+0123456789")
)
_Resolver.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


class _Loader(Reader, Scanner, Parser, Composer, _Resolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Resolver.__init__(self)


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in a source file."""

    line: int
    column: int


@dataclass(slots=True)
class Document:
    """A parsed YAML document and where each part of it came from.

    ``values[path]`` is the position of the value at ``path``; ``keys[path]`` the position of
    the key that introduced it (for mapping entries only).
    """

    file: str
    data: Any
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)
    comments_schema: str | None = None

    def position(self, path: Path) -> Mark:
        """The closest known position for ``path``: the value, else its key, else a parent."""
        probe = tuple(path)
        while True:
            mark = self.values.get(probe) or self.keys.get(probe)
            if mark is not None:
                return mark
            if not probe:
                return Mark(1, 1)
            probe = probe[:-1]

    def key_position(self, path: Path) -> Mark:
        """The position of the key of ``path`` if it is a mapping entry, else of its value."""
        return self.keys.get(tuple(path)) or self.position(path)

    def problem(self, path: Path, message: str, hint: str | None = None) -> Problem:
        mark = self.position(path)
        return Problem(self.file, mark.line, mark.column, message, hint)


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, file: str) -> None:
        self.doc = Document(file=file, data=None)
        self.problems: list[Problem] = []

    def fail(self, node: Node, message: str, hint: str | None = None) -> None:
        mark = _mark(node)
        self.problems.append(
            Problem(self.doc.file, mark.line, mark.column, message, hint)
        )

    def build(self, node: Node, path: Path) -> Any:
        self.doc.values[path] = _mark(node)
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self.fail(node, f"unsupported tag {node.tag!r}", "remove the tag")
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        raise TypeError(
            f"unexpected YAML node {type(node).__name__}"
        )  # pragma: no cover

    def scalar(self, node: ScalarNode) -> Any:
        text = node.value
        if node.tag == _STR:
            return text
        if node.tag == _NULL:
            return None
        if node.tag == _BOOL:
            return text.lower() == "true"
        if node.tag == _INT:
            return int(text)
        if node.tag == _FLOAT:
            return float(text)
        self.fail(
            node, f"unsupported tag {node.tag!r}", "remove the tag or quote the value"
        )
        return text

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        if node.tag != _MAP:
            self.fail(node, f"unsupported tag {node.tag!r}", "remove the tag")
        result: dict[str, Any] = {}
        first_seen: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or key_node.value == "<<":
                self.fail(
                    key_node,
                    "merge keys ('<<') are not supported",
                    "write the keys out in full, so reviewers see every value",
                )
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                shown = key_node.value if isinstance(key_node, ScalarNode) else "?"
                self.fail(
                    key_node,
                    f"key {shown!r} must be a string",
                    "quote the key, for example '\"1\": ...'",
                )
                continue
            key = key_node.value
            if key in first_seen:
                seen = first_seen[key]
                self.fail(
                    key_node,
                    f"duplicate key {key!r} (first defined at line {seen.line}, "
                    f"column {seen.column})",
                    "YAML keeps only the last of two equal keys; remove or rename one",
                )
                continue
            first_seen[key] = _mark(key_node)
            self.doc.keys[(*path, key)] = _mark(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result


_SCHEMA_COMMENT = re.compile(
    r"^#\s*yaml-language-server:\s*\$schema=(\S+)", re.MULTILINE
)


def load(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML document strictly.

    Returns the document (``None`` when the text is not YAML at all) and every problem found.
    An empty file yields a document whose data is ``None``.
    """
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        reason = exc.problem or exc.context or "invalid YAML"
        return None, [Problem(file, line, column, f"invalid YAML: {reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, 0, 0, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()

    builder = _Builder(file)
    if root is not None:
        builder.doc.data = builder.build(root, ())
    found = _SCHEMA_COMMENT.search(text)
    builder.doc.comments_schema = found.group(1) if found else None
    return builder.doc, builder.problems
