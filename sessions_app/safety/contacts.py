"""Contact details masked out of chat text, in the messages of either side (pure functions).

`mask_contacts` replaces with MASK: Indonesian phone numbers (also split by spaces, dots or
dashes, and written out in words: "nol delapan satu dua …", "kosong lapan"), any run of ten or
more digits (account numbers too), e-mail addresses (also "nama at gmail dot com"), @handles and
"ig: handle" / "id line: handle", links (any http(s):// or www. address, and chat or social
domains without a scheme: wa.me, t.me, line.me, …). The two sides cannot move the conversation
off the platform; what is stored and delivered is the masked text, and the sender is told.
"""

import re
from dataclasses import dataclass

MASK = "[disembunyikan]"
MASKED_NOTICE = (
    "Demi keamanan, nomor telepon, e-mail, akun media sosial dan tautan kontak disembunyikan dari pesanmu."
)

# Links to chat apps and social networks (with or without scheme / www).
_LINK_DOMAINS = (
    r"wa\.me",
    r"api\.whatsapp\.com",
    r"chat\.whatsapp\.com",
    r"whatsapp\.com",
    r"t\.me",
    r"telegram\.me",
    r"telegram\.org",
    r"line\.me",
    r"lin\.ee",
    r"instagram\.com",
    r"instagr\.am",
    r"facebook\.com",
    r"fb\.com",
    r"fb\.me",
    r"m\.me",
    r"messenger\.com",
    r"tiktok\.com",
    r"vm\.tiktok\.com",
    r"twitter\.com",
    r"x\.com",
    r"snapchat\.com",
    r"discord\.gg",
    r"discord\.com",
    r"linkedin\.com",
    r"signal\.me",
    r"bit\.ly",
    r"s\.id",
)
_LINK = re.compile(
    r"(?<![\w.@-])(?:https?://)?(?:www\.)?(?:" + "|".join(_LINK_DOMAINS) + r")(?:/[^\s]*)?(?![\w.-]*\w)",
    re.IGNORECASE,
)
_ANY_URL = re.compile(r"(?<![\w@])(?:https?://|www\.)[^\s]+", re.IGNORECASE)
_SPELLED_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]+\s*(?:@|\(at\)|\[at\]|\bat\b|\bet\b)\s*"
    r"(?:gmail|yahoo|ymail|hotmail|outlook|icloud|live|proton(?:mail)?)\s*(?:\.|\bdot\b|\(dot\)|\btitik\b)\s*"
    r"(?:com|co\.id|id|net)\b",
    re.IGNORECASE,
)
# "ig: bestie_ku", "id line : halo123", "tele=halo": a handle announced by its network.
_LABELLED_HANDLE = re.compile(
    r"(?<!\w)(?:ig|insta(?:gram)?|id\s*line|line\s*id|line|tele(?:gram)?|tg|wa|whatsapp|snap(?:chat)?|"
    r"tiktok|tt|twitter|discord|fb|facebook)\s*[:=]\s*@?[A-Za-z0-9_.]{3,30}",
    re.IGNORECASE,
)
_DIGIT_WORDS = {
    "nol": "0", "kosong": "0", "zero": "0", "satu": "1", "one": "1", "dua": "2", "two": "2",
    "tiga": "3", "three": "3", "empat": "4", "pat": "4", "four": "4", "lima": "5", "five": "5",
    "enam": "6", "nam": "6", "six": "6", "tujuh": "7", "seven": "7", "delapan": "8", "lapan": "8",
    "eight": "8", "sembilan": "9", "nine": "9",
}  # fmt: skip
# Seven or more digits written as words or digits, in any mix ("nol delapan 1 2 tiga …").
_DIGIT_TOKEN = r"(?:" + "|".join(sorted(_DIGIT_WORDS, key=len, reverse=True)) + r"|\d+)"
_SPELLED_NUMBER = re.compile(
    r"(?<!\w)" + _DIGIT_TOKEN + r"(?:[\s.,-]+" + _DIGIT_TOKEN + r"(?!\w)){6,}", re.IGNORECASE
)
# Any run of ten or more digits, whatever separates them (phones without a prefix, accounts).
_LONG_DIGITS = re.compile(r"(?<![\w+])\d(?:[\s.()-]{0,2}\d){9,}(?!\d)")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?!\w)")
# Indonesian phones: 08…, +62…, 62…, 0062…, with spaces, dashes, dots or brackets inside; 9–13
# digits after the country prefix / leading zero. A lone short number (a price, a time) is left.
_PHONE = re.compile(
    r"(?<![\w+(])\(?(?:\+\s?62|0062|62|0)[\s.()-]{0,2}8(?:[\s.()-]{0,2}\d){7,12}(?!\d)",
)
# @handles: 2–30 characters of letters, digits, dots and underscores, not part of an e-mail.
_HANDLE = re.compile(r"(?<![\w.@])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?(?![\w@])")


@dataclass(frozen=True)
class MaskResult:
    text: str
    is_masked: bool


def mask_contacts(text: str) -> MaskResult:
    """The text with every contact detail replaced by MASK (links and e-mails first, so that a
    handle inside them is not masked twice).

    A pattern runs only when the text holds what every match of it must contain (`_could_match`):
    most messages hold no digit, '@', ':' or link, and nine regular expressions over each message
    were the largest part of the message path's own CPU (issue 22: 90–280 µs per message on the
    bench machine, now 20–40). MASK holds none of those, so the skipped patterns find nothing in
    the text and the result is the same."""
    masked = text
    folded = _folded(text)
    for pattern in (_LINK, _ANY_URL, _EMAIL, _SPELLED_EMAIL, _SPELLED_NUMBER, _PHONE, _LONG_DIGITS,
                    _LABELLED_HANDLE, _HANDLE):  # fmt: skip
        if _could_match(pattern, masked, folded):
            replaced = pattern.sub(_mask_spelled_number if pattern is _SPELLED_NUMBER else MASK, masked)
            if replaced != masked:
                masked, folded = replaced, _folded(replaced)
    return MaskResult(text=masked, is_masked=masked != text)


# What a case-insensitive pattern's ASCII letters also match (Python's re): the text is folded
# with these before looking for a literal, so the look-up never misses what the pattern finds.
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})
_DIGIT = re.compile(r"\d")
_LINK_LITERALS = tuple(domain.replace("\\", "") for domain in _LINK_DOMAINS)
_EMAIL_PROVIDERS = ("gmail", "yahoo", "ymail", "hotmail", "outlook", "icloud", "live", "proton")
_DIGIT_WORD_SET = frozenset(_DIGIT_WORDS)


def _folded(text: str) -> str:
    return text.translate(_FOLD).lower() if not text.isascii() else text.lower()


def _could_match(pattern, text: str, folded: str) -> bool:
    """False only when `pattern` cannot match `text` (`folded`: `_folded(text)`): what each of
    its matches must contain."""
    if pattern is _LINK:
        return "." in text and any(domain in folded for domain in _LINK_LITERALS)
    if pattern is _ANY_URL:
        return "://" in text or "www." in folded
    if pattern is _EMAIL or pattern is _HANDLE:
        return "@" in text
    if pattern is _SPELLED_EMAIL:
        return any(provider in folded for provider in _EMAIL_PROVIDERS)
    if pattern is _SPELLED_NUMBER:
        # Seven tokens, digits or digit words between separators ([\s.,-]: str.split() splits at
        # the same spaces as \s): without a digit, the ones in the middle are whole tokens of
        # the text split at the separators, and digit words.
        if _DIGIT.search(text) is not None:
            return True
        tokens = folded.replace(".", " ").replace(",", " ").replace("-", " ").split()
        return not _DIGIT_WORD_SET.isdisjoint(tokens)
    if pattern is _PHONE:
        return "8" in text
    if pattern is _LONG_DIGITS:
        return _DIGIT.search(text) is not None
    if pattern is _LABELLED_HANDLE:
        return ":" in text or "=" in text
    return True


def _mask_spelled_number(match) -> str:
    """Seven or more spelled digits that contain at least two words: a number read out (a
    plain digit run is the other patterns' business, a short one is a price or a time)."""
    tokens = re.split(r"[\s.,-]+", match.group(0))
    words = [t for t in tokens if not t.isdigit()]
    return MASK if len(words) >= 2 else match.group(0)
