"""A client's preferences for their Bestie (topics, gender, language) and how assignment uses them.

Assignment offers a session first to a free Bestie who fits every preference the session still
holds. Preferences are relaxed one at a time, in the runtime config's `preference_relax_order`:
the n-th preference this session set is let go `preference_relax_after_seconds[n]` seconds after
the session entered matching (validated to lie inside the matching window, so preferences never
make a client wait past it). Among the Besties that fit what is held, the one fitting more of the
original wishes ranks first, then one inside their working hours (mitras/schedule.py: being
online is the Bestie's consent, so hours never exclude anyone, they only rank), then the least
loaded, then the one idle longest.

`choose_mitra` is a pure ranking over rows the dispatcher already locked: it never widens the set
of candidates, so it cannot reintroduce overbooking or double offers.
"""

from datetime import timedelta

from django.utils import timezone

from halobestie.errors import ServiceError
from halobestie.runtime.schema import PREFERENCE_KINDS
from mitras.models import Gender

KINDS = PREFERENCE_KINDS

# Language codes a client may ask for (ISO 639 where one exists); Bestie profiles use the same.
LANGUAGES = {
    "id": "Bahasa Indonesia",
    "en": "Bahasa Inggris",
    "jv": "Bahasa Jawa",
    "su": "Bahasa Sunda",
    "min": "Bahasa Minang",
    "ban": "Bahasa Bali",
    "bug": "Bahasa Bugis",
    "mad": "Bahasa Madura",
    "bjn": "Bahasa Banjar",
    "ace": "Bahasa Aceh",
    "btk": "Bahasa Batak",
    "ms": "Bahasa Melayu",
}
PREFERRED_GENDERS = (Gender.FEMALE, Gender.MALE)
MAX_TOPICS = 5
MAX_TOPIC_LENGTH = 50


def _invalid(field, message):
    return ServiceError(message, code="invalid_preferences", fields={field: [message]})


def preferences_clean(*, topics=None, gender=None, language=None) -> dict:
    """Raw preferences from a request → {"topics": [...], "gender": "", "language": ""}.
    Each is optional; raises ServiceError `invalid_preferences` (400) naming the field."""
    cleaned_topics = []
    if topics is not None:
        if isinstance(topics, str) or not isinstance(topics, list | tuple):
            raise _invalid("topics", "Topik harus berupa daftar teks.")
        for topic in topics:
            if not isinstance(topic, str):
                raise _invalid("topics", "Topik harus berupa daftar teks.")
            topic = topic.strip().lower()
            if not topic or len(topic) > MAX_TOPIC_LENGTH:
                raise _invalid("topics", f"Setiap topik 1–{MAX_TOPIC_LENGTH} karakter.")
            if topic not in cleaned_topics:
                cleaned_topics.append(topic)
        if len(cleaned_topics) > MAX_TOPICS:
            raise _invalid("topics", f"Paling banyak {MAX_TOPICS} topik.")
    if gender is None or gender == "":
        gender = ""
    elif gender not in PREFERRED_GENDERS:
        raise _invalid("gender", "Pilihan jenis kelamin Bestie tidak dikenal (female atau male).")
    if language is None or language == "":
        language = ""
    elif not isinstance(language, str) or language.strip().lower() not in LANGUAGES:
        raise _invalid("language", f"Bahasa tidak dikenal. Pilihan: {', '.join(LANGUAGES)}.")
    else:
        language = language.strip().lower()
    return {"topics": cleaned_topics, "gender": gender, "language": language}


def preferences_asked(session) -> list:
    """The kinds this session set, in no particular order."""
    values = {
        "gender": session.preferred_gender,
        "topics": session.preferred_topics,
        "language": session.preferred_language,
    }
    return [kind for kind in KINDS if values[kind]]


def preferences_relaxed_at(session, *, config) -> list:
    """(kind, moment) pairs: when each preference the session set is let go, in relax order."""
    asked = set(preferences_asked(session))
    ordered = [kind for kind in config.preference_relax_order if kind in asked]
    started = session.matching_started_at or timezone.now()
    window = config.matching_timeout_seconds
    return [
        (kind, started + timedelta(seconds=min(config.preference_relax_after_seconds[index], window)))
        for index, kind in enumerate(ordered)
    ]


def preferences_due_relaxed(session, *, now, config) -> list:
    """The kinds relaxed by `now`, in the order they were let go."""
    return [kind for kind, moment in preferences_relaxed_at(session, config=config) if moment <= now]


def preferences_held(session) -> list:
    """The kinds still held (as last recorded by the dispatcher)."""
    return [kind for kind in preferences_asked(session) if kind not in session.relaxed_preferences]


def _fits(mitra, session, kind) -> bool:
    if kind == "gender":
        return mitra.gender == session.preferred_gender
    if kind == "language":
        return session.preferred_language in mitra.languages
    return bool(set(session.preferred_topics) & set(mitra.topics))


def choose_mitra(session, free, loads, favourite_ids=frozenset()):
    """Precondition: `free` are locked mitra rows with a free slot that have not refused this
    session. The best of them for this session, or None when none fits what is still held: the
    client's favourites first, then the fuller fit, inside working hours before outside (the rows
    carry `is_within_working_hours` from `mitras.schedule.with_working_now`), the least loaded,
    the one idle longest."""
    held = preferences_held(session)
    asked = preferences_asked(session)
    fitting = [m for m in free if all(_fits(m, session, kind) for kind in held)]
    if not fitting:
        return None
    epoch = timezone.now() - timedelta(days=36500)
    return min(
        fitting,
        key=lambda m: (
            m.id not in favourite_ids,
            -sum(_fits(m, session, kind) for kind in asked),
            not getattr(m, "is_within_working_hours", False),
            loads.get(m.id, 0),
            m.last_assigned_at or epoch,
            m.id,
        ),
    )


def preferences_out(session) -> dict:
    """What the apps see: the wishes, which are still held and which were let go (in order)."""
    return {
        "topics": list(session.preferred_topics),
        "gender": session.preferred_gender or None,
        "language": session.preferred_language or None,
        "held": preferences_held(session),
        "relaxed": list(session.relaxed_preferences),
    }
