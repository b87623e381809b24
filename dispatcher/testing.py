"""Hypothesis strategies for test suites that state their own properties of a policy.

Needs the ``hypothesis`` package (the ``dev`` extra). Every strategy takes the loaded
:class:`~dispatcher.policy.Policy`, so generated values only use names the policy
declares, and dates straddle the effective dates its rules mention.

Strategies: :func:`facts` (typed facts), :func:`fact_documents` (their JSON form),
:func:`messages` (the message and reply sections), :func:`dates`, :func:`times`,
:func:`jurisdictions` and :func:`policies` (variants of a loaded policy's rules).

Example::

    from hypothesis import given
    from dispatcher import Engine, load_policy
    from dispatcher.testing import facts

    policy = load_policy("rules")
    engine = Engine(policy)

    @given(facts(policy))
    def test_otp_only_from_global(f):
        decision = engine.decide(f)
        if decision.category == "otp" and decision.sends:
            assert decision.role == "global"
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

from hypothesis import strategies as st

from .facts import Channel, ConsentState, Facts, NumberStatus
from .policy import Policy

# Conditions a policy variant keeps: without them a rule could send a message type from
# a number the loader would never allow for it (``from: reply_role`` for a non-reply).
_SLICE_FACTS = frozenset(
    {"message.type", "message.category", "message.product", "reply.role"}
)
# Jurisdictions no policy lists, to exercise the default window.
_UNLISTED = ("US-NY", "US-GA", "US-AZ", "CA-QC")


def dates(policy: Policy) -> st.SearchStrategy[dt.date]:
    """Recipient-local dates, biased to the days around each effective date of the
    rules."""
    edges = sorted(
        {d for r in policy.rules for d in (r.effective_from, r.effective_until) if d}
    )
    near = [edge + dt.timedelta(days=delta) for edge in edges for delta in (-1, 0, 1)]
    anywhere = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2030, 12, 31))
    return st.sampled_from(near) | anywhere if near else anywhere


def times() -> st.SearchStrategy[dt.time]:
    """Wall-clock minutes, biased to the hours where quiet-hour windows usually
    change."""
    around_edges = st.builds(
        dt.time,
        st.sampled_from([7, 8, 9, 10, 11, 12, 19, 20, 21, 22]),
        st.sampled_from([0, 1, 59]),
    )
    return around_edges | st.builds(dt.time, st.integers(0, 23), st.integers(0, 59))


def jurisdictions(policy: Policy) -> st.SearchStrategy[str]:
    listed = sorted(policy.quiet_hours.jurisdictions)
    return st.sampled_from([*listed, *_UNLISTED, "unknown"])


def facts(policy: Policy, **fixed: object) -> st.SearchStrategy[Facts]:
    """Valid facts for ``policy``.

    Keyword arguments pin a field to a value (``message_type="otp_code"``) or draw it from a
    strategy of your own (``message_type=st.sampled_from([...])``).
    """
    fields: dict[str, st.SearchStrategy[object]] = {
        "message_type": st.sampled_from(sorted(policy.message_types)),
        "channel": st.sampled_from(list(Channel)),
        "assist": st.booleans(),
        "accelerate": st.booleans(),
        "numbers": st.fixed_dictionaries(
            {role: st.sampled_from(list(NumberStatus)) for role in policy.roles}
        ),
        "consent": st.fixed_dictionaries(
            {scope: st.sampled_from(list(ConsentState)) for scope in policy.scopes}
        ),
        "jurisdiction": jurisdictions(policy),
        "local_date": dates(policy),
        "local_time": times(),
        "marketing_sent_24h": st.integers(0, 6),
        "reply_role": st.none() | st.sampled_from(sorted(policy.roles)),
    }
    for name, value in fixed.items():
        if name not in fields:
            raise TypeError(f"facts() got an unknown field {name!r}")
        fields[name] = value if isinstance(value, st.SearchStrategy) else st.just(value)
    return st.builds(Facts, **fields)


def messages(policy: Policy) -> st.SearchStrategy[dict[str, Any]]:
    """The ``message`` and ``reply`` sections of a facts document, as JSON-like values.

    Replies (compliance message types) mostly name a replied-to role; others mostly not.
    """

    def build(name: str, channel: Channel, reply: str | None) -> dict[str, Any]:
        return {
            "message": {"type": name, "channel": channel.value},
            "reply": {"role": reply},
        }

    return st.builds(
        build,
        st.sampled_from(sorted(policy.message_types)),
        st.sampled_from(list(Channel)),
        st.none() | st.sampled_from(sorted(policy.roles)),
    )


def fact_documents(policy: Policy) -> st.SearchStrategy[dict[str, Any]]:
    """Complete facts documents (what ``parse_facts`` and ``explain --facts`` read)."""
    return facts(policy).map(Facts.to_mapping)


def policies(base: Policy) -> st.SearchStrategy[Policy]:
    """Variants of ``base``: a non-empty ordered subset of its rules, each of which may
    lose some conditions (never those on the message type or the replied-to role, which
    keep every send on a number the loader allows) or its effective dates.

    The catalogue, quiet hours and invariants stay those of ``base``, so :func:`facts`
    of ``base`` fits every variant. A variant need not pass the loader's checks (a rule
    may be shadowed), which is what engine-agreement properties want. Each variant has
    its own hash.
    """

    @st.composite
    def variant(draw: st.DrawFn) -> Policy:
        chosen = draw(
            st.lists(st.sampled_from(base.rules), min_size=1, unique_by=lambda r: r.id)
        )
        order = sorted(chosen, key=lambda r: r.index)
        rules = []
        for index, rule in enumerate(order):
            keep = draw(
                st.lists(
                    st.booleans(),
                    min_size=len(rule.conditions),
                    max_size=len(rule.conditions),
                )
            )
            conditions = tuple(
                c
                for c, k in zip(rule.conditions, keep, strict=True)
                if k or c.fact in _SLICE_FACTS
            )
            dated = draw(st.booleans())
            rules.append(
                dataclasses.replace(
                    rule,
                    index=index,
                    conditions=conditions,
                    effective_from=rule.effective_from if dated else None,
                    effective_until=rule.effective_until if dated else None,
                )
            )
        digest = hashlib.sha256(
            repr(
                (base.hash, [(r.id, r.conditions, r.effective_from) for r in rules])
            ).encode()
        ).hexdigest()
        return dataclasses.replace(base, rules=tuple(rules), hash=digest)

    return variant()
