"""Benchmark: a synthetic calibration on a model of a few hundred nodes, on the cluster, against its known answer.

ky14 (Kentucky network 14, epyt's networks/asce-tf-wdst: 384 nodes, 553 links, 5 pumps, 3 tanks) has
its roughness scaled by a known factor in each of three pipe groups (by diameter, given as a CSV) and its base
demands by a known factor in each of two zones; plain owa-epanet calls (no CloudBurst code) make the
observations: pressures at 24 junctions, every tank's level and the flow in the 3 largest pipes, hourly (by default
one steady state; ``--duration-s 86400`` a day, whose pumps switch on tank levels). The study then fits the
factors with scipy's differential evolution on the cluster. Target (issue "Optimization"): each identifiable factor
within 2 % of the truth in under 10 minutes on this machine; the factors the study flags as not identifiable are
listed apart.

    .venv/bin/python bench/calibration.py [--processes 2] [--evaluations 40000] [--duration-s 0]
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import tempfile
import time
from pathlib import Path

import epanet.toolkit as tk
import numpy as np
from bench_cluster import bench_cluster
from verdict import verdict
from wntr.epanet.util import FlowUnits, HydParam

KY14 = Path(importlib.util.find_spec("epyt").origin).parent / "networks" / "asce-tf-wdst" / "ky14.inp"
DAY_S = 86400
ROUGHNESS_TRUTH = {"small": 0.85, "medium": 1.12, "large": 0.93}
DEMAND_TRUTH = {"first half": 1.1, "second half": 0.9}   # per demand zone
SENSORS = 24                       # junctions with a pressure logger, spread over the model's junction list
WITHIN = 0.02
TIME_GOAL_S = 600.0


def open_ky14(duration_s: int = 0) -> int:
    project = tk.createproject()
    tk.open(project, str(KY14), "/dev/null", "")
    tk.settimeparam(project, tk.DURATION, duration_s)
    return project


def layout() -> tuple[dict[str, str], dict[str, list[str]], list[str], list[str], list[str]]:
    """Pipe groups by diameter, two demand zones (the junctions in the model's order, halved), the sensor junctions
    spread over the model, the tanks, the 3 largest pipes."""
    project = open_ky14()
    groups, diameters = {}, {}
    for link in range(1, tk.getcount(project, tk.LINKCOUNT) + 1):
        if tk.getlinktype(project, link) == tk.PIPE:
            diameter = tk.getlinkvalue(project, link, tk.DIAMETER)  # inches
            name = tk.getlinkid(project, link)
            diameters[name] = diameter
            groups[name] = "small" if diameter <= 8 else "medium" if diameter <= 12 else "large"
    junctions = [tk.getnodeid(project, node) for node in range(1, tk.getcount(project, tk.NODECOUNT) + 1)
                 if tk.getnodetype(project, node) == tk.JUNCTION]
    half = len(junctions) // 2
    zones = {"first half": junctions[:half], "second half": junctions[half:]}  # by the model's junction order
    tanks = [tk.getnodeid(project, node) for node in range(1, tk.getcount(project, tk.NODECOUNT) + 1)
             if tk.getnodetype(project, node) == tk.TANK]
    tk.close(project)
    tk.deleteproject(project)
    sensors = [junctions[int(position)] for position in np.linspace(0, len(junctions) - 1, SENSORS)]
    largest = sorted(diameters, key=lambda name: -diameters[name])[:3]
    return groups, zones, sensors, tanks, largest


def observations(groups: dict[str, str], zones: dict[str, list[str]], sensors: list[str], tanks: list[str],
                 pipes: list[str], duration_s: int) -> list[dict]:
    """The perturbed model's hourly observations, by plain owa-epanet calls, in SI (flows in L/s)."""
    project = open_ky14(duration_s)
    for name, group in groups.items():
        link = tk.getlinkindex(project, name)
        tk.setlinkvalue(project, link, tk.ROUGHNESS, tk.getlinkvalue(project, link, tk.ROUGHNESS)
                        * ROUGHNESS_TRUTH[group])
    for zone, names in zones.items():
        for name in names:
            node = tk.getnodeindex(project, name)
            for category in range(1, tk.getnumdemands(project, node) + 1):
                tk.setbasedemand(project, node, category, tk.getbasedemand(project, node, category)
                                 * DEMAND_TRUTH[zone])
    units = FlowUnits(tk.getflowunits(project))
    rows: list[dict] = []
    tk.openH(project)
    tk.initH(project, 0)
    while True:
        now = tk.runH(project)
        if now % 3600 == 0:
            for name in sensors:
                psi = tk.getnodevalue(project, tk.getnodeindex(project, name), tk.PRESSURE)
                rows.append({"element": name, "attribute": "pressure", "time": now,
                             "value": float(HydParam.Pressure._to_si(units, psi))})
            for name in tanks:
                node = tk.getnodeindex(project, name)
                level_ft = tk.getnodevalue(project, node, tk.HEAD) - tk.getnodevalue(project, node, tk.ELEVATION)
                rows.append({"element": name, "attribute": "level", "time": now, "value": level_ft * 0.3048})
            for name in pipes:
                flow = tk.getlinkvalue(project, tk.getlinkindex(project, name), tk.FLOW)
                rows.append({"element": name, "attribute": "flow", "time": now,
                             "value": float(HydParam.Flow._to_si(units, flow)) * 1000})
        if tk.nextH(project) <= 0:
            break
    tk.closeH(project)
    tk.close(project)
    tk.deleteproject(project)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=40_000)
    parser.add_argument("--duration-s", type=int, default=0,
                        help=f"the run's length: 0 (default) one steady state; {DAY_S} a day, its pumps switching")
    args = parser.parse_args()
    groups, zones, sensors, tanks, pipes = layout()
    rows = observations(groups, zones, sensors, tanks, pipes, args.duration_s)
    with tempfile.TemporaryDirectory() as scratch:
        observed, grouping = Path(scratch) / "observed.csv", Path(scratch) / "groups.csv"
        with observed.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["element", "attribute", "time", "value"])
            writer.writeheader()
            writer.writerows(rows)
        with grouping.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["pipe", "group"])
            writer.writerows(sorted(groups.items()))
        scenario = {"ensemble": "ky14-fit", "run": {"duration_s": args.duration_s},
                    "study": {"type": "calibration", "roughness_csv": str(grouping),
                              "demand": [{"group": zone, "nodes": names, "low": 0.5, "high": 1.5}
                                         for zone, names in zones.items()],
                              "observations": str(observed),
                              "optimizer": {"population": 15, "evaluations": args.evaluations, "seed": 1}}}
        with bench_cluster(args.processes) as cluster:
            started = time.perf_counter()
            fit = cluster["client"].calibrate(KY14, scenario, name="ky14-fit")
            seconds = time.perf_counter() - started
            fitted, status = fit.fitted(), fit.status()
    truth = {**{f"roughness:{group}": value for group, value in ROUGHNESS_TRUTH.items()},
             **{f"demand:{zone}": value for zone, value in DEMAND_TRUTH.items()}}
    print(f"ky14 (384 nodes, run of {args.duration_s / 3600:g} h, {len(rows)} observations: {len(sensors)} pressures, {len(tanks)} tank levels, "
          f"{len(pipes)} flows, hourly), {len(fitted)} unknowns, {status['evaluations']:,} evaluations in "
          f"{seconds:.1f} s on {args.processes} workers ({status['evaluations'] / seconds:,.0f}/s), objective "
          f"{status['best_objective']:.4g}")
    print(f"  {'unknown':<24} {'truth':>7} {'fitted':>8} {'error %':>8}  identifiable")
    errors = []
    for row in fitted.itertuples():
        error = (row.value / truth[row.unknown] - 1) * 100
        if row.identifiable:
            errors.append(abs(error))
        print(f"  {row.unknown:<24} {truth[row.unknown]:>7.3f} {row.value:>8.4f} {error:>+8.2f}  "
              f"{'yes' if row.identifiable else 'no (flat objective)'}")
    print(verdict("largest error of an identifiable factor (%)", max(errors), WITHIN * 100, at_least=False))
    print(verdict("wall time (s)", seconds, TIME_GOAL_S, at_least=False))


if __name__ == "__main__":
    main()
