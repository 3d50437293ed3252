"""How many sessions occupy each mitra ("load"), as counted in Postgres.

The mitras app cannot import the sessions app (sessions build on mitras), so sessions_app
registers its counter here in `AppConfig.ready()`. The Valkey mirror (`mitra:capacity:<id>`) and
the public profiles read loads only through `mitra_loads`.
"""

_counter = None


def register_load_counter(counter):
    """`counter(mitra_ids: list[int] | None) -> dict[int, int]`: sessions occupying each mitra
    (offered + active), for the given ids or for every mitra when None. Mitras with no
    session may be missing from the answer."""
    global _counter
    _counter = counter


def get_load_counter():
    """The registered counter (or None): tests save it and restore it after registering their own."""
    return _counter


def mitra_loads(mitra_ids=None) -> dict:
    """{mitra_id: load} for the given mitras (or all). 0 where nothing occupies a mitra."""
    counts = _counter(list(mitra_ids) if mitra_ids is not None else None) if _counter else {}
    if mitra_ids is None:
        return dict(counts)
    return {mitra_id: counts.get(mitra_id, 0) for mitra_id in mitra_ids}
