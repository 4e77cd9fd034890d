"""Benchmark: the round trip of a small round, as an optimizer or an adaptive study sends them: 8 Net3 members of
one hour, submitted, waited for (statistics included) and their summaries read back, on warm workers.

Measured in the same run, median of ``--rounds`` rounds each:
- CloudBurst's ``wait()`` as it is: the workers signal each recorded batch and the statistics (pushed);
- the former default: status read every second (the fallback poll alone);
- the floor on one host: the same members on a local ``multiprocessing.Pool`` of as many processes, each
  running them on the warm engine (the model opened once per process), with no queue or store.
Target (issue "Rounds in milliseconds"): a CloudBurst round <= the Pool's round + 30 ms.

    .venv/bin/python bench/latency.py [--rounds 20] [--members 8] [--processes 2]
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from typing import Any

import requests
from bench_cluster import REPO, bench_cluster
from verdict import verdict

NET3 = REPO / "files" / "models" / "Net3.inp"
OVERHEAD_GOAL_S = 0.030

_cache: Any = None
_engine: Any = None


def scenario(members: int) -> dict[str, Any]:
    return {"ensemble": "round", "members": members, "seed": 1, "run": {"duration_s": 3600},
            "batch": {"members": 1},
            "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}]}


def _open_engine(files_user: str, files_password: str) -> None:
    global _cache, _engine
    from cloudburst.engine.warm import WarmEngine
    from cloudburst.state.models import ModelCache
    session = requests.Session()
    session.auth = (files_user, files_password)
    _cache = ModelCache(tempfile.mkdtemp(prefix="latency-cache-"), session=session)
    _engine = WarmEngine(_cache)


def _run(document: dict[str, Any]) -> float:
    from cloudburst.engine.batch import run_member
    result = run_member(document, _cache, _engine)
    return float(result.summary.get("pressure_min", float("nan")))


def polled_round(client: Any, name: str, members: int) -> float:
    started = time.perf_counter()
    ensemble = client.submit(NET3, scenario(members), name=name)
    while not (ensemble.status().done and ensemble.statistics_current()):
        time.sleep(1.0)
    ensemble.summaries()
    return time.perf_counter() - started


def pushed_round(client: Any, name: str, members: int) -> float:
    started = time.perf_counter()
    ensemble = client.submit(NET3, scenario(members), name=name)
    ensemble.wait(progress=False)
    ensemble.summaries()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    with bench_cluster(args.processes) as cluster:
        client = cluster["client"]
        pushed_round(client, "warm-up", args.members)  # model on the cluster, engines open on every worker
        pushed = [pushed_round(client, f"pushed-{i}", args.members) for i in range(args.rounds)]
        polled = [polled_round(client, f"polled-{i}", args.members) for i in range(max(3, args.rounds // 4))]
        documents = client.plan(NET3, scenario(args.members), name="pool")[1].drawn.documents
        files = cluster["worker_env"]
        with multiprocessing.get_context("spawn").Pool(
                args.processes, initializer=_open_engine,
                initargs=(files["CLOUDBURST_FILES_USER"], "reader-secret")) as pool:
            pool.map(_run, documents)  # warm: the model fetched and opened in each process
            pool_rounds = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                pool.map(_run, documents, chunksize=1)
                pool_rounds.append(time.perf_counter() - started)
    pushed_s, polled_s, pool_s = (statistics.median(values) for values in (pushed, polled, pool_rounds))
    print(f"a round of {args.members} Net3 one-hour members, submit to summaries in hand, {args.processes} worker "
          f"processes (median of {args.rounds} rounds; the polled one of {len(polled)})")
    print(f"  CloudBurst, wait() pushed by the workers' signals: {pushed_s * 1000:8.1f} ms")
    print(f"  CloudBurst, status polled every second (before):   {polled_s * 1000:8.1f} ms")
    print(f"  local multiprocessing.Pool, warm engine (floor):    {pool_s * 1000:8.1f} ms")
    print(f"  CloudBurst's overhead over the floor: {(pushed_s - pool_s) * 1000:.1f} ms")
    print(verdict("round overhead over the local Pool", (pushed_s - pool_s) * 1000, OVERHEAD_GOAL_S * 1000,
                  at_least=False, unit=" ms"))


if __name__ == "__main__":
    main()
