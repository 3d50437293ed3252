"""sessions_app/safety.py: crisis words and contact masking (pure functions)."""

import pytest

from halobestie.runtime.schema import DEFAULT_CRISIS_WORDS
from sessions_app.safety import MASK, crisis_words_found, mask_contacts


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Aku ingin mati rasanya", ["ingin mati"]),
        ("AKU MAU  BUNUH   DIRI", ["bunuh diri"]),
        ("pengen mati aja, mau mengakhiri hidup", ["pengen mati", "mengakhiri hidup"]),
        ("I want to die.", ["want to die"]),
        ("thinking about self harm and self-harm", ["self harm", "self-harm"]),
        ("tadi mati lampu", []),
        ("kill myselfie", []),
        ("suicidesquad", []),
        ("", []),
    ],
)
def test_it_finds_crisis_words_on_word_boundaries(text, found):
    assert crisis_words_found(text, DEFAULT_CRISIS_WORDS) == found


def test_it_uses_the_configured_words():
    assert crisis_words_found("saya putus asa", ["putus asa"]) == ["putus asa"]
    assert crisis_words_found("saya ingin mati", []) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("hubungi 0812-3456-7890 ya", f"hubungi {MASK} ya"),
        ("wa +62 812 3456 7890", f"wa {MASK}"),
        ("62812.3456.7890", MASK),
        ("(0812) 3456 7890", MASK),
        ("email a.b+c@gmail.com", f"email {MASK}"),
        ("ig @bestie_ku.id ya", f"ig {MASK} ya"),
        ("cek wa.me/628123456789", f"cek {MASK}"),
        ("https://www.instagram.com/halo dan t.me/halo", f"{MASK} dan {MASK}"),
        ("line.me/ti/p/abc", MASK),
    ],
)
def test_it_masks_contact_details(text, masked):
    assert mask_contacts(text).text == masked
    assert mask_contacts(text).is_masked is True


@pytest.mark.parametrize(
    "text", ["harga 15000 rupiah jam 10.30", "kode 08123", "saya@ rumah", "tahun 2024 umur 25", "skor 4.5/5"]
)
def test_it_leaves_ordinary_text_alone(text):
    assert mask_contacts(text).text == text
    assert mask_contacts(text).is_masked is False
