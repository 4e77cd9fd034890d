"""Benchmark: the round trip of small rounds, as an optimizer or an adaptive study sends them, on warm workers.

Measured in the same run (median of ``--rounds`` rounds each):
- CloudBurst's evaluation API (``Client.session(...).evaluate(sets)``): 8 / 64 / 512 Net3 one-hour members and
  64 / 512 Hanoi steady-state members, each a demand factor; ``pressure_min`` per set in hand;
- an ensemble of the 8 Net3 members with today's default ``wait()`` (woken by the workers' signals), submit to
  summaries in hand, and the former default (status read every second) over a few rounds;
- the floor on one host: the same sets on a local ``multiprocessing.Pool`` of as many processes, each with the
  model open once on the warm engine, the sets split evenly over the processes, no queue or store.
Target (issue "Rounds in milliseconds"): a round of 8 Net3 members <= the Pool's round + 30 ms.

    .venv/bin/python bench/latency.py [--rounds 50] [--processes 2]
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_cluster import REPO, bench_cluster
from cloudburst.state.ledger import SIGNALS, key_for
from verdict import verdict

NET3 = REPO / "files" / "models" / "Net3.inp"
HANOI = Path(importlib.util.find_spec("epyt").origin).parent / "networks" / "asce-tf-wdst" / "Hanoi.inp"
OVERHEAD_GOAL_S = 0.030
MODELS = {"Net3": (NET3, {"duration_s": 3600}), "Hanoi": (HANOI, {"duration_s": 0})}
SIZES = [("Net3", 8), ("Net3", 64), ("Net3", 512), ("Hanoi", 64), ("Hanoi", 512)]

_engine: Any = None


def sets_of(count: int) -> list[list[dict[str, Any]]]:
    return [[{"type": "demand_scale", "factor": 0.8 + 0.4 * position / max(count - 1, 1)}] for position in range(count)]


def _open_engine(files_url: str, files_user: str, files_password: str) -> None:
    global _engine
    import requests
    from cloudburst.engine.warm import WarmEngine
    from cloudburst.state.models import ModelCache
    session = requests.Session()
    session.auth = (files_user, files_password)
    _engine = WarmEngine(ModelCache(tempfile.mkdtemp(prefix="latency-cache-"), session=session))


def _pool_chunk(chunk: dict[str, Any]) -> list[float]:
    from cloudburst.engine.evaluation import evaluate_chunk
    return evaluate_chunk(chunk, _engine).values["pressure_min"].tolist()


def pool_chunks(path: Path, run: dict[str, Any], files_url: str, count: int, processes: int) -> list[dict[str, Any]]:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    sets = sets_of(count)
    size = math.ceil(count / processes)
    return [{"schema": "cloudburst.round/1", "session": "pool", "round": 0, "chunk": index, "first": first,
             "input": {"url": f"{files_url}/models/{sha}.inp", "sha256": sha}, "run": run,
             "metrics": ["pressure_min"], "nodes": "*", "sets": sets[first:first + size]}
            for index, first in enumerate(range(0, count, size))]


LAGS: list[float] = []  # seconds from the last record's signal (Redis's own clock) to wait() returning


def ensemble_round(client: Any, name: str, poll_s: float | None) -> float:
    scenario = {"ensemble": "round", "members": 8, "seed": 1, "run": {"duration_s": 3600}, "batch": {"members": 1},
                "alterations": [{"type": "demand_scale",
                                 "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}]}
    started = time.perf_counter()
    ensemble = client.submit(NET3, scenario, name=name)
    if poll_s is None:
        ensemble.wait(progress=False)
        returned = time.time()
        last = client.redis.xrevrange(key_for(name, SIGNALS), count=1)  # its ID is the ms Redis appended it at
        LAGS.append(returned - int(last[0][0].split(b"-")[0]) / 1000)
    else:
        while not (ensemble.status().done and ensemble.statistics_current()):
            time.sleep(poll_s)
    ensemble.summaries()
    return time.perf_counter() - started


def master_load_per_set(redis: Any, function: Any, sets: int, rounds: int = 5) -> tuple[float, float]:
    """Redis commands the master processed, and bytes it took in and sent out, per set over ``rounds`` rounds
    (INFO's counters: clients' and workers' alike, this benchmark being the only user)."""
    def counters() -> tuple[int, int]:
        stats = redis.info("stats")
        return (int(stats["total_commands_processed"]),
                int(stats["total_net_input_bytes"]) + int(stats["total_net_output_bytes"]))

    commands, traffic = counters()
    for _ in range(rounds):
        function()
    commands_after, traffic_after = counters()
    return (commands_after - commands - 1) / (sets * rounds), (traffic_after - traffic) / (sets * rounds)


def cli_wait_lag(client: Any, cluster: dict[str, Any], name: str) -> float:
    """Seconds from the last record's signal to ``cloudburst wait NAME`` (a process, its output into a pipe) writing
    its last line, for an ensemble of 200 Net3 one-hour members still running when the command starts following."""
    scenario = {"ensemble": "cli", "members": 200, "seed": 1, "run": {"duration_s": 3600}, "batch": {"members": 10},
                "alterations": [{"type": "demand_scale",
                                 "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}]}
    client.submit(NET3, scenario, name=name)
    env = {**{key: value for key, value in os.environ.items() if not key.startswith("CLOUDBURST_")}, **cluster["env"]}
    waiting = subprocess.Popen([sys.executable, "-m", "cloudburst.cli", "wait", name], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert waiting.stdout is not None
    lines, written = [], 0.0
    for line in waiting.stdout:
        lines.append(line)
        written = time.time()
    if waiting.wait(timeout=300) != 0:
        raise SystemExit(f"cloudburst wait {name} exited {waiting.returncode}: {''.join(lines)}")
    last = client.redis.xrevrange(key_for(name, SIGNALS), count=1)
    return written - int(last[0][0].split(b"-")[0]) / 1000


def timed(function: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    evaluated: dict[tuple[str, int], float] = {}
    floor: dict[tuple[str, int], float] = {}
    with bench_cluster(args.processes) as cluster:
        client = cluster["client"]
        sessions = {name: client.session(path, run=run) for name, (path, run) in MODELS.items()}
        for name, count in SIZES:
            sets = sets_of(count)
            sessions[name].evaluate(sets)  # warm: the model uploaded and open on every worker
            evaluated[name, count] = timed(lambda session=sessions[name], sets=sets: session.evaluate(sets),
                                           args.rounds)
        ensemble_round(client, "warm-up", None)
        time.sleep(1.0)  # the workers' heartbeats and registry upkeep are the same in both counts: let them settle
        per_set = {"evaluate": master_load_per_set(client.redis, lambda: sessions["Net3"].evaluate(sets_of(8)), 8),
                   "ensemble": master_load_per_set(client.redis, lambda: ensemble_round(
                       client, f"counted-{time.monotonic_ns()}", None), 8)}
        ensemble_rounds = max(5, args.rounds // 5)
        LAGS.clear()
        pushed = statistics.median(ensemble_round(client, f"pushed-{i}", None) for i in range(ensemble_rounds))
        polled = statistics.median(ensemble_round(client, f"polled-{i}", 1.0) for i in range(3))
        cli_lags = [cli_wait_lag(client, cluster, f"cli-{i}") for i in range(3)]
        files = cluster["worker_env"]["CLOUDBURST_FILES_URL"]
        with multiprocessing.get_context("spawn").Pool(
                args.processes, initializer=_open_engine,
                initargs=(files, cluster["worker_env"]["CLOUDBURST_FILES_USER"], "reader-secret")) as pool:
            for name, count in SIZES:
                chunks = pool_chunks(MODELS[name][0], MODELS[name][1], files, count, args.processes)
                pool.map(_pool_chunk, chunks * args.processes)  # warm: the model fetched and opened in each process
                floor[name, count] = timed(lambda chunks=chunks: pool.map(_pool_chunk, chunks, chunksize=1), args.rounds)
    print(f"round trip, sets submitted to metrics in hand, {args.processes} worker processes on loopback "
          f"(median of {args.rounds} rounds; ensembles of {ensemble_rounds}, the polled one of 3)")
    print(f"  {'round':<34} {'CloudBurst ms':>14} {'local Pool ms':>14} {'overhead ms':>12} {'sets/s':>9}")
    for (name, count), seconds in evaluated.items():
        print(f"  {f'evaluate: {count} {name} sets':<34} {seconds * 1000:14.1f} {floor[name, count] * 1000:14.1f} "
              f"{(seconds - floor[name, count]) * 1000:12.1f} {count / seconds:9.0f}")
    print(f"  {'ensemble of 8 Net3, wait() pushed':<34} {pushed * 1000:14.1f} {floor['Net3', 8] * 1000:14.1f} "
          f"{(pushed - floor['Net3', 8]) * 1000:12.1f}")
    print(f"  {'ensemble of 8 Net3, polled 1 s':<34} {polled * 1000:14.1f} {floor['Net3', 8] * 1000:14.1f} "
          f"{(polled - floor['Net3', 8]) * 1000:12.1f}")
    print(f"  wait() returned {statistics.median(LAGS) * 1000:.1f} ms (median; max {max(LAGS) * 1000:.1f}) after the "
          "last record's signal (the statistics)")
    print(verdict("wait() after the last record", statistics.median(LAGS) * 1000, 10.0, at_least=False, unit=" ms"))
    print(f"  `cloudburst wait NAME` wrote its last line {statistics.median(cli_lags) * 1000:.1f} ms (median of 3; max "
          f"{max(cli_lags) * 1000:.1f}) after the last record's signal, its progress into a pipe (a line every 5 s)")
    print(verdict("cloudburst wait after the last record", statistics.median(cli_lags) * 1000, 10.0, at_least=False,
                  unit=" ms"))
    print(f"  the master per set, a round of 8 Net3: evaluate {per_set['evaluate'][0]:.1f} Redis commands and "
          f"{per_set['evaluate'][1]:,.0f} bytes; the same members as an ensemble {per_set['ensemble'][0]:.1f} "
          f"commands and {per_set['ensemble'][1]:,.0f} bytes")
    print(verdict("Redis commands per set, an evaluation round over an ensemble of the same members",
                  per_set["evaluate"][0], per_set["ensemble"][0], at_least=False))
    print(verdict("Redis bytes per set, an evaluation round over an ensemble of the same members",
                  per_set["evaluate"][1], per_set["ensemble"][1], at_least=False, unit=" B"))
    print(verdict("8 Net3 members' round over the local Pool", (evaluated["Net3", 8] - floor["Net3", 8]) * 1000,
                  OVERHEAD_GOAL_S * 1000, at_least=False, unit=" ms"))


if __name__ == "__main__":
    main()
