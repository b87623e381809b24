"""A policy for reviewers: one self-contained HTML page, or Markdown, built from the
rules.

:func:`build_sections` turns a policy and its :class:`~dispatcher.verify.Verification`
into titled tables; :func:`render_markdown` and :func:`render_html` print them. The HTML
page has its CSS inline and loads nothing from anywhere.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from .diff import effect
from .policy import Outcome, Policy, Rule
from .quiet_hours import describe
from .verify import COMPILED, DURABLE, Verification


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    intro: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def rule_decides(rule: Rule) -> str:
    """What a rule decides, in words: ``send from message_role``, ``defer until
    ...``."""
    text = rule.outcome.value
    if rule.outcome is Outcome.SEND:
        text += f" from {rule.from_role}"
    if rule.until is not None:
        text += f" until {rule.until.value.replace('_', ' ')}"
    if rule.reason and rule.outcome is not Outcome.SEND:
        text += f": {rule.reason}"
    return text


def _dates(rule: Rule) -> str:
    parts = []
    if rule.effective_from:
        parts.append(f"from {rule.effective_from.isoformat()}")
    if rule.effective_until:
        parts.append(f"until {rule.effective_until.isoformat()}")
    return " ".join(parts) or "always"


def build_sections(policy: Policy, result: Verification) -> list[Section]:
    """The report's tables, in reading order."""
    roles = list(policy.roles)
    matrix = tuple(
        (
            m.name,
            m.product,
            m.category,
            m.scope,
            *(
                f"sends ({result.sends[m.name, role]} points)"
                if result.sends[m.name, role]
                else "-"
                for role in roles
            ),
        )
        for m in policy.message_types.values()
    )
    rules = tuple(
        (
            rule.id,
            rule.description,
            f"{rule.ref.file}:{rule.ref.line}",
            "; ".join(c.text for c in rule.conditions) or "(always)",
            _dates(rule),
            rule_decides(rule),
            str(result.decided[rule.id]),
        )
        for rule in policy.rules
    )
    keywords = tuple(
        (
            scope,
            kind,
            lang,
            ", ".join(sorted(w for w, lg in words.items() if lg == lang)),
        )
        for scope, kinds in policy.keywords.by_scope.items()
        for kind, words in kinds.items()
        for lang in sorted(set(words.values()))
    )
    phrases = policy.keywords.revocation_phrases
    keywords += tuple(
        (
            "any",
            "revocation phrase",
            lang,
            ", ".join(sorted(p for p, lg in phrases.items() if lg == lang)),
        )
        for lang in sorted(set(phrases.values()))
    )
    replies = tuple(
        (scope, kind, lang, text)
        for scope, kinds in policy.replies.items()
        for kind, texts in kinds.items()
        for lang, text in texts.items()
    )
    quiet = policy.quiet_hours
    windows = [
        ("default", quiet.default.name, describe(quiet.default.allowed), quiet.default)
    ]
    windows += [
        (code, j.name, describe(j.allowed), j)
        for code, j in quiet.jurisdictions.items()
    ]
    windows.append(
        ("unknown", quiet.unknown.name, describe(quiet.unknown.allowed), quiet.unknown)
    )
    quiet_rows = tuple(
        (code, name, text, str(j.marketing_cap_24h or "-"))
        for code, name, text, j in windows
    )
    dated = tuple(
        (rule.id, _dates(rule), rule.description)
        for rule in policy.rules
        if rule.effective_from or rule.effective_until
    )
    invariants = tuple(
        (
            inv.id,
            inv.description,
            f"{inv.ref.file}:{inv.ref.line}",
            "holds"
            if not result.violation_counts[inv.id]
            else f"VIOLATED at {result.violation_counts[inv.id]} points",
        )
        for inv in policy.invariants
    )
    return [
        Section(
            "Message types, number roles and opt-out scopes",
            "Each message type with the scope whose STOP silences it, and the numbers "
            "that "
            "send it somewhere in the verified fact space.",
            (
                "message type",
                "product",
                "category",
                "scope",
                *(f"from {r}" for r in roles),
            ),
            matrix,
        ),
        Section(
            "Routing rules, first match wins",
            "When no rule matches, the message is suppressed (no rule allows it). "
            "'points' is how many verified fact classes the rule decides.",
            ("id", "description", "source", "when", "in effect", "decides", "points"),
            rules,
        ),
        Section(
            "Keywords",
            "Replies matched as a whole word, ignoring case.",
            ("scope", "kind", "language", "words"),
            keywords,
        ),
        Section(
            "Replies",
            "What the platform answers, per number scope.",
            ("scope", "kind", "language", "text"),
            replies,
        ),
        Section(
            "Quiet hours and caps",
            "Allowed sending windows in the recipient's local time; exempt categories: "
            + ", ".join(sorted(quiet.exempt_categories))
            + ".",
            ("jurisdiction", "name", "allowed", "marketing cap per 24 h"),
            quiet_rows,
        ),
        Section(
            "Effective dates",
            "Rules that take effect, or stop, on a given day.",
            ("rule", "in effect", "description"),
            dated,
        ),
        Section(
            "Invariants",
            "Properties checked on every point by dispatcher verify.",
            ("id", "description", "source", "result"),
            invariants,
        ),
    ]


def verify_summary(result: Verification) -> list[str]:
    """Lines saying what verify checked and found."""
    engines = " and ".join(result.engines)
    lines = [
        f"{result.points} points of the fact space decided by {engines}.",
    ]
    if DURABLE in result.seconds:
        lines.append(
            f"Engines agree: {'yes' if not result.disagreement_count else 'NO'} "
            f"({result.disagreement_count} disagreements); compiled "
            f"{result.seconds[COMPILED] * 1000:.1f} ms, durable_rules "
            f"{result.seconds[DURABLE] * 1000:.1f} ms."
        )
    idle = result.idle_rules
    lines.append(
        "Every rule decides at least one point."
        if not idle
        else "Rules that decide nothing: " + ", ".join(str(r.ref) for r in idle)
    )
    for violation in result.violations:
        d = violation.decision
        lines.append(
            f"Invariant {violation.invariant.id} violated, e.g. {effect(d)} "
            f"by {d.rule} "
            f"for {violation.facts.to_mapping()}"
        )
    lines.append("Result: " + ("PASS" if result.ok else "FAIL"))
    return lines


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(policy: Policy, result: Verification) -> str:
    lines = [
        f"# Policy review: {policy.source}",
        "",
        f"Policy hash `{policy.hash}`; files: {', '.join(policy.files)}.",
        "",
        "## Verification",
        "",
        *(f"- {line}" for line in verify_summary(result)),
    ]
    for section in build_sections(policy, result):
        lines += ["", f"## {section.title}", "", section.intro, ""]
        if not section.rows:
            lines.append("(none)")
            continue
        lines.append("| " + " | ".join(section.headers) + " |")
        lines.append("|" + " --- |" * len(section.headers))
        lines += [
            "| " + " | ".join(_md_cell(c) for c in row) + " |" for row in section.rows
        ]
    return "\n".join(lines) + "\n"


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #1b1f24; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { border: 1px solid #c9d1d9; padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f1f3f5; }
code { font-family: ui-monospace, monospace; font-size: 12px; }
.pass { color: #116329; font-weight: bold; } .fail { color: #a40e26; font-weight: bold;
}
"""


def render_html(policy: Policy, result: Verification) -> str:
    """A self-contained page: inline CSS, no scripts, no external resources."""
    esc = html.escape
    status = "pass" if result.ok else "fail"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Policy review: {esc(policy.source)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Policy review: {esc(policy.source)}</h1>",
        f'<p>Policy hash <code id="policy-hash">{esc(policy.hash)}</code>; files: '
        f"{esc(', '.join(policy.files))}.</p>",
        f'<h2>Verification: <span class="{status}">{status.upper()}</span></h2><ul>',
        *(f"<li>{esc(line)}</li>" for line in verify_summary(result)),
        "</ul>",
    ]
    for section in build_sections(policy, result):
        out.append(f"<h2>{esc(section.title)}</h2><p>{esc(section.intro)}</p>")
        if not section.rows:
            out.append("<p>(none)</p>")
            continue
        out.append("<table><thead><tr>")
        out += [f"<th>{esc(h)}</th>" for h in section.headers]
        out.append("</tr></thead><tbody>")
        for row in section.rows:
            out.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
