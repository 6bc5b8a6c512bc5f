import pytest


@pytest.fixture(autouse=True)
def _committed(transactional_db):
    """Integration tests share the database with other processes (workers, a superuser
    connection, threads): everything they write must really commit."""


def pytest_sessionfinish(session):
    """Nothing a test started outlives the run, even when the test failed or timed out half-way."""
    from tests.integration.workers import reap

    left = reap()
    if left:
        print(f"\ntests/integration: killed {left} process(es) a test left running", flush=True)
