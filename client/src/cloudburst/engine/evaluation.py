"""One chunk of an evaluation round run on the warm engine: each alteration set a member of the round's model, each
metric the set's number (or row of numbers, one per node) the optimizer asked for. A set that fails or stops
balancing is NaN with its reason; the chunk itself never fails for a set's sake."""
from __future__ import annotations

from typing import Any

import numpy as np

from cloudburst.engine.warm import Solved, WarmEngine
from cloudburst.errors import InputError, MemberFailed, MemberUnbalanced
from cloudburst.schema import evaluation as rounds
from cloudburst.schema.job import parse_job
from cloudburst.schema.resultformat import LINK, NODE


def node_attributes(metrics: list[str]) -> list[str]:
    """The node results the round's per-node and network metrics read beyond those every run captures (pressure,
    demand)."""
    wanted = {rounds.NODE_METRICS[metric][0] for metric in metrics if metric in rounds.NODE_METRICS}
    if "resilience" in metrics:
        wanted.add("head")
    return sorted(wanted - {"pressure", "demand", "quality"})


def observed_attributes(chunk: dict[str, Any], kind: str) -> list[str]:
    """The attributes of one element kind the round's observations read."""
    if rounds.OBSERVED not in chunk["metrics"]:
        return []
    return sorted({attribute for element, attribute, _, _ in chunk.get("observe", []) if element == kind})


def observed_values(chunk: dict[str, Any], solved: Solved) -> np.ndarray:
    """Each observation's simulated value (SI) at its report time; NaN where the run did not reach that time."""
    row = np.full(len(chunk.get("observe", [])), np.nan)
    for position, (kind, attribute, element, time_s) in enumerate(chunk.get("observe", [])):
        frames = solved.frames[kind]
        at = np.flatnonzero(frames.times == int(time_s))
        if at.size:
            row[position] = float(frames.values[attribute][at[0], frames.elements.index(element)])
    return row


def resilience_index(solved: Solved, threshold_m: float) -> float:
    """Todini's resilience index of a run, the least over its report times (``rounds.NETWORK_METRICS``): per time,
    sum q (p - p*) at the junctions over (sum Q H of the reservoirs and tanks that supply water - sum q (z + p*) at
    the junctions), with q the junctions' demands, z their elevations (head - pressure), p* the threshold."""
    node = solved.frames[NODE]
    junctions = solved.model.junction_columns
    sources = np.setdiff1d(np.arange(node.values["demand"].shape[1]), junctions)
    demand = node.values["demand"].astype(np.float64)
    head = node.values["head"].astype(np.float64)
    pressure = node.values["pressure"].astype(np.float64)
    q = demand[:, junctions]
    surplus = (q * (pressure[:, junctions] - threshold_m)).sum(axis=1)
    required = (q * (head[:, junctions] - pressure[:, junctions] + threshold_m)).sum(axis=1)
    supplied = np.clip(-demand[:, sources], 0.0, None)  # a source's demand is negative while it supplies
    available = (supplied * head[:, sources]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = surplus / (available - required)
    return float(np.nanmin(index)) if np.isfinite(index).any() else float("nan")


def set_document(chunk: dict[str, Any], position: int) -> dict[str, Any]:
    """A set's job document; the per-node metrics' extra attributes asked for as one series request (read from the
    run's arrays, never written anywhere)."""
    document = rounds.set_document(chunk, position, chunk["sets"][position])
    extra = sorted(set(node_attributes(chunk["metrics"])) | (set(observed_attributes(chunk, NODE)) - {"pressure"}))
    series = [{"element": NODE, "attributes": extra, "ids": chunk.get("nodes", "*")}] if extra else []
    links = observed_attributes(chunk, LINK)
    if links:
        series.append({"element": LINK, "attributes": links, "ids": "*"})
    if series:
        document["output"]["series"] = series
    return document


def evaluate_chunk(chunk: dict[str, Any], engine: WarmEngine) -> rounds.ChunkReply:
    """Run every set of the chunk in order; its reply holds one entry (or row) per set for each metric (none for a
    metric no set finished: the client fills NaN)."""
    metrics: list[str] = chunk["metrics"]
    count = len(chunk["sets"])
    values: dict[str, np.ndarray] = {}
    status, reasons = [rounds.FAILED] * count, [""] * count
    columns: np.ndarray | None = None
    with_summary = any(metric in rounds.SUMMARY_METRICS for metric in metrics)
    for position in range(count):
        try:
            job = parse_job(set_document(chunk, position))
            solved = engine.solve(job, with_summary)
        except MemberUnbalanced as unbalanced:
            status[position], reasons[position] = rounds.UNBALANCED, str(unbalanced)
            continue
        except (InputError, MemberFailed) as failed:
            reasons[position] = str(failed)
            continue
        status[position] = rounds.FINISHED
        node = solved.frames[NODE]
        for metric in metrics:
            if metric in rounds.NODE_METRICS:
                attribute, extreme = rounds.NODE_METRICS[metric]
                if columns is None:
                    nodes = chunk.get("nodes", "*")
                    columns = solved.model.junction_columns if nodes == "*" else node.positions(list(nodes))
                series = node.values[attribute][:, columns].astype(np.float64)
                row = series.min(axis=0) if extreme == "min" else series.max(axis=0)
                values.setdefault(metric, np.full((count, len(columns)), np.nan))[position] = row
            elif metric == rounds.OBSERVED:
                observed = observed_values(chunk, solved)
                values.setdefault(metric, np.full((count, len(observed)), np.nan))[position] = observed
            elif metric == "resilience":
                values.setdefault(metric, np.full(count, np.nan))[position] = resilience_index(
                    solved, float(chunk.get("pressure_threshold_m", 20.0)))
            else:
                value = solved.summary.get(metric)
                values.setdefault(metric, np.full(count, np.nan))[position] = np.nan if value is None else value
    return rounds.ChunkReply(chunk.get("chunk", 0), values, status, reasons)

