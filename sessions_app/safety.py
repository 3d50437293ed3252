"""Safety checks on chat text: pure functions, no I/O.

- `crisis_words_found`: does a message signal crisis (self-harm words, Indonesian and English,
  from the runtime config)? Case-insensitive and word-boundary aware, so "mati lampu" never
  matches "ingin mati" and "kill myselfie" is not "kill myself"; runs of spaces, dashes and
  underscores between the words of a phrase count as one separator.
- `mask_contacts`: contact details (Indonesian phone numbers, e-mail addresses, social handles,
  chat and social links) replaced by MASK, so that the two sides cannot move the conversation off
  the platform. What is stored and delivered is the masked text.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

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
    handle inside them is not masked twice)."""
    masked = text
    for pattern in (_LINK, _EMAIL, _PHONE, _HANDLE):
        masked = pattern.sub(MASK, masked)
    return MaskResult(text=masked, is_masked=masked != text)


@lru_cache(maxsize=32)
def _crisis_pattern(words: tuple):
    phrases = []
    for word in words:
        parts = [re.escape(part) for part in re.split(r"[\s_-]+", word.strip().lower()) if part]
        if parts:
            phrases.append(r"[\s_-]+".join(parts))
    if not phrases:
        return None
    # Longest first, so that "mengakhiri hidup" wins over a shorter overlapping phrase.
    phrases.sort(key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(phrases) + r")(?!\w)", re.IGNORECASE)


def crisis_words_found(text: str, words) -> list:
    """The crisis phrases found in `text` (lower-cased, runs of spaces as one), in order; [] if none."""
    pattern = _crisis_pattern(tuple(words))
    if pattern is None:
        return []
    return [re.sub(r"\s+", " ", match.group(0).lower()) for match in pattern.finditer(text)]
