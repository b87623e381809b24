"""What an inbound reply means, and the reply we send back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher import Policy, load_policy
from dispatcher.errors import InputError
from dispatcher.keywords import (
    Kind,
    Match,
    MatchedBy,
    ReplyClassifier,
    classify,
    fold,
    reply_text,
)

from .conftest import RULES, RulesCopy

EXACT, PHRASE, SLIP = MatchedBy.EXACT, MatchedBy.PHRASE, MatchedBy.MISSPELLING
OPT_OUT, OPT_IN, HELP, REVOKE = Kind.OPT_OUT, Kind.OPT_IN, Kind.HELP, Kind.REVOCATION


@pytest.fixture(scope="module")
def classifier(policy: Policy) -> ReplyClassifier:
    return ReplyClassifier(policy)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # exact keywords, whatever the case and whatever surrounds them
        ("stop", Match(OPT_OUT, "STOP", "en", EXACT)),
        (" Stop! ", Match(OPT_OUT, "STOP", "en", EXACT)),
        ("STOP.", Match(OPT_OUT, "STOP", "en", EXACT)),
        ("\n😡 unsubscribe 😡", Match(OPT_OUT, "UNSUBSCRIBE", "en", EXACT)),
        ("END", Match(OPT_OUT, "END", "en", EXACT)),
        ("ARRET", Match(OPT_OUT, "ARRET", "fr", EXACT)),
        ("Arrêt", Match(OPT_OUT, "ARRET", "fr", EXACT)),
        ("¡Alto!", Match(OPT_OUT, "ALTO", "es", EXACT)),
        ("Start", Match(OPT_IN, "START", "en", EXACT)),
        ("yes!", Match(OPT_IN, "YES", "en", EXACT)),
        ("commencer", Match(OPT_IN, "COMMENCER", "fr", EXACT)),
        ("HELP", Match(HELP, "HELP", "en", EXACT)),
        ("info?", Match(HELP, "INFO", "en", EXACT)),
        ("Ayuda", Match(HELP, "AYUDA", "es", EXACT)),
        # revocations in other words, inside longer replies
        ("please stop texting me", Match(REVOKE, "stop", "en", PHRASE)),
        ("STOP PLEASE", Match(REVOKE, "stop", "en", PHRASE)),
        ("I want to opt-out", Match(REVOKE, "opt out", "en", PHRASE)),
        ("remove me from this list", Match(REVOKE, "remove me", "en", PHRASE)),
        ("No mas por favor", Match(REVOKE, "no mas", "es", PHRASE)),
        ("no más", Match(REVOKE, "no mas", "es", PHRASE)),
        ("Basta ya", Match(REVOKE, "basta", "es", PHRASE)),
        ("arrête de m'écrire", Match(REVOKE, "arrête", "fr", PHRASE)),
        # slips of the keyboard
        ("stopp", Match(REVOKE, "stop", "en", SLIP)),
        ("Stpo", Match(REVOKE, "stop", "en", SLIP)),
        ("pls unsubscibe me", Match(REVOKE, "unsubscribe", "en", SLIP)),
        ("cancle", Match(REVOKE, "cancel", "en", SLIP)),
        ("quitt", Match(REVOKE, "quit", "en", SLIP)),
        ("revokd", Match(REVOKE, "revoke", "en", SLIP)),
        # the policy lists "end": as a word, it revokes wherever it stands
        ("see you at the end of the day", Match(REVOKE, "end", "en", PHRASE)),
        # ordinary chat, including words close to a revocation word
        ("Is my order ready?", None),
        ("see you this weekend", None),
        ("thanks my friend", None),
        ("nice spot", None),
        ("which shop?", None),
        ("next step", None),
        ("top quality", None),
        ("quite good", None),
        ("leave it on the stoop", None),
        ("my aunt beat cancer", None),
        ("pasta tonight", None),
        ("I canceled my order", None),  # two edits from "cancel"
        ("start please", None),  # opt-in counts only as the whole reply
        ("help me find my order", None),  # so does help
        ("", None),
        ("?!", None),
    ],
)
def test_classify(
    classifier: ReplyClassifier, text: str, expected: Match | None
) -> None:
    assert classifier.classify("marketing", text) == expected


def test_exact_keywords_win_over_revocation_phrases(
    classifier: ReplyClassifier,
) -> None:
    # QUIT is both a keyword and a phrase: as a whole reply it is the keyword.
    assert classifier.classify("otp", "quit") == Match(OPT_OUT, "QUIT", "en", EXACT)


def test_scope_extras_count_only_for_their_scope(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "keywords.yaml",
        "  revocation_phrases:",
        "  by_scope:\n    marketing:\n      opt_out:\n        en: [STOPPROMO]\n"
        "  revocation_phrases:",
    )
    policy = load_policy(rules_copy.root)
    promo = Match(OPT_OUT, "STOPPROMO", "en", EXACT)
    assert classify(policy, "marketing", "stoppromo") == promo
    assert classify(policy, "transactional", "stoppromo") is None


def test_an_unknown_scope_is_refused(classifier: ReplyClassifier) -> None:
    with pytest.raises(InputError, match="scope: 'promo' is not a scope of the policy"):
        classifier.classify("promo", "stop")


def test_fold_drops_case_and_accents() -> None:
    assert fold("No MÁS") == "no mas"
    assert fold("ARRÊTER") == "arreter"


# --- properties -------------------------------------------------------------------------

POLICY = load_policy(RULES)
CLASSIFIER = ReplyClassifier(POLICY)
AROUND = st.text(alphabet=" \t\n.,!?¡¿…-\"'()😡🛑", max_size=4)


@st.composite
def opt_out_replies(draw: st.DrawFn) -> tuple[str, str, str]:
    scope = draw(st.sampled_from(sorted(POLICY.keywords.by_scope)))
    keyword = draw(st.sampled_from(sorted(POLICY.keywords.by_scope[scope]["opt_out"])))
    upper = draw(st.lists(st.booleans(), min_size=len(keyword), max_size=len(keyword)))
    cased = "".join(
        c.upper() if u else c.lower() for c, u in zip(keyword, upper, strict=True)
    )
    return scope, keyword, draw(AROUND) + cased + draw(AROUND)


@given(opt_out_replies())
def test_any_opt_out_keyword_in_any_dress_opts_out(reply: tuple[str, str, str]) -> None:
    scope, keyword, text = reply
    match = CLASSIFIER.classify(scope, text)
    assert match is not None
    assert (match.kind, match.keyword) == (OPT_OUT, keyword)


def _near(a: str, b: str) -> bool:
    """Levenshtein distance of at most 2, the plain dynamic programme."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (x != y)),
            )
    return row[-1] <= 2


_TRIGGERS = {
    fold(k)
    for kinds in POLICY.keywords.by_scope.values()
    for ws in kinds.values()
    for k in ws
} | {w for p in POLICY.keywords.revocation_phrases for w in fold(p).split()}
ORDINARY = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzéñ", min_size=1, max_size=10
).filter(lambda w: not any(_near(fold(w), t) for t in _TRIGGERS))
CHAT_WORDS = st.sampled_from(
    [
        *("hi", "thanks", "order", "ready", "pickup", "when", "tomorrow", "ok"),
        *("weekend", "friend", "spot", "shop", "step", "top", "quite", "suit"),
        *("pasta", "send", "and", "bend", "blend", "stopwatch", "ending", "cancer"),
    ]
)


@given(
    st.lists(ORDINARY | CHAT_WORDS, min_size=1, max_size=8),
    st.sampled_from([" ", ", ", "! "]),
)
def test_ordinary_words_mean_nothing(words: list[str], glue: str) -> None:
    for scope in POLICY.scopes:
        assert CLASSIFIER.classify(scope, glue.join(words)) is None


# --- replies ----------------------------------------------------------------------------


def test_reply_text_fills_placeholders(policy: Policy) -> None:
    text = reply_text(
        policy,
        "marketing",
        Kind.HELP,
        "en",
        business="Suds",
        help_contact="suds.example",
    )
    assert text.startswith("Suds offers and news.")
    assert text.endswith("Help: suds.example")


def test_reply_text_falls_back_to_english(policy: Policy) -> None:
    assert reply_text(policy, "otp", "opt_in", "fr", platform="Washly") == reply_text(
        policy, "otp", "opt_in", "en", platform="Washly"
    )


def test_a_revocation_gets_the_opt_out_confirmation(policy: Policy) -> None:
    assert reply_text(policy, "transactional", REVOKE, "es", business="Suds") == (
        "Suds: you will no longer receive order updates by text. Reply START to "
        "resubscribe."
    )


def test_reply_text_in_the_reply_language(rules_copy: RulesCopy) -> None:
    rules_copy.replace(
        "keywords.yaml",
        "  transactional:\n    help:\n",
        "  transactional:\n    help:\n"
        '      fr: "{business} : suivi de commande. Aide : {help_contact}. STOP pour arrêter."\n',
    )
    policy = load_policy(rules_copy.root)
    assert (
        reply_text(
            policy,
            "transactional",
            HELP,
            "fr",
            business="Suds",
            help_contact="suds.example",
        )
        == "Suds : suivi de commande. Aide : suds.example. STOP pour arrêter."
    )


@pytest.mark.parametrize(
    ("scope", "kind", "values", "message"),
    [
        (
            "marketing",
            "help",
            {"business": "Suds"},
            "names {help_contact}; pass help_contact=...",
        ),
        (
            "promo",
            "help",
            {},
            "replies: the policy has no 'help' reply for scope 'promo'",
        ),
        ("marketing", "hello", {}, "kind: 'hello' is not one of opt_out, opt_in, help"),
    ],
)
def test_reply_text_refuses_what_it_cannot_fill(
    policy: Policy, scope: str, kind: str, values: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        reply_text(policy, scope, kind, "en", **values)
    assert message in str(caught.value)
