"""Benchmark: contamination impacts with hydraulics solved once per member against the bare toolkit loop that
solves hydraulics and quality for each injection, in one process, on the same model, in the same run:

- the loop: per injection, the run's hydraulics solved (and saved), a quality run over them and the impacts
  computed (``Project.saved_hydraulics``, then ``task_impacts``);
- hydraulics once: the member's hydraulics solved once (``SharedHydraulics``), then per injection only the quality
  run and the impacts, as a contamination study's tasks do on a worker.

The concentrations of both are compared for every injection (they must be equal, bit for bit). Networks: BWSN
network 1 (epyt's ``BWSN_Network_1.inp``: 126 junctions, 96 h) and one of thousands of nodes (wntr's Net6:
3,356 nodes), BWSN's case A settings (a 5-minute report and quality step, 125 L/h at 230,000 mg/L for 2 h).

    .venv/bin/python bench/contamination.py [--injections 40]
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import epanet.toolkit as en  # owa-epanet first: wntr's own EPANET must not load before it
import numpy as np
import wntr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cloudburst.engine import toolkit  # noqa: E402
from cloudburst.engine.contamination import (  # noqa: E402
    ContaminationSettings,
    Injection,
    SharedHydraulics,
    task_impacts,
)
from verdict import verdict  # noqa: E402

EPYT_NETWORKS = Path(importlib.util.find_spec("epyt").origin).parent / "networks" / "asce-tf-wdst"
NETWORKS = {"BWSN-1": (EPYT_NETWORKS / "BWSN_Network_1.inp", 96 * 3600),
            "Net6": (Path(wntr.__file__).parent / "library" / "networks" / "Net6.inp", 24 * 3600)}
SPEEDUP_GOAL = 3.0


def junctions(project: toolkit.Project) -> list[str]:
    return [name for index, name in enumerate(project.node_ids, 1) if project.node_type(index) == en.JUNCTION]


def injections_of(project: toolkit.Project, count: int) -> list[Injection]:
    """``count`` injections spread over the junctions, at 0 h, 6 h, 12 h and 18 h in turn."""
    nodes = junctions(project)
    picks = np.linspace(0, len(nodes) - 1, count).astype(int)
    return [Injection(nodes[pick], [0, 6, 12, 18][i % 4] * 3600) for i, pick in enumerate(picks)]


def measure(name: str, path: Path, duration_s: int, count: int) -> tuple[float, float]:
    settings = ContaminationSettings(duration_s=duration_s)
    project = toolkit.Project(path)
    try:
        sensors = junctions(project)
        injections = injections_of(project, count)
        started = time.perf_counter()
        shared = SharedHydraulics(project, settings, sensors)
        once = {}
        for injection in injections:
            task_impacts(shared, 0, [injection])  # what a contamination task does per injection
            once[injection] = shared.quality.copy()
        once_s = time.perf_counter() - started

        started = time.perf_counter()
        loop = {}
        for injection in injections:
            shared.saved = project.saved_hydraulics()  # the loop: this injection's hydraulics solved again
            task_impacts(shared, 0, [injection])
            loop[injection] = shared.quality.copy()
        loop_s = time.perf_counter() - started
    finally:
        project.close()
    equal = all(np.array_equal(once[injection], loop[injection]) for injection in injections)
    print(f"{name}: {project.node_count:,} nodes, {duration_s // 3600} h run, {count} injections: "
          f"hydraulics once {count / once_s:,.1f} injections/s ({once_s:.2f} s), "
          f"the loop {count / loop_s:,.1f} injections/s ({loop_s:.2f} s): {loop_s / once_s:.2f}x; "
          f"concentrations equal bit for bit: {equal}")
    if not equal:
        raise SystemExit(f"{name}: the two ways' concentrations differ")
    return once_s, loop_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--injections", type=int, default=40)
    args = parser.parse_args()
    lines = []
    for name, (path, duration_s) in NETWORKS.items():
        once_s, loop_s = measure(name, path, duration_s, args.injections)
        lines.append(verdict(f"{name}: quality-only members vs the bare loop (speed-up)", loop_s / once_s,
                             SPEEDUP_GOAL, at_least=True, unit="x"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
