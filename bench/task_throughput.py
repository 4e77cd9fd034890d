"""Benchmark: your own tasks through one master on this machine: CloudBurst's task sets against RQ's plain
SimpleWorker, and the SWMM example ensemble against a multiprocessing.Pool running the same function.

One Redis and one Nginx (files and the results store) started here, ``--processes`` worker processes
(files/images/worker/runner.py on the SWMM example env and the test probes), started and idle beforehand:

- trivial tasks (``probe_tasks.square``): ``Client.map`` over ``--tasks`` numbers, packed by the client (its
  default: about four jobs per worker process, at most 500 tasks each), every return value stored in the results
  store and recorded; measured from the first enqueue to the last pack recorded, then collected and checked;
- the same tasks as RQ's plain path: one job per task (``Queue.enqueue_many``), run by RQ's own
  ``rq worker --worker-class rq.SimpleWorker`` processes (started and idle beforehand), results kept only in Redis;
- the SWMM ensemble (``stormwater.run_member`` of files/env/swmm, files/models/stormwater.inp, ``--members`` rain
  factors) as a task set, and the same function in a ``multiprocessing.Pool`` of as many processes.

Ray (1,834 tasks/s here in an earlier measurement, quoted by the issue) is not installed by this project and is
not run. Prints the median of ``--rounds`` rounds (interleaved) and the targets.

    .venv/bin/python bench/task_throughput.py [--tasks 20000] [--members 400] [--processes 2] [--rounds 3]
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

from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import cloudburst  # noqa: E402
from cloudburst.config import Settings  # noqa: E402
from env_manifest import write_env_manifest  # noqa: E402
from services import nginx_server, redis_server  # noqa: E402
from verdict import verdict  # noqa: E402

RUNNER = REPO / "files" / "images" / "worker" / "runner.py"
SWMM_ENV = REPO / "files" / "env" / "swmm"
PROBES = REPO / "tests" / "task_env"
MODEL = REPO / "files" / "models" / "stormwater.inp"


def start_runners(count: int, redis_url: str, env: dict[str, str]) -> list[subprocess.Popen]:
    connection = Redis.from_url(redis_url)
    runners = [subprocess.Popen([sys.executable, str(RUNNER), "--redis-url", redis_url], env=env)
               for _ in range(count)]
    while len(Worker.all(connection=connection)) < count:
        time.sleep(0.05)
    return runners


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait()


def run_taskset(client: cloudburst.Client, function: str, arguments: list, name: str) -> tuple[float, list]:
    """Seconds from the first enqueue to every task recorded; the collected results, checked complete."""
    started = time.perf_counter()
    tasks = client.map(function, arguments, name=name)
    progress = tasks.wait(progress=False, poll_s=0.05)
    elapsed = time.perf_counter() - started
    table = tasks.results()
    if progress.failed or len(table) != len(arguments):
        raise SystemExit(f"{name}: {progress.failed} failed, {len(table)} of {len(arguments)} results stored")
    values = table["value"].tolist() if "value" in table else table.to_dict("records")
    tasks.delete()
    return elapsed, values


def run_plain_rq(redis_url: str, numbers: list[int], processes: int, env: dict[str, str]) -> float:
    """One job per task on RQ's own SimpleWorker, started and idle beforehand: from the first enqueue to the last
    job finished."""
    connection = Redis.from_url(redis_url)
    queue = Queue("plain", connection=connection, serializer=JSONSerializer)
    workers = [subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--quiet", "--url", redis_url,
                                 "--worker-class", "rq.SimpleWorker", "--serializer", "rq.serializers.JSONSerializer",
                                 "--name", f"plain-{index}", "plain"], env=env) for index in range(processes)]
    try:
        while len(Worker.all(queue=queue)) < processes:
            time.sleep(0.05)
        started = time.perf_counter()
        for part in range(0, len(numbers), 1000):
            queue.enqueue_many([Queue.prepare_data("probe_tasks.square", args=(number,), result_ttl=600)
                                for number in numbers[part:part + 1000]])
        while len(queue.finished_job_registry) + len(queue.failed_job_registry) < len(numbers):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        stop(workers)
    if len(queue.failed_job_registry):
        raise SystemExit(f"plain RQ: {len(queue.failed_job_registry)} of {len(numbers)} jobs failed")
    connection.flushdb()
    return elapsed


def swmm_member(arguments: dict) -> dict:
    sys.path.insert(0, str(SWMM_ENV))
    import stormwater
    return stormwater.run_member(**arguments)


def run_pool(arguments: list[dict], processes: int) -> tuple[float, list]:
    with multiprocessing.get_context("forkserver").Pool(processes) as pool:
        pool.map(swmm_member, arguments[:processes])  # imports done, as the runners' are
        started = time.perf_counter()
        values = pool.map(swmm_member, arguments)
        return time.perf_counter() - started, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--members", type=int, default=400)
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    numbers = list(range(args.tasks))
    factors = [0.5 + 1.5 * member / max(args.members - 1, 1) for member in range(args.members)]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "password").write_text("worker-secret")
        users = {"worker": "worker-secret"}
        with nginx_server(scratch, users, uploads=True, results_writers=("worker",)) as files, \
                redis_server(scratch) as redis_url:
            settings = Settings(redis_url=redis_url, redis_password="", influx_url="http://127.0.0.1:1",
                                influx_user="", influx_password="", influx_db="bench", files_url=files,
                                files_user="worker", files_password="worker-secret", cluster_files_url=files)
            client = cloudburst.Client(settings, check=False)
            sha256 = client.upload(MODEL)
            assert sha256 == hashlib.sha256(MODEL.read_bytes()).hexdigest()
            members = [{"model": sha256, "rain_factor": factor, "member": member} for member, factor in
                       enumerate(factors)]
            local_members = [{**member, "model": str(MODEL)} for member in members]
            env = {**os.environ, "PYTHONPATH": f"{SWMM_ENV}{os.pathsep}{PROBES}", "CLOUDBURST_PRELOAD":
                   "worker,probe_tasks", "CLOUDBURST_LOG_LEVEL": "WARNING", "CLOUDBURST_FILES_URL": files,
                   "CLOUDBURST_FILES_USER": "worker", "CLOUDBURST_FILES_PASSWORD_FILE": str(scratch / "password"),
                   "CLOUDBURST_RESULTS_URL": f"{files}/results", "CLOUDBURST_MODEL_CACHE": str(scratch / "cache"),
                   "CLOUDBURST_ENV_MANIFEST": str(write_env_manifest((SWMM_ENV, PROBES), scratch / "manifest.json"))}
            timings: dict[str, list[float]] = {"tasks": [], "plain": [], "swmm": [], "pool": []}
            for round_ in range(args.rounds):
                runners = start_runners(args.processes, redis_url, env)
                try:
                    seconds, values = run_taskset(client, "probe_tasks:square", numbers, f"trivial-{round_}")
                    assert values == [number * number for number in numbers]
                    timings["tasks"].append(seconds)
                    seconds, rows = run_taskset(client, "stormwater:run_member", members, f"storm-{round_}")
                    timings["swmm"].append(seconds)
                finally:
                    stop(runners)
                timings["plain"].append(run_plain_rq(redis_url, numbers, args.processes, env))
                seconds, pooled = run_pool(local_members, args.processes)
                timings["pool"].append(seconds)
                peaks = [row["peak_outfall_flow_cms"] for row in rows]
                if peaks != [row["peak_outfall_flow_cms"] for row in pooled]:
                    raise SystemExit("the cluster's SWMM members differ from the Pool's")
    median = {name: statistics.median(values) for name, values in timings.items()}
    print(f"{args.processes} worker processes on one master (this machine), median of {args.rounds} rounds")
    print(f"\ntrivial tasks (probe_tasks.square), {args.tasks:,} of them")
    print(f"  {'CloudBurst task set (packed, results stored and collected)':<62} {median['tasks']:7.2f} s  "
          f"{args.tasks / median['tasks']:8,.0f} tasks/s")
    print(f"  {'RQ SimpleWorker, one job per task (results in Redis only)':<62} {median['plain']:7.2f} s  "
          f"{args.tasks / median['plain']:8,.0f} tasks/s")
    print(f"  {'Ray (earlier measurement on this machine, quoted; not run)':<62} {'':>9}  {1834:8,} tasks/s")
    print(f"\nSWMM ensemble (stormwater.run_member, stormwater.inp), {args.members} members")
    print(f"  {'CloudBurst task set (results stored)':<62} {median['swmm']:7.2f} s  "
          f"{args.members / median['swmm']:8,.1f} members/s")
    print(f"  {'multiprocessing.Pool, the same function':<62} {median['pool']:7.2f} s  "
          f"{args.members / median['pool']:8,.1f} members/s")
    print()
    print(verdict("trivial tasks through one master", args.tasks / median["tasks"], 2000, at_least=True,
                  unit=" tasks/s"))


if __name__ == "__main__":
    main()
