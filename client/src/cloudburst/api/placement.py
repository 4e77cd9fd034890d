"""Sensor placement from a contamination study's impacts: choose k sensor nodes minimising the expected harm of the
injections (each weighted alike), the harm of an injection being the one done before the earliest chosen sensor
detects it (its whole run's when none does).

Two solvers over the same impact matrix (injection x sensor -> harm, sparse: only detecting sensors):

- ``mip``: the p-median formulation Chama and TEVA-SPOT solve (Berry et al. 2006), exactly, with HiGHS through
  scipy's ``milp``: a binary per candidate sensor, a fraction per (injection, sensor) and per injection undetected,
  each injection's fractions summing to one and none above its sensor's; at most k sensors.
- ``greedy``: sensors added one at a time by the largest drop in expected harm, with lazy evaluation (a sensor's
  earlier drop bounds its current one: the objective is supermodular), and the bound on the best placement it
  proves (Leskovec et al. 2007's online bound, and the (1 - 1/e) guarantee's; the tighter is reported).

Objectives: ``z1_s`` (time to detection), ``z2_people``, ``z3_m3``, ``mass_kg``, ``extent_m`` (see
``cloudburst.engine.contamination``); any placement's values of all of them and of ``z4`` (the share of injections
detected) are reported, and ``worst`` / ``cvar`` summarise the harm's tail.
"""
from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from cloudburst.engine.contamination import HARMS
from cloudburst.errors import InputError
from cloudburst.schema.impacts import TaskImpacts

METHODS = ("mip", "greedy")


@dataclass
class ImpactMatrix:
    """Every injection's impacts: ``undetected`` (injections x harms), and per detecting (injection, sensor) its
    harms (entries x harms), ordered by sensor."""
    injections: pd.DataFrame              # member, node, start_s: one row per injection
    sensors: list[str]                    # the candidate sensor nodes
    row: np.ndarray                       # each entry's injection
    column: np.ndarray                    # each entry's sensor
    detected_s: np.ndarray                # each entry's detection time
    harm: np.ndarray                      # each entry's harms
    undetected: np.ndarray                # each injection's whole-run harms

    @classmethod
    def of(cls, tasks: Iterable[TaskImpacts]) -> ImpactMatrix:
        """From the tasks' impacts (``cloudburst.schema.impacts``: every task names the same candidate sensors)."""
        injections: list[tuple[int, str, int]] = []
        rows, columns, times, harms, undetected = [], [], [], [], []
        sensors: list[str] | None = None
        for task in tasks:
            if sensors is None:
                sensors = task.sensors
            elif task.sensors != sensors:
                raise InputError("the tasks name different candidate sensors")
            starts = np.array([start for _, start in task.injections], dtype=np.int64)
            rows.append(task.row.astype(np.int64) + len(injections))
            injections += [(task.member, node, start) for node, start in task.injections]
            columns.append(task.column.astype(np.int64))
            times.append(task.detected_s.astype(np.int64))
            z1 = (task.detected_s - starts[task.row]).astype(np.float64)
            harms.append(np.column_stack([z1, task.harm]))
            undetected.append(np.column_stack([(task.run_end_s - starts).astype(np.float64), task.undetected]))
        if sensors is None or not injections:
            raise InputError("no injection's impacts to place sensors from")
        column = np.concatenate(columns)
        order = np.argsort(column, kind="stable")
        return cls(pd.DataFrame(injections, columns=["member", "node", "start_s"]), list(sensors),
                   np.concatenate(rows)[order], column[order], np.concatenate(times)[order],
                   np.concatenate(harms)[order], np.concatenate(undetected))

    @classmethod
    def on_disk(cls, tasks: Callable[[], Iterable[TaskImpacts]], directory: Path) -> ImpactMatrix:
        """The same matrix with its entries in memory-mapped files in ``directory``, ordered by sensor, written
        from two passes over the tasks (``tasks()`` gives them afresh each time): one task's impacts in memory at
        a time, whatever the study's size (the placement then reads a sensor's entries as it needs them)."""
        sensors: list[str] | None = None
        counts = np.zeros(0, dtype=np.int64)
        for task in tasks():
            if sensors is None:
                sensors, counts = task.sensors, np.zeros(len(task.sensors), dtype=np.int64)
            elif task.sensors != sensors:
                raise InputError("the tasks name different candidate sensors")
            counts += np.bincount(task.column, minlength=len(sensors))
        if sensors is None:
            raise InputError("no injection's impacts to place sensors from")
        total = int(counts.sum())
        directory.mkdir(parents=True, exist_ok=True)

        def mapped(name: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
            return np.lib.format.open_memmap(directory / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)

        row, column = mapped("row", np.int64, (total,)), mapped("column", np.int64, (total,))
        detected, harm = mapped("detected_s", np.int64, (total,)), mapped("harm", np.float64, (total, len(HARMS)))
        cursor = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        injections: list[tuple[int, str, int]] = []
        undetected = []
        for task in tasks():
            order = np.argsort(task.column, kind="stable")
            columns = task.column[order].astype(np.int64)
            rank = np.arange(len(columns)) - np.searchsorted(columns, columns)
            at = cursor[columns] + rank
            starts = np.array([start for _, start in task.injections], dtype=np.int64)
            row[at] = task.row[order].astype(np.int64) + len(injections)
            column[at] = columns
            detected[at] = task.detected_s[order]
            harm[at] = np.column_stack([(task.detected_s[order] - starts[task.row[order]]).astype(np.float64),
                                        task.harm[order]])
            cursor += np.bincount(columns, minlength=len(sensors))
            injections += [(task.member, node, start) for node, start in task.injections]
            undetected.append(np.column_stack([(task.run_end_s - starts).astype(np.float64), task.undetected]))
        for array in (row, column, detected, harm):
            cast(np.memmap, array).flush()
        return cls(pd.DataFrame(injections, columns=["member", "node", "start_s"]), list(sensors), row, column,
                   detected, harm, np.concatenate(undetected))

    def objective(self, name: str) -> int:
        if name not in HARMS:
            raise InputError(f"objective {name!r}: one of {', '.join(HARMS)}")
        return HARMS.index(name)

    def sensor_index(self, names: Iterable[str]) -> list[int]:
        known = {name: position for position, name in enumerate(self.sensors)}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise InputError(f"not candidate sensor nodes: {', '.join(map(str, unknown[:5]))}")
        return [known[name] for name in names]

    def first_detection(self, chosen: Sequence[int]) -> np.ndarray:
        """Per injection, the entry of its earliest detection by a chosen sensor (-1: undetected)."""
        first = np.full(len(self.undetected), -1, dtype=np.int64)
        entries = np.flatnonzero(np.isin(self.column, np.asarray(chosen, dtype=np.int64)))
        if len(entries):
            ordered = entries[np.lexsort((self.detected_s[entries], self.row[entries]))]
            rows = self.row[ordered]
            leading = np.concatenate([[True], rows[1:] != rows[:-1]])
            first[rows[leading]] = ordered[leading]
        return first

    def harms_of(self, chosen: Sequence[int]) -> np.ndarray:
        """Per injection, every harm at its earliest detection by the chosen sensors (injections x harms)."""
        first = self.first_detection(chosen)
        harms = self.undetected.copy()
        detected = first >= 0
        harms[detected] = self.harm[first[detected]]
        return harms

    def values(self, chosen: Sequence[int], cvar_alpha: float = 0.95) -> dict[str, float]:
        """A placement's expected harms (each objective), the share of injections detected (z4), and the worst and
        CVaR (mean of the worst 1 - alpha) of each harm."""
        harms = self.harms_of(chosen)
        values = {name: float(harms[:, column].mean()) for column, name in enumerate(HARMS)}
        values["z4_detected"] = float((self.first_detection(chosen) >= 0).mean())
        tail = max(1, math.ceil((1 - cvar_alpha) * len(harms)))
        for column, name in enumerate(HARMS):
            ordered = np.sort(harms[:, column])
            values[f"worst_{name}"] = float(ordered[-1])
            values[f"cvar_{name}"] = float(ordered[-tail:].mean())
        return values


@dataclass
class Placement:
    sensors: list[str]
    objective: str
    method: str
    value: float                          # the expected harm minimised
    bound: float                          # no placement of k does better than this (the optimum's, for mip)
    values: dict[str, float] = field(default_factory=dict)
    proven: bool = False                  # the MIP proved this placement the best


def _expected(matrix: ImpactMatrix, column: int, chosen: Sequence[int]) -> float:
    return float(matrix.harms_of(chosen)[:, column].mean())


def greedy(matrix: ImpactMatrix, k: int, objective: str = "z1_s") -> Placement:
    """k sensors, each the largest drop in expected harm given those before it (lazy evaluation), and the bound."""
    column = matrix.objective(objective)
    _check_k(matrix, k)
    count = len(matrix.undetected)
    best = matrix.undetected[:, column].copy()           # each injection's harm with the sensors chosen so far
    starts = np.searchsorted(matrix.column, np.arange(len(matrix.sensors) + 1))

    def drop(sensor: int) -> float:
        entries = slice(starts[sensor], starts[sensor + 1])
        rows, harms = matrix.row[entries], matrix.harm[entries, column]
        improved = np.zeros(count)
        np.maximum.at(improved, rows, best[rows] - np.minimum(best[rows], harms))
        return float(improved.sum()) / count

    heap = [(-drop(sensor), sensor, 0) for sensor in range(len(matrix.sensors))]
    heapq.heapify(heap)
    chosen: list[int] = []
    while len(chosen) < k and heap:
        negative, sensor, stamp = heapq.heappop(heap)
        if stamp != len(chosen):
            heapq.heappush(heap, (-drop(sensor), sensor, len(chosen)))
            continue
        chosen.append(sensor)
        entries = slice(starts[sensor], starts[sensor + 1])
        np.minimum.at(best, matrix.row[entries], matrix.harm[entries, column])
    value = float(best.mean())
    empty = float(matrix.undetected[:, column].mean())
    remaining = sorted((drop(sensor) for sensor in range(len(matrix.sensors)) if sensor not in chosen),
                       reverse=True)[:k]
    online = value - sum(remaining)
    guarantee = empty - (empty - value) / (1 - 1 / math.e)
    return Placement([matrix.sensors[sensor] for sensor in chosen], objective, "greedy", value,
                     max(online, guarantee, 0.0), matrix.values(chosen))


def mip(matrix: ImpactMatrix, k: int, objective: str = "z1_s", time_limit_s: float = 600.0) -> Placement:
    """The k sensors of least expected harm, exactly (HiGHS): the p-median formulation over detecting entries that
    do better than undetected."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix, csr_matrix, vstack

    column = matrix.objective(objective)
    _check_k(matrix, k)
    sensors, count = len(matrix.sensors), len(matrix.undetected)
    useful = np.flatnonzero(matrix.harm[:, column] < matrix.undetected[matrix.row, column])
    entries = len(useful)
    rows, columns = matrix.row[useful], matrix.column[useful]
    # variables: sensors (binary), entries (fractions), undetected per injection (fractions)
    cost = np.concatenate([np.zeros(sensors), matrix.harm[useful, column], matrix.undetected[:, column]]) / count
    total = sensors + entries + count
    each_once = coo_matrix((np.ones(entries + count), (np.concatenate([rows, np.arange(count)]),
                                                        np.concatenate([sensors + np.arange(entries),
                                                                        sensors + entries + np.arange(count)]))),
                           shape=(count, total))
    within = coo_matrix((np.concatenate([np.ones(entries), -np.ones(entries)]),
                         (np.concatenate([np.arange(entries), np.arange(entries)]),
                          np.concatenate([sensors + np.arange(entries), columns]))), shape=(entries, total))
    at_most_k = csr_matrix((np.ones(sensors), (np.zeros(sensors, dtype=np.int64), np.arange(sensors))),
                           shape=(1, total))
    constraints = [LinearConstraint(csr_matrix(each_once), 1, 1), LinearConstraint(at_most_k, 0, k)]
    if entries:
        constraints.append(LinearConstraint(vstack([csr_matrix(within)]), -np.inf, 0))
    integrality = np.concatenate([np.ones(sensors), np.zeros(entries + count)])
    solved = milp(cost, constraints=constraints, integrality=integrality, bounds=Bounds(0, 1),
                  options={"time_limit": time_limit_s, "disp": False})
    if solved.x is None:  # stopped before any integer solution: the greedy's, with the better bound
        fallback = greedy(matrix, k, objective)
        fallback.method = f"greedy (the MIP found no solution in {time_limit_s:g} s: {solved.message})"
        return fallback
    chosen = [int(sensor) for sensor in np.flatnonzero(solved.x[:sensors] > 0.5)]
    value = _expected(matrix, column, chosen)
    proven = solved.status == 0
    bound = value
    if not proven:  # the time limit stopped the MIP: the better of its best and the greedy's, the better bound
        fallback = greedy(matrix, k, objective)
        bound = max(float(getattr(solved, "mip_dual_bound", None) or 0.0), fallback.bound)
        if fallback.value < value:
            chosen, value = matrix.sensor_index(fallback.sensors), fallback.value
    method = "mip" if proven else f"mip (stopped at {time_limit_s:g} s; the better of its best and the greedy's)"
    return Placement([matrix.sensors[sensor] for sensor in chosen], objective, method, value, min(bound, value),
                     matrix.values(chosen), proven)


def brute_force(matrix: ImpactMatrix, k: int, objective: str = "z1_s") -> tuple[float, tuple[int, ...]]:
    """Every k-subset's expected harm: the best (small candidate sets only)."""
    column = matrix.objective(objective)
    return min((_expected(matrix, column, subset), subset)
               for subset in itertools.combinations(range(len(matrix.sensors)), k))


def trade_off(matrix: ImpactMatrix, ks: Iterable[int], objective: str = "z1_s", method: str = "greedy",
              ) -> pd.DataFrame:
    """The placement's objective values over k (one row per k)."""
    place = {"greedy": greedy, "mip": mip}[method]
    rows = []
    for k in ks:
        placement = place(matrix, k, objective)
        rows.append({"k": k, "sensors": " ".join(placement.sensors), "bound": placement.bound, **placement.values})
    return pd.DataFrame(rows)


def _check_k(matrix: ImpactMatrix, k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(matrix.sensors):
        raise InputError(f"k: a whole number of sensors from 1 to the {len(matrix.sensors)} candidates, not {k!r}")
