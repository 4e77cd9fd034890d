"""The result formats, named once: the store's Parquet tables, and the statistics points in InfluxDB.

The store (``cloudburst.state.store``) keeps per-member results, never InfluxDB:

- series table, one row per value: ``member`` (int32), ``kind`` (node/link), ``attribute``, ``element``
  (dictionary strings), ``elapsed_s`` (int32, seconds since the member's start), ``value`` (float32: EPANET's
  own output values, unchanged);
- members table, one row per member of a batch: ``member``, ``batch``, ``status`` (finished/failed/unbalanced),
  ``error``, ``start_s`` (the member's start, Unix seconds), the status fields (runtime, worker, provenance) and
  the summary fields (``pressure_min``...).

InfluxDB holds what Grafana draws, *without a member tag*, so its series do not grow with the member count:
``node_stats`` and ``link_stats`` (tags ensemble, element, statistic; a field per attribute; timestamps the
ensemble's start plus elapsed time), ``summary_stats`` (tags ensemble, statistic; a field per summary metric)
and ``progress`` (tag ensemble; fields members, finished, failed, unbalanced).
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# Units: results are SI as wntr gives them; a chemical's concentration is kg/m³ (= g/L). A scenario's concentration
# threshold (run.quality.threshold) is in mg/L, as modellers state limits: this converts it, and nothing else does.
KG_PER_M3_PER_MG_PER_L = 0.001

NODE, LINK = "node", "link"
SERIES_KINDS = (NODE, LINK)
FINISHED, FAILED, UNBALANCED = "finished", "failed", "unbalanced"
NODE_ATTRIBUTES = ("demand", "head", "pressure", "quality", "leak_demand")
LINK_ATTRIBUTES = ("flowrate", "velocity", "headloss", "status", "setting", "friction_factor", "reaction_rate")
ATTRIBUTES = {NODE: NODE_ATTRIBUTES, LINK: LINK_ATTRIBUTES}
# The summary field members are ranked by, lowest (worst) first.
RANKING_FIELD = "pressure_min"

# --- the store's tables --------------------------------------------------------------------------------------
MEMBER, KIND, ATTRIBUTE, ELEMENT, ELAPSED, VALUE = "member", "kind", "attribute", "element", "elapsed_s", "value"
SERIES_COLUMNS = (MEMBER, KIND, ATTRIBUTE, ELEMENT, ELAPSED, VALUE)
BATCH, STATUS, ERROR, START = "batch", "status", "error", "start_s"
# Status fields every members row has; summary fields follow them.
STATUS_FIELDS = ("status", "error", "model_sha256", "run_sha256", "seed", "schema", "cloudburst_version",
                 "wntr_version", "epanet_version", "simulator", "engine", "engine_reason", "warnings", "runtime_s",
                 "series_points", "worker")

# --- statistics in InfluxDB ----------------------------------------------------------------------------------
ENSEMBLE_TAG, ELEMENT_TAG, STATISTIC_TAG = "ensemble", "element", "statistic"
SUMMARY_STATS, PROGRESS = "summary_stats", "progress"
COUNT, MEAN, MINIMUM, MAXIMUM = "count", "mean", "min", "max"


def stats_measurement(kind: str) -> str:
    return f"{kind}_stats"


def percentile_name(percentile: float) -> str:
    return f"p{percentile:g}"


def below_name(threshold: float) -> str:
    """The statistic of the fraction of members whose value is below the threshold, e.g. ``below_20``."""
    return f"below_{threshold:g}"


def above_name(threshold: float) -> str:
    return f"above_{threshold:g}"


def escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_fields(fields: dict[str, Any]) -> str:
    import numpy as np  # here: the client reads the format's names without numpy
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(f"{escape_tag(key)}={'true' if value else 'false'}")
        elif isinstance(value, (int, np.integer)):
            parts.append(f"{escape_tag(key)}={int(value)}i")
        elif isinstance(value, (float, np.floating)):
            if math.isfinite(value):
                parts.append(f"{escape_tag(key)}={float(value)!r}")
        else:
            parts.append(f"{escape_tag(key)}={escape_string_field(str(value))}")
    return ",".join(parts)


def stats_line(measurement: str, ensemble: str, statistic: str, seconds: int, fields: dict[str, Any],
               element: str | None = None) -> str | None:
    """One statistics point (None when every field is missing or not finite)."""
    formatted = format_fields(fields)
    if not formatted:
        return None
    tags = f"{ENSEMBLE_TAG}={escape_tag(ensemble)}"
    if element is not None:
        tags += f",{ELEMENT_TAG}={escape_tag(element)}"
    return f"{measurement},{tags},{STATISTIC_TAG}={escape_tag(statistic)} {formatted} {seconds}"


def element_stats_lines(measurement: str, ensemble: str, statistic: str, attribute: str, elements: list[str],
                        seconds: list[int], values: np.ndarray) -> list[str]:
    """``stats_line`` for every finite value of an (elements, times) array of one statistic and attribute, the tags
    escaped once per element rather than once per point."""
    import numpy as np
    head = f"{measurement},{ENSEMBLE_TAG}={escape_tag(ensemble)},{ELEMENT_TAG}="
    tail = f",{STATISTIC_TAG}={escape_tag(statistic)} {escape_tag(attribute)}="
    stamps = [f" {at}" for at in seconds]
    lines: list[str] = []
    for element, row in zip(elements, values.astype(np.float64).tolist()):
        prefix = head + escape_tag(element) + tail
        lines += [prefix + repr(value) + stamp for value, stamp in zip(row, stamps) if math.isfinite(value)]
    return lines


def progress_line(ensemble: str, seconds: int, fields: dict[str, int]) -> str:
    return f"{PROGRESS},{ENSEMBLE_TAG}={escape_tag(ensemble)} {format_fields(fields)} {seconds}"


# --- reading: InfluxQL ---------------------------------------------------------------------------------------

def quote(value: str) -> str:
    """A string literal's inside for InfluxQL."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def of_ensemble(name: str) -> str:
    return f"{ENSEMBLE_TAG} = '{quote(name)}'"


def element_stats_query(name: str, kind: str, element: str, attribute: str) -> str:
    """Every statistic of one attribute of one element, a column per statistic (precision: seconds)."""
    return (f'SELECT "{attribute}" FROM "{stats_measurement(kind)}" WHERE {of_ensemble(name)} '
            f"AND {ELEMENT_TAG} = '{quote(element)}' GROUP BY {STATISTIC_TAG}")


def statistic_query(name: str, kind: str, attribute: str, statistic: str) -> str:
    """One statistic of an attribute at every element and time, grouped by element."""
    return (f'SELECT "{attribute}" FROM "{stats_measurement(kind)}" WHERE {of_ensemble(name)} '
            f"AND {STATISTIC_TAG} = '{quote(statistic)}' GROUP BY {ELEMENT_TAG}")


def drop_statements(name: str) -> list[str]:
    """The statements that remove every statistics point of an ensemble (run with the write user)."""
    measurements = [stats_measurement(kind) for kind in SERIES_KINDS] + [SUMMARY_STATS, PROGRESS]
    return [f'DROP SERIES FROM "{measurement}" WHERE {of_ensemble(name)}' for measurement in measurements]


# zstd with byte-stream-split floats: lossless, and measured smallest per value for float32 ensemble series.
_WRITE_OPTIONS = {"compression": "zstd", "compression_level": 9}


def encode(table: "pa.Table", float_columns: Iterable[str] = ()) -> bytes:
    """A table as Parquet bytes: no dictionary pages for the float columns (they are nearly all distinct), whose
    bytes are split by position before compression; every other column dictionary-encoded."""
    import pyarrow.parquet as pq  # here: the client's list and status never write Parquet
    floats = [name for name in float_columns if name in table.column_names]
    sink = io.BytesIO()
    pq.write_table(table, sink, use_dictionary=[name for name in table.column_names if name not in floats],
                   use_byte_stream_split=floats or False, **_WRITE_OPTIONS)
    return sink.getvalue()


def decode(data: bytes, columns: list[str] | None = None, filters: list[Any] | None = None) -> "pa.Table":
    import pyarrow.parquet as pq
    return pq.read_table(io.BytesIO(data), columns=columns, filters=filters)
