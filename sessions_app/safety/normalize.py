"""Chat text as the crisis matcher reads it: one canonical spelling per word.

People in distress do not type dictionary Indonesian. `normalize` undoes, in this order:
- case, accents and full-width forms (NFKC, lower case, combining marks dropped);
- letters spelled out with spaces or dots ("g a n t u n g", "b.u.n.u.h"): a run of three or more
  single characters is joined into one word;
- leetspeak inside words that mix letters and digits ("m4t1" → "mati", "s3lf" → "self"); a
  number on its own ("lantai 10") is left alone;
- stretched letters ("capeeek", "matiii"): every run of one repeated letter becomes one letter
  (the lexicon goes through the same step, so "kill" and "kil" meet);
- punctuation: apostrophes vanish ("don't" → "dont"), hyphens and other symbols separate words,
  and sentence punctuation becomes a clause break "|" that no phrase matches across;
- chat spellings, abbreviations and regional words → one canonical word (`CANONICAL`): "pngn",
  "pgn", "pengin", "ingin", "mau", "hayang" → "pengen"; "ga", "gk", "nggak", "tidak", "ora" →
  "gak"; "idup", "hdp", "urip" → "hidup"; "modar", "mokat", "paeh", "maot" → "mati"; "bundir"
  → "bunuh diri"; "wanna" → "want to" …

Pure functions, no I/O.
"""

import re
import unicodedata
from functools import lru_cache

CLAUSE_BREAK = "|"

_LEET = str.maketrans(
    {"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s", "7": "t"}
)

# canonical word: the spellings people use for it (written before repeated letters collapse;
# the table is collapsed the same way when it is built).
_SPELLINGS = {
    "pengen": "pengen pengin pingin kepengen kepingin ingin mau mo mw pgn pngn pgen pen hayang hoyong",
    "gak": "ga gak gk nggak ngga ngak enggak engga gag tidak tdk ndak nda ora tak g",
    "udah": "udah udh dah sudah sdh wis uda",
    "lagi": "lagi lg lgi",
    "hidup": "hidup idup hdp urip",
    "mati": "mati modar mokat paeh maot",
    "capek": "capek cape capai cpk",
    "aja": "aja aj ajah wae",
    "aku": "aku aq gw gue gua saya ak abdi",
    "kamu": "kamu km kmu lu lo elu",
    "banget": "banget bgt bngt",
    "bunuh diri": "bundir bunuhdiri",
    "diri": "diri dri",
    "sampe": "sampe sampai ampe",
    "kalau": "kalau kalo klo kl",
    "buat": "buat untuk utk",
    "gimana": "gimana gmn",
    "yang": "yang yg",
    "sama": "sama sm",
    "bosan": "bosan bosen",
    "hilang": "hilang ilang",
    "tau": "tau tahu",
    "want to": "wanna",
    "going to": "gonna",
    "im": "im iam",
}


def _collapse_repeats(word: str) -> str:
    return re.sub(r"([a-z])\1+", r"\1", word)


CANONICAL = {
    _collapse_repeats(spelling): canonical
    for canonical, spellings in _SPELLINGS.items()
    for spelling in spellings.split()
}

_SPACED_LETTERS = re.compile(r"(?<![a-z0-9])[a-z0-9](?:[ .*_-][a-z0-9](?![a-z0-9])){2,}")
_MIXED_WORD = re.compile(r"[a-z0-9@$!]*(?:[a-z][0-9@$!]|[0-9@$!][a-z])[a-z0-9@$!]*")
_CLAUSE = re.compile(r"[.,;:?!()\[\]\"“”…\n]+")


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _unleet(match) -> str:
    word = match.group(0)
    return word.translate(_LEET) if any(ch.isalpha() for ch in word) else word


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """`text` as space-separated canonical words and clause breaks ("|")."""
    text = _strip_marks(text).lower()
    text = _SPACED_LETTERS.sub(lambda m: re.sub(r"[ .*_-]", "", m.group(0)), text)
    text = _MIXED_WORD.sub(_unleet, text)
    text = text.replace("'", "").replace("’", "").replace("`", "")
    text = _CLAUSE.sub(f" {CLAUSE_BREAK} ", text)
    text = re.sub(r"[^a-z0-9|]+", " ", text)
    words = []
    for word in text.split():
        word = _collapse_repeats(word)
        words.append(CANONICAL.get(word, word))
    return " ".join(words)
