"""Sensor placement from a contamination study's impacts: choose k sensor nodes minimising a statistic of the
injections' harm (each injection weighted alike), the harm of an injection being the one done before the earliest
chosen sensor detects it (its whole run's when none does). The statistic is the expected harm (``mean``), the
worst injection's (``worst``), or the conditional value at risk (``cvar``: the mean over the worst 1 - alpha of the
injections, Rockafellar and Uryasev's, the injection at the boundary counted in part), as TEVA-SPOT and Chama offer
(Watson et al. 2006, robust sensor placement).

Two solvers over the same impact matrix (injection x sensor -> harm, sparse: only detecting sensors):

- ``mip``: the p-median formulation Chama and TEVA-SPOT solve (Berry et al. 2006), exactly, with HiGHS through
  scipy's ``milp``: a binary per candidate sensor, a fraction per (injection, sensor) and per injection undetected,
  each injection's fractions summing to one and none above its sensor's; at most k sensors. For ``worst``, one
  more variable above every injection's harm is minimised; for ``cvar``, the value at risk and each injection's
  excess over it (Rockafellar and Uryasev's linear form).
- ``greedy``: sensors added one at a time by the largest drop in expected harm, with lazy evaluation (a sensor's
  earlier drop bounds its current one: the objective is supermodular), and the bound on the best placement it
  proves (Leskovec et al. 2007's online bound, and the (1 - 1/e) guarantee's; the tighter is reported). The mean
  only: the worst and the CVaR are not supermodular, so neither the lazy evaluation nor the bounds hold for them.

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
STATISTICS = ("mean", "worst", "cvar")
CVAR_ALPHA = 0.95  # the CVaR's default: the mean over the worst 5 % of the injections


def value_key(statistic: str, objective: str) -> str:
    """The name a placement's ``values`` gives one statistic of one harm: ``z1_s`` (the mean), ``worst_z1_s``,
    ``cvar_z1_s``."""
    return objective if statistic == "mean" else f"{statistic}_{objective}"


def risk(harms: np.ndarray, statistic: str = "mean", cvar_alpha: float = CVAR_ALPHA) -> float:
    """The injections' harms summarised: their ``mean``, the ``worst``, or their ``cvar`` at ``cvar_alpha`` (the
    mean over the worst (1 - alpha) N of the N injections; when that share is not a whole number of injections, the
    one at its boundary counts by the fraction left, so the value equals the linear programme's minimum)."""
    _check_statistic(statistic, cvar_alpha)
    if statistic == "mean":
        return float(harms.mean())
    ordered = np.sort(np.asarray(harms, dtype=np.float64))[::-1]
    if statistic == "worst":
        return float(ordered[0])
    share = (1 - cvar_alpha) * len(ordered)
    whole = min(int(math.floor(share + 1e-9)), len(ordered))
    partial = ordered[whole] * (share - whole) if whole < len(ordered) and share > whole else 0.0
    return float((ordered[:whole].sum() + partial) / share)


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

    def values(self, chosen: Sequence[int], cvar_alpha: float = CVAR_ALPHA) -> dict[str, float]:
        """A placement's expected harms (each objective), the share of injections detected (z4), and the worst and
        CVaR (``risk``) of each harm."""
        harms = self.harms_of(chosen)
        values = {name: float(harms[:, column].mean()) for column, name in enumerate(HARMS)}
        values["z4_detected"] = float((self.first_detection(chosen) >= 0).mean())
        for column, name in enumerate(HARMS):
            values[value_key("worst", name)] = risk(harms[:, column], "worst")
            values[value_key("cvar", name)] = risk(harms[:, column], "cvar", cvar_alpha)
        return values


@dataclass
class Placement:
    sensors: list[str]
    objective: str
    method: str
    value: float                          # the statistic of the harm minimised
    bound: float                          # no placement of k does better than this (the optimum's, for mip)
    values: dict[str, float] = field(default_factory=dict)
    proven: bool = False                  # the MIP proved this placement the best
    statistic: str = "mean"               # mean, worst or cvar (``risk``)
    cvar_alpha: float = CVAR_ALPHA        # the CVaR's alpha, with statistic cvar


def _value(matrix: ImpactMatrix, column: int, chosen: Sequence[int], statistic: str = "mean",
           cvar_alpha: float = CVAR_ALPHA) -> float:
    return risk(matrix.harms_of(chosen)[:, column], statistic, cvar_alpha)


def greedy(matrix: ImpactMatrix, k: int, objective: str = "z1_s", statistic: str = "mean") -> Placement:
    """k sensors, each the largest drop in expected harm given those before it (lazy evaluation), and the bound."""
    column = matrix.objective(objective)
    _check_k(matrix, k)
    if statistic != "mean":
        raise InputError(f"the greedy minimises the expected (mean) harm only, not the {statistic}: its lazy "
                         f"evaluation and its bound need a supermodular objective; the mip minimises the {statistic}")
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


def mip(matrix: ImpactMatrix, k: int, objective: str = "z1_s", time_limit_s: float = 600.0,
        statistic: str = "mean", cvar_alpha: float = CVAR_ALPHA) -> Placement:
    """The k sensors of least harm (its ``statistic``), exactly (HiGHS): the p-median formulation over detecting
    entries that do better than undetected, with the worst's or the CVaR's variables for those statistics."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix, csr_matrix, hstack

    column = matrix.objective(objective)
    _check_k(matrix, k)
    _check_statistic(statistic, cvar_alpha)
    sensors, count = len(matrix.sensors), len(matrix.undetected)
    useful = np.flatnonzero(matrix.harm[:, column] < matrix.undetected[matrix.row, column])
    entries = len(useful)
    rows, columns = matrix.row[useful], matrix.column[useful]
    harm, undetected = matrix.harm[useful, column], matrix.undetected[:, column]
    # variables: sensors (binary), entries (fractions), undetected per injection (fractions), then the statistic's:
    # none (mean), the worst harm (worst), the value at risk and each injection's excess over it (cvar)
    extra = {"mean": 0, "worst": 1, "cvar": 1 + count}[statistic]
    assigned = entries + count
    total = sensors + assigned + extra
    choice_rows = np.concatenate([rows, np.arange(count)])
    choice_columns = sensors + np.arange(assigned)
    each_once = coo_matrix((np.ones(assigned), (choice_rows, choice_columns)), shape=(count, total))
    within = coo_matrix((np.concatenate([np.ones(entries), -np.ones(entries)]),
                         (np.concatenate([np.arange(entries), np.arange(entries)]),
                          np.concatenate([sensors + np.arange(entries), columns]))), shape=(entries, total))
    at_most_k = csr_matrix((np.ones(sensors), (np.zeros(sensors, dtype=np.int64), np.arange(sensors))),
                           shape=(1, total))
    constraints = [LinearConstraint(csr_matrix(each_once), 1, 1), LinearConstraint(at_most_k, 0, k)]
    if entries:
        constraints.append(LinearConstraint(csr_matrix(within), -np.inf, 0))
    cost = np.zeros(total)
    upper = np.concatenate([np.ones(sensors + assigned), np.full(extra, np.inf)])
    # each injection's harm, as its assignment's fractions make it
    injection_harm = coo_matrix((np.concatenate([harm, undetected]), (choice_rows, choice_columns)),
                                shape=(count, total)).tocsr()
    if statistic == "mean":
        cost[sensors:sensors + assigned] = np.concatenate([harm, undetected]) / count
    elif statistic == "worst":  # worst >= every injection's harm
        cost[-1] = 1.0
        worst = csr_matrix((np.ones(count), (np.arange(count), np.full(count, total - 1))), shape=(count, total))
        constraints.append(LinearConstraint(worst - injection_harm, 0, np.inf))
    else:  # value at risk + the mean excess over it / (1 - alpha): excess_i >= harm_i - value at risk
        at_risk = sensors + assigned
        cost[at_risk] = 1.0
        cost[at_risk + 1:] = 1.0 / ((1 - cvar_alpha) * count)
        excess = hstack([csr_matrix((count, at_risk)), csr_matrix(np.ones((count, 1))),
                         csr_matrix((np.ones(count), (np.arange(count), np.arange(count))), shape=(count, count))])
        constraints.append(LinearConstraint(csr_matrix(excess) - injection_harm, 0, np.inf))
    integrality = np.concatenate([np.ones(sensors), np.zeros(assigned + extra)])
    solved = milp(cost, constraints=constraints, integrality=integrality, bounds=Bounds(0, upper),
                  options={"time_limit": time_limit_s, "disp": False})
    if solved.x is None:  # stopped before any integer solution: the greedy's (of the mean), with the better bound
        return _greedy_instead(matrix, k, objective, statistic, cvar_alpha,
                               f"greedy (the MIP found no solution in {time_limit_s:g} s: {solved.message})")
    chosen = [int(sensor) for sensor in np.flatnonzero(solved.x[:sensors] > 0.5)]
    value = _value(matrix, column, chosen, statistic, cvar_alpha)
    proven = solved.status == 0
    bound = value
    if not proven:  # the time limit stopped the MIP: the better of its best and the greedy's, the better bound
        fallback = _greedy_instead(matrix, k, objective, statistic, cvar_alpha, "")
        bound = max(float(getattr(solved, "mip_dual_bound", None) or 0.0), fallback.bound)
        if fallback.value < value:
            chosen, value = matrix.sensor_index(fallback.sensors), fallback.value
    method = "mip" if proven else f"mip (stopped at {time_limit_s:g} s; the better of its best and the greedy's)"
    return Placement([matrix.sensors[sensor] for sensor in chosen], objective, method, value, min(bound, value),
                     matrix.values(chosen, cvar_alpha), proven, statistic, cvar_alpha)


def _greedy_instead(matrix: ImpactMatrix, k: int, objective: str, statistic: str, cvar_alpha: float,
                    method: str) -> Placement:
    """The greedy's placement (of the mean), valued by ``statistic``; its bound holds for the mean only."""
    placement = greedy(matrix, k, objective)
    if statistic != "mean":
        chosen = matrix.sensor_index(placement.sensors)
        placement.value = _value(matrix, matrix.objective(objective), chosen, statistic, cvar_alpha)
        placement.bound, placement.statistic, placement.cvar_alpha = 0.0, statistic, cvar_alpha
        placement.values = matrix.values(chosen, cvar_alpha)
    placement.method = method or placement.method
    return placement


def brute_force(matrix: ImpactMatrix, k: int, objective: str = "z1_s", statistic: str = "mean",
                cvar_alpha: float = CVAR_ALPHA) -> tuple[float, tuple[int, ...]]:
    """Every k-subset's harm (its statistic): the best (small candidate sets only)."""
    column = matrix.objective(objective)
    return min((_value(matrix, column, subset, statistic, cvar_alpha), subset)
               for subset in itertools.combinations(range(len(matrix.sensors)), k))


def trade_off(matrix: ImpactMatrix, ks: Iterable[int], objective: str = "z1_s", method: str = "greedy",
              statistic: str = "mean", cvar_alpha: float = CVAR_ALPHA) -> pd.DataFrame:
    """The placement's objective values over k (one row per k)."""
    if method not in METHODS:
        raise InputError(f"method {method!r}: one of {', '.join(METHODS)}")
    rows = []
    for k in ks:
        placement = (mip(matrix, k, objective, statistic=statistic, cvar_alpha=cvar_alpha) if method == "mip"
                     else greedy(matrix, k, objective, statistic))
        rows.append({"k": k, "sensors": " ".join(placement.sensors), "bound": placement.bound, **placement.values})
    return pd.DataFrame(rows)


def _check_statistic(statistic: str, cvar_alpha: float) -> None:
    if statistic not in STATISTICS:
        raise InputError(f"statistic {statistic!r}: one of {', '.join(STATISTICS)}")
    if not isinstance(cvar_alpha, (int, float)) or isinstance(cvar_alpha, bool) or not 0 <= cvar_alpha < 1:
        raise InputError(f"cvar_alpha: a share from 0 up to (not including) 1, such as 0.95, not {cvar_alpha!r}")


def _check_k(matrix: ImpactMatrix, k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(matrix.sensors):
        raise InputError(f"k: a whole number of sensors from 1 to the {len(matrix.sensors)} candidates, not {k!r}")
