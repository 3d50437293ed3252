import pytest


@pytest.fixture(autouse=True)
def _real_commits(transactional_db):
    """The services behind the admin act after commit: run with real commits."""
