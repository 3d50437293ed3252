"""Does a chat message signal that someone may be in danger? A lexicon matcher.

The lexicon (runtime config `crisis_words`, defaults in halobestie/runtime/crisis_lexicon.py) is
a list of phrases; text and phrases both go through `normalize` (safety/normalize.py), so one
entry covers its spellings. A phrase matches on word boundaries ("mati lampu" never contains
"ingin mati"), with or without the space between its words ("bunuhdiri"), and with an attached
Indonesian pronoun or particle (-ku, -mu, -nya, -lah, -kah: "mengakhiri hidupku").

A match does not count when:
- it lies inside an exclusion phrase (`crisis_exclusions`: "setengah mati", "mati lampu", …);
- it is negated: the word just before it (skipping fillers like "aku", "kok", "pengen",
  "kepikiran") is a negation ("aku gak pengen mati", "i dont want to die", "im not suicidal");
  a negation that is part of the phrase itself ("gak kuat lagi") is the phrase;
- the message talks about the topic rather than the self ("berita", "film", "pencegahan",
  "tentang" just before it; "awareness", "squad", "prevention" just after).

How well this does on 378 hand-written sentences is measured in tests/realtime/test_crisis_eval.py
and written down in docs/RELIABILITY.md.
"""

import re
from functools import lru_cache

from sessions_app.safety.normalize import CLAUSE_BREAK, normalize

_SUFFIX = r"(?:ku|mu|nya|lah|kah)?"
NEGATIONS = frozenset({"gak", "bukan", "not", "dont", "never", "no", "nor", "jangan"})
# Skipped when looking back for a negation ("aku nggak kepikiran bunuh diri kok").
_FILLERS = frozenset(
    {"aku", "kamu", "kok", "sih", "pengen", "kepikiran", "beneran", "juga", "pernah", "lagi", "sama",
     "want", "to", "am", "im", "really", "mikir", "berniat", "bakal", "akan"}
)  # fmt: skip
# After a negation these make it something else ("gak tau kenapa pengen mati").
# ("gak tau kenapa pengen mati", "kamu tau ga sih aku pengen bundir").
_NOT_NEGATING_AFTER = frozenset({"tau", "ngerti", "paham", "yakin", "bisa", "sih"})
_TOPIC_BEFORE = frozenset(
    {"tentang", "pencegahan", "angka", "berita", "kasus", "isu", "film", "lagu", "buku", "seminar"}
)
_TOPIC_AFTER = frozenset({"awarenes", "squad", "prevention", "pencegahan"})  # after normalize()


def _phrase_pattern(words, joiner):
    return joiner.join(re.escape(word) for word in words)


# Between the words of a phrase: a space, none ("bunuhdiri"), or the particle "aja" ("pengen
# udahan aja sama hidup"); in an exclusion also a clause break ("kms (kartu menuju sehat)").
_JOINER = r"(?:\ ?|\ aja\ )"
_EXCLUSION_JOINER = r"(?:\ ?|\ aja\ |\ \|\ )"


class CrisisMatcher:
    def __init__(self, phrases, exclusions=()):
        self.entries = {}
        for phrase in phrases:
            words = normalize(phrase).replace(CLAUSE_BREAK, " ").split()
            if words:
                self.entries.setdefault("".join(words), phrase)
        self.pattern = self._compile(self.entries, _JOINER) if self.entries else None
        excluded = {}
        for phrase in exclusions:
            words = normalize(phrase).replace(CLAUSE_BREAK, " ").split()
            if words:
                excluded["".join(words)] = words
        self.exclusions = self._compile(excluded, _EXCLUSION_JOINER, suffix=False) if excluded else None

    @staticmethod
    def _compile(entries, joiner, suffix=True):
        by_length = sorted(entries, key=len, reverse=True)
        alternatives = []
        for key in by_length:
            value = entries[key]
            words = value if isinstance(value, list) else normalize(value).replace(CLAUSE_BREAK, " ").split()
            alternatives.append(_phrase_pattern(words, joiner))
        tail = _SUFFIX if suffix else ""
        return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")" + tail + r"(?![a-z0-9])")

    def _entry(self, matched: str):
        key = matched.replace(" aja ", " ").replace(" ", "")
        if key in self.entries:
            return self.entries[key]
        for suffix in ("nya", "lah", "kah", "ku", "mu"):
            if key.endswith(suffix) and key[: -len(suffix)] in self.entries:
                return self.entries[key[: -len(suffix)]]
        return None

    def find(self, text: str) -> list:
        if self.pattern is None or not text:
            return []
        normalized = normalize(text)
        excluded_spans = None  # read at the first match only: most messages have none (issue 22)
        found = []
        for match in self.pattern.finditer(normalized):
            start, end = match.span()
            if excluded_spans is None:
                exclusions = self.exclusions.finditer(normalized) if self.exclusions is not None else ()
                excluded_spans = [m.span() for m in exclusions]
            if any(s < end and start < e for s, e in excluded_spans):
                continue
            before = normalized[:start].split()
            after = normalized[end:].split()
            if _is_negated(before, match.group(0).split()) or _is_topic(before, after):
                continue
            entry = self._entry(match.group(0))
            if entry is not None:
                found.append(entry)
        return found


def _clause(words):
    """The words back to the last clause break."""
    if CLAUSE_BREAK in words:
        words = words[len(words) - words[::-1].index(CLAUSE_BREAK) :]
    return words


def _is_negated(before, matched_words) -> bool:
    if matched_words and matched_words[0] in NEGATIONS:
        return False  # the negation is the phrase ("gak kuat lagi")
    words = _clause(before)
    following = matched_words[0] if matched_words else ""
    for word in reversed(words[-4:]):
        if word in NEGATIONS:
            return following not in _NOT_NEGATING_AFTER
        if word not in _FILLERS:
            return False
        following = word
    return False


def _is_topic(before, after) -> bool:
    previous = _clause(before)[-2:]
    return any(w in _TOPIC_BEFORE for w in previous) or bool(after and after[0] in _TOPIC_AFTER)


@lru_cache(maxsize=16)
def crisis_matcher(phrases: tuple, exclusions: tuple = ()) -> CrisisMatcher:
    return CrisisMatcher(phrases, exclusions)


def crisis_words_found(text: str, words, exclusions=()) -> list:
    """The lexicon entries (as configured) that `text` matches, in order; [] if none."""
    return crisis_matcher(tuple(words), tuple(exclusions)).find(text)
