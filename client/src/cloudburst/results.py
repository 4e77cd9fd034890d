"""Turning a simulation's results into the result format (``cloudburst.resultformat``): series and a summary.

Values are written with Python's shortest round-trip repr, so what InfluxDB returns equals wntr's float32
values widened to float64, bit for bit.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import wntr

from cloudburst import job as schema
from cloudburst.resultformat import NODE, series_prefix, stamp


def selected_ids(request: schema.SeriesRequest, wn: wntr.network.WaterNetworkModel) -> list[str]:
    if request.ids != "*":
        return list(request.ids)
    kinds = request.types or schema.ELEMENT_TYPES[request.element]
    return [name for kind in kinds for name in getattr(wn, f"{kind}_name_list")]


def report_times(run_duration_s: int, report_step_s: int, step_s: int | None) -> list[int]:
    keep = step_s or report_step_s
    return [t for t in range(0, run_duration_s + 1, report_step_s) if t % keep == 0]


def series_lines(job: schema.Job, wn: wntr.network.WaterNetworkModel, results: Any) -> Iterator[str]:
    start = job.start_timestamp
    report_step = int(wn.options.time.report_timestep)
    for request in job.output.series:
        frames = results.node if request.element == NODE else results.link
        ids = selected_ids(request, wn)
        keep = set(report_times(int(wn.options.time.duration), report_step, request.step_s))
        first = frames[request.attributes[0]]
        rows = [i for i, t in enumerate(first.index) if int(t) in keep]
        times = [start + int(first.index[i]) for i in rows]
        matrices = [frames[attribute].reindex(columns=ids).to_numpy(dtype=np.float64)[rows].T
                    for attribute in request.attributes]
        stamps = [f" {stamp(t)}" for t in times]
        for column, element in enumerate(ids):
            prefix = series_prefix(request.element, job.ensemble, job.member, element)
            # Python floats (not numpy scalars), so repr() gives the shortest round-trip number.
            per_attribute = [[f"{name}={value!r}" for value in matrix[column].tolist()]
                             for name, matrix in zip(request.attributes, matrices)]
            finite = np.isfinite(np.stack([matrix[column] for matrix in matrices]))
            if finite.all():
                for *fields, at in zip(*per_attribute, stamps):
                    yield prefix + ",".join(fields) + at
                continue
            for row, at in enumerate(stamps):
                fields = [texts[row] for texts, ok in zip(per_attribute, finite[:, row]) if ok]
                if fields:
                    yield prefix + ",".join(fields) + at


def results_needed(job: schema.Job) -> tuple[set[str], set[str]]:
    """The node and link result types that series_lines and summary_fields read for this job."""
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
