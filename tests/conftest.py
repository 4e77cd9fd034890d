import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# The tests mirror the package's folders; a test module may use another's helpers by its (unique) name.
for _folder in sorted(Path(__file__).parent.glob("*/")):
    if _folder.name not in ("fresh", "harness", "probe_env", "task_env", "__pycache__"):
        sys.path.insert(0, str(_folder))

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Fixtures that start a real service on loopback (Redis, InfluxDB, Nginx, an S3 server) or need Docker: a test
# using one, directly or through another fixture, is marked `services`. `pytest -m "not services"` runs the rest.
SERVICE_FIXTURES = {"influx", "limited_influx", "model_server", "results_store", "cluster", "queue", "redis_url",
                    "served", "s3", "image", "build_dir", "local_swarm"}


def pytest_configure(config):
    config.addinivalue_line("markers", "services: needs a real service (Redis, InfluxDB, Nginx, S3, Docker) started "
                                       "by a fixture or the test itself")


def pytest_collection_modifyitems(items):
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_STDOUT_CALLBACK"] = "default"
    return env


@pytest.fixture(scope="session")
def influx(tmp_path_factory):
    from services import influxdb
    with influxdb(tmp_path_factory.mktemp("influxdb"), auth=True) as server:  # auth on, as deployed
        yield server


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


# The workers' read-only user of the file service, as deployed.
MODEL_READER = ("cloudburst", "reader-secret")


@pytest.fixture(scope="session")
def model_server(model_dir):
    """Models served by Nginx behind basic auth, as the stack serves them to workers."""
    from services import nginx_server
    with nginx_server(model_dir, {MODEL_READER[0]: MODEL_READER[1]}) as url:
        yield url


@pytest.fixture(scope="session")
def model_session():
    """An HTTP session with the workers' credentials for the model server (a ModelCache's session)."""
    import requests
    session = requests.Session()
    session.auth = MODEL_READER
    return session


@pytest.fixture(scope="module")
def net3(model_dir, model_server) -> dict:
    """files/models/Net3.inp served as workers fetch models: its URL and sha256 (modules with another Net3 define
    their own)."""
    import hashlib
    data = (REPO / "files" / "models" / "Net3.inp").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(data)
    return {"url": f"{model_server}/{sha}.inp", "sha256": sha}


@pytest.fixture
def cluster(tmp_path, influx):
    """Redis (with a password), Nginx taking uploads, the session's InfluxDB, and client settings for them."""
    from local_cluster import local_cluster
    with local_cluster(tmp_path, influx) as running:
        yield running


@pytest.fixture
def client(cluster):
    """A client of the test's cluster (a module's own ``client`` fixture takes precedence)."""
    import cloudburst
    from local_cluster import client_settings
    return cloudburst.Client(client_settings(cluster))


@pytest.fixture
def workers(cluster):
    """Two runners on the EPANET example env (a module's own ``workers``, e.g. on another env, takes precedence)."""
    from local_cluster import start_workers, stop
    running = start_workers(cluster)
    yield running
    stop(running)


# The workers' write user of the results store, as deployed.
RESULTS_WRITER = ("worker", "worker-secret")


@pytest.fixture(scope="session")
def results_store(tmp_path_factory):
    """The results store as workers write to it: Nginx's /results/ (WebDAV) with the workers' write credentials."""
    from cloudburst.state.store import WebDavStore
    from services import nginx_server
    root = tmp_path_factory.mktemp("store") / "files"
    root.mkdir()
    with nginx_server(root, dict([RESULTS_WRITER]), results_writers=(RESULTS_WRITER[0],)) as url:
        yield WebDavStore(f"{url}/results", RESULTS_WRITER)
