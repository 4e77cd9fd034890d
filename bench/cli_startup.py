"""Benchmark: how long the `cloudburst` command takes to start and answer, beside `python -c pass` and `rq --help`
in the same run.

Redis, Nginx and InfluxDB are started here on loopback (the tests' servers), one ensemble is submitted (queued:
no worker runs it) so that `status NAME` has something to read. Each command runs ``--runs`` times as a whole
process; the median is held against the target (0.3 s).

    .venv/bin/python bench/cli_startup.py [--runs 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from local_cluster import local_cluster  # noqa: E402
from services import influxdb  # noqa: E402
from verdict import verdict  # noqa: E402

VENV_BIN = Path(sys.executable).parent
TARGET_S = 0.3
SCENARIO = {"ensemble": "bench-cli", "members": 20, "seed": 1, "run": {"duration_s": 3600}}


def timed(command: list[str], env: dict[str, str], runs: int) -> float:
    """The median wall time of the command over runs, each a new process; it must succeed."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        assert result.returncode == 0, f"{' '.join(command)}: {result.stderr[-2000:]}"
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        (scratch_dir / "influx").mkdir()
        with influxdb(scratch_dir / "influx", auth=True) as influx, local_cluster(scratch_dir, influx) as cluster:
            env = {**{key: value for key, value in os.environ.items() if not key.startswith("CLOUDBURST_")},
                   **cluster["env"]}
            subprocess.run([str(VENV_BIN / "python"), "-c", "import cloudburst; cloudburst.Client().submit("
                            f"{str(REPO / 'files' / 'models' / 'Net3.inp')!r}, {SCENARIO!r}, name='bench-cli')"],
                           env=env, check=True)
            cloudburst = str(VENV_BIN / "cloudburst")
            baselines = {"python -c pass": [sys.executable, "-c", "pass"],
                         "rq --help": [str(VENV_BIN / "rq"), "--help"]}
            commands = {"cloudburst --version": [cloudburst, "--version"],
                        "cloudburst --help": [cloudburst, "--help"],
                        "cloudburst list": [cloudburst, "list"],
                        "cloudburst status bench-cli": [cloudburst, "status", "bench-cli"]}
            print(f"median of {args.runs} runs, each a new process (this machine, {os.cpu_count()} cores)")
            for what, command in baselines.items():
                print(f"  {what:<30} {timed(command, env, args.runs):6.3f} s   (baseline)")
            measured = {what: timed(command, env, args.runs) for what, command in commands.items()}
            for what, seconds in measured.items():
                print(f"  {what:<30} {seconds:6.3f} s")
            for what, seconds in measured.items():
                print(verdict(f"{what} start", seconds, TARGET_S, at_least=False, unit=" s"))


if __name__ == "__main__":
    main()
