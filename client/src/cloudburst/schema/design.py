"""A design study's tables in the results store, named once (``cloudburst.state.store`` owns the paths):

- ``<study>/generations/<n>.parquet``: generation n of the search, one row per design the optimizer asked for, in
  its order: ``design`` (the option index per decision pipe), ``cost``, ``shortfall`` (worst metres a pressure limit
  is missed by, <= 0 feasible, +inf when a run failed), ``resilience`` (NaN unless asked for), ``evaluated`` (run on
  the cluster in this generation; false: answered from an earlier one). These are the study's state: a resumed
  study replays them instead of running them again.
- ``<study>/design/best.parquet`` (pipe, group, option, diameter_mm, length_m, cost), ``pressures.parquet``
  (loading, node, pressure_min_m, pressure_max_m, min_m, max_m), ``convergence.parquet`` (generation, evaluations,
  best_cost, feasible) and ``pareto.parquet`` (cost, the second objective, design).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cloudburst.schema.resultformat import decode, encode

if TYPE_CHECKING:
    import pandas as pd

GENERATIONS_DIR, ANSWERS_DIR = "generations", "design"
BEST, PRESSURES, CONVERGENCE, PARETO = "best", "pressures", "convergence", "pareto"
DESIGN, COST, SHORTFALL, RESILIENCE, EVALUATED = "design", "cost", "shortfall", "resilience", "evaluated"


def generation_name(generation: int) -> str:
    return f"{generation:06d}"


def encode_generation(designs: np.ndarray, cost: np.ndarray, shortfall: np.ndarray, resilience: np.ndarray,
                      evaluated: np.ndarray) -> bytes:
    import pyarrow as pa
    return encode(pa.table({DESIGN: pa.array(designs.astype(np.int16).tolist(), type=pa.list_(pa.int16())),
                            COST: pa.array(cost, type=pa.float64()), SHORTFALL: pa.array(shortfall, type=pa.float64()),
                            RESILIENCE: pa.array(resilience, type=pa.float64()),
                            EVALUATED: pa.array(evaluated, type=pa.bool_())}))


def decode_generation(data: bytes) -> dict[str, np.ndarray]:
    table = decode(data)
    columns: dict[str, Any] = {name: table.column(name).to_numpy() for name in (COST, SHORTFALL, RESILIENCE)}
    columns[EVALUATED] = table.column(EVALUATED).to_numpy(zero_copy_only=False)
    columns[DESIGN] = np.asarray(table.column(DESIGN).to_pylist(), dtype=np.int64)
    return columns


def encode_frame(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    return encode(pa.Table.from_pandas(frame, preserve_index=False))


def decode_frame(data: bytes) -> pd.DataFrame:
    frame: pd.DataFrame = decode(data).to_pandas()
    return frame
