"""Statistics across an ensemble's members (pure): percentile bands per time step.

Percentiles are numpy's default rule (linear interpolation between the two nearest ranks), not InfluxDB's
nearest-rank ``percentile()``; the tests compare against numpy exactly.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

PERCENTILES = (5, 50, 95)


def bands(values: pd.DataFrame, member_start: Callable[[int], int], shared_start: bool,
          percentiles: tuple[int, ...] = PERCENTILES) -> pd.DataFrame:
    """Per time step since each member's start: how many members, min, the percentiles and max.

    values: one row per member and time (columns ``member``, ``time`` in Unix seconds, ``value``). With a shared
    start the table also gives the absolute ``time``; members dated apart are aligned on ``elapsed_s``.
    """
    members = values["member"].astype(int)
    elapsed = values["time"].astype(np.int64) - members.map(member_start).astype(np.int64)
    table = pd.DataFrame({"elapsed_s": elapsed, "member": members, "value": values["value"]}).pivot_table(
        index="elapsed_s", columns="member", values="value", aggfunc="first")
    matrix = table.to_numpy(dtype=float)
    result = pd.DataFrame({"elapsed_s": table.index.to_numpy(dtype=np.int64)})
    if shared_start:
        result["time"] = pd.to_datetime(result["elapsed_s"] + member_start(0), unit="s", utc=True)
    result["members"] = np.sum(np.isfinite(matrix), axis=1)
    result["min"] = np.nanmin(matrix, axis=1)
    for percentile in percentiles:
        result[f"p{percentile}"] = np.nanpercentile(matrix, percentile, axis=1)
    result["max"] = np.nanmax(matrix, axis=1)
    return result
