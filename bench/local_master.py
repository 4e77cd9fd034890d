"""What the benchmarks run against: one Redis and one Nginx (files and the results store) started on this
machine, and worker processes (files/images/worker/runner.py) on an env, idle and listening before it yields."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from redis import Redis
from rq import Worker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import cloudburst  # noqa: E402
from cloudburst.config import Settings  # noqa: E402
from env_manifest import write_env_manifest  # noqa: E402
from services import nginx_server, redis_server  # noqa: E402

RUNNER = REPO / "files" / "images" / "worker" / "runner.py"
EPANET_ENV = REPO / "files" / "env" / "epanet"


@contextlib.contextmanager
def local_master(processes: int, env_dirs: tuple[Path, ...] = (EPANET_ENV,),
                 preload: str = "worker") -> Iterator[cloudburst.Client]:
    """A client of a master on this machine with ``processes`` runners on ``env_dirs`` (no InfluxDB: no
    statistics jobs)."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "password").write_text("worker-secret")
        with nginx_server(scratch, {"worker": "worker-secret"}, uploads=True, results_writers=("worker",)) as files, \
                redis_server(scratch) as redis_url:
            settings = Settings(redis_url=redis_url, redis_password="", influx_url="http://127.0.0.1:1",
                                influx_user="", influx_password="", influx_db="bench", files_url=files,
                                files_user="worker", files_password="worker-secret", cluster_files_url=files)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, env_dirs)), "CLOUDBURST_PRELOAD": preload,
                   "CLOUDBURST_LOG_LEVEL": "WARNING", "CLOUDBURST_FILES_URL": files, "CLOUDBURST_FILES_USER": "worker",
                   "CLOUDBURST_FILES_PASSWORD_FILE": str(scratch / "password"),
                   "CLOUDBURST_RESULTS_URL": f"{files}/results", "CLOUDBURST_MODEL_CACHE": str(scratch / "cache"),
                   "CLOUDBURST_ENV_MANIFEST": str(write_env_manifest(env_dirs, scratch / "env-manifest.json"))}
            runners = [subprocess.Popen([sys.executable, str(RUNNER), "--redis-url", redis_url], env=env)
                       for _ in range(processes)]
            try:
                while len(Worker.all(connection=Redis.from_url(redis_url))) < processes:
                    time.sleep(0.05)
                yield cloudburst.Client(settings, check=False)
            finally:
                for runner in runners:
                    runner.terminate()
                for runner in runners:
                    runner.wait()
