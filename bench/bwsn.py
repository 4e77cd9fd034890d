"""Benchmark: the Battle of the Water Sensor Networks' network 1, base case A, end to end on this machine: the impact
ensemble as a contamination study (every junction x a start every ``--every-s`` over the first day, 125 L/h at
230,000 mg/L for 2 h, the model's 96 h run, 5-minute report and quality steps, sensors detecting any concentration)
on a master here with ``--processes`` worker processes, from submit to every task's impacts stored; then k = 5 and
k = 20 placements from the stored impacts (the MIP, with HiGHS, and the lazy greedy with its bound), and the same
objectives for ``--random`` random placements of k, side by side.

BWSN's published case A draws the start at any 5-minute step of the day (``--every-s 300``: 36,288 injections).

    .venv/bin/python bench/bwsn.py [--every-s 3600] [--processes 2] [--random 200]
"""
from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cloudburst.api.placement import greedy, mip  # noqa: E402
from local_master import local_master  # noqa: E402
from verdict import verdict  # noqa: E402

BWSN1 = Path(importlib.util.find_spec("epyt").origin).parent / "networks" / "asce-tf-wdst" / "BWSN_Network_1.inp"
DAY_S = 86400


def scenario(every_s: int) -> dict:
    return {"ensemble": "bwsn1-case-a", "members": 1, "run": {"duration_s": 96 * 3600},
            "study": {"type": "contamination", "injections": "*",
                      "start_times_s": {"every_s": every_s, "from_s": 0, "to_s": DAY_S - every_s},
                      "sensors": "*", "report_step_s": 300, "quality_step_s": 300}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every-s", type=int, default=3600)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--random", type=int, default=200)
    parser.add_argument("--mip-time-limit-s", type=float, default=900)
    args = parser.parse_args()
    with local_master(args.processes) as client:
        started = time.perf_counter()
        study = client.submit(BWSN1, scenario(args.every_s), name="bwsn1-case-a")
        study.wait(progress=False, poll_s=0.5)
        ensemble_s = time.perf_counter() - started
        stored_bytes = client.store.size("bwsn1-case-a")
        started = time.perf_counter()
        matrix = study.impacts()
        read_s = time.perf_counter() - started
    injections = len(matrix.injections)
    print(f"BWSN network 1, case A: {len(matrix.sensors)} candidate junctions, {injections:,} injections (a start "
          f"every {args.every_s} s over the first day), 96 h runs, {args.processes} worker processes")
    print(f"  impact ensemble, submit to every impact stored: {ensemble_s:,.1f} s ({injections / ensemble_s:,.1f} "
          f"injections/s); stored {stored_bytes / 1e6:,.1f} MB; impacts read back in {read_s:.1f} s "
          f"({len(matrix.row):,} detections)")
    rng = np.random.default_rng(2006)
    lines = []
    for k in (5, 20):
        placed = {}
        for method, solve in (("mip", lambda: mip(matrix, k, "z1_s", args.mip_time_limit_s)),
                              ("greedy", lambda: greedy(matrix, k, "z1_s"))):
            started = time.perf_counter()
            placed[method] = solve()
            placed[method].values["seconds"] = time.perf_counter() - started
        random_values = [matrix.values([int(s) for s in rng.choice(len(matrix.sensors), k, replace=False)])
                         for _ in range(args.random)]
        print(f"  k = {k}, least expected time to detection:")
        print(f"    {'':<22} {'Z1 min':>9} {'Z2 people':>10} {'Z3 m3':>9} {'Z4 detected':>12} {'seconds':>8}  sensors")
        for method, placement in placed.items():
            v = placement.values
            print(f"    {method:<22} {v['z1_s'] / 60:>9.1f} {v['z2_people']:>10.1f} {v['z3_m3']:>9.2f} "
                  f"{v['z4_detected']:>12.1%} {v['seconds']:>8.1f}  {' '.join(placement.sensors)}")
        mean = {name: float(np.mean([values[name] for values in random_values]))
                for name in ("z1_s", "z2_people", "z3_m3", "z4_detected")}
        print(f"    {f'random (mean of {args.random})':<22} {mean['z1_s'] / 60:>9.1f} {mean['z2_people']:>10.1f} "
              f"{mean['z3_m3']:>9.2f} {mean['z4_detected']:>12.1%}")
        print(f"    the MIP's bound {placed['mip'].bound / 60:,.2f} min, the greedy's {placed['greedy'].bound / 60:,.2f}"
              " min")
        lines.append(verdict(f"k = {k}: greedy's Z1 within its bound of the MIP's (greedy - MIP, min)",
                             (placed["greedy"].value - placed["mip"].value) / 60,
                             (placed["greedy"].value - placed["greedy"].bound) / 60, at_least=False))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  client peak memory {peak_mb:,.0f} MB")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
