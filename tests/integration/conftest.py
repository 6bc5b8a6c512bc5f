import pytest


@pytest.fixture(autouse=True)
def _committed(transactional_db):
    """Integration tests share the database with other processes (workers, a superuser
    connection, threads): everything they write must really commit."""
