"""Turning a simulation's results into what a member stores (``cloudburst.resultformat``): series and a summary.

Series values stay the float32 numbers EPANET's output holds: what the store returns equals them bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import wntr

from cloudburst import job as schema
from cloudburst.resultformat import NODE


def selected_ids(request: schema.SeriesRequest, wn: wntr.network.WaterNetworkModel) -> list[str]:
    if request.ids != "*":
        return list(request.ids)
    kinds = request.types or schema.ELEMENT_TYPES[request.element]
    return [name for kind in kinds for name in getattr(wn, f"{kind}_name_list")]


def report_times(run_duration_s: int, report_step_s: int, step_s: int | None) -> list[int]:
    keep = step_s or report_step_s
    return [t for t in range(0, run_duration_s + 1, report_step_s) if t % keep == 0]


@dataclass(frozen=True)
class SeriesBlock:
    """One attribute of the elements a series request selects: values[time, element] as EPANET gave them."""
    kind: str
    attribute: str
    elements: list[str]
    elapsed_s: np.ndarray  # int32, seconds since the member's start
    values: np.ndarray     # float32 (EPANET) or float64 (wntr's simulator), shape (len(elapsed_s), len(elements))

    @property
    def size(self) -> int:
        return int(self.values.size)


def series_blocks(job: schema.Job, wn: wntr.network.WaterNetworkModel, results: Any) -> list[SeriesBlock]:
    """Every value the job's series requests ask for, at the kept report times."""
    report_step = int(wn.options.time.report_timestep)
    blocks = []
    for request in job.output.series:
        frames = results.node if request.element == NODE else results.link
        ids = selected_ids(request, wn)
        keep = set(report_times(int(wn.options.time.duration), report_step, request.step_s))
        index = frames[request.attributes[0]].index
        rows = np.array([i for i, t in enumerate(index) if int(t) in keep], dtype=np.int64)
        elapsed = np.asarray(index, dtype=np.int64)[rows].astype(np.int32)
        for attribute in request.attributes:
            values = frames[attribute].reindex(columns=ids).to_numpy()[rows]
            # EPANET's output is float32 and stays so; wntr's own simulator gives float64, kept unrounded.
            values = values.astype(np.float32 if values.dtype == np.float32 else np.float64, copy=False)
            blocks.append(SeriesBlock(request.element, attribute, ids, elapsed, values))
    return blocks


def results_needed(job: schema.Job) -> tuple[set[str], set[str]]:
    """The node and link result types that series_blocks and summary_fields read for this job."""
    node = {"pressure", "demand"} | ({"quality"} if job.run.quality.mode != "none" else set())
    link: set[str] = set()
    for request in job.output.series:
        (node if request.element == NODE else link).update(request.attributes)
    return node, link


def summary_fields(job: schema.Job, wn: wntr.network.WaterNetworkModel, results: Any) -> dict[str, Any]:
    """Per-run metrics over the junctions: pressure, service, and water quality where it was simulated."""
    junctions = wn.junction_name_list
    pressure = results.node["pressure"][junctions]
    threshold = job.output.summary.pressure_threshold_m
    lowest_by_node = pressure.min(axis=0)
    fields: dict[str, Any] = {
        "pressure_min": float(lowest_by_node.min()),
        "pressure_max": float(pressure.max(axis=0).max()),
        "pressure_mean": float(pressure.to_numpy(dtype=np.float64).mean()),
        "pressure_min_node": str(lowest_by_node.idxmin()),
        "nodes_below_threshold": int((lowest_by_node < threshold).sum()),
        "pressure_threshold_m": float(threshold),
    }
    if wn.options.hydraulic.demand_model in ("PDD", "PDA"):  # wntr stores PDD as PDA
        expected = wntr.metrics.expected_demand(wn)[junctions]
        delivered = results.node["demand"][junctions].loc[expected.index]
        total_expected = float(expected.to_numpy(dtype=np.float64).sum())
        if total_expected > 0:
            fields["water_service_availability"] = float(delivered.to_numpy(dtype=np.float64).sum()) / total_expected
    mode = job.run.quality.mode
    if mode != "none":
        quality = results.node["quality"][junctions]
        peak = quality.max(axis=0)
        if mode == "age":
            fields["age_max_h"] = float(peak.max()) / 3600.0
            fields["age_mean_h"] = float(quality.to_numpy(dtype=np.float64).mean()) / 3600.0
        else:
            fields["quality_max"] = float(peak.max())
            fields["nodes_reached"] = int((peak > job.run.quality.threshold).sum())
    return fields
