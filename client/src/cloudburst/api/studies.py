"""A submitted study's handle: its task set, and its answers (tables over the members) once every task finished.
The study's plan is ``cloudburst.plan.studies``'; its runs are ``cloudburst.worker.studies``'.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cloudburst.errors import InputError
from cloudburst.schema.queues import CONTAMINATION, FIRE_FLOW, SEGMENTS, study_kind

if TYPE_CHECKING:
    from cloudburst.api.placement import ImpactMatrix, Placement
    from cloudburst.api.taskset import TaskSet
    from cloudburst.schema.impacts import TaskImpacts

PERCENTILES = (5, 50, 95)  # of each hydrant's available flow over the members (numpy's linear interpolation)


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
        def share(limits: pd.Series, limit: str = limit) -> float:
            return float(np.mean(limits == limit))
        frame[f"share_{limit}"] = grouped["limited_by"].apply(share)
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

    def finished_count(self) -> int:
        """The tasks; raises InputError unless every one finished (nothing of the results is read)."""
        progress = self.taskset.status()
        if progress.finished < progress.members:
            raise InputError(f"{self.name}: {progress.members - progress.finished} of {progress.members} tasks have "
                             f"not finished ({progress.failed} failed): `cloudburst tasks status {self.name}`")
        return progress.members

    def finished_results(self) -> pd.DataFrame:
        """The task set's results; raises InputError while tasks have not finished or some failed."""
        results = self.taskset.results()
        total = self.taskset.info().tasks
        done = int((results["status"] == "finished").sum()) if len(results) else 0
        if done < total:
            unfinished = results.loc[results["status"] != "finished", "error"] if len(results) else None
            errors = unfinished.dropna().head(1).tolist() if unfinished is not None else []
            raise InputError(f"{self.name}: {total - done} of {total} tasks have not finished"
                             + (f" (first error: {errors[0]})" if errors else ""))
        return results


class FireFlow(StudyRun):
    """A fire-flow study (cloudburst.engine.fireflow)."""
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
    """A segment criticality study (cloudburst.engine.segments)."""
    kind = SEGMENTS

    def table(self) -> pd.DataFrame:
        """One row per member and segment."""
        return segment_table(self.finished_results())

    def criticality(self) -> pd.DataFrame:
        """Per segment, most demand not served first."""
        return segment_criticality(self.table())


class Contamination(StudyRun):
    """A contamination warning study (cloudburst.engine.contamination): each injection's impacts per candidate
    sensor, and sensor placements from them (cloudburst.api.placement)."""
    kind = CONTAMINATION
    _matrix: ImpactMatrix | None = None

    def task_impacts(self) -> Iterator[TaskImpacts]:
        """Every task's impacts (``cloudburst.schema.impacts``), read from the results store a pack at a time;
        raises InputError while tasks have not finished or some failed."""
        from cloudburst.schema import impacts as impact_format
        from cloudburst.schema import taskpack
        from cloudburst.state.store import MEMBERS_DIR
        self.finished_count()
        store, seen = self.taskset.services.store, set()
        for pack in store.batches(self.name, MEMBERS_DIR):
            data = store.read(self.name, MEMBERS_DIR, pack)
            if data is None:
                continue
            rows = taskpack.decode_rows(data)
            for task, status, value in zip(rows["task"], rows["status"], rows["value"]):
                if status == taskpack.FINISHED and task not in seen:  # a task run twice counts once
                    seen.add(task)
                    yield impact_format.decode(json.loads(value))

    def impacts(self, directory: str | Path | None = None) -> ImpactMatrix:
        """Every injection's impacts (member, node, start), per detecting candidate sensor: in memory, or with
        ``directory`` in memory-mapped files there, read a pack at a time (a study too large for memory)."""
        from cloudburst.api.placement import ImpactMatrix
        if directory is not None:
            return ImpactMatrix.on_disk(self.task_impacts, Path(directory))
        if self._matrix is None:  # a finished study's impacts never change: read once per handle
            self._matrix = ImpactMatrix.of(self.task_impacts())
        return self._matrix

    def model(self) -> Any:
        """The study's model (a wntr model), fetched from the cluster as its first task names it."""
        import tempfile
        from pathlib import Path

        from cloudburst.engine.models import parse_inp
        services = self.taskset.services
        document = services.ledger.arguments(self.name)[0][0]
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            path.write_bytes(services.models.fetch(document["input"]["sha256"]))
            return parse_inp(path, f"model {document['input']['sha256'][:12]}")

    def injection_table(self) -> pd.DataFrame:
        """One row per injection (member, node, start_s) with its whole run's harms, undetected."""
        from cloudburst.engine.contamination import HARMS
        matrix = self.impacts()
        return pd.concat([matrix.injections, pd.DataFrame(matrix.undetected, columns=list(HARMS))], axis=1)

    def place(self, k: int, objective: str = "z1_s", method: str = "mip", statistic: str = "mean",
              cvar_alpha: float = 0.95) -> Placement:
        """The k sensors of least harm: its ``statistic`` over the injections (``mean``, ``worst`` or ``cvar``, the
        mean over the worst 1 - ``cvar_alpha``); ``mip``, exact, or ``greedy`` (the mean only), with its bound."""
        from cloudburst.api import placement
        if method not in placement.METHODS:
            raise InputError(f"method {method!r}: one of {', '.join(placement.METHODS)}")
        if method == "greedy":
            return placement.greedy(self.impacts(), k, objective, statistic)
        return placement.mip(self.impacts(), k, objective, statistic=statistic, cvar_alpha=cvar_alpha)

    def trade_off(self, ks: list[int], objective: str = "z1_s", method: str = "greedy", statistic: str = "mean",
                  cvar_alpha: float = 0.95) -> pd.DataFrame:
        """The placement's objective values over k."""
        from cloudburst.api import placement
        return placement.trade_off(self.impacts(), ks, objective, method, statistic, cvar_alpha)


STUDY_RUNS = {FIRE_FLOW: FireFlow, SEGMENTS: Segments, CONTAMINATION: Contamination}


def study_run(function: str, taskset: "TaskSet") -> StudyRun | None:
    """The study a task set is, by the function its tasks call; None for a task set of your own."""
    kind = study_kind(function)
    return STUDY_RUNS[kind](taskset) if kind is not None else None
