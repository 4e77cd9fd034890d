"""Studies: analyses built on many runs each, described by a scenario file's ``study`` section and computed on the
workers as a task set (one task per member and group of elements), their results in the results store.

    study:
      type: fire_flow              # the largest fire flow each hydrant delivers (cloudburst.fireflow)
      hydrants: "*"                # or a list of junction IDs
      start_s: 64800               # when the fire starts, seconds from the run's start
      duration_s: 7200             # how long it must be delivered (default 2 h)
      residual_pressure_m: 14      # at the hydrant (default 14 m, 20 psi)
      system_pressure_m: 14        # everywhere else (default 14 m)

    study:
      type: segments               # what isolating each valve segment costs (cloudburst.segments)
      valves: {generate: strategic, n: 1, seed: 1}   # or [[link, node], ...] or a CSV file (link, node)
      required_pressure_m: 14      # pressure-driven runs: full demand from here (default 14 m) ...
      minimum_pressure_m: 0        # ... nothing below this (default 0)

The scenario's members are its draws (``members``, ``alterations`` with distributions, ``sampling``): each
member's runs use that member's alterations, so each answer is a distribution over them.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import wntr

from cloudburst.errors import EpanetError, InputError
from cloudburst.fireflow import FireFlowSettings
from cloudburst.segments import Segment, SegmentSettings, segments_of, valve_layer
from cloudburst.job import parse_job
from cloudburst.warm import solve_seconds

if TYPE_CHECKING:
    from cloudburst.taskset import TaskSet

FIRE_FLOW, SEGMENTS = "fire_flow", "segments"
TASK_FUNCTIONS = {FIRE_FLOW: "cloudburst.fireflow:run_task", SEGMENTS: "cloudburst.segments:run_task"}
TASK_SECONDS = 3.0         # aim for tasks of about this long
RUNS_PER_ELEMENT = {FIRE_FLOW: 12, SEGMENTS: 1}  # about: a hydrant's search; a segment's isolation
PERCENTILES = (5, 50, 95)  # of each hydrant's available flow over the members (numpy's linear interpolation)


@dataclass(frozen=True)
class FireFlowStudy:
    hydrants: list[str]
    settings: FireFlowSettings
    kind: str = FIRE_FLOW

    @property
    def elements(self) -> list[Any]:
        return self.hydrants

    @property
    def end_s(self) -> int:
        return self.settings.start_s + self.settings.duration_s


@dataclass(frozen=True)
class SegmentStudy:
    segments: list[Segment]
    settings: SegmentSettings
    kind: str = SEGMENTS

    @property
    def elements(self) -> list[Any]:
        return [[segment.segment, segment.closes, segment.nodes] for segment in self.segments]

    @property
    def end_s(self) -> int:
        return 0


Study = FireFlowStudy | SegmentStudy


def parse_study(section: Any, wn: wntr.network.WaterNetworkModel, base_dir: Path | None = None,
                duration_s: int | None = None) -> Study:
    """The scenario's ``study`` section, checked against the model (and the run's ``duration_s``, when the scenario
    sets one); raises InputError."""
    if not isinstance(section, dict) or section.get("type") not in TASK_FUNCTIONS:
        raise InputError(f"$.study: give type ({', '.join(TASK_FUNCTIONS)}) and its settings (see docs/studies.md)")
    if section["type"] == SEGMENTS:
        raw = {key: value for key, value in section.items() if key not in ("type", "valves")}
        if "valves" not in section:
            raise InputError("$.study.valves: give the valve layer (a list of [link, node], a CSV file, or "
                             "{generate: strategic, n: 1})")
        if (duration_s if duration_s is not None else wn.options.time.duration) == 0:
            raise InputError("$.study: a segments study measures the water not served over the run, and this run is a "
                             "steady-state snapshot (duration 0): set run.duration_s (e.g. 86400) for an extended "
                             "period run")
        return SegmentStudy(segments_of(wn, valve_layer(section["valves"], wn, base_dir)), SegmentSettings.parse(raw))
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


def elements_per_task(data: bytes, wn: wntr.network.WaterNetworkModel, member: dict[str, Any], study: Study) -> int:
    """Hydrants or segments per task for tasks of about TASK_SECONDS, by one timed run here of the unaltered model
    (up to the end of the fire for a fire-flow study)."""
    run = parse_job(member).run
    run = run.model_copy(update={"alterations": [], "duration_s": max(run.duration_s or 0, study.end_s) or None})
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.inp"
        path.write_bytes(data)
        try:
            seconds = solve_seconds(path, wn, run)
        except EpanetError as refused:
            raise InputError(f"studies run on EPANET's toolkit, which does not open the model: {refused}") from None
    per_element = max(seconds * RUNS_PER_ELEMENT[study.kind], 1e-6)
    return max(1, min(len(study.elements), int(TASK_SECONDS / per_element)))


def study_tasks(documents: list[dict[str, Any]], study: Study, per_task: int) -> list[list[Any]]:
    """Each task's arguments: a member's job document, a group of hydrants or segments, the settings."""
    settings = asdict(study.settings)
    elements = study.elements
    groups = [elements[i:i + per_task] for i in range(0, len(elements), per_task)]
    return [[document, group, settings] for document in documents for group in groups]


def fire_flow_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per member and hydrant (member, hydrant, flow_lps, limited_by, critical_node, runs) from a fire-flow
    task set's results (``TaskSet.results()``: a member, hydrants and left_out column per finished task)."""
    return _member_rows(results, "hydrants", ["hydrant", "flow_lps", "limited_by", "critical_node", "runs"])


def _member_rows(results: pd.DataFrame, column: str, fields: list[str]) -> pd.DataFrame:
    """The rows each task returned in ``column`` (a list per member), one per member and element, ordered by the
    element (``fields[0]``) then the member."""
    rows = [{"member": member, **row} for member, elements in zip(results["member"], results[column])
            for row in elements]
    table = pd.DataFrame(rows, columns=["member", *fields])
    return table.sort_values([fields[0], "member"], kind="stable").reset_index(drop=True)


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


def segment_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per member and segment (member, segment, unserved_m3, nodes_without_water, hours_without_water,
    balanced, nodes) from a segments task set's results."""
    return _member_rows(results, "segments", ["segment", "unserved_m3", "nodes_without_water", "hours_without_water",
                                              "balanced", "nodes"])


def segment_criticality(table: pd.DataFrame) -> pd.DataFrame:
    """Per segment over the members, most unserved demand first: mean and p95 of the demand not served (m3),
    the most junctions left without water, the longest time without it, and the segment's nodes."""
    grouped = table.groupby("segment", sort=False)
    frame = pd.DataFrame({
        "mean_unserved_m3": grouped["unserved_m3"].mean(),
        "p95_unserved_m3": grouped["unserved_m3"].quantile(0.95, interpolation="linear"),
        "nodes_without_water": grouped["nodes_without_water"].max(),
        "hours_without_water": grouped["hours_without_water"].max(),
        "members": grouped.size(),
        "nodes": grouped["nodes"].first().map(lambda nodes: " ".join(map(str, nodes))),
    })
    return frame.sort_values("mean_unserved_m3", ascending=False, kind="stable")


class StudyRun:
    """A submitted study: its task set, and its answers once every task finished."""
    kind = ""

    def __init__(self, taskset: "TaskSet"):
        self.taskset = taskset
        self.name = taskset.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def wait(self, **options: Any) -> Any:
        return self.taskset.wait(**options)

    def status(self) -> Any:
        return self.taskset.status()

    def finished_results(self) -> pd.DataFrame:
        """The task set's results; raises InputError while tasks have not finished or some failed."""
        results = self.taskset.results()
        total = self.taskset.info().tasks
        done = int((results["status"] == "finished").sum()) if len(results) else 0
        if done < total:
            errors = results.loc[results["status"] != "finished", "error"].dropna().head(1).tolist() if len(results) else []
            raise InputError(f"{self.name}: {total - done} of {total} tasks have not finished"
                             + (f" (first error: {errors[0]})" if errors else ""))
        return results


class FireFlow(StudyRun):
    """A fire-flow study (cloudburst.fireflow)."""
    kind = FIRE_FLOW

    def table(self) -> pd.DataFrame:
        """One row per member and hydrant."""
        return fire_flow_table(self.finished_results())

    def availability(self) -> pd.DataFrame:
        """Per hydrant: p5/p50/p95 of its available flow over the members, and which limits stopped it."""
        return fire_flow_availability(self.table())

    def left_out(self) -> list[str]:
        """Junctions below the system limit without a fire in some member (not counted as "elsewhere")."""
        results = self.finished_results()
        return sorted({name for names in results["left_out"].dropna() for name in names}, key=str)


class Segments(StudyRun):
    """A segment criticality study (cloudburst.segments)."""
    kind = SEGMENTS

    def table(self) -> pd.DataFrame:
        """One row per member and segment."""
        return segment_table(self.finished_results())

    def criticality(self) -> pd.DataFrame:
        """Per segment, most demand not served first."""
        return segment_criticality(self.table())


STUDY_RUNS = {FIRE_FLOW: FireFlow, SEGMENTS: Segments}


def study_run(function: str, taskset: "TaskSet") -> StudyRun | None:
    """The study a task set is, by the function its tasks call; None for a task set of your own."""
    kinds = {task: kind for kind, task in TASK_FUNCTIONS.items()}
    return STUDY_RUNS[kinds[function]](taskset) if function in kinds else None
