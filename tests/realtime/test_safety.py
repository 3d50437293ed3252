"""sessions_app/safety/: normalisation, the crisis matcher and contact masking (pure functions)."""

import pytest

from halobestie.runtime.schema import RuntimeConfigValues
from sessions_app.safety import MASK, crisis_words_found, mask_contacts, normalize

DEFAULTS = RuntimeConfigValues()


def found(text):
    return crisis_words_found(text, DEFAULTS.crisis_words, DEFAULTS.crisis_exclusions)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("CAPEEEK hidup", "capek hidup"),
        ("g a n t u n g  d i r i", "gantung diri"),
        ("b.u.n.u.h d.i.r.i", "bunuh diri"),
        ("pengen m4t1 aja", "pengen mati aja"),
        ("udh gk pngn idup lg", "udah gak pengen hidup lagi"),
        ("sudah tidak ingin hidup", "udah gak pengen hidup"),
        ("I don't want to live.", "i dont want to live |"),
        ("hayang paeh wae", "pengen mati aja"),
        ("lantai 10, kamar 12", "lantai 10 | kamar 12"),
    ],
)
def test_it_normalizes_case_stretching_spacing_leetspeak_punctuation_and_slang(text, normalized):
    assert normalize(text) == normalized


@pytest.mark.parametrize(
    ("text", "entries"),
    [
        ("Aku ingin mati rasanya", ["pengen mati"]),
        ("AKU MAU  BUNUH   DIRI", ["bunuh diri"]),
        ("g a n t u n g  d i r i aja", ["gantung diri"]),
        ("capeeek hidupp", ["capek hidup"]),
        ("gak kuat lagi kak", ["gak kuat lagi"]),
        ("kms", ["kms"]),
        ("udah ga pengen hidup", ["gak pengen hidup"]),
        ("sudah tidak ingin hidup", ["gak pengen hidup"]),
        ("pengen mati, mau mengakhiri hidupku", ["pengen mati", "mengakhiri hidup"]),
        ("mau nyusul almarhum ibu", ["nyusul almarhum"]),
        ("aku self-harm lagi", ["self harm"]),
        ("i've been cutting again", ["been cutting"]),
        ("tadi mati lampu", []),
        ("capek banget sama tugas", []),
        ("ketawa sampe mati", []),
        ("bosen setengah mati", []),
        ("aku gak pengen mati, cuma capek", []),
        ("i don't want to die", []),
        ("mau cutting sticker", []),
        ("mau nyusul temen ke kafe", []),
        ("kill myselfie", []),
        ("", []),
    ],
)
def test_it_finds_crisis_phrases_as_people_write_them_and_not_their_look_alikes(text, entries):
    assert found(text) == entries


def test_it_uses_the_configured_words_and_exclusions():
    assert crisis_words_found("saya putus asa", ["putus asa"]) == ["putus asa"]
    assert crisis_words_found("saya ingin mati", []) == []
    assert crisis_words_found("putus asa sama wifi", ["putus asa"], ["putus asa sama wifi"]) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("hubungi 0812-3456-7890 ya", f"hubungi {MASK} ya"),
        ("wa +62 812 3456 7890", f"wa {MASK}"),
        ("62812.3456.7890", MASK),
        ("(0812) 3456 7890", MASK),
        ("0 8 1 2 3 4 5 6 7 8 9 0", MASK),
        ("8123 4567 8901", MASK),
        ("nomorku nol delapan satu dua tiga empat lima enam tujuh delapan ya", f"nomorku {MASK} ya"),
        ("kosong lapan satu tiga, dua dua dua satu, 4455", MASK),
        ("email a.b+c@gmail.com", f"email {MASK}"),
        ("email budi at gmail dot com", f"email {MASK}"),
        ("ig @bestie_ku.id ya", f"ig {MASK} ya"),
        ("ig: bestie_ku", MASK),
        ("id line : halo123", MASK),
        ("cek wa.me/628123456789", f"cek {MASK}"),
        ("https://www.instagram.com/halo dan t.me/halo", f"{MASK} dan {MASK}"),
        ("line.me/ti/p/abc", MASK),
        ("baca https://contoh.id/artikel ya", f"baca {MASK} ya"),
    ],
)
def test_it_masks_contact_details(text, masked):
    assert mask_contacts(text).text == masked
    assert mask_contacts(text).is_masked is True


@pytest.mark.parametrize(
    "text",
    [
        "harga 15000 rupiah jam 10.30",
        "kode 08123",
        "saya@ rumah",
        "tahun 2024 umur 25",
        "skor 4.5/5",
        "umurku dua puluh satu tahun",
        "satu dua tiga, ayo semangat",
        "tanggal 1 2 2024 jam 3",
    ],
)
def test_it_leaves_ordinary_text_alone(text):
    assert mask_contacts(text).text == text
    assert mask_contacts(text).is_masked is False
