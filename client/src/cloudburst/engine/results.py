"""Turning a simulation's results into what a member stores (``cloudburst.resultformat``): series and a summary.

Series values stay the float32 numbers EPANET's output holds: what the store returns equals them bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import wntr

from cloudburst.schema import job as schema
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.resultformat import NODE


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


@dataclass(frozen=True)
class Frames:
    """One kind of element's results (node or link) of one run, in SI: values[attribute] is (times, elements).

    Both engines hand their results over in this shape: wntr's file path from its DataFrames (``of``), the warm
    engine from the arrays the toolkit filled.
    """
    times: np.ndarray  # int64 seconds since the start, every report time the run reached
    elements: list[str]
    values: dict[str, np.ndarray]

    @classmethod
    def of(cls, frames: dict[str, pd.DataFrame]) -> "Frames":
        if not frames:
            return cls(np.zeros(0, dtype=np.int64), [], {})
        first = next(iter(frames.values()))
        return cls(np.asarray(first.index, dtype=np.int64), [str(name) for name in first.columns],
                   {attribute: frame.reindex(columns=first.columns).to_numpy() for attribute, frame in frames.items()})

    def positions(self, names: list[str]) -> np.ndarray:
        where = {name: position for position, name in enumerate(self.elements)}
        return np.array([where[name] for name in names], dtype=np.int64)


def series_blocks(job: schema.Job, wn: wntr.network.WaterNetworkModel, results: dict[str, Frames], duration_s: int,
                  report_step_s: int) -> list[SeriesBlock]:
    """Every value the job's series requests ask for, at the kept report times of the run as it ran."""
    blocks = []
    for request in job.output.series:
        frames = results[request.element]
        ids = selected_ids(request, wn)
        columns = frames.positions(ids)
        keep = set(report_times(duration_s, report_step_s, request.step_s))
        rows = np.array([i for i, t in enumerate(frames.times) if int(t) in keep], dtype=np.int64)
        elapsed = frames.times[rows].astype(np.int32)
        for attribute in request.attributes:
            values = frames.values[attribute][np.ix_(rows, columns)]
            # EPANET's output is float32 and stays so; wntr's own simulator gives float64, kept unrounded.
            values = values.astype(np.float32 if values.dtype == np.float32 else np.float64, copy=False)
            if attribute in job.output.resolution:
                values = rounded(values, job.output.resolution[attribute])
            blocks.append(SeriesBlock(request.element, attribute, ids, elapsed, values))
    return blocks


def resolution_step(resolution: float) -> float:
    """The power of two a resolution rounds to: the largest not above it (exact in binary floating point)."""
    return 2.0 ** math.floor(math.log2(resolution))


def rounded(values: np.ndarray, resolution: float) -> np.ndarray:
    """Values to the nearest multiple of ``resolution_step(resolution)``: dividing and multiplying by a power of
    two is exact, so the result is that multiple exactly, in the values' own type."""
    step = values.dtype.type(resolution_step(resolution))
    rounded: np.ndarray = np.round(values / step) * step
    return rounded


def results_needed(job: schema.Job) -> tuple[set[str], set[str]]:
    """The node and link result types that series_blocks and summary_fields read for this job."""
    node = {"pressure", "demand"} | ({"quality"} if job.run.quality.mode != "none" else set())
    link: set[str] = set()
    for request in job.output.series:
        (node if request.element == NODE else link).update(request.attributes)
    return node, link


def water_service(wn: wntr.network.WaterNetworkModel, node: Frames) -> float | None:
    """Delivered over expected demand at the junctions (wntr's own expected-demand metric) for a pressure-driven
    run, None for a demand-driven one or one that expected nothing."""
    if wn.options.hydraulic.demand_model not in ("PDD", "PDA"):  # wntr stores PDD as PDA
        return None
    junctions = wn.junction_name_list
    expected = wntr.metrics.expected_demand(wn)[junctions]
    rows = np.searchsorted(node.times, np.asarray(expected.index, dtype=np.int64))
    delivered = node.values["demand"][np.ix_(rows, node.positions(junctions))]
    total_expected = float(expected.to_numpy(dtype=np.float64).sum())
    return float(delivered.astype(np.float64).sum()) / total_expected if total_expected > 0 else None


def summary_fields(job: schema.Job, junctions: list[str], node: Frames, service: float | None,
                   columns: np.ndarray | None = None) -> dict[str, Any]:
    """Per-run metrics over the junctions: pressure, water service availability (``service``, pressure-driven
    runs), and water quality where it was simulated. ``columns``: the junctions' columns in ``node`` when the
    caller knows them (the warm engine, once per model)."""
    columns = node.positions(junctions) if columns is None else columns
    pressure = node.values["pressure"][:, columns]
    threshold = job.output.summary.pressure_threshold_m
    lowest_by_node = pressure.min(axis=0)
    fields: dict[str, Any] = {
        "pressure_min": float(lowest_by_node.min()),
        "pressure_max": float(pressure.max()),
        "pressure_mean": float(pressure.astype(np.float64).mean()),
        "pressure_min_node": junctions[int(np.argmin(lowest_by_node))],
        "nodes_below_threshold": int((lowest_by_node < threshold).sum()),
        "pressure_threshold_m": float(threshold),
    }
    if service is not None:
        fields["water_service_availability"] = service
    mode = job.run.quality.mode
    if mode != "none":
        quality = node.values["quality"][:, columns]
        peak = quality.max(axis=0)
        if mode == "age":
            fields["age_max_h"] = float(peak.max()) / 3600.0
            fields["age_mean_h"] = float(quality.astype(np.float64).mean()) / 3600.0
        else:
            fields["quality_max"] = float(peak.max())
            # chemical: the threshold is mg/L and the values kg/m³; trace: both percent
            scale = fmt.KG_PER_M3_PER_MG_PER_L if mode == "chemical" else 1.0
            fields["nodes_reached"] = int((peak > job.run.quality.threshold * scale).sum())
    return fields
