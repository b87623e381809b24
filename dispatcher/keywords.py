"""What an inbound reply means: a keyword, a revocation in other words, or ordinary chat.

Twilio acts only on a reply that is exactly one of its keywords. The FCC's rule on
revocation (47 CFR 64.1200(a)(10)) asks for more: "stop", "quit", "cancel" and the like
revoke consent also inside a longer reply, misspelled or in another language. So a reply is
read in two passes:

1. **Exact keywords**, per the policy's sets for the scope of the number written to: the
   whole reply, ignoring case, accents, and spaces, punctuation or emoji around it
   (``" Stop! "``, ``"arrêt"``). Opt-in and help keywords count only this way.
2. **Revocation phrases**, anywhere in the reply, on word boundaries (``"end"`` is not in
   ``"weekend"``), ignoring case and accents (``"no más"`` is ``"no mas"``). A one-word
   phrase also matches a slip of the keyboard; see :func:`_is_slip` for which.

The policy's words live in the rules files (``keywords.yaml``); this module only reads them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from .errors import InputError
from .policy import Policy


class Kind(StrEnum):
    """What a reply asks for. A revocation stops messages of the scope like an opt-out."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    REVOCATION = "revocation"

    @property
    def revokes(self) -> bool:
        return self in (Kind.OPT_OUT, Kind.REVOCATION)


class MatchedBy(StrEnum):
    EXACT = "exact"  # the whole reply is the keyword
    PHRASE = "phrase"  # a revocation phrase inside the reply
    MISSPELLING = "misspelling"  # a slip of one revocation word


@dataclass(frozen=True, slots=True)
class Match:
    """The meaning of a reply: ``keyword`` is the keyword or phrase as the policy writes
    it, ``language`` the language it is listed under."""

    kind: Kind
    keyword: str
    language: str
    matched_by: MatchedBy


# Words one slip away from a revocation word that people write meaning something else.
_NOT_SLIPS = frozenset({"cancer", "stoop"})
# One-word phrases shorter than this match only when spelled right: "end" is one letter
# from "and", "bend", "send".
_SLIP_MIN_LETTERS = 4
# From this length on any single edit is a slip. Below it, a substitution, a deletion or a
# new letter turns "stop" into "shop", "step" or "top", and "quit" into "quite" or "suit".
_ANY_EDIT_MIN_LETTERS = 6
_WORD = re.compile(r"[^\W_]+")
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")


class ReplyClassifier:
    """The keyword sets and revocation phrases of one policy, indexed for :meth:`classify`.

    Build one per loaded policy and reuse it: building reads every keyword once.
    """

    def __init__(self, policy: Policy) -> None:
        self._exact: dict[str, dict[str, Match]] = {}
        for scope, kinds in policy.keywords.by_scope.items():
            index = self._exact[scope] = {}
            for kind, words in kinds.items():
                for word, language in words.items():
                    index[_core(fold(word))] = Match(
                        Kind(kind), word, language, MatchedBy.EXACT
                    )
        phrases = [
            (tuple(_WORD.findall(fold(phrase))), phrase, language)
            for phrase, language in policy.keywords.revocation_phrases.items()
        ]
        # Longest first, so "opt out" is reported rather than a shorter phrase inside it.
        self._phrases = sorted(
            (p for p in phrases if p[0]), key=lambda p: -len(" ".join(p[0]))
        )

    def classify(self, scope: str, text: str) -> Match | None:
        """What ``text``, sent to a number of ``scope``, asks for; None for ordinary chat.

        >>> classifier.classify("marketing", " Stop! ")
        Match(kind=<Kind.OPT_OUT: 'opt_out'>, keyword='STOP', language='en', matched_by=...)
        >>> classifier.classify("marketing", "please stop texting me").kind
        <Kind.REVOCATION: 'revocation'>

        Raises :class:`~dispatcher.errors.InputError` for a scope the policy does not know.
        """
        exact = self._exact.get(scope)
        if exact is None:
            raise InputError(
                f"scope: {scope!r} is not a scope of the policy "
                f"(expected one of {', '.join(sorted(self._exact))})"
            )
        folded = fold(text)
        found = exact.get(_core(folded))
        if found is not None:
            return found
        words = tuple(_WORD.findall(folded))
        for tokens, phrase, language in self._phrases:
            if _contains(words, tokens):
                return Match(Kind.REVOCATION, phrase, language, MatchedBy.PHRASE)
        for tokens, phrase, language in self._phrases:
            if len(tokens) == 1 and any(_is_slip(w, tokens[0]) for w in words):
                return Match(Kind.REVOCATION, phrase, language, MatchedBy.MISSPELLING)
        return None


def classify(policy: Policy, scope: str, text: str) -> Match | None:
    """:meth:`ReplyClassifier.classify` for a one-off; hot paths keep a classifier."""
    return ReplyClassifier(policy).classify(scope, text)


def fold(text: str) -> str:
    """``text`` without case or accents: ``fold("No MÁS") == "no mas"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _core(folded: str) -> str:
    # Spaces, punctuation and emoji around the words go ("stop!!", "¡alto!"); inside,
    # runs of spaces become one and anything else stays ("stop, please" is no keyword).
    return " ".join(_EDGES.sub("", folded).split())


def _contains(words: tuple[str, ...], tokens: tuple[str, ...]) -> bool:
    size = len(tokens)
    return any(words[i : i + size] == tokens for i in range(len(words) - size + 1))


def _is_slip(word: str, target: str) -> bool:
    """Whether ``word`` is ``target`` mistyped (both folded), as far as we honour it.

    Words of fewer than 4 letters never match mistyped. Words of 4 or 5 letters match with
    one letter doubled ("stopp", "quitt") or two neighbours swapped ("stpo"). Longer words
    match at one edit ("unsubscibe", "cancle", "revokd"). Real words a slip away that mean
    something else ("cancer", "stoop") never match.
    """
    if word == target or len(target) < _SLIP_MIN_LETTERS or word in _NOT_SLIPS:
        return False
    if len(target) >= _ANY_EDIT_MIN_LETTERS:
        return _one_edit(word, target)
    if len(word) == len(target) + 1:
        return any(
            word[:i] + word[i + 1 :] == target and word[i] == word[i - 1]
            for i in range(1, len(word))
        )
    return _swapped(word, target)


def _swapped(a: str, b: str) -> bool:
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return (
        len(diff) == 2
        and diff[1] == diff[0] + 1
        and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]])
    )


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by exactly one insertion, deletion, substitution or
    swap of neighbours."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1 or _swapped(a, b)
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


# --- answers ----------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(business|platform|help_contact)\}")


def reply_text(
    policy: Policy,
    scope: str,
    kind: Kind | str,
    language: str,
    *,
    business: str | None = None,
    platform: str | None = None,
    help_contact: str | None = None,
) -> str:
    """The policy's reply to a keyword of ``kind`` at ``scope``, in ``language`` when the
    policy has it, else in English, with its placeholders filled.

    A revocation gets the opt-out confirmation (FCC 64.1200(a)(12) allows one).

    >>> reply_text(policy, "marketing", Kind.HELP, "fr", business="Suds",
    ...            help_contact="suds.example/help")
    'Suds offers and news. ... Help: suds.example/help'

    Raises :class:`~dispatcher.errors.InputError` for an unknown scope or kind, or when the
    reply names a placeholder whose value was not given.
    """
    try:
        kind = Kind(kind)
    except ValueError:
        expected = ", ".join(k.value for k in Kind)
        raise InputError(f"kind: {kind!r} is not one of {expected}") from None
    key = Kind.OPT_OUT.value if kind is Kind.REVOCATION else kind.value
    texts = policy.replies.get(scope, {}).get(key)
    if not texts:
        raise InputError(
            f"replies: the policy has no {key!r} reply for scope {scope!r}"
        )
    text = texts.get(language) or texts.get("en")
    if text is None:
        raise InputError(
            f"replies: the {key!r} reply for scope {scope!r} has neither {language!r} "
            "nor 'en'"
        )
    values = {"business": business, "platform": platform, "help_contact": help_contact}
    missing = sorted({n for n in _PLACEHOLDER.findall(text) if values[n] is None})
    if missing:
        raise InputError(
            f"reply_text: the {key!r} reply for scope {scope!r} names "
            + ", ".join("{" + n + "}" for n in missing)
            + "; pass "
            + ", ".join(f"{n}=..." for n in missing)
        )
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
