"""Benchmark: design studies on the cluster against the benchmark networks' best-known costs, and against what a
researcher writes (pymoo over a local ``multiprocessing.Pool`` of wntr evaluations), in the same run.

- side by side: the same pymoo GA (same operators, seed and budget) on Hanoi, once with a ``Pool`` of ``--processes``
  processes each evaluating a design as a researcher does (load the model with wntr, set the diameters, run
  EPANET, read the pressures), once as a CloudBurst design study on as many worker processes; evaluations per second
  of each, target >= 20x. Both clocks start with wntr and pymoo imported, the Pool's processes and the workers
  running (a notebook has them imported, a cluster's workers are up; importing wntr costs either side 2 s);
- Hanoi (34 pipes x 6 diameters, 30 m) over ``--seeds`` seeds: the best feasible cost of each, and the evaluations
  and wall time to come within 0.5 % of 6.081 M$ (median over the seeds that did);
- New York Tunnels (21 tunnels, keep or duplicate with one of 15 diameters) within 1 % of 38.64 M$;
- Balerma (454 pipes x 10 diameters, 20 m) within 5 % of 1.923 MEUR, with the budget and wall time.

The networks are epyt's (``epyt/networks/``); the options and costs are in ``files/scenarios/*-design.yml`` with
their sources; the figures compared with are cited in docs/studies.md.

    .venv/bin/python bench/design.py [--seeds 10] [--processes 2] [--parts side,hanoi,nyt,balerma]
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import multiprocessing
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from bench_cluster import REPO, bench_cluster
from verdict import verdict

NETWORKS = Path(importlib.util.find_spec("epyt").origin).parent / "networks"
HANOI = NETWORKS / "exeter-benchmarks" / "hanoi-exeter.inp"
NYT = NETWORKS / "exeter-benchmarks" / "nytun.inp"
BALERMA = NETWORKS / "asce-tf-wdst" / "Balerma.inp"
SCENARIOS = REPO / "files" / "scenarios"
BEST_KNOWN = {"hanoi": 6.081e6, "nyt": 38.64e6, "balerma": 1.923e6}
WITHIN = {"hanoi": 0.005, "nyt": 0.01, "balerma": 0.05}
SPEEDUP_GOAL = 20.0


def scenario(name: str, **optimizer: Any) -> dict[str, Any]:
    content = yaml.safe_load((SCENARIOS / f"{name}-design.yml").read_text())
    content = copy.deepcopy(content)
    content["study"]["optimizer"].update(optimizer)
    return content


# The researcher's evaluation, in each Pool process: wntr loads the model, sets the diameters, runs EPANET, reads.
_pool_setup: dict[str, Any] = {}


def _pool_start(inp: str, pipes: list[str], diameters_m: list[float]) -> None:
    import wntr  # noqa: F401  # imported before the clock starts, as the client side has it imported
    warnings.simplefilter("ignore")
    _pool_setup.update(inp=inp, pipes=pipes, diameters=np.asarray(diameters_m),
                       scratch=tempfile.mkdtemp(prefix="design-pool-"))


def _pool_evaluate(design: list[int]) -> float:
    import wntr
    wn = wntr.network.WaterNetworkModel(_pool_setup["inp"])
    for pipe, option in zip(_pool_setup["pipes"], design):
        wn.get_link(pipe).diameter = float(_pool_setup["diameters"][option])
    results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=f"{_pool_setup['scratch']}/run")
    return float(results.node["pressure"].loc[:, wn.junction_name_list].to_numpy().min())


def pool_ga(content: dict[str, Any], processes: int) -> tuple[int, float, float]:
    """pymoo's GA with the study's operators over a local Pool: evaluations run, seconds, best feasible cost."""
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize
    import wntr

    study = content["study"]
    options = study["groups"][0]["options"]
    diameters = [option["diameter_in"] * 0.0254 for option in options]
    prices = np.array([option["cost_per_m"] for option in options])
    wn = wntr.network.WaterNetworkModel(str(HANOI))
    pipes = list(wn.pipe_name_list)
    lengths = np.array([wn.get_link(pipe).length for pipe in pipes])
    minimum = float(study["pressure"]["min_m"])
    counted = {"evaluations": 0}

    with multiprocessing.get_context("spawn").Pool(processes, initializer=_pool_start,
                                                   initargs=(str(HANOI), pipes, diameters)) as pool:
        class Researchers(Problem):
            def __init__(self) -> None:
                super().__init__(n_var=len(pipes), n_obj=1, n_ieq_constr=1, xl=0, xu=len(options) - 1, vtype=int)

            def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
                designs = np.asarray(X, dtype=np.int64)
                pressures = np.array(pool.map(_pool_evaluate, designs.tolist()))
                counted["evaluations"] += len(designs)
                out["F"] = (prices[designs] * lengths).sum(axis=1)
                out["G"] = minimum - pressures

        optimizer = study["optimizer"]
        algorithm = GA(pop_size=optimizer["population"], sampling=IntegerRandomSampling(),
                       crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
                       mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
        pool.map(abs, range(processes * 4))  # every process started and initialised before the clock starts
        started = time.perf_counter()
        result = minimize(Researchers(), algorithm, ("n_eval", optimizer["evaluations"]), seed=optimizer["seed"],
                          verbose=False)
        seconds = time.perf_counter() - started
    best = float(result.F[0]) if result.F is not None else float("nan")
    return counted["evaluations"], seconds, best


def cluster_design(client: Any, model: Path, content: dict[str, Any], name: str) -> dict[str, Any]:
    """A design study on the cluster: evaluations, seconds, best cost, and per generation (evaluations, seconds)."""
    steps: list[tuple[int, float]] = []
    started = time.perf_counter()
    design = client.design(model, content, name=name,
                           on_generation=lambda step: steps.append((step["evaluations"], step["seconds"])))
    seconds = time.perf_counter() - started
    status = design.status()
    return {"evaluations": status["evaluations"], "seconds": seconds, "best": status["best_cost"],
            "convergence": design.convergence(), "steps": steps}


def reached(run: dict[str, Any], target: float) -> tuple[int, float] | None:
    """Evaluations and seconds when the best feasible cost first came within ``target``; None when it never did."""
    convergence = run["convergence"]
    hits = np.flatnonzero(convergence["best_cost"].to_numpy() <= target)
    if not hits.size:
        return None
    generation = int(hits[0])
    return int(convergence["evaluations"].iloc[generation]), run["steps"][generation][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--side-evaluations", type=int, default=2000)
    parser.add_argument("--hanoi-evaluations", type=int, default=100_000)
    parser.add_argument("--nyt-evaluations", type=int, default=50_000)
    parser.add_argument("--balerma-evaluations", type=int, default=200_000)
    parser.add_argument("--parts", default="side,hanoi,nyt,balerma")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    lines: list[str] = []
    import pymoo.algorithms.soo.nonconvex.ga  # noqa: F401  # imported before the clocks start (see above)
    import wntr  # noqa: F401
    with bench_cluster(args.processes) as cluster:
        client = cluster["client"]
        # The workers up and their engine imported before any clock starts, as a running cluster's are (the Pool's
        # processes likewise): one round on another model.
        client.evaluate(REPO / "files" / "models" / "Net3.inp", [[]], run={"duration_s": 0})
        if "side" in parts:
            content = scenario("hanoi", evaluations=args.side_evaluations, population=100, seed=1)
            ours = cluster_design(client, HANOI, content, "side-by-side")
            pool_evaluations, pool_seconds, pool_best = pool_ga(content, args.processes)
            ours_rate = ours["evaluations"] / ours["seconds"]
            pool_rate = pool_evaluations / pool_seconds
            lines += [f"side by side on Hanoi, pymoo GA, population 100, budget {args.side_evaluations:,} designs, seed 1,"
                      f" {args.processes} processes each",
                      f"  {'':<40} {'evaluations':>12} {'seconds':>9} {'per second':>11} {'best cost':>14}",
                      f"  {'local Pool of wntr evaluations':<40} {pool_evaluations:>12,} {pool_seconds:>9.1f} "
                      f"{pool_rate:>11.1f} {pool_best:>14,.0f}",
                      f"  {'CloudBurst design study (workers)':<40} {ours['evaluations']:>12,} {ours['seconds']:>9.1f} "
                      f"{ours_rate:>11.1f} {ours['best']:>14,.0f}",
                      verdict("evaluations per second over the Pool", ours_rate / pool_rate, SPEEDUP_GOAL,
                              at_least=True, unit="x")]
        if "hanoi" in parts:
            target = BEST_KNOWN["hanoi"] * (1 + WITHIN["hanoi"])
            runs = [cluster_design(client, HANOI, scenario("hanoi", evaluations=args.hanoi_evaluations, seed=seed),
                                   f"hanoi-{seed}") for seed in range(1, args.seeds + 1)]
            hits = [hit for run in runs if (hit := reached(run, target)) is not None]
            bests = [run["best"] for run in runs]
            lines += [f"Hanoi, {args.seeds} seeds, budget {args.hanoi_evaluations:,} designs each: best feasible costs "
                      + ", ".join(f"{best / 1e6:.4f}" for best in bests) + " M$",
                      f"  best {min(bests) / 1e6:.4f} M$ ({(min(bests) / BEST_KNOWN['hanoi'] - 1) * 100:+.2f} % of "
                      f"6.081), median {statistics.median(bests) / 1e6:.4f} M$; {len(hits)} of {args.seeds} seeds "
                      f"within 0.5 %"
                      + (f" after a median of {statistics.median(hit[0] for hit in hits):,.0f} evaluations and "
                         f"{statistics.median(hit[1] for hit in hits):.1f} s" if hits else ""),
                      f"  wall time per seed (median) {statistics.median(run['seconds'] for run in runs):.1f} s, "
                      f"{statistics.median(run['evaluations'] / run['seconds'] for run in runs):,.0f} evaluations/s",
                      verdict("Hanoi's best over the best-known 6.081 M$ (%)",
                              (min(bests) / BEST_KNOWN["hanoi"] - 1) * 100, WITHIN["hanoi"] * 100, at_least=False)]
        for key, model, budget in (("nyt", NYT, args.nyt_evaluations), ("balerma", BALERMA, args.balerma_evaluations)):
            if key not in parts:
                continue
            run = cluster_design(client, model, scenario(key, evaluations=budget, seed=1), f"{key}-1")
            lines += [f"{key}: budget {budget:,} designs, seed 1: best feasible cost {run['best']:,.0f} after "
                      f"{run['evaluations']:,} evaluations in {run['seconds']:.1f} s "
                      f"({run['evaluations'] / run['seconds']:,.0f}/s)",
                      verdict(f"{key}'s best over the best-known {BEST_KNOWN[key]:,.0f} (%)",
                              (run["best"] / BEST_KNOWN[key] - 1) * 100, WITHIN[key] * 100, at_least=False)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
