"""The default crisis lexicon (runtime config `crisis_words`, `crisis_exclusions`,
`mitra_alert_words`). Staff can edit all three in the control center.

Entries are written the way people write them; the matcher (sessions_app/safety/) normalises
entry and message alike, so one entry covers its spellings: "pengen mati" also covers "ingin
mati", "pngn mati", "mau mati", "pengeeen m4t1", "hayang paeh"; "gak pengen hidup" covers
"ga pengen idup lg", "sudah tidak ingin hidup", "ora pengen urip"; "bunuh diri" covers "bundir",
"bunuhdiri", "b.u.n.u.h d.i.r.i". So the list holds phrases, not spellings.

Bare words that mean harm far more often in other senses stay out on purpose: "cutting" alone
(cutting sticker, video, garment cutting), "mau nyusul" alone (to join someone later), "silet",
"racun", "lompat". Their dangerous uses are covered by longer phrases ("cutting myself", "nyusul
almarhum", "minum racun", "lompat dari").
"""

CRISIS_WORDS = (
    # Suicide, Indonesian (slang and regional forms come through normalisation)
    "bunuh diri", "gantung diri", "menggantung diri", "gantung leher", "percobaan bunuh diri",
    "pengen mati", "kepikiran mati", "mikir mati", "mending mati", "mending aku mati",
    "lebih baik aku mati", "lebih baik mati", "pantas mati", "kalau aku mati", "pengen mati muda",
    "mengakhiri hidup", "akhiri hidup", "ngakhirin hidup", "ngakhiri hidup", "mengakhiri semuanya",
    "ngakhirin semuanya", "ngakhiri semuanya",
    "capek hidup", "lelah hidup", "kesel hidup", "males hidup", "bosan hidup", "muak hidup",
    "capek jadi manusia", "gak pengen hidup", "gak kuat hidup", "gak sanggup hidup",
    "gak sanggup lagi hidup", "gak kuat lagi hidup", "gak kuat lagi",
    "nyerah sama hidup", "menyerah sama hidup", "udahan sama hidup", "capek hidup pengen udahan",
    "hidupku gak ada artinya", "hidupku udah gak ada artinya", "hidup gak ada artinya",
    "gunanya hidup", "gunanya aku hidup", "buat apa aku hidup", "buat apa hidup",
    "alasan buat hidup", "alasan buat tetap hidup", "alasan hidup",
    "nyusul almarhum", "nyusul almarhumah", "nyusul ibu", "nyusul bapak", "nyusul ayah",
    "nyusul mama", "nyusul papa", "nyusul ke surga",
    "tidur dan gak bangun lagi", "gak bangun lagi", "gak pengen bangun lagi",
    "menghilang selamanya", "ngilang selamanya", "hilang selamanya", "pergi selamanya",
    "menghilang dari dunia", "ngilang dari dunia", "hilang dari dunia",
    "lebih baik tanpa aku", "lebih bahagia kalau aku gak ada", "kalau aku gak ada",
    "surat wasiat", "pesan terakhirku", "terakhir kali kita ngobrol",
    "gak aman sama diri", "gak aman sama diriku", "ngelakuin sesuatu ke diri sendiri",
    # Self-harm and methods, Indonesian
    "menyakiti diri", "nyakitin diri", "melukai diri", "ngelukain diri", "ngelukai diri",
    "nyiksa diri", "menyiksa diri", "nyilet tangan", "silet tangan", "disilet", "sayat tangan",
    "nyayat tangan", "luka sayatan", "barcode di tangan", "bakar tangan", "cekik leher",
    "pukulin kepala", "benturin kepala",
    "overdosis", "minum obat banyak", "minum obat sebanyak", "minum racun", "racun serangga",
    "lompat dari", "loncat dari", "terjun dari", "pengen loncat", "pengen lompat", "pengen terjun",
    "nabrakin diri", "biar tenggelam",
    # English and code-mixing
    "self harm", "self harming", "kms", "kill myself", "killing myself", "suicide", "suicidal",
    "end my life", "ending my life", "end it all", "ending it all", "want it all to end",
    "want to die", "dont want to live", "dont want to be alive", "no reason to live",
    "better off dead", "better off without me", "take my own life", "unalive", "unaliving",
    "hurt myself", "hurting myself", "cutting myself", "cutting again", "been cutting",
    "overdose", "not safe right now",
)  # fmt: skip

CRISIS_EXCLUSIONS = (
    "setengah mati", "mati lampu", "mati listrik", "mati ketawa", "mati gaya", "mati kutu",
    "ngakak sampe pengen mati", "ketawa sampe pengen mati", "kms kartu menuju sehat", "buku kms",
    "kms balita", "kms anak", "kayak pengen mati", "lompat tali", "lompat dari tempat tidur",
    "terjun dari pesawat pakai parasut",
)  # fmt: skip

# In a Bestie's message: signs that the Bestie sees the client in danger (the crisis words
# count too: a Bestie asking "kamu kepikiran bunuh diri?" is a sign as well).
MITRA_ALERT_WORDS = (
    "kamu dalam bahaya", "kamu aman sekarang", "apakah kamu aman", "kamu lagi aman",
    "jauhkan benda tajam", "jauhin benda tajam", "jauhkan obatnya", "jauhin obatnya",
    "hubungi 112", "telepon 112", "hubungi 119", "ke igd sekarang", "jangan sakiti dirimu",
    "jangan nyakitin diri", "jangan lakukan itu", "are you safe", "call 112",
)  # fmt: skip
