"""Fixtures of the API's cluster tests: a client of the test's cluster and two runners on the EPANET example env
(a module's own fixture of the same name, e.g. runners on another env, takes precedence)."""
import cloudburst
import pytest
from local_cluster import client_settings, start_workers, stop


@pytest.fixture
def client(cluster) -> cloudburst.Client:
    return cloudburst.Client(client_settings(cluster))


@pytest.fixture
def workers(cluster):
    running = start_workers(cluster)
    yield running
    stop(running)
