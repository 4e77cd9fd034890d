"""Benchmark: fire-flow availability for every junction of Net3 with ``--draws`` demand draws, three ways in the
same run:
- CloudBurst: the study submitted from a scenario (the demo's demand and roughness draws plus a ``study``
  section) to one Redis and one Nginx (files and the results store) started here, ``--processes`` worker
  processes (files/images/worker/runner.py on the EPANET example env), from submit to every answer collected;
- the same search (``cloudburst.engine.fireflow.search_member``, a model opened once per member in EPANET's toolkit)
  in a ``multiprocessing.Pool`` of as many processes;
- a serial loop as a modeller writes it: per draw and hydrant, a bisection to 0.01 L/s from a 500 L/s ceiling,
  each trial a wntr model built and run with ``EpanetSimulator``. Hours at full size, so it is timed on
  ``--baseline-searches`` (draw, hydrant) pairs and scaled to the whole study (printed as such).
The answers of the first two are compared member by member (they must be equal).

    .venv/bin/python bench/fire_flow.py [--draws 100] [--processes 2] [--baseline-searches 12]
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import wntr
import yaml
from cloudburst.engine import toolkit  # noqa: E402
from cloudburst.engine.fireflow import FireFlowSettings, search_member  # noqa: E402
from cloudburst.engine.models import parse_inp  # noqa: E402
from cloudburst.engine.warm import OpenModel  # noqa: E402
from cloudburst.plan.scenarios import generate  # noqa: E402
from cloudburst.schema.job import parse_job  # noqa: E402
from local_master import REPO, local_master
from verdict import verdict

NET3 = REPO / "files" / "models" / "Net3.inp"
START_S, DURATION_S, LIMIT_M, CEILING, TOLERANCE = 18 * 3600, 2 * 3600, 14.0, 500.0, 0.01


def scenario(draws: int) -> dict:
    demo = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    return {"ensemble": "bench-fire", "members": draws, "seed": demo.get("seed", 0), "sampling": demo.get("sampling", "random"),
            "alterations": demo["alterations"],
            "study": {"type": "fire_flow", "hydrants": "*", "start_s": START_S, "duration_s": DURATION_S}}


def pool_member(document: dict) -> list[float]:
    model = OpenModel(NET3, parse_inp(NET3, str(NET3)), toolkit.Project(NET3))
    try:
        found = search_member(model, parse_job(document), list(model.wn.junction_name_list),
                              FireFlowSettings(start_s=START_S, duration_s=DURATION_S))
    finally:
        model.project.close()
    return [row["flow_lps"] for row in found["hydrants"]]


def wntr_holds(wn: wntr.network.WaterNetworkModel, hydrant: str, flow_lps: float, watched: list[str],
               scratch: Path) -> bool:
    trial = copy.deepcopy(wn)
    trial.get_node(hydrant).add_demand(flow_lps / 1000, "fire")
    pressure = wntr.sim.EpanetSimulator(trial).run_sim(file_prefix=str(scratch / "trial")).node["pressure"]
    window = pressure.loc[START_S:START_S + DURATION_S]
    elsewhere = [name for name in watched if name != hydrant]
    return window[hydrant].min() >= LIMIT_M and window[elsewhere].min().min() >= LIMIT_M


def wntr_model(document: dict) -> wntr.network.WaterNetworkModel:
    """Net3 with a draw's alterations as a modeller would apply them in wntr (the demo's: demand and roughness)."""
    wn = wntr.network.WaterNetworkModel(str(NET3))
    for alteration in parse_job(document).run.alterations:
        if alteration.type == "demand_scale":
            for _, junction in wn.junctions():
                for demand in junction.demand_timeseries_list:
                    demand.base_value *= alteration.factor
        elif alteration.type == "pipe_property":
            for _, pipe in wn.pipes():
                pipe.roughness *= alteration.factor
    wn.options.time.duration = START_S + DURATION_S
    wn.options.hydraulic.demand_model = "DD"
    step = wn.options.time.pattern_timestep
    wn.add_pattern("fire", [1.0 if START_S <= i * step < START_S + DURATION_S else 0.0
                            for i in range((START_S + DURATION_S) // step + 2)])
    return wn


def serial_baseline(documents: list[dict], hydrants: list[str], searches: int, scratch: Path) -> float:
    """Seconds for ``searches`` (draw, hydrant) bisections, spread over the draws and hydrants."""
    pairs = [(documents[i % len(documents)], hydrants[(i * 7) % len(hydrants)]) for i in range(searches)]
    started = time.perf_counter()
    for document, hydrant in pairs:
        wn = wntr_model(document)
        base = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(scratch / "base")).node["pressure"]
        window = base.loc[START_S:START_S + DURATION_S, wn.junction_name_list]
        watched = [name for name in window.columns if window[name].min() >= LIMIT_M]
        if not wntr_holds(wn, hydrant, 0.0, watched, scratch):
            continue
        low, high = 0.0, CEILING
        while high - low > TOLERANCE:
            middle = (low + high) / 2
            low, high = (middle, high) if wntr_holds(wn, hydrant, middle, watched, scratch) else (low, middle)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--baseline-searches", type=int, default=12)
    args = parser.parse_args()
    content = scenario(args.draws)
    wn = parse_inp(NET3, str(NET3))
    hydrants = list(wn.junction_name_list)
    with local_master(args.processes) as client:
        started = time.perf_counter()
        study = client.submit(NET3, content, name="bench-fire")
        study.wait(progress=False, poll_s=0.1)
        table = study.table()
        cluster_s = time.perf_counter() - started
        availability = study.availability()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        sha = hashlib.sha256(NET3.read_bytes()).hexdigest()
        documents = generate({key: value for key, value in content.items() if key != "study"}, wn,
                             {"url": "http://models.invalid/net3.inp", "sha256": sha}, "bench-fire").documents
        started = time.perf_counter()
        with multiprocessing.Pool(args.processes) as pool:
            pooled = pool.map(pool_member, documents)
        pool_s = time.perf_counter() - started
        clustered = table.pivot(index="member", columns="hydrant", values="flow_lps")[hydrants].to_numpy()
        if not np.array_equal(clustered, np.array(pooled)):
            raise SystemExit("the cluster's answers differ from the Pool's")
        baseline_s = serial_baseline(documents, hydrants, args.baseline_searches, scratch)
    searches = args.draws * len(hydrants)
    serial_s = baseline_s / args.baseline_searches * searches
    print(f"fire-flow availability, Net3: {len(hydrants)} hydrants x {args.draws} demand draws = {searches:,} "
          f"searches (2 h fire at 18:00, 14 m residual and system limits), {args.processes} processes")
    print(f"  CloudBurst study (submit to answers collected): {cluster_s:9.1f} s  "
          f"({table['runs'].sum():,} toolkit runs, {table['runs'].mean():.1f} per search)")
    print(f"  the same search in a Pool of {args.processes}:          {pool_s:9.1f} s  (answers equal)")
    print(f"  serial wntr bisection loop:                 {serial_s:9.0f} s  (measured on {args.baseline_searches} "
          f"searches: {baseline_s:.1f} s, scaled by {searches / args.baseline_searches:.0f})")
    print(f"  speed-up against the serial loop: {serial_s / cluster_s:,.0f}x (CloudBurst), {serial_s / pool_s:,.0f}x (Pool)")
    print(verdict("CloudBurst study time / the same search in a Pool", cluster_s / pool_s, 1.1, at_least=False,
                  unit="x"))
    print(verdict(f"speed-up against the serial loop (its time scaled from {args.baseline_searches} measured "
                  "searches)", serial_s / cluster_s, 100, at_least=True, unit="x"))
    lowest = availability.sort_values("p50_lps").head(5)
    print("  lowest median availability: " + ", ".join(f"{hydrant} {row.p5_lps:.1f}/{row.p50_lps:.1f}/{row.p95_lps:.1f} L/s"
                                                      for hydrant, row in lowest.iterrows()) + " (p5/p50/p95)")


if __name__ == "__main__":
    main()
