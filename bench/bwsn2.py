"""Benchmark: BWSN network 2's scale (12,523 junctions) end to end on this machine: a contamination study injecting at
every junction at one start time (BWSN's case A injection: 125 L/h at 230,000 mg/L for 2 h; a 24 h run, as
EPANET 2.3.5 stops balancing the model's 48 h at 27 h under its UNBALANCED STOP; 5-minute report and quality steps;
every junction a candidate sensor) on a master here with ``--processes`` worker
processes, from submit to every task's impacts stored; then the lazy greedy's 20 sensors (with its bound) from the
stored impacts read a task at a time into memory-mapped files, never whole into memory: the client's peak memory
is printed beside the impacts' size.

    .venv/bin/python bench/bwsn2.py [--processes 2] [--k 20] [--start-s 0] [--injections N]

``--injections N`` takes every junction's N-quantile instead of all (a shorter run to try the script).
"""
from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wntr  # noqa: E402
from cloudburst.api.placement import greedy  # noqa: E402
from local_master import local_master  # noqa: E402
from verdict import verdict  # noqa: E402

BWSN2 = Path(importlib.util.find_spec("epyt").origin).parent / "networks" / "asce-tf-wdst" / "BWSN_Network_2.inp"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mb() -> dict[str, float]:
    """This process's resident memory now: its own (anonymous) pages and file pages (the memory-mapped impacts,
    which the kernel may drop and read again)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) / 1024 for name in ("RssAnon", "RssFile")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--start-s", type=int, default=0)
    parser.add_argument("--injections", type=int, default=0, help="every junction (0, default) or N of them")
    args = parser.parse_args()
    junctions = wntr.network.WaterNetworkModel(str(BWSN2)).junction_name_list
    injections: str | list[str] = "*"
    if args.injections:
        step = max(1, len(junctions) // args.injections)
        injections = junctions[::step][:args.injections]
    scenario = {"ensemble": "bwsn2", "members": 1, "run": {"duration_s": 24 * 3600},
                "study": {"type": "contamination", "injections": injections, "start_times_s": [args.start_s],
                          "sensors": "*", "report_step_s": 300, "quality_step_s": 300, "max_runs": 20_000}}
    with local_master(args.processes) as client, tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        study = client.submit(BWSN2, scenario, name="bwsn2")
        submitted_s = time.perf_counter() - started
        progress = study.wait(progress=True, poll_s=2.0)
        ensemble_s = time.perf_counter() - started
        stored_bytes = client.store.size("bwsn2")
        memory_before_mb = peak_mb()
        started = time.perf_counter()
        matrix = study.impacts(Path(scratch) / "impacts")
        read_s = time.perf_counter() - started
        on_disk = sum(path.stat().st_size for path in (Path(scratch) / "impacts").iterdir())
        started = time.perf_counter()
        placement = greedy(matrix, args.k, "z1_s")
        greedy_s = time.perf_counter() - started
        client_peak_mb = peak_mb()
        resident = resident_mb()
    count = len(matrix.injections)
    values = placement.values
    print(f"BWSN network 2: {len(junctions):,} junctions, {count:,} injections at {args.start_s} s "
          f"({progress.finished:,} tasks finished, {progress.failed} failed), 24 h runs, 5-minute steps, "
          f"{len(matrix.sensors):,} candidate sensors, {args.processes} worker processes")
    print(f"  impact ensemble, submit ({submitted_s:.1f} s) to every impact stored: {ensemble_s:,.1f} s "
          f"({count / ensemble_s:,.2f} injections/s); stored {stored_bytes / 1e6:,.1f} MB")
    print(f"  impacts read a task at a time into memory-mapped files: {read_s:,.1f} s, {len(matrix.row):,} detections, "
          f"{on_disk / 1e6:,.1f} MB on disk")
    print(f"  greedy, k = {args.k}: {greedy_s:,.1f} s; expected Z1 {values['z1_s'] / 60:,.1f} min (no placement of "
          f"{args.k} does better than {placement.bound / 60:,.1f} min), Z2 {values['z2_people']:,.1f} people, Z3 "
          f"{values['z3_m3']:,.2f} m3, Z4 detected {values['z4_detected']:.1%}")
    print(f"  sensors: {' '.join(placement.sensors)}")
    print(f"  client peak memory {client_peak_mb:,.0f} MB ({memory_before_mb:,.0f} MB before reading the impacts; "
          f"after the greedy: {resident['RssAnon']:,.0f} MB its own, {resident['RssFile']:,.0f} MB of files, such as "
          f"the mapped impacts); the impacts' entries {on_disk / 1e6:,.1f} MB")
    print(verdict("every injection's impacts stored (tasks failed)", progress.failed, 0, at_least=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
