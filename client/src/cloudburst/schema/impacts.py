"""A contamination task's impacts as it returns them (schema ``cloudburst.impacts/1``), owned here: what a worker's
``run_contamination`` encodes and a placement (``cloudburst.api.placement``) decodes.

One JSON object per task: ``schema``, ``member``, ``run_end_s`` (the run's length), ``sensors`` (the candidate
sensor nodes, in column order), ``injections`` ([node, start_s] each, in row order) and ``arrays``: numpy's
compressed ``.npz`` in base64, holding, sparse (only the sensors that detect an injection):

- ``row`` (int32): each entry's injection; ``column`` (int32): its sensor; ``detected_s`` (int64): when;
- ``harm`` (float64, entries x 4): ``z2_people``, ``z3_m3``, ``mass_kg``, ``extent_m`` done before that detection;
- ``undetected`` (float64, injections x 4): the same harms over the whole run.

``z1_s`` is not stored: it is the detection time (or the run's end) less the injection's start.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloudburst.errors import InputError

SCHEMA = "cloudburst.impacts/1"
STORED_HARMS = ("z2_people", "z3_m3", "mass_kg", "extent_m")


@dataclass
class TaskImpacts:
    member: int
    run_end_s: int
    sensors: list[str]
    injections: list[tuple[str, int]]
    row: np.ndarray
    column: np.ndarray
    detected_s: np.ndarray
    harm: np.ndarray
    undetected: np.ndarray


def encode(impacts: TaskImpacts) -> dict[str, Any]:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, row=impacts.row.astype(np.int32), column=impacts.column.astype(np.int32),
                        detected_s=impacts.detected_s.astype(np.int64), harm=impacts.harm.astype(np.float64),
                        undetected=impacts.undetected.astype(np.float64))
    return {"schema": SCHEMA, "member": impacts.member, "run_end_s": impacts.run_end_s, "sensors": impacts.sensors,
            "injections": [[node, start] for node, start in impacts.injections],
            "arrays": base64.b64encode(buffer.getvalue()).decode("ascii")}


def decode(value: dict[str, Any]) -> TaskImpacts:
    if not isinstance(value, dict) or value.get("schema") != SCHEMA:
        raise InputError(f"not a contamination task's impacts (schema {SCHEMA}): "
                         f"{value.get('schema') if isinstance(value, dict) else type(value).__name__}")
    with np.load(io.BytesIO(base64.b64decode(value["arrays"]))) as arrays:
        return TaskImpacts(int(value["member"]), int(value["run_end_s"]), list(value["sensors"]),
                           [(str(node), int(start)) for node, start in value["injections"]],
                           arrays["row"], arrays["column"], arrays["detected_s"], arrays["harm"],
                           arrays["undetected"])
