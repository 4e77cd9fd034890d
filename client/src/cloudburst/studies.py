"""Studies: analyses built on many runs each, described by a scenario file's ``study`` section and computed on the
workers as a task set (one task per member and group of elements), their results in the results store.

    study:
      type: fire_flow              # the largest fire flow each hydrant delivers (cloudburst.fireflow)
      hydrants: "*"                # or a list of junction IDs
      start_s: 64800               # when the fire starts, seconds from the run's start
      duration_s: 7200             # how long it must be delivered (default 2 h)
      residual_pressure_m: 14      # at the hydrant (default 14 m, 20 psi)
      system_pressure_m: 14        # everywhere else (default 14 m)

The scenario's members are its draws (``members``, ``alterations`` with distributions, ``sampling``): each
member's searches run with that member's alterations, so the answer per hydrant is a distribution over them.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import wntr

from cloudburst.errors import EpanetError, InputError
from cloudburst.fireflow import FireFlowSettings
from cloudburst.job import parse_job
from cloudburst.warm import solve_seconds

if TYPE_CHECKING:
    from cloudburst.taskset import TaskSet

FIRE_FLOW = "fire_flow"
FIRE_FLOW_TASK = "cloudburst.fireflow:run_task"
TASK_SECONDS = 3.0         # aim for tasks of about this long
RUNS_PER_HYDRANT = 12      # a search's runs, about (the bracket and the regula falsi)
PERCENTILES = (5, 50, 95)  # of each hydrant's available flow over the members (numpy's linear interpolation)


@dataclass(frozen=True)
class FireFlowStudy:
    hydrants: list[str]
    settings: FireFlowSettings


def parse_study(section: Any, wn: wntr.network.WaterNetworkModel) -> FireFlowStudy:
    """The scenario's ``study`` section, checked against the model; raises InputError."""
    if not isinstance(section, dict) or section.get("type") != FIRE_FLOW:
        raise InputError(f"$.study: give type: {FIRE_FLOW} and its settings (see docs/studies.md)")
    raw = {key: value for key, value in section.items() if key not in ("type", "hydrants")}
    hydrants = section.get("hydrants", "*")
    if hydrants == "*":
        hydrants = list(wn.junction_name_list)
    elif not isinstance(hydrants, list) or not hydrants:
        raise InputError('$.study.hydrants: "*" (every junction) or a list of junction IDs')
    hydrants = [str(name) for name in hydrants]
    unknown = [name for name in hydrants if name not in wn.junction_name_list]
    if unknown:
        raise InputError(f"$.study.hydrants: not junctions of the model: {', '.join(unknown[:5])}")
    return FireFlowStudy(hydrants, FireFlowSettings.parse(raw))


def hydrants_per_task(data: bytes, wn: wntr.network.WaterNetworkModel, member: dict[str, Any],
                      study: FireFlowStudy) -> int:
    """Hydrants per task for tasks of about TASK_SECONDS, by one timed run here of the unaltered model up to the
    end of the fire."""
    run = parse_job(member).run
    run = run.model_copy(update={"alterations": [],
                                 "duration_s": max(run.duration_s or 0, study.settings.start_s + study.settings.duration_s)})
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.inp"
        path.write_bytes(data)
        try:
            seconds = solve_seconds(path, wn, run)
        except EpanetError as refused:
            raise InputError(f"fire flow runs on EPANET's toolkit, which does not open the model: {refused}") from None
    return max(1, min(len(study.hydrants), int(TASK_SECONDS / max(seconds * RUNS_PER_HYDRANT, 1e-6))))


def fire_flow_tasks(documents: list[dict[str, Any]], study: FireFlowStudy, per_task: int) -> list[list[Any]]:
    """Each task's arguments: a member's job document, a group of hydrants, the settings."""
    settings = {key: getattr(study.settings, key) for key in FireFlowSettings.__dataclass_fields__}
    groups = [study.hydrants[i:i + per_task] for i in range(0, len(study.hydrants), per_task)]
    return [[document, group, settings] for document in documents for group in groups]


def fire_flow_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per member and hydrant (member, hydrant, flow_lps, limited_by, critical_node, runs) from a fire-flow
    task set's results (``TaskSet.results()``: a member, hydrants and left_out column per finished task)."""
    rows = [{"member": member, **row} for member, hydrants in zip(results["member"], results["hydrants"])
            for row in hydrants]
    table = pd.DataFrame(rows, columns=["member", "hydrant", "flow_lps", "limited_by", "critical_node", "runs"])
    return table.sort_values(["hydrant", "member"], kind="stable").reset_index(drop=True)


def fire_flow_availability(table: pd.DataFrame) -> pd.DataFrame:
    """Per hydrant over the members: p5, p50, p95 of the available flow (L/s; numpy's linear interpolation),
    its mean, the members counted and the share of them each limit stopped."""
    grouped = table.groupby("hydrant", sort=False)
    flows = grouped["flow_lps"]
    frame = pd.DataFrame({f"p{q}_lps": flows.quantile(q / 100, interpolation="linear") for q in PERCENTILES})
    frame["mean_lps"] = flows.mean()
    frame["members"] = flows.size()
    for limit in ("residual", "system", "ceiling", "unsolvable"):
        frame[f"share_{limit}"] = grouped["limited_by"].apply(lambda limits, limit=limit: float(np.mean(limits == limit)))
    return frame


class FireFlow:
    """A submitted fire-flow study: its task set, and its answers once the tasks finished."""

    def __init__(self, taskset: "TaskSet"):
        self.taskset = taskset
        self.name = taskset.name

    def __repr__(self) -> str:
        return f"FireFlow({self.name!r})"

    def wait(self, **options: Any) -> Any:
        return self.taskset.wait(**options)

    def status(self) -> Any:
        return self.taskset.status()

    def table(self) -> pd.DataFrame:
        """One row per member and hydrant; raises InputError while tasks have not finished or some failed."""
        results = self.taskset.results()
        unfinished = results[results["status"] != "finished"]
        if len(unfinished):
            raise InputError(f"{self.name}: {len(unfinished)} of {len(results)} tasks have not finished "
                             f"(first: {unfinished['error'].dropna().head(1).tolist() or 'still queued'})")
        return fire_flow_table(results)

    def availability(self) -> pd.DataFrame:
        """Per hydrant: p5/p50/p95 of its available flow over the members, and which limits stopped it."""
        return fire_flow_availability(self.table())

    def left_out(self) -> list[str]:
        """Junctions below the system limit without a fire in some member (not counted as "elsewhere")."""
        results = self.taskset.results()
        return sorted({name for names in results["left_out"].dropna() for name in names}, key=str)


def is_fire_flow(function: str) -> bool:
    return function == FIRE_FLOW_TASK
