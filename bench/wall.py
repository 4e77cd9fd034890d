"""Benchmark: no database wall. A 150,000-member ensemble of a tiny model (Net1, one hour, summaries only) through
the whole path: the client draws, checks and enqueues every member, two worker runners store every batch and the
cluster's statistics follow, against an InfluxDB with its default limits (1,000,000 series, 100,000 values per tag;
before the results store, one series per member and a member tag: past 100,000 members writes failed). Prints
every member's state beside the target and InfluxDB's series count.

    .venv/bin/python bench/wall.py [--members 150000] [--processes 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import wntr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cluster import bench_cluster  # noqa: E402
from verdict import verdict  # noqa: E402

NET1 = Path(wntr.__file__).parent / "library" / "networks" / "Net1.inp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=150_000)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    scenario = {"ensemble": "wall", "members": args.members, "seed": 150, "run": {"duration_s": 3600},
                "alterations": [{"type": "demand_scale",
                                 "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}]}
    with bench_cluster(args.processes) as cluster:
        client = cluster["client"]
        started = time.perf_counter()
        ensemble = client.submit(NET1, scenario, name="wall")
        submitted = time.perf_counter()
        final = ensemble.wait(progress=False, statistics_s=120)
        finished = time.perf_counter()
        members = ensemble.members()
        stored = int((members["status"] == "finished").sum())
        summary_stats = client.influx.frame(
            "SELECT last(pressure_min) FROM summary_stats WHERE ensemble = 'wall' AND statistic = 'count'")
        counted = int(summary_stats["last"].iloc[0]) if not summary_stats.empty else 0
        series = len(cluster["influx"].rows("SHOW SERIES", cluster["db"]))
        batches = len(client.ledger.plan("wall"))
    print(f"{args.members:,} Net1 members (1 h, summaries only) in {batches} batches, {args.processes} worker "
          f"processes: submitted (drawn, checked, enqueued) in {submitted - started:.0f} s, done after "
          f"{finished - submitted:.0f} s ({final.finished:,} finished, {final.failed:,} failed)")
    print(f"  stored: {stored:,} members' rows; the cluster's summary statistics count {counted:,} members; "
          f"InfluxDB holds {series} series (no member tag)")
    print(verdict("members stored", stored, args.members, at_least=True))
    print(verdict("members in the statistics", counted, args.members, at_least=True))


if __name__ == "__main__":
    main()
