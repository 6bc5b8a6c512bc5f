import pytest

from tests.builders import client_for, make_agent


@pytest.fixture
def other_api(seeded):
    """A second agent, bound only to strategy `other`."""
    agent, token = make_agent(("other",))
    client = client_for(token)
    client.agent = agent
    return client
