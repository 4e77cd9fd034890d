"""A CloudBurst cluster on this machine for the client's tests: Redis (with a password), Nginx taking uploads,
the session's InfluxDB, client settings for them, and worker runners running the example env."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from env_manifest import write_env_manifest
from redis import Redis
from services import InfluxServer, nginx_server, redis_server, tls_material

REPO = Path(__file__).resolve().parents[1]
# A password for each of the stack's Redis users (roles/stack/files/redis-users.conf): the tests run as deployed.
REDIS_PASSWORDS = {"admin": "redis-secret", "submitter": "submitter-secret", "worker": "worker-secret",
                   "dashboard": "dashboard-secret", "reader": "reader-secret"}
RUNNER = REPO / "files" / "images" / "worker" / "runner.py"


@contextlib.contextmanager
def local_cluster(tmp_path: Path, influx: InfluxServer, access_log: bool = False, tls: bool = False) -> Iterator[dict]:
    """With ``tls``, Redis and Nginx speak TLS only, from a CA made here, and the client and the workers verify them
    against it, as deployed (InfluxDB stays the session's, in plain text)."""
    root = tmp_path / "files"
    (root / "models").mkdir(parents=True)
    db = f"client_{tmp_path.name[-20:].replace('-', '_')}"
    influx.query(f"CREATE DATABASE {db}")
    for user, privilege in (("reader", "READ"), ("writer", "WRITE")):  # as deployed: workers write, the client reads
        influx.query(f"CREATE USER {user}_{db} WITH PASSWORD '{user}-secret'")
        influx.query(f"GRANT {privilege} ON {db} TO {user}_{db}")
    users = {"cloudburst": "reader-secret", "uploader": "uploader-secret"}
    material = tls_material(tmp_path) if tls else None
    with redis_server(tmp_path, users=REDIS_PASSWORDS, tls=material) as redis_url, \
            nginx_server(root, users, uploads=True, results_writers=("cloudburst", "uploader"),
                         access_log=access_log, tls=material) as files:
        (tmp_path / "reader").write_text("reader-secret")
        (tmp_path / "influx-writer").write_text("writer-secret")
        plain_url = redis_url.replace(f"admin:{REDIS_PASSWORDS['admin']}@", "")
        settings = {"CLOUDBURST_REDIS_URL": plain_url, "CLOUDBURST_REDIS_USER": "submitter",
                    "CLOUDBURST_REDIS_PASSWORD": REDIS_PASSWORDS["submitter"],
                    "CLOUDBURST_INFLUX_URL": influx.url, "CLOUDBURST_INFLUX_USER": f"reader_{db}",
                    "CLOUDBURST_INFLUX_PASSWORD": "reader-secret", "CLOUDBURST_INFLUX_DB": db,
                    "CLOUDBURST_FILES_URL": files, "CLOUDBURST_FILES_USER": "uploader",
                    "CLOUDBURST_FILES_PASSWORD": "uploader-secret", "CLOUDBURST_CLUSTER_FILES_URL": files,
                    "CLOUDBURST_CONFIG": str(tmp_path / "no-such-client.toml"),
                    "CLOUDBURST_CA_FILE": str(material["ca"]) if material else ""}
        worker_env = {"PYTHONPATH": str(REPO / "files" / "env" / "epanet"), "CLOUDBURST_FILES_URL": files,
                      "CLOUDBURST_RESULTS_URL": f"{files}/results",
                      "CLOUDBURST_FILES_USER": "cloudburst", "CLOUDBURST_FILES_PASSWORD_FILE": str(tmp_path / "reader"),
                      "CLOUDBURST_INFLUX_URL": influx.url, "CLOUDBURST_INFLUX_DB": db,
                      "CLOUDBURST_INFLUX_USER": f"writer_{db}",
                      "CLOUDBURST_INFLUX_PASSWORD_FILE": str(tmp_path / "influx-writer"),
                      "CLOUDBURST_MODEL_CACHE": str(tmp_path / "cache"), "CLOUDBURST_LOG_LEVEL": "WARNING",
                      "CLOUDBURST_CA_FILE": str(material["ca"]) if material else ""}
        # cluster["redis"] is the admin's (tests look at every key); the client and the workers have their own users
        yield {"env": settings, "worker_env": worker_env, "root": root, "db": db, "tmp": tmp_path,
               "redis": Redis.from_url(redis_url, **({"ssl_ca_certs": str(material["ca"])} if material else {})),
               "redis_url": plain_url, "influx": influx}


def cli(cluster: dict, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDBURST_")}
    return subprocess.run([sys.executable, "-m", "cloudburst.cli", *args], env={**env, **cluster["env"]},
                          capture_output=True, text=True, timeout=timeout)


SWMM_ENV = REPO / "files" / "env" / "swmm"
TASK_PROBES = REPO / "tests" / "task_env"


def start_workers(cluster: dict, count: int = 2, env_dirs: tuple[Path, ...] = (),
                  preload: tuple[str, ...] = (), options: tuple[str, ...] = ()) -> list[subprocess.Popen]:
    """Runners taking statistics jobs first, then batches, as the stack's workers do; by default on the EPANET
    example env, or on ``env_dirs`` importing ``preload`` first; ``options`` go to each runner (``--heartbeat-s 1``)."""
    env = {**os.environ, **cluster["worker_env"]}
    if env_dirs:
        env["PYTHONPATH"] = os.pathsep.join(str(path) for path in env_dirs)
        env["CLOUDBURST_PRELOAD"] = ",".join(preload)
    if os.environ.get("PYTHONPATH"):  # the cloudburst the tests run (a checkout's) comes after the env's modules
        env["PYTHONPATH"] += os.pathsep + os.environ["PYTHONPATH"]
    manifest_dirs = env_dirs or (REPO / "files" / "env" / "epanet",)
    env["CLOUDBURST_ENV_MANIFEST"] = str(write_env_manifest(manifest_dirs, cluster["tmp"] / "env-manifest.json"))
    redis_url = cluster["env"]["CLOUDBURST_REDIS_URL"]
    log = open(cluster["tmp"] / "workers.log", "ab")
    queues = ["--queue", "cloudburst-stats", "--queue", "cloudburst"]
    scheme, rest = redis_url.split("://", 1)
    worker_url = f"{scheme}://worker:{REDIS_PASSWORDS['worker']}@{rest}"
    return [subprocess.Popen([sys.executable, str(RUNNER), "--redis-url", worker_url,
                              *queues, *options], env=env, stdout=log, stderr=log) for _ in range(count)]


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=60)


def client_settings(cluster: dict):
    """The same settings the CLI reads from CLOUDBURST_* variables, for the Python API."""
    from cloudburst.config import Settings
    return Settings(**{key.removeprefix("CLOUDBURST_").lower(): value for key, value in cluster["env"].items()
                       if key != "CLOUDBURST_CONFIG"})
