"""A design or calibration study's tables in the results store, named once (``cloudburst.state.store`` owns the
paths):

- ``<study>/generations/<n>.parquet``: generation n of the search, one row per candidate the optimizer asked for, in
  its order: ``design`` (the candidate: a design's option index per decision pipe, a calibration's value per
  unknown), the study's scores (a design: ``cost``, ``shortfall``, the worst metres a pressure limit is missed by,
  <= 0 feasible, +inf when a run failed, ``resilience``, NaN unless asked for; a calibration: ``objective``), and
  ``evaluated`` (run on the cluster in this generation; false: answered from an earlier one). These are the study's
  state: a resumed study replays them instead of running them again.
- ``<study>/design/<table>.parquet``: the answers. A design study's ``best`` (pipe, group, option, kept, duplicate,
  diameter_mm: the option's, NaN when kept; modelled_mm: what the runs use, for a duplicate the equivalent pipe,
  length_m, cost), ``pressures`` (loading, node, pressure_min_m, pressure_max_m, min_m, max_m), ``convergence``
  (generation, evaluations, best_cost, feasible) and ``pareto`` (cost, the second objective, design); a
  calibration's ``fitted`` (unknown, kind, group, low, high, value, identifiable, sensitivity), ``residuals``
  (element, attribute, time_s, observed, simulated, residual, weight) and ``convergence``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudburst.schema.resultformat import decode, encode

if TYPE_CHECKING:  # numpy, pandas and pyarrow when a table is read or written: `cloudburst list` names the folders
    import numpy as np
    import pandas as pd

GENERATIONS_DIR, ANSWERS_DIR = "generations", "design"
BEST, PRESSURES, CONVERGENCE, PARETO = "best", "pressures", "convergence", "pareto"
FITTED, RESIDUALS = "fitted", "residuals"
DESIGN, COST, SHORTFALL, RESILIENCE, EVALUATED = "design", "cost", "shortfall", "resilience", "evaluated"
OBJECTIVE = "objective"


def generation_name(generation: int) -> str:
    return f"{generation:06d}"


def encode_generation(generation: dict[str, np.ndarray]) -> bytes:
    """A generation's table: the candidates (integer or float rows), every score column, ``evaluated``."""
    import numpy as np
    import pyarrow as pa
    candidates = generation[DESIGN]
    kind = pa.int16() if np.issubdtype(candidates.dtype, np.integer) else pa.float64()
    columns = {DESIGN: pa.array(candidates.tolist(), type=pa.list_(kind)),
               EVALUATED: pa.array(generation[EVALUATED], type=pa.bool_())}
    columns.update({name: pa.array(values, type=pa.float64()) for name, values in generation.items()
                    if name not in columns})
    return encode(pa.table(columns))


def decode_generation(data: bytes) -> dict[str, np.ndarray]:
    import numpy as np
    table = decode(data)
    columns: dict[str, Any] = {name: table.column(name).to_numpy() for name in table.column_names
                               if name not in (DESIGN, EVALUATED)}
    columns[EVALUATED] = table.column(EVALUATED).to_numpy(zero_copy_only=False)
    integer = pa_is_integer(table.schema.field(DESIGN).type.value_type)
    columns[DESIGN] = np.asarray(table.column(DESIGN).to_pylist(), dtype=np.int64 if integer else np.float64)
    return columns


def pa_is_integer(kind: Any) -> bool:
    import pyarrow as pa
    return bool(pa.types.is_integer(kind))


def encode_frame(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    return encode(pa.Table.from_pandas(frame, preserve_index=False))


def decode_frame(data: bytes) -> pd.DataFrame:
    frame: pd.DataFrame = decode(data).to_pandas()
    return frame
