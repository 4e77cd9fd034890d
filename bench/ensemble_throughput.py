"""Benchmark: 200 Net3 scenarios through a plain multiprocessing.Pool vs CloudBurst workers on one host.

Every scenario scales all demands and all pipe roughnesses by its own drawn factor and runs Net3 with
EPANET, quality off, the model's own durations. The Pool runs a plain wntr function (load, alter, run)
in one process per core. CloudBurst runs the same number of worker processes (files/images/worker/
runner.py preloading the example env's worker.py) against a Redis started here on loopback, first with
no result writes, then writing summaries and status records to an InfluxDB started here. Prints wall
time, members per second and the ratio to the Pool.

    .venv/bin/python bench/ensemble_throughput.py [--members 200] [--processes N] [--rounds 3]
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import wntr
from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from services import file_server, influxdb, redis_server  # noqa: E402
from verdict import verdict  # noqa: E402

NET3 = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"
RUNNER = REPO / "files" / "images" / "worker" / "runner.py"
ENV = REPO / "files" / "env" / "epanet"


def draws(members: int, seed: int = 2024) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    return list(zip(rng.uniform(0.8, 1.2, members).tolist(), rng.uniform(0.7, 1.0, members).tolist()))


def plain_wntr(factors: tuple[float, float]) -> float:
    """What a modeller would write without CloudBurst: load, alter, run; returns the lowest junction pressure."""
    demand_factor, roughness_factor = factors
    wn = wntr.network.WaterNetworkModel(str(NET3))
    for _, junction in wn.junctions():
        for demand in junction.demand_timeseries_list:
            demand.base_value *= demand_factor
    for _, pipe in wn.pipes():
        pipe.roughness *= roughness_factor
    wn.options.quality.parameter = "NONE"
    with tempfile.TemporaryDirectory() as workdir:
        results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(workdir, "run"))
    return float(results.node["pressure"][wn.junction_name_list].min().min())


def job(member: int, factors: tuple[float, float], model_url: str, sha256: str) -> dict:
    return {"schema": "cloudburst.job/1", "ensemble": "bench", "member": member, "seed": 2024,
            "input": {"url": model_url, "sha256": sha256},
            "run": {"alterations": [{"type": "demand_scale", "factor": factors[0]},
                                    {"type": "pipe_property", "property": "roughness", "factor": factors[1]}]}}


def _ready(_: int) -> bool:
    return "wntr" in sys.modules


def run_pool(scenarios: list[tuple[float, float]], processes: int) -> float:
    """Seconds for the Pool to run every scenario, its processes started and wntr imported beforehand, as the
    CloudBurst workers are (like with like: neither side's start-up is on the clock)."""
    with multiprocessing.Pool(processes) as pool:
        assert all(pool.map(_ready, range(processes * 4), chunksize=1))  # each process up, wntr imported
        started = time.perf_counter()
        pool.map(plain_wntr, scenarios)
        return time.perf_counter() - started


def run_cloudburst(jobs: list[dict], processes: int, redis_url: str, worker_env: dict[str, str]) -> float:
    """Seconds from enqueueing every job to the last one finished, with the workers started and idle
    beforehand (as in a running cluster: their start-up is bench/worker_startup's figure)."""
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue("cloudburst", connection=connection, serializer=JSONSerializer)
    env = {**os.environ, **worker_env, "PYTHONPATH": str(ENV), "CLOUDBURST_LOG_LEVEL": "WARNING"}
    workers = [subprocess.Popen([sys.executable, str(RUNNER), "--redis-url", redis_url], env=env)
               for _ in range(processes)]
    try:
        while len(Worker.all(connection=connection)) < processes:
            time.sleep(0.05)
        started = time.perf_counter()
        queue.enqueue_many([Queue.prepare_data("worker.run", args=(document,), result_ttl=600,
                                               job_id=f"bench-{document['member']}") for document in jobs])
        while len(queue.finished_job_registry) + len(queue.failed_job_registry) < len(jobs):
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait()
    if len(queue.failed_job_registry):
        raise SystemExit(f"{len(queue.failed_job_registry)} of {len(jobs)} jobs failed")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scenarios = draws(args.members)
    sha256 = hashlib.sha256(NET3.read_bytes()).hexdigest()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "models").mkdir()
        (scratch / "models" / "Net3.inp").write_bytes(NET3.read_bytes())
        with file_server(scratch / "models") as files, redis_server(scratch) as redis_url, \
                influxdb(scratch) as influx:
            jobs = [job(member, factors, f"{files}/Net3.inp", sha256) for member, factors in enumerate(scenarios)]
            influx.query("CREATE DATABASE cloudburst")
            cache = str(scratch / "model-cache")
            dry = {"CLOUDBURST_MODEL_CACHE": cache}
            writing = {**dry, "CLOUDBURST_INFLUX_URL": influx.url}
            plain_wntr(scenarios[0])  # warm the OS file cache
            timings: dict[str, list[float]] = {"pool": [], "dry": [], "write": []}
            for _ in range(args.rounds):  # interleaved, so drifts in machine load touch all three alike
                timings["pool"].append(run_pool(scenarios, args.processes))
                timings["dry"].append(run_cloudburst(jobs, args.processes, redis_url, dry))
                timings["write"].append(run_cloudburst(jobs, args.processes, redis_url, writing))
            stored = influx.query("SELECT count(status) FROM status", db="cloudburst")[0]["values"][0][1]
    pool_s, dry_s, write_s = (statistics.median(timings[name]) for name in ("pool", "dry", "write"))
    print(f"{args.members} Net3 members (demand x U(0.8,1.2), roughness x U(0.7,1.0)), EPANET, quality off, "
          f"{args.processes} processes, median of {args.rounds} rounds")
    print(f"  ({stored} status records in InfluxDB: one per member, re-runs overwrite)")
    for name, seconds in (("multiprocessing.Pool (plain wntr)", pool_s),
                          ("CloudBurst workers, no result writes", dry_s),
                          ("CloudBurst workers, summary + status writes to InfluxDB", write_s)):
        print(f"  {name:<70} {seconds:6.2f} s  {args.members / seconds:6.1f} members/s  "
              f"{pool_s / seconds:4.2f}x the Pool")
    print(verdict("CloudBurst with summary writes vs the Pool", pool_s / write_s, 1.0, at_least=True, unit="x"))


if __name__ == "__main__":
    main()
