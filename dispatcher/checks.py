"""From schema-valid sources to a sound Policy: names, meanings and reachability.

Every check appends to one list of problems; the policy is built only when the list stays
empty, so a reviewer sees every mistake of a change in one run.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

from ._validation import did_you_mean
from ._yaml import Path
from .errors import Problem, RulesError
from .facts import NumberStatus
from .loader import SECTIONS, Sources
from .policy import (
    FROM_MESSAGE_ROLE,
    FROM_REPLY_ROLE,
    KEYWORD_KINDS,
    REPLY,
    Category,
    Condition,
    DeferUntil,
    Invariant,
    Keywords,
    MessageType,
    Outcome,
    Policy,
    Product,
    Role,
    Rule,
    Scope,
    SourceRef,
)
from .quiet_hours import WEEKDAYS, Jurisdiction, QuietHours, parse_minute, strictest

PLACEHOLDERS = frozenset({"business", "platform", "help_contact"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class _Checker:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.problems: list[Problem] = []

    def fail(
        self,
        section: str,
        path: Path,
        message: str,
        hint: str | None = None,
        *,
        key: bool = False,
    ) -> None:
        """Record a problem at the value of ``path`` (or at its key, with ``key=True``)."""
        doc = self.sources.sections[section]
        if key:
            mark = doc.key_position((section, *path))
            self.problems.append(
                Problem(doc.file, mark.line, mark.column, message, hint)
            )
        else:
            self.problems.append(doc.problem((section, *path), message, hint))

    def ref(self, section: str, path: Path, ident: str) -> SourceRef:
        doc = self.sources.sections[section]
        mark = doc.position((section, *path))
        return SourceRef(ident, doc.file, mark.line, mark.column)

    def known(self, section: str, path: Path, what: str, name: str, names: Any) -> bool:
        if name in names:
            return True
        choices = sorted(names)
        self.fail(
            section,
            path,
            f"unknown {what} {name!r}",
            did_you_mean(name, choices) or f"declared: {', '.join(choices) or 'none'}",
        )
        return False

    # --- catalogue --------------------------------------------------------------------

    def catalogue(
        self,
    ) -> tuple[
        dict[str, Product],
        dict[str, Category],
        dict[str, Role],
        dict[str, Scope],
        dict[str, MessageType],
    ]:
        data = self.sources.data
        products = {
            n: Product(n, v["description"]) for n, v in data("products").items()
        }
        categories = {
            n: Category(n, v["description"]) for n, v in data("categories").items()
        }
        for reserved in (REPLY, FROM_MESSAGE_ROLE, FROM_REPLY_ROLE, "none"):
            for section in ("roles", "scopes"):
                if reserved in data(section):
                    self.fail(section, (reserved,), f"{reserved!r} is a reserved word")

        roles: dict[str, Role] = {}
        for name, raw in data("roles").items():
            for i, category in enumerate(raw["carries"]):
                self.known(
                    "roles", (name, "carries", i), "category", category, categories
                )
            for i, other in enumerate(raw.get("stands_in_for", [])):
                known = self.known(
                    "roles", (name, "stands_in_for", i), "role", other, data("roles")
                )
                if known and other == name:
                    self.fail(
                        "roles",
                        (name, "stands_in_for", i),
                        "a role cannot stand in for itself",
                    )
            if raw["owner"] == "business" and "otp" in raw["carries"]:
                self.fail(
                    "roles",
                    (name, "carries"),
                    f"role {name!r} belongs to a business and cannot carry 'otp'",
                    "OTP codes leave only from the platform's global number",
                )
            roles[name] = Role(
                name,
                raw["owner"],
                raw["description"],
                frozenset(raw["carries"]),
                frozenset(raw.get("stands_in_for", [])),
            )

        scopes: dict[str, Scope] = {}
        scope_of_role: dict[str, str] = {}
        for name, raw in data("scopes").items():
            role = raw["number_role"]
            if self.known("scopes", (name, "number_role"), "role", role, roles):
                if role in scope_of_role:
                    self.fail(
                        "scopes",
                        (name, "number_role"),
                        f"role {role!r} already guards scope {scope_of_role[role]!r}",
                        "a STOP to a number revokes exactly one scope",
                    )
                scope_of_role[role] = name
                if roles[role].owner != raw["owner"]:
                    self.fail(
                        "scopes",
                        (name, "owner"),
                        f"scope {name!r} is owned by {raw['owner']!r} but its number role "
                        f"{role!r} by {roles[role].owner!r}",
                    )
            scopes[name] = Scope(name, raw["owner"], role, raw["description"])
        for role in roles:
            if role not in scope_of_role:
                self.fail(
                    "roles",
                    (role,),
                    f"role {role!r} guards no scope: a STOP to its number would revoke nothing",
                    "add a scope with number_role: " + role,
                )

        types: dict[str, MessageType] = {}
        for name, raw in data("message_types").items():
            at = ("message_types", (name,))
            self.known(at[0], (name, "product"), "product", raw["product"], products)
            self.known(
                at[0], (name, "category"), "category", raw["category"], categories
            )
            role, scope, category = raw["role"], raw["scope"], raw["category"]
            if (role == REPLY) != (scope == REPLY):
                self.fail(
                    at[0],
                    (name, "scope"),
                    "a reply message type needs role: reply and scope: reply together",
                )
            elif role == REPLY:
                for other in roles.values():
                    if category not in other.carries:
                        self.fail(
                            at[0],
                            (name, "role"),
                            f"replies may go out from any number, but role {other.name!r} "
                            f"does not carry category {category!r}",
                        )
            elif self.known(at[0], (name, "role"), "role", role, roles) and self.known(
                at[0], (name, "scope"), "scope", scope, scopes
            ):
                if category not in roles[role].carries:
                    hint = None
                    if category == "otp":
                        hint = "OTP codes leave only from the platform's global number"
                    self.fail(
                        at[0],
                        (name, "role"),
                        f"role {role!r} does not carry category {category!r} "
                        f"(roles.{role}.carries)",
                        hint,
                    )
                if scopes[scope].number_role != role:
                    self.fail(
                        at[0],
                        (name, "scope"),
                        f"scope {scope!r} belongs to the {scopes[scope].number_role!r} "
                        f"number, but this message leaves from the {role!r} number",
                        "the opt-out scope follows the number: use scope "
                        f"{scope_of_role.get(role, '?')!r}",
                    )
            types[name] = MessageType(
                name, raw["description"], raw["product"], category, role, scope
            )
        return products, categories, roles, scopes, types

    # --- conditions -------------------------------------------------------------------

    def conditions(
        self,
        section: str,
        path: Path,
        raw: dict[str, Any],
        domains: dict[str, frozenset[Any]],
    ) -> tuple[Condition, ...]:
        out = []
        for fact, matcher in raw.items():
            here = (*path, fact)
            if fact not in domains:
                family = fact.split(".")[0] + "."
                self.fail(
                    section,
                    here,
                    f"unknown fact {fact!r}",
                    did_you_mean(fact, [d for d in domains if d.startswith(family)])
                    or did_you_mean(fact, domains),
                    key=True,
                )
                continue
            out.append(self.matcher(section, here, fact, matcher, domains[fact]))
        return tuple(out)

    def matcher(
        self, section: str, path: Path, fact: str, raw: Any, domain: frozenset[Any]
    ) -> Condition:
        if isinstance(raw, dict):
            ((kind, value),) = raw.items()
        else:
            kind, value = "is", raw
        values = value if isinstance(value, list) else [value]
        negated = kind in ("not", "not_in")
        for i, item in enumerate(values):
            where = (*path, kind, i) if isinstance(value, list) else path
            if item not in domain or isinstance(item, bool) != all(
                isinstance(d, bool) for d in domain
            ):
                shown = sorted(
                    str(d).lower() if isinstance(d, bool) else d for d in domain
                )
                hint = did_you_mean(str(item), [str(s) for s in shown])
                if isinstance(item, str) and item.lower() in ("yes", "no", "on", "off"):
                    hint = "write true or false (YAML 1.1 'yes'/'no' are strings here)"
                self.fail(
                    section,
                    where,
                    f"{fact}: {item!r} is not a possible value (expected one of "
                    f"{', '.join(shown)})",
                    hint,
                )
        text = _condition_text(fact, kind, value)
        return Condition(fact, frozenset(values), negated, text)

    # --- rules ------------------------------------------------------------------------

    def rules(
        self,
        domains: dict[str, frozenset[Any]],
        roles: dict[str, Role],
        types: dict[str, MessageType],
    ) -> tuple[Rule, ...]:
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(self.sources.data("rules")):
            here: Path = (index,)
            ident = raw["id"]
            if ident in seen:
                self.fail(
                    "rules",
                    (index, "id"),
                    f"duplicate rule id {ident!r} (also rules[{seen[ident]}])",
                    "rule ids are stable names used in audit records; keep them unique",
                )
            seen[ident] = index
            conditions = self.conditions("rules", (*here, "when"), raw["when"], domains)
            then = raw["then"]
            outcome = Outcome(then["outcome"])
            start = _date(raw.get("effective_from"))
            end = _date(raw.get("effective_until"))
            for key, value in (("effective_from", start), ("effective_until", end)):
                if key in raw and value is None:
                    self.fail("rules", (*here, key), f"{raw[key]!r} is not a real date")
            if start and end and end <= start:
                self.fail(
                    "rules",
                    (*here, "effective_until"),
                    "effective_until must be later than effective_from",
                )
            from_role = then.get("from")
            if from_role is not None and from_role not in (
                FROM_MESSAGE_ROLE,
                FROM_REPLY_ROLE,
            ):
                self.known("rules", (*here, "then", "from"), "role", from_role, roles)
            rule = Rule(
                ref=self.ref("rules", here, ident),
                index=index,
                description=raw["description"],
                conditions=conditions,
                outcome=outcome,
                reason=then.get("reason") or _send_reason(from_role),
                from_role=from_role,
                until=DeferUntil(then["until"]) if "until" in then else None,
                effective_from=start,
                effective_until=end,
            )
            rules.append(rule)
        return tuple(rules)

    def carriage(
        self,
        rules: tuple[Rule, ...],
        roles: dict[str, Role],
        types: dict[str, MessageType],
    ) -> None:
        """A send may only leave from a role that carries the message's category."""
        from .space import matching_types

        for rule in rules:
            if rule.outcome is not Outcome.SEND or rule.from_role is None:
                continue
            refused: dict[tuple[str, str], list[str]] = {}
            not_replies: list[str] = []
            for mtype in matching_types(rule.conditions, types):
                role = _resolve_static_role(rule.from_role, mtype)
                if role is None:
                    if rule.from_role == FROM_REPLY_ROLE and not mtype.is_reply:
                        not_replies.append(mtype.name)
                    continue
                if role not in roles or mtype.category in roles[role].carries:
                    continue
                if mtype.role in roles[role].stands_in_for and _requires_absent(
                    rule, mtype.role
                ):
                    continue
                refused.setdefault((role, mtype.category), []).append(mtype.name)
            where = (rule.index, "then", "from")
            if not_replies:
                self.fail(
                    "rules",
                    where,
                    f"rule {rule.id!r} sends {', '.join(not_replies)} from reply_role, but "
                    "they do not answer an inbound message",
                    "add a condition on message.category or message.type",
                )
            for (role, category), names in refused.items():
                hint = None
                if category == "otp":
                    hint = "OTP codes leave only from the platform's global number"
                elif roles[role].stands_in_for:
                    stood = ", ".join(sorted(roles[role].stands_in_for))
                    hint = (
                        f"{role!r} may stand in for {stood} only when the rule requires "
                        f"that number to be absent, e.g. number.{sorted(roles[role].stands_in_for)[0]}: absent"
                    )
                self.fail(
                    "rules",
                    where,
                    f"rule {rule.id!r} would send {', '.join(names)} (category {category!r}) "
                    f"from the {role!r} number, which does not carry it",
                    hint,
                )

    # --- quiet hours --------------------------------------------------------------------

    def quiet_hours(self, categories: dict[str, Category]) -> QuietHours:
        raw = self.sources.data("quiet_hours")
        for i, category in enumerate(raw["exempt_categories"]):
            self.known(
                "quiet_hours",
                ("exempt_categories", i),
                "category",
                category,
                categories,
            )
        default = self.jurisdiction(("default",), "default", raw["default"])
        jurisdictions = {
            code: self.jurisdiction(("jurisdictions", code), code, value)
            for code, value in raw["jurisdictions"].items()
        }
        if raw["unknown_jurisdiction"] == "strictest":
            unknown = strictest(
                "Strictest of all listed", [default, *jurisdictions.values()]
            )
        else:
            unknown = default
        return QuietHours(
            frozenset(raw["exempt_categories"]), default, jurisdictions, unknown
        )

    def jurisdiction(self, path: Path, code: str, raw: dict[str, Any]) -> Jurisdiction:
        per_day: list[list[tuple[int, int, int]]] = [[] for _ in WEEKDAYS]
        for i, window in enumerate(raw["allowed"]):
            start, end = parse_minute(window["from"]), parse_minute(window["to"])
            if end <= start:
                self.fail(
                    "quiet_hours",
                    (*path, "allowed", i, "to"),
                    f"window ends at {window['to']} before it starts at {window['from']}",
                    "a window cannot cross midnight; split it into two windows",
                )
                continue
            for day in window["days"]:
                per_day[WEEKDAYS.index(day)].append((start, end, i))
        allowed = []
        for day, intervals in enumerate(per_day):
            intervals.sort()
            for (_s1, e1, i1), (s2, _e2, i2) in itertools.pairwise(intervals):
                if s2 < e1:
                    self.fail(
                        "quiet_hours",
                        (*path, "allowed", i2),
                        f"{code}: allowed[{i2}] overlaps allowed[{i1}] on {WEEKDAYS[day]}",
                        "merge the two windows",
                    )
            allowed.append(tuple((s, e) for s, e, _ in intervals))
        return Jurisdiction(
            code, raw["name"], tuple(allowed), raw.get("marketing_cap_24h")
        )

    # --- keywords and replies -------------------------------------------------------------

    def keywords(self, scopes: dict[str, Scope]) -> Keywords:
        raw = self.sources.data("keywords")
        by_scope: dict[str, dict[str, dict[str, str]]] = {}
        for scope in scopes:
            sets: dict[str, dict[str, str]] = {kind: {} for kind in KEYWORD_KINDS}
            layers = [("default", raw["default"])]
            if scope in raw.get("by_scope", {}):
                layers.append((f"by_scope.{scope}", raw["by_scope"][scope]))
            owner: dict[str, tuple[str, str]] = {}
            for layer, kinds in layers:
                for kind, languages in kinds.items():
                    for language, words in languages.items():
                        for i, word in enumerate(words):
                            first = owner.get(word)
                            if first is not None and first[0] != kind:
                                self.fail(
                                    "keywords",
                                    (*layer.split("."), kind, language, i),
                                    f"keyword {word!r} is both {first[0]} and {kind} "
                                    f"for scope {scope!r}",
                                    "a reply must mean one thing",
                                )
                            owner[word] = (kind, layer)
                            sets[kind][word] = language
            by_scope[scope] = sets
        for i, scope in enumerate(raw.get("by_scope", {})):
            self.known("keywords", ("by_scope", scope), "scope", scope, scopes)
            del i
        phrases = {
            phrase.lower(): language
            for language, items in raw.get("revocation_phrases", {}).items()
            for phrase in items
        }
        return Keywords(by_scope, phrases)

    def replies(self, scopes: dict[str, Scope]) -> dict[str, dict[str, dict[str, str]]]:
        raw: dict[str, dict[str, dict[str, str]]] = self.sources.data("replies")
        for written in raw:
            self.known("replies", (written,), "scope", written, scopes)
        for name, scope in scopes.items():
            if name not in raw:
                self.fail(
                    "replies",
                    (),
                    f"no replies for scope {name!r}",
                    "add help, opt_out and opt_in",
                )
                continue
            for kind in KEYWORD_KINDS:
                if kind not in raw[name]:
                    self.fail(
                        "replies", (name,), f"scope {name!r} has no {kind!r} reply"
                    )
                    continue
                for language, text in raw[name][kind].items():
                    self.reply_text((name, kind, language), scope, kind, text)
        return raw

    def reply_text(self, path: Path, scope: Scope, kind: str, text: str) -> None:
        used = set(_PLACEHOLDER.findall(text))
        for unknown in sorted(used - PLACEHOLDERS):
            self.fail(
                "replies",
                path,
                f"unknown placeholder {{{unknown}}}",
                did_you_mean(unknown, PLACEHOLDERS)
                or "use {business}, {platform} or {help_contact}",
            )
        brand = "business" if scope.owner == "business" else "platform"
        if brand not in used:
            self.fail(
                "replies",
                path,
                f"a {kind} reply for scope {scope.name!r} must name the sender with {{{brand}}}",
            )
        if path[-1] != "en":
            return
        required = {"help": ("STOP",), "opt_in": ("HELP", "STOP", "rates may apply")}
        for phrase in required.get(kind, ()):
            if phrase.lower() not in text.lower():
                self.fail(
                    "replies",
                    path,
                    f"the {kind} reply must mention {phrase!r} (CTIA required content)",
                )
        if kind == "help" and "help_contact" not in used:
            self.fail(
                "replies",
                path,
                "a help reply must say how to get help: add {help_contact}",
            )

    # --- invariants -----------------------------------------------------------------------

    def invariants(
        self, domains: dict[str, frozenset[Any]], roles: dict[str, Role]
    ) -> tuple[Invariant, ...]:
        raw = self.sources.data("invariants") or []
        decision_domains = {
            "outcome": frozenset(o.value for o in Outcome),
            "from": frozenset(roles) | {FROM_MESSAGE_ROLE, FROM_REPLY_ROLE},
            "from_status": frozenset(s.value for s in NumberStatus),
        }
        out = []
        seen: set[str] = set()
        for index, item in enumerate(raw):
            if item["id"] in seen:
                self.fail(
                    "invariants",
                    (index, "id"),
                    f"duplicate invariant id {item['id']!r}",
                )
            seen.add(item["id"])
            out.append(
                Invariant(
                    ref=self.ref("invariants", (index,), item["id"]),
                    description=item["description"],
                    conditions=self.conditions(
                        "invariants", (index, "when"), item["when"], domains
                    ),
                    forbid=self.conditions(
                        "invariants",
                        (index, "forbid"),
                        item["forbid"],
                        decision_domains,
                    ),
                )
            )
        return tuple(out)


def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _send_reason(from_role: str | None) -> str:
    return f"Sent from the {from_role} number." if from_role else ""


def _condition_text(fact: str, kind: str, value: Any) -> str:
    def show(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    if kind == "is":
        return f"{fact} is {show(value)}"
    if kind == "not":
        return f"{fact} is not {show(value)}"
    items = ", ".join(show(v) for v in value)
    return f"{fact} in [{items}]" if kind == "in" else f"{fact} not in [{items}]"


def _resolve_static_role(from_role: str, mtype: MessageType) -> str | None:
    if from_role == FROM_MESSAGE_ROLE:
        return None if mtype.is_reply else mtype.role
    if from_role == FROM_REPLY_ROLE:
        return None
    return from_role


def _requires_absent(rule: Rule, role: str) -> bool:
    return any(
        c.fact == f"number.{role}"
        and c.allowed(frozenset(s.value for s in NumberStatus))
        == {NumberStatus.ABSENT.value}
        for c in rule.conditions
    )


def build_policy(sources: Sources, content_hash: str) -> Policy:
    """Check the meaning of schema-valid sources and build the policy; raise RulesError."""
    checker = _Checker(sources)
    products, categories, roles, scopes, types = checker.catalogue()
    quiet = checker.quiet_hours(categories)
    keywords = checker.keywords(scopes)
    replies = checker.replies(scopes)
    draft = Policy(
        source=sources.root,
        files=tuple(doc.file for doc in sources.documents),
        hash=content_hash,
        products=products,
        categories=categories,
        roles=roles,
        scopes=scopes,
        message_types=types,
        rules=(),
        default_ref=checker.ref("rules", (), "no-rule-matched"),
        quiet_hours=quiet,
        keywords=keywords,
        replies=replies,
        invariants=(),
        raw={section: sources.data(section) for section in SECTIONS},
    )
    domains = draft.fact_domains()
    rules = checker.rules(domains, roles, types)
    invariants = checker.invariants(domains, roles)
    checker.carriage(rules, roles, types)
    if checker.problems:
        raise RulesError(checker.problems)

    from dataclasses import replace

    from .space import unreachable_rules

    policy = replace(draft, rules=rules, invariants=invariants)
    for rule, why in unreachable_rules(policy):
        checker.fail(
            "rules", (rule.index, "id"), f"rule {rule.id!r} can never fire: {why}"
        )
    if checker.problems:
        raise RulesError(checker.problems)
    return policy
