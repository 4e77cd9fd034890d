"""An evaluation round as the client sends it and the workers answer it: schema ``cloudburst.round/1``.

A round is a list of alteration sets to run on one model with one run's settings, returned in order as one array
per metric (what an optimizer's generation needs), without a scenario, a name or the results store. The client
splits a round into chunks, one queue job each; a worker answers each chunk on the round's reply list
(``cloudburst.state.rounds``) with its slice of every metric.

    {"schema": "cloudburst.round/1", "session": "9f...", "round": 3, "chunk": 0, "first": 0,
     "input": {"url": ..., "sha256": ...}, "run": {"duration_s": 3600}, "sets": [[{alteration}, ...], ...],
     "metrics": ["pressure_min", "node_pressure_min"], "nodes": "*", "pressure_threshold_m": 20.0,
     "observe": [["node", "pressure", "J1", 3600], ...]}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloudburst.errors import InputError
from cloudburst.schema.job import SCHEMA as JOB_SCHEMA

SCHEMA = "cloudburst.round/1"
# What the job documents of a round's sets call their ensemble (a valid ensemble name; nothing is recorded under it).
ROUND_ENSEMBLE = "round"

# A number per set: the member summary's fields (``cloudburst.engine.results.summary_fields``).
SUMMARY_METRICS = ("pressure_min", "pressure_max", "pressure_mean", "nodes_below_threshold",
                   "water_service_availability", "age_max_h", "age_mean_h", "quality_max", "nodes_reached")
# A row per set, a column per node of the round's ``nodes``: that node's extreme over the run's report times (SI).
NODE_METRICS = {f"node_{attribute}_{extreme}": (attribute, extreme)
                for attribute in ("pressure", "head", "demand", "quality") for extreme in ("min", "max")}
# A number per set from the whole network: Todini's (2000) resilience index, the least over the run's report times:
# the junctions' surplus power above the required head (elevation + ``pressure_threshold_m``) over the power the
# reservoirs and emptying tanks put in less what the junctions require. Pumps' power is not counted: a round asking
# for it on a model with pumps is refused (``cloudburst.plan.rounds``).
NETWORK_METRICS = ("resilience",)
# A row per set, a column per observation of the round's ``observe`` ([kind, attribute, id, time_s]: e.g. ["link",
# "flowrate", "10", 3600]): the value at that report time (SI), as a calibration compares with measurements.
OBSERVED = "observed"
METRICS = (*SUMMARY_METRICS, *NODE_METRICS, *NETWORK_METRICS, OBSERVED)

# Each set's outcome, as ``Evaluations.status`` holds it (the members' own words).
FINISHED, FAILED, UNBALANCED = "finished", "failed", "unbalanced"


def check_metrics(metrics: list[str] | str) -> list[str]:
    """The metrics asked for (a name or a list), or InputError naming those that are not and listing what is."""
    if isinstance(metrics, str):
        metrics = [metrics]
    unknown = [metric for metric in metrics if metric not in METRICS]
    if unknown or not metrics:
        raise InputError(f"metrics: {', '.join(map(repr, unknown)) or 'none given'}: a round returns "
                         f"{', '.join(METRICS)}")
    return list(dict.fromkeys(metrics))


def set_document(chunk: dict[str, Any], position: int, alterations: list[Any]) -> dict[str, Any]:
    """The job document (``cloudburst.job/1``) one set of a chunk runs as: the round's model and run, the set's
    alterations, no series."""
    return {"schema": JOB_SCHEMA, "ensemble": ROUND_ENSEMBLE, "member": chunk.get("first", 0) + position,
            "input": chunk["input"], "run": {**chunk.get("run", {}), "alterations": alterations},
            "output": {"summary": {"pressure_threshold_m": chunk.get("pressure_threshold_m", 20.0)}}}


@dataclass
class ChunkReply:
    """One chunk's answer: per metric, a float64 array with one entry (or one row) per set; each set's status and
    reason ("" for a finished one)."""
    chunk: int
    values: dict[str, np.ndarray]
    status: list[str]
    reasons: list[str]
    worker: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps({"chunk": self.chunk, "status": self.status, "reasons": self.reasons, "worker": self.worker,
                           "values": {metric: array.tolist() for metric, array in self.values.items()}},
                          separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ChunkReply:
        decoded = json.loads(data)
        return cls(decoded["chunk"], {metric: np.asarray(values, dtype=np.float64)
                                      for metric, values in decoded["values"].items()},
                   decoded["status"], decoded["reasons"], decoded.get("worker", ""))
