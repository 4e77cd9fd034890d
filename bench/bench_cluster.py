"""A CloudBurst cluster on loopback for the benchmarks: InfluxDB (auth on), Redis, Nginx with the results store,
a client for them, and worker runners running the example env (tests/local_cluster.py's, as the tests use)."""
from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import cloudburst  # noqa: E402
from local_cluster import client_settings, local_cluster, start_workers, stop  # noqa: E402
from services import influxdb  # noqa: E402


@contextlib.contextmanager
def bench_cluster(processes: int = 2, access_log: bool = False) -> Iterator[dict]:
    """Yields the cluster (``tests/local_cluster``'s dict) with its ``client`` and ``workers`` running; the workers
    stop on leaving."""
    with tempfile.TemporaryDirectory() as scratch:
        for part in ("influx", "cluster"):
            (Path(scratch) / part).mkdir()
        with influxdb(Path(scratch) / "influx", auth=True) as influx, \
                local_cluster(Path(scratch) / "cluster", influx, access_log=access_log) as cluster:
            workers = start_workers(cluster, count=processes) if processes else []
            try:
                yield {**cluster, "client": cloudburst.Client(client_settings(cluster)), "workers": workers,
                       "scratch": Path(scratch)}
            finally:
                stop(workers)
