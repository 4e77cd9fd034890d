import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


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


@pytest.fixture(scope="session")
def model_server(model_dir):
    from services import file_server
    with file_server(model_dir) as url:
        yield url


@pytest.fixture
def cluster(tmp_path, influx):
    """Redis (with a password), Nginx taking uploads, the session's InfluxDB, and client settings for them."""
    from local_cluster import local_cluster
    with local_cluster(tmp_path, influx) as running:
        yield running
