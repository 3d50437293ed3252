"""Safety checks on chat text: pure functions, no I/O.

- `crisis.py`: does a message signal crisis? A lexicon matcher over `normalize.py`'s canonical
  text (case, stretched letters, spacing, leetspeak, punctuation, slang and regional spellings).
- `contacts.py`: contact details (phones, also split or written out in words; e-mails; handles;
  links and chat invitations) masked, in the messages of either side.
"""

from sessions_app.safety.contacts import MASK, MASKED_NOTICE, MaskResult, mask_contacts
from sessions_app.safety.crisis import crisis_words_found
from sessions_app.safety.normalize import normalize

__all__ = ["MASK", "MASKED_NOTICE", "MaskResult", "crisis_words_found", "mask_contacts", "normalize"]
