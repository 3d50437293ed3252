"""How many sessions occupy each mitra ("load"): the `Mitra.load` column.

The sessions services change it with `mitras.services.mitra_load_change` inside the transaction
that changes which sessions occupy the mitra (offer +1; decline, expiry, withdrawal, cancel, end
-1), so the column moves with the sessions or not at all. Only `queue_dispatch` makes it grow,
with the mitra row locked. The Valkey mirror (`mitra:capacity:<id>`), the dashboard and the
public profiles read it through `mitra_loads`.
"""

from mitras.models import Mitra


def mitra_loads(mitra_ids=None) -> dict:
    """{mitra_id: load} for the given mitras (or all). 0 for a mitra id that does not exist."""
    query = Mitra.objects.all() if mitra_ids is None else Mitra.objects.filter(pk__in=list(mitra_ids))
    loads = dict(query.values_list("id", "load"))
    if mitra_ids is None:
        return loads
    return {mitra_id: loads.get(mitra_id, 0) for mitra_id in mitra_ids}
