"""Benchmark: adaptive Monte Carlo on the demo's scenario (files/scenarios/net3-demand-roughness.yml) against the
fixed-size ensemble it would otherwise be, in the same run.

One Redis and one Nginx (files and the results store) started here, ``--processes`` worker processes
(files/images/worker/runner.py on the EPANET example env). The adaptive ensemble asks for the p95 of each of the
demo's four nodes' lowest pressure known within +/- ``--half-width`` m at 95 % confidence, waves of ``--wave``,
at most ``--cap`` members; the fixed one runs all ``--cap``. Prints members and wall time of each, and the final
intervals (the fixed ensemble's computed the same way, over all its members).

    .venv/bin/python bench/adaptive.py [--cap 10000] [--wave 500] [--half-width 0.1] [--processes 2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from redis import Redis
from rq import Worker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from services import nginx_server, redis_server  # noqa: E402

import cloudburst  # noqa: E402
from cloudburst.adaptive import interval, parse_adaptive  # noqa: E402
from cloudburst.config import Settings  # noqa: E402

RUNNER = REPO / "files" / "images" / "worker" / "runner.py"
EPANET_ENV = REPO / "files" / "env" / "epanet"
NET3 = REPO / "files" / "models" / "Net3.inp"
NODES = ["123", "247", "255", "15"]


def scenarios(cap: int, wave: int, half_width: float) -> tuple[dict, dict]:
    demo = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    fixed = {**demo, "members": cap, "batch": {"members": 50}}
    adaptive = {**fixed, "adaptive": {"wave": wave, "confidence": 0.95, "targets": [
        {"element": f"node:{node}", "attribute": "pressure", "of": "min", "statistic": "p95",
         "half_width": half_width} for node in NODES]}}
    return fixed, adaptive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=int, default=10000)
    parser.add_argument("--wave", type=int, default=500)
    parser.add_argument("--half-width", type=float, default=0.1)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    fixed, adaptive = scenarios(args.cap, args.wave, args.half_width)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "password").write_text("worker-secret")
        with nginx_server(scratch, {"worker": "worker-secret"}, uploads=True, results_writers=("worker",)) as files, \
                redis_server(scratch) as redis_url:
            settings = Settings(redis_url=redis_url, redis_password="", influx_url="http://127.0.0.1:1",
                                influx_user="", influx_password="", influx_db="bench", files_url=files,
                                files_user="worker", files_password="worker-secret", cluster_files_url=files)
            client = cloudburst.Client(settings, check=False)
            env = {**os.environ, "PYTHONPATH": str(EPANET_ENV), "CLOUDBURST_PRELOAD": "worker",
                   "CLOUDBURST_LOG_LEVEL": "WARNING", "CLOUDBURST_FILES_URL": files, "CLOUDBURST_FILES_USER": "worker",
                   "CLOUDBURST_FILES_PASSWORD_FILE": str(scratch / "password"),
                   "CLOUDBURST_RESULTS_URL": f"{files}/results", "CLOUDBURST_MODEL_CACHE": str(scratch / "cache")}
            runners = [subprocess.Popen([sys.executable, str(RUNNER), "--redis-url", redis_url], env=env)
                       for _ in range(args.processes)]
            try:
                while len(Worker.all(connection=Redis.from_url(redis_url))) < args.processes:
                    time.sleep(0.05)
                started = time.perf_counter()
                ensemble = client.submit(NET3, adaptive, name="bench-adaptive")
                state = ensemble.adapt(poll_s=0.5)
                adaptive_s = time.perf_counter() - started
                started = time.perf_counter()
                whole = client.submit(NET3, fixed, name="bench-fixed")
                whole.wait(progress=False, poll_s=0.5)
                fixed_s = time.perf_counter() - started
                plan = parse_adaptive(adaptive["adaptive"], args.cap)
                fixed_intervals = [interval(whole.series(target.element).groupby("member")["value"].min().to_numpy(),
                                            target, plan.confidence) for target in plan.targets]
            finally:
                for runner in runners:
                    runner.terminate()
                for runner in runners:
                    runner.wait()
    members = state["enqueued"]
    print(f"adaptive Monte Carlo, the demo's scenario (Net3, demand and roughness draws), {args.processes} processes: "
          f"p95 of the lowest pressure at nodes {', '.join(NODES)} within +/- {args.half_width} m at 95 %")
    print(f"  adaptive: {members:>6,} members in {adaptive_s:7.1f} s  (stopped: {state['stopped']}; waves of "
          f"{args.wave})")
    print(f"  fixed:    {args.cap:>6,} members in {fixed_s:7.1f} s")
    print(f"  members saved: {1 - members / args.cap:.0%}; time saved: {1 - adaptive_s / fixed_s:.0%}")
    for found, whole_interval in zip(state["intervals"], fixed_intervals):
        print(f"  {found['target']}: adaptive {found['estimate']:.3f} +/- {found['half_width']:.3f} "
              f"({found['members']} members); fixed {whole_interval.estimate:.3f} +/- {whole_interval.half_width:.3f}")
    if not np.isfinite([item["half_width"] for item in state["intervals"]]).all():
        raise SystemExit("an interval stayed unbounded")


if __name__ == "__main__":
    main()
