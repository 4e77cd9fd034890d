"""Statistics across an ensemble's members, computed on the cluster from the store and written to InfluxDB.

For every element, attribute and time the series hold: ``count`` (members with a value), ``mean``, ``min``,
``max``, the percentiles (nearest rank, as InfluxDB's ``percentile()``: the value at rank
``floor(n * p / 100 + 0.5)`` of the n sorted values — exact for any ensemble size; where that rank is 0, for which
InfluxDB gives no value, the lowest value) and, for the thresholds the
scenario names, the fraction of members below or above each. The summary fields get the same statistics
(``summary_stats``) and the ensemble its ``progress`` point. No point carries a member tag.

A worker schedules a statistics job (``due``) after recording a batch when the last run is 30 s old, 5 % of the
members have finished since, or the ensemble is done; a statistics job computes from every committed batch,
reading only the batches its process has not read for an earlier run (``stored_matrices``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cloudburst.schema import resultformat as fmt
from cloudburst.schema.resultformat import decode
from cloudburst.state.reader import member_rows
from cloudburst.state.store import SERIES_DIR, ResultsStore

DEFAULT_PERCENTILES = (5.0, 50.0, 95.0)
REFRESH_S = 30.0        # statistics of a running ensemble are at most this old ...
REFRESH_FRACTION = 0.05  # ... or this fraction of its members behind


@dataclass(frozen=True)
class StatisticsRequest:
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    below: dict[str, tuple[float, ...]] = field(default_factory=dict)  # attribute -> thresholds
    above: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def from_output(cls, output: dict) -> "StatisticsRequest":
        wanted = (output or {}).get("statistics") or {}
        return cls(tuple(float(p) for p in wanted.get("percentiles", DEFAULT_PERCENTILES)),
                   {name: tuple(map(float, values)) for name, values in (wanted.get("below") or {}).items()},
                   {name: tuple(map(float, values)) for name, values in (wanted.get("above") or {}).items()})


def nearest_rank(sorted_rows: np.ndarray, counts: np.ndarray, percentile: float) -> np.ndarray:
    """Per row of values sorted ascending (missing values, NaN, last): the nearest-rank percentile of the first
    ``counts`` values; NaN for a row without values."""
    rank = np.floor(counts * percentile / 100.0 + 0.5).astype(np.int64) - 1
    index = np.clip(rank, 0, np.maximum(counts - 1, 0))
    picked = np.take_along_axis(sorted_rows, index[:, None], axis=1)[:, 0].astype(np.float64)
    return np.where(counts > 0, picked, np.nan)


def row_statistics(matrix: np.ndarray, request: StatisticsRequest, attribute: str) -> dict[str, np.ndarray]:
    """Statistics of each row of a (rows, members) matrix, NaN where a member has no value."""
    present = ~np.isnan(matrix)
    counts = present.sum(axis=1)
    ordered = np.sort(matrix, axis=1)  # NaN sorts last
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(present, matrix, 0).sum(axis=1, dtype=np.float64)
        result = {fmt.COUNT: counts.astype(np.float64), fmt.MEAN: np.where(counts > 0, total / counts, np.nan),
                  fmt.MINIMUM: nearest_rank(ordered, counts, 0.0),
                  fmt.MAXIMUM: np.where(counts > 0, np.take_along_axis(
                      ordered, np.maximum(counts - 1, 0)[:, None], axis=1)[:, 0].astype(np.float64), np.nan)}
        for percentile in request.percentiles:
            result[fmt.percentile_name(percentile)] = nearest_rank(ordered, counts, percentile)
        for threshold in request.below.get(attribute, ()):
            result[fmt.below_name(threshold)] = np.where(counts > 0, (matrix < threshold).sum(axis=1) / counts, np.nan)
        for threshold in request.above.get(attribute, ()):
            result[fmt.above_name(threshold)] = np.where(counts > 0, (matrix > threshold).sum(axis=1) / counts, np.nan)
    return result


@dataclass
class SeriesMatrix:
    """Every stored value of one kind and attribute: rows (element, elapsed_s), a column per member."""
    kind: str
    attribute: str
    elements: list[str]
    elapsed_s: np.ndarray
    members: np.ndarray
    values: np.ndarray  # shape (len(elements) * len(elapsed_s), len(members)), NaN where missing


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """A string column as (per-row codes, the names they index): the store writes these columns dictionary-encoded,
    so the per-row work stays in integers."""
    array = column.combine_chunks()
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(array)
    return array.indices.to_numpy(zero_copy_only=False), [str(name) for name in array.dictionary.to_pylist()]


@dataclass
class _Part:
    """One batch's rows of one kind and attribute."""
    element_names: list[str]
    element_codes: np.ndarray
    elapsed_s: np.ndarray
    members: np.ndarray
    values: np.ndarray


def _block(part: _Part) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None:
    """The part as (elements, times, members, values[element * time, member]) when it holds every member's value
    at every element and time in the store's row order (element, time, member), which a batch file does; None
    otherwise. Then no per-value index is computed: the values are the block, reshaped."""
    rows = len(part.values)
    if rows == 0:
        return None
    same_cell = (part.element_codes == part.element_codes[0]) & (part.elapsed_s == part.elapsed_s[0])
    width = int(np.argmin(same_cell)) or rows  # members: rows until the first cell changes
    per_element = int(np.argmin(part.element_codes == part.element_codes[0])) or rows
    if per_element % width or rows % per_element:
        return None
    times, elements = per_element // width, rows // per_element
    members = part.members[:width]
    if not (np.all(np.diff(members) > 0)
            and np.array_equal(part.members.reshape(-1, width), np.broadcast_to(members, (rows // width, width)))):
        return None
    elapsed = part.elapsed_s[:per_element:width]
    if not np.array_equal(part.elapsed_s.reshape(elements, times, width),
                          np.broadcast_to(elapsed[None, :, None], (elements, times, width))):
        return None
    codes = part.element_codes.reshape(elements, per_element)
    if not np.array_equal(codes, np.broadcast_to(codes[:, :1], codes.shape)):
        return None
    names = [part.element_names[code] for code in codes[:, 0]]
    if len(set(names)) != elements:
        return None
    return names, elapsed, members, part.values.reshape(elements * times, width)


def series_matrices(tables: list[pa.Table]) -> list[SeriesMatrix]:
    """The long series tables of many batches, as one matrix per kind and attribute."""
    parts: dict[tuple[str, str], list[_Part]] = {}
    for table in tables:
        if table.num_rows == 0:
            continue
        kind_codes, kinds = _codes(table.column(fmt.KIND))
        attribute_codes, attributes = _codes(table.column(fmt.ATTRIBUTE))
        element_codes, element_names = _codes(table.column(fmt.ELEMENT))
        elapsed = table.column(fmt.ELAPSED).to_numpy()
        members = table.column(fmt.MEMBER).to_numpy()
        values = table.column(fmt.VALUE).to_numpy()
        group_codes = kind_codes * len(attributes) + attribute_codes
        groups = pd.unique(group_codes)
        for group in groups:
            rows = slice(None) if len(groups) == 1 else group_codes == group
            key = (kinds[group // len(attributes)], attributes[group % len(attributes)])
            parts.setdefault(key, []).append(_Part(element_names, element_codes[rows], elapsed[rows], members[rows],
                                                   values[rows]))
    matrices = []
    for (kind, attribute), groups in parts.items():
        # Elements in the order the batches hold them (the model's), so a batch's block lands in place whole.
        element_index: dict[str, int] = {}
        for part in groups:
            for name in np.asarray(part.element_names, dtype=object)[pd.unique(part.element_codes)]:
                element_index.setdefault(name, len(element_index))
        elements = list(element_index)
        # pd.unique hashes (no sort): a batch's 10^6 rows hold a few dozen times and members
        elapsed = np.unique(np.concatenate([pd.unique(part.elapsed_s) for part in groups]))
        members = np.unique(np.concatenate([pd.unique(part.members) for part in groups]))
        dtype = np.float64 if any(part.values.dtype == np.float64 for part in groups) else np.float32
        values = np.full((len(elements) * len(elapsed), len(members)), np.nan, dtype=dtype)
        for part in groups:
            block = _block(part)
            if block is not None:
                names, times, part_members, part_values = block
                rows = (np.array([element_index[name] for name in names], dtype=np.int64)[:, None] * len(elapsed)
                        + np.searchsorted(elapsed, times)[None, :]).reshape(-1)
                columns = np.searchsorted(members, part_members)
                if len(rows) == len(values) and np.array_equal(rows, np.arange(len(rows))) \
                        and columns[-1] - columns[0] + 1 == len(columns):
                    values[:, columns[0]:columns[-1] + 1] = part_values  # every row, consecutive members
                else:
                    values[np.ix_(rows, columns)] = part_values
                continue
            lookup = np.array([element_index.get(name, -1) for name in part.element_names], dtype=np.int64)
            rows = lookup[part.element_codes] * len(elapsed) + np.searchsorted(elapsed, part.elapsed_s)
            values.reshape(-1)[rows * len(members) + np.searchsorted(members, part.members)] = part.values
        matrices.append(SeriesMatrix(kind, attribute, elements, elapsed, members, values))
    return matrices


def statistics_lines(name: str, start_s: int, matrices: list[SeriesMatrix], request: StatisticsRequest) -> list[str]:
    lines: list[str] = []
    for matrix in matrices:
        measurement = fmt.stats_measurement(matrix.kind)
        times = [start_s + int(t) for t in matrix.elapsed_s]
        for statistic, values in row_statistics(matrix.values, request, matrix.attribute).items():
            lines += fmt.element_stats_lines(measurement, name, statistic, matrix.attribute, matrix.elements, times,
                                             values.reshape(len(matrix.elements), len(times)))
    return lines


def summary_lines(name: str, start_s: int, members: pd.DataFrame, request: StatisticsRequest) -> list[str]:
    """Statistics of each numeric summary field over the finished members, at the ensemble's start."""
    finished = members[members[fmt.STATUS] == fmt.FINISHED]
    skip = set(fmt.STATUS_FIELDS) | {fmt.MEMBER, fmt.START, "pressure_threshold_m"}
    numeric = [column for column in finished.columns
               if column not in skip and pd.api.types.is_numeric_dtype(finished[column])]
    lines: list[str] = []
    if finished.empty or not numeric:
        return lines
    matrix = finished[numeric].to_numpy(dtype=np.float64).T  # a row per summary field
    per_field = {column: row_statistics(matrix[i:i + 1], request, column) for i, column in enumerate(numeric)}
    for statistic in per_field[numeric[0]]:
        fields = {column: float(per_field[column][statistic][0]) for column in numeric}
        line = fmt.stats_line(fmt.SUMMARY_STATS, name, statistic, start_s, fields)
        if line is not None:
            lines.append(line)
    return lines


def progress_fields(members: pd.DataFrame, total: int) -> dict[str, int]:
    states = members[fmt.STATUS].value_counts() if not members.empty else pd.Series(dtype=int)
    return {"members": total, "finished": int(states.get(fmt.FINISHED, 0)), "failed": int(states.get(fmt.FAILED, 0)),
            "unbalanced": int(states.get(fmt.UNBALANCED, 0))}


def _merged(old: list[SeriesMatrix], new: list[SeriesMatrix]) -> list[SeriesMatrix] | None:
    """The matrices of more batches: new members' columns added (a member in both takes the new values); None
    when the new batches hold elements or times the old did not (the matrices are then built afresh)."""
    merged = {(matrix.kind, matrix.attribute): matrix for matrix in old}
    for matrix in new:
        key = (matrix.kind, matrix.attribute)
        if key not in merged:
            merged[key] = matrix
            continue
        before = merged[key]
        if before.elements != matrix.elements or not np.array_equal(before.elapsed_s, matrix.elapsed_s):
            return None
        members = np.union1d(before.members, matrix.members)
        dtype = np.result_type(before.values.dtype, matrix.values.dtype)
        values = np.full((before.values.shape[0], len(members)), np.nan, dtype=dtype)
        values[:, np.searchsorted(members, before.members)] = before.values
        values[:, np.searchsorted(members, matrix.members)] = matrix.values
        merged[key] = SeriesMatrix(matrix.kind, matrix.attribute, matrix.elements, matrix.elapsed_s, members, values)
    return list(merged.values())


@dataclass
class _Read:
    """What this process last read of an ensemble's series: each batch's series file size, and the matrices."""
    sizes: dict[str, int]
    matrices: list[SeriesMatrix]


# Statistics jobs of a running ensemble each read every batch; a process keeps the matrices it built for the
# last few ensembles and reads only batches that are new (or whose file changed: then everything again).
_READ: dict[str, _Read] = {}
KEEP_READ = 2


def stored_matrices(store: ResultsStore, name: str) -> list[SeriesMatrix]:
    """Every committed series value of the ensemble as matrices (``series_matrices``), reading only what this
    process has not read before."""
    sizes = store.listing(name, SERIES_DIR)
    known = _READ.pop(name, None)
    if known is None or any(sizes.get(batch) != size for batch, size in known.sizes.items()):
        known = _Read({}, [])
    new = sorted(set(sizes) - set(known.sizes))
    tables = [decode(data) for batch in new if (data := store.read(name, SERIES_DIR, batch)) is not None]
    matrices = _merged(known.matrices, series_matrices(tables))
    if matrices is None:
        tables = [decode(data) for batch in sorted(sizes) if (data := store.read(name, SERIES_DIR, batch)) is not None]
        matrices = series_matrices(tables)
    _READ[name] = _Read({batch: sizes[batch] for batch in set(known.sizes) | set(new)}, matrices)
    while len(_READ) > KEEP_READ:
        _READ.pop(next(iter(_READ)))
    return matrices


def forget_read(name: str) -> None:
    _READ.pop(name, None)


def compute(store: ResultsStore, name: str, start_s: int, total: int, request: StatisticsRequest) -> list[str]:
    """Every statistics line of the ensemble from its committed batches."""
    members = member_rows(store, name, store.batches(name))
    finished = set(members.loc[members[fmt.STATUS] == fmt.FINISHED, fmt.MEMBER].astype(int))
    matrices = []
    for matrix in stored_matrices(store, name):  # a member's rows from a batch that later failed it never count
        keep = np.isin(matrix.members, list(finished))
        matrices.append(SeriesMatrix(matrix.kind, matrix.attribute, matrix.elements, matrix.elapsed_s,
                                     matrix.members[keep], matrix.values[:, keep]))
    lines = statistics_lines(name, start_s, matrices, request)
    lines += summary_lines(name, start_s, members, request)
    lines.append(fmt.progress_line(name, int(time.time()), progress_fields(members, total)))
    return lines


def due(now: float, state: dict[str, float], members_done: int, total: int) -> bool:
    """Whether the ensemble's statistics should run again, given when and over how many members they last ran."""
    if state and members_done <= state.get("members", -1.0):
        return False  # nothing recorded since the last run
    if members_done >= total or "members" not in state:
        return True
    return (now - state.get("at", 0.0) >= REFRESH_S
            or members_done - state.get("members", 0.0) >= REFRESH_FRACTION * total)
