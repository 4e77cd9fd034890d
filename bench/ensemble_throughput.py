"""Benchmark: 200 Net3 scenarios through a plain multiprocessing.Pool vs CloudBurst workers on one host.

Every scenario scales all demands and all pipe roughnesses by its own drawn factor and runs Net3 with
EPANET, quality off, the model's own durations. The Pool runs a plain wntr function (load, alter, run)
in one process per core. CloudBurst runs the same number of worker processes (files/images/worker/
runner.py preloading the example env's worker.py) against a Redis started here on loopback, the members in
batch jobs sized as the client sizes them (about 3 s each, at most an eighth of the ensemble), first with no
result writes, then storing each batch's members (summaries and status) in the results store on an Nginx
started here, and recording it in Redis. Prints wall time, members per second and the ratio to the Pool.

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
from services import nginx_server, redis_server  # noqa: E402
from verdict import verdict  # noqa: E402

from cloudburst.batches import DEFAULT_BATCH_S, SPREAD_OVER, batch_size, make_batch, split  # noqa: E402
from cloudburst.ledger import Ledger  # noqa: E402
from cloudburst.queue import enqueue_batches  # noqa: E402

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


def run_cloudburst(jobs: list[dict], processes: int, redis_url: str, worker_env: dict[str, str], size: int) -> float:
    """Seconds from enqueueing every member (in batches of ``size``) to the last batch finished, with the workers
    started and idle beforehand (as in a running cluster: their start-up is bench/worker_startup's figure)."""
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue("cloudburst", connection=connection, serializer=JSONSerializer)
    batches = [make_batch("bench", part) for part in split(jobs, size)]
    env = {**os.environ, **worker_env, "PYTHONPATH": str(ENV), "CLOUDBURST_LOG_LEVEL": "WARNING"}
    workers = [subprocess.Popen([sys.executable, str(RUNNER), "--redis-url", redis_url], env=env)
               for _ in range(processes)]
    try:
        while len(Worker.all(connection=connection)) < processes:
            time.sleep(0.05)
        started = time.perf_counter()
        enqueue_batches(queue, Ledger(connection), "bench", batches)
        while len(queue.finished_job_registry) + len(queue.failed_job_registry) < len(batches):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait()
    if len(queue.failed_job_registry):
        raise SystemExit(f"{len(queue.failed_job_registry)} of {len(batches)} batches failed")
    finished = sum(len(outcome.finished) for outcome in Ledger(connection).done("bench").values())
    if "CLOUDBURST_RESULTS_URL" in worker_env and finished != len(jobs):
        raise SystemExit(f"{finished} of {len(jobs)} members stored")
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
        (scratch / "password").write_text("worker-secret")
        with nginx_server(scratch, {"worker": "worker-secret"}, results_writers=("worker",)) as files, \
                redis_server(scratch) as redis_url:
            jobs = [job(member, factors, f"{files}/models/Net3.inp", sha256)
                    for member, factors in enumerate(scenarios)]
            cache = str(scratch / "model-cache")
            dry = {"CLOUDBURST_MODEL_CACHE": cache, "CLOUDBURST_FILES_URL": files, "CLOUDBURST_FILES_USER": "worker",
                   "CLOUDBURST_FILES_PASSWORD_FILE": str(scratch / "password")}
            writing = {**dry, "CLOUDBURST_RESULTS_URL": f"{files}/results"}
            plain_wntr(scenarios[0])  # warm the OS file cache
            started = time.perf_counter()
            plain_wntr(scenarios[0])
            size = batch_size(time.perf_counter() - started, DEFAULT_BATCH_S, args.members, SPREAD_OVER)
            timings: dict[str, list[float]] = {"pool": [], "dry": [], "write": []}
            for _ in range(args.rounds):  # interleaved, so drifts in machine load touch all three alike
                timings["pool"].append(run_pool(scenarios, args.processes))
                timings["dry"].append(run_cloudburst(jobs, args.processes, redis_url, dry, size))
                timings["write"].append(run_cloudburst(jobs, args.processes, redis_url, writing, size))
    pool_s, dry_s, write_s = (statistics.median(timings[name]) for name in ("pool", "dry", "write"))
    print(f"{args.members} Net3 members (demand x U(0.8,1.2), roughness x U(0.7,1.0)), EPANET, quality off, "
          f"{args.processes} processes, median of {args.rounds} rounds")
    print(f"  (batches of {size} members; every member stored in the results store and recorded, checked)")
    for name, seconds in (("multiprocessing.Pool (plain wntr)", pool_s),
                          ("CloudBurst workers, no result writes", dry_s),
                          ("CloudBurst workers, summaries + status stored (results store)", write_s)):
        print(f"  {name:<70} {seconds:6.2f} s  {args.members / seconds:6.1f} members/s  "
              f"{pool_s / seconds:4.2f}x the Pool")
    print(verdict("CloudBurst with summary writes vs the Pool", pool_s / write_s, 1.0, at_least=True, unit="x"))


if __name__ == "__main__":
    main()
