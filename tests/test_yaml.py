"""Strict YAML: what a reviewer reads is what the dispatcher reads."""

from __future__ import annotations

import pytest

from dispatcher._yaml import Mark, load


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no", "no"),
        ("on", "on"),
        ("Yes", "Yes"),
        ("20:00", "20:00"),
        ("0700", "0700"),
        ("0x1F", "0x1F"),
        ("2027-01-31", "2027-01-31"),
        ("true", True),
        ("False", False),
        ("3", 3),
        ("-12", -12),
        ("1.5", 1.5),
        ("~", None),
        ("null", None),
        ("'true'", "true"),
    ],
)
def test_plain_scalars_follow_yaml_1_2(text: str, expected: object) -> None:
    doc, problems = load(f"value: {text}\n", "f.yaml")
    assert problems == []
    assert doc is not None
    assert doc.data == {"value": expected}
    assert type(doc.data["value"]) is type(expected)


def test_positions_are_kept_for_keys_and_values() -> None:
    doc, _ = load("top:\n  - a: 1\n    b: [x, y]\n", "f.yaml")
    assert doc is not None
    assert doc.keys[("top", 0, "b")] == Mark(3, 5)
    assert doc.values[("top", 0, "b", 1)] == Mark(3, 12)
    assert doc.position(("top", 0, "missing")) == Mark(2, 5)


def test_duplicate_keys_are_reported_not_overwritten() -> None:
    doc, problems = load("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert doc is not None
    assert doc.data == {"a": 1, "b": 2}
    assert [str(p) for p in problems] == [
        "f.yaml:3:1: duplicate key 'a' (first defined at line 1, column 1)\n"
        "    hint: YAML keeps only the last of two equal keys; remove or rename one"
    ]


def test_non_string_keys_are_refused() -> None:
    _, problems = load("1: one\ntrue: yes\n", "f.yaml")
    assert [p.message for p in problems] == [
        "key '1' must be a string",
        "key 'true' must be a string",
    ]


def test_empty_document_is_none() -> None:
    doc, problems = load("# only a comment\n", "f.yaml")
    assert problems == []
    assert doc is not None
    assert doc.data is None


def test_schema_comment_is_read() -> None:
    doc, _ = load(
        "# yaml-language-server: $schema=../schemas/rules.schema.json\nformat: 1\n", "f"
    )
    assert doc is not None
    assert doc.comments_schema == "../schemas/rules.schema.json"
