"""Database helpers shared by the apps."""


def delete_if_any(queryset) -> int:
    """Delete the rows of `queryset`; returns how many went. Opens no transaction when there
    are none: the scheduler's purges run every second and are nearly always empty, and on
    SQLite (the embedded default) every transaction takes the one write lock."""
    if not queryset.exists():
        return 0
    deleted, _ = queryset.delete()
    return deleted
