"""Benchmark: adaptive Monte Carlo on the demo's scenario (files/scenarios/net3-demand-roughness.yml) against the
fixed-size ensemble it would otherwise be, in the same run.

One Redis and one Nginx (files and the results store) started here, ``--processes`` worker processes
(files/images/worker/runner.py on the EPANET example env). The adaptive ensemble asks for the p95 of each of the
demo's four nodes' lowest pressure (``--nodes``) known within +/- ``--half-width`` m at 95 % confidence, waves of ``--wave``,
at most ``--cap`` members; the fixed one runs all ``--cap``. Prints members and wall time of each, and the final
intervals (the fixed ensemble's computed the same way, over all its members).

    .venv/bin/python bench/adaptive.py [--cap 10000] [--wave 500] [--half-width 0.1] [--processes 2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import yaml
from cloudburst.plan.adaptive import interval, parse_adaptive  # noqa: E402
from local_master import REPO, local_master
from verdict import verdict

NET3 = REPO / "files" / "models" / "Net3.inp"
DEMO_NODES = "123,247,255,15"  # the demo's series


def scenarios(cap: int, wave: int, half_width: float, nodes: list[str]) -> tuple[dict, dict]:
    demo = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    fixed = {**demo, "members": cap, "batch": {"members": 50}}
    adaptive = {**fixed, "adaptive": {"wave": wave, "confidence": 0.95, "targets": [
        {"element": f"node:{node}", "attribute": "pressure", "of": "min", "statistic": "p95",
         "half_width": half_width} for node in nodes]}}
    return fixed, adaptive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=int, default=10000)
    parser.add_argument("--wave", type=int, default=500)
    parser.add_argument("--half-width", type=float, default=0.1)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--nodes", default=DEMO_NODES, help=f"the nodes with a target (default {DEMO_NODES})")
    args = parser.parse_args()
    nodes = args.nodes.split(",")
    fixed, adaptive = scenarios(args.cap, args.wave, args.half_width, nodes)
    with local_master(args.processes) as client:
        started = time.perf_counter()
        ensemble = client.submit(NET3, adaptive, name="bench-adaptive")
        state = ensemble.adapt(poll_s=0.5)
        adaptive_s = time.perf_counter() - started
        started = time.perf_counter()
        whole = client.submit(NET3, fixed, name="bench-fixed")
        while (progress := whole.status()).finished + progress.failed < progress.members:
            time.sleep(0.2)  # every member stored (this master has no InfluxDB: no statistics to wait for)
        fixed_s = time.perf_counter() - started
        plan = parse_adaptive(adaptive["adaptive"], args.cap)
        fixed_intervals = [interval(whole.series(target.element).groupby("member")["value"].min().to_numpy(),
                                    target, plan.confidence) for target in plan.targets]
    members = state["enqueued"]
    print(f"adaptive Monte Carlo, the demo's scenario (Net3, demand and roughness draws), {args.processes} processes: "
          f"p95 of the lowest pressure at nodes {', '.join(nodes)} within +/- {args.half_width} m at 95 %")
    print(f"  adaptive: {members:>6,} members in {adaptive_s:7.1f} s  (stopped: {state['stopped']}; waves of "
          f"{args.wave})")
    print(f"  fixed:    {args.cap:>6,} members in {fixed_s:7.1f} s")
    print(f"  members saved: {1 - members / args.cap:.0%}; time saved: {1 - adaptive_s / fixed_s:.0%}")
    for found, whole_interval in zip(state["intervals"], fixed_intervals):
        print(f"  {found['target']}: adaptive {found['estimate']:.3f} +/- {found['half_width']:.3f} "
              f"({found['members']} members); fixed {whole_interval.estimate:.3f} +/- {whole_interval.half_width:.3f}")
    widest = max(item["half_width"] for item in state["intervals"])
    print(verdict("every adaptive interval's half-width (m) within the asked", widest, args.half_width,
                  at_least=False, unit=" m"))
    print(verdict("members the adaptive ensemble saved against the fixed one", 1 - members / args.cap, 0.5,
                  at_least=True))
    print(verdict("adaptive wall time / the fixed ensemble's", adaptive_s / fixed_s, 1.0, at_least=False, unit="x"))
    if not np.isfinite([item["half_width"] for item in state["intervals"]]).all():
        raise SystemExit("an interval stayed unbounded")


if __name__ == "__main__":
    main()
