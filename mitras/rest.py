"""Rest for Besties: no offers for a while after a hard session or a long run of sessions.

- After a crisis-flagged session ends, its Bestie rests `mitra_crisis_cooldown_seconds` (runtime
  config; 0 turns it off).
- Sessions are *in a row* while each was accepted less than `mitra_break_seconds` after the
  previous one ended (sessions running side by side count too). When a Bestie finishes
  `mitra_max_sessions_in_row` in a row (0: no limit), they rest `mitra_break_seconds` and the
  count starts again.

The rest is a column on the mitra (`rest_until`, `rest_reason`, with `sessions_in_row` and
`last_session_ended_at`), written only by `mitra_session_finished` in the transaction that ended
the session. Dispatch leaves resting Besties out (`mitras_ready_for_offers`); their running
sessions and a pending offer are untouched. Presence counts a resting Bestie as present but not
available (beacon, profiles). The scheduler dispatches every tick, so offers resume on their own
when the rest is over.
"""

from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from halobestie.audit.services import audit_record
from halobestie.runtime.selectors import get_config
from mitras import hooks
from mitras.models import Mitra, RestReason


def is_resting(mitra, *, now: datetime) -> bool:
    return mitra.rest_until is not None and mitra.rest_until > now


def mitras_ready_for_offers(mitras, *, now: datetime) -> list:
    """The given mitra rows without those resting at `now`."""
    return [mitra for mitra in mitras if not is_resting(mitra, now=now)]


def mitra_session_finished(*, mitra_id, accepted_at: datetime | None, ended_at: datetime, was_flagged: bool):
    """A session the Bestie served ended at `ended_at`: count it in the run and start a rest when
    due (the longer rest wins when one is already running). Precondition: inside the transaction
    that ended the session, the session row locked first (the mitra row is locked here, as the load
    update of that transaction already did). Returns the locked mitra."""
    config = get_config()
    mitra = Mitra.objects.select_for_update().get(pk=mitra_id)
    break_length = timedelta(seconds=config.mitra_break_seconds)
    previous_end = mitra.last_session_ended_at
    continues_run = (
        previous_end is not None and accepted_at is not None and accepted_at - previous_end < break_length
    )
    in_row = mitra.sessions_in_row + 1 if continues_run else 1
    rest_until, reason = mitra.rest_until, mitra.rest_reason
    if rest_until is not None and rest_until <= ended_at:
        rest_until, reason = None, ""
    rests = []
    if was_flagged and config.mitra_crisis_cooldown_seconds:
        rests.append((ended_at + timedelta(seconds=config.mitra_crisis_cooldown_seconds), RestReason.CRISIS))
    if config.mitra_max_sessions_in_row and in_row >= config.mitra_max_sessions_in_row:
        rests.append((ended_at + break_length, RestReason.BREAK))
        in_row = 0
    for until, why in rests:
        if rest_until is None or until > rest_until:
            rest_until, reason = until, why
    mitra.sessions_in_row = in_row
    mitra.last_session_ended_at = ended_at
    mitra.rest_until, mitra.rest_reason = rest_until, reason
    mitra.save(
        update_fields=["sessions_in_row", "last_session_ended_at", "rest_until", "rest_reason", "updated_at"]
    )
    return mitra


def mitra_rest_end(*, mitra, actor) -> Mitra:
    """Staff end a Bestie's rest early (audited; nothing happens when not resting). After commit
    the `on_mitra_available` hooks run, so waiting sessions are offered at once. Precondition: the
    caller checked the actor's permission."""
    now = timezone.now()
    with transaction.atomic():
        locked = Mitra.objects.select_for_update().get(pk=mitra.pk)
        if not is_resting(locked, now=now):
            return locked
        before = {"rest_until": locked.rest_until, "rest_reason": locked.rest_reason}
        locked.rest_until, locked.rest_reason = None, ""
        locked.save(update_fields=["rest_until", "rest_reason", "updated_at"])
        audit_record(
            actor=actor, action="mitra_rest_end", obj=locked, before=before, after={"rest_until": None}
        )
        transaction.on_commit(partial(hooks.notify_mitra_available, locked.pk))
    return locked
