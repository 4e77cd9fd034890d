"""A calibration study planned on the client: the scenario's ``study: {type: calibration}`` section checked against
the model and the run, and what turns a candidate (one factor per unknown) into an alteration set and its
simulated observations into the objective. Nothing here talks to the cluster; ``cloudburst.api.calibration`` runs
the search.

    study:
      type: calibration
      roughness:                       # a factor on the model's roughness per pipe group
        - {group: old-cast-iron, pipes: ["10", "11"], low: 0.5, high: 1.5}
        - {group: rest, pipes: "*"}    # "*": every pipe in no earlier group
      roughness_csv: pipe-groups.csv   # or/and groups from a CSV: pipe, group (low/high default 0.5/1.5)
      demand:                          # a factor on base demands per zone (junctions) or per pattern
        - {group: north, nodes: ["J1", "J2"], low: 0.7, high: 1.3}
        - {group: residential, pattern: "1"}
      observations: observed.csv       # element, attribute, time, value[, weight]
      objective: squared               # or absolute: sum of weight x error^2 (or |error|)
      optimizer: {algorithm: de, population: 20, evaluations: 2000, seed: 1, polish: true}

Observations: ``attribute`` pressure (m), head (m), level (m, a tank's) at nodes, or flow (L/s) in links; ``time``
seconds from the start or ``HH:MM``, a report time of the run. A file named in the section is read when the study
is started, and its rows kept in the study's record (a resumed study needs no file).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import wntr

from cloudburst.errors import InputError

CALIBRATION = "calibration"
ATTRIBUTES = {"pressure": ("node", "pressure", 1.0), "head": ("node", "head", 1.0),
              "level": ("node", "pressure", 1.0), "flow": ("link", "flowrate", 0.001)}  # kind, result, to SI
OBJECTIVES = ("squared", "absolute")
ALGORITHMS = ("de",)
DEFAULT_RANGE = (0.5, 1.5)
DEFAULT_POPULATION = 15    # scipy's popsize: candidates per generation = popsize x unknowns
DEFAULT_EVALUATIONS = 3000
FLAT = 1e-6                # an unknown whose +-5 % moves no simulated observation by more than this is not identifiable


@dataclass(frozen=True)
class Unknown:
    kind: str            # roughness or demand
    group: str
    members: list[str]   # pipes, or junctions
    pattern: str | None  # demand: the pattern whose demands it scales (members then every junction)
    low: float
    high: float

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.group}"

    def alteration(self, factor: float) -> dict[str, Any]:
        if self.kind == "roughness":
            return {"type": "pipe_property", "property": "roughness", "pipes": self.members, "factor": factor}
        scaled: dict[str, Any] = {"type": "demand_scale", "factor": factor, "nodes": self.members}
        if self.pattern is not None:
            scaled = {**scaled, "nodes": "*", "pattern": self.pattern}
        return scaled


@dataclass(frozen=True)
class Optimizer:
    algorithm: str
    population: int
    evaluations: int     # the evolution's budget; the polish's own evaluations come on top
    seed: int
    polish: bool = True  # scipy's L-BFGS-B from the best candidate at the end (its gradient by finite differences)


@dataclass(frozen=True)
class CalibrationStudy:
    unknowns: list[Unknown]
    observe: tuple[tuple[str, str, str, int], ...]   # the round's observed columns: kind, result, id, time_s
    observed: np.ndarray                             # per observation, the measured value (SI)
    weights: np.ndarray
    labels: list[tuple[str, str, int]]               # per observation: element, attribute as given, time_s
    objective: str
    optimizer: Optimizer
    kind: str = CALIBRATION

    @property
    def bounds(self) -> list[tuple[float, float]]:
        return [(unknown.low, unknown.high) for unknown in self.unknowns]

    def sets(self, candidate: np.ndarray) -> list[dict[str, Any]]:
        return [unknown.alteration(float(factor)) for unknown, factor in zip(self.unknowns, candidate)]

    def objectives(self, simulated: np.ndarray) -> np.ndarray:
        """Per row of simulated observations, the weighted sum of squared (or absolute) errors; +inf for a run that
        failed or did not reach an observation's time."""
        errors = simulated - self.observed
        terms = errors ** 2 if self.objective == "squared" else np.abs(errors)
        total = (terms * self.weights).sum(axis=1)
        return np.where(np.isnan(total), np.inf, total)


def _number(value: Any, where: str, positive: bool = True) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: give a number, not {value!r}") from None
    if not math.isfinite(number) or (positive and number <= 0):
        raise InputError(f"{where}: give a {'positive ' if positive else ''}number, not {value!r}")
    return number


def _range(entry: dict[str, Any], where: str) -> tuple[float, float]:
    low = _number(entry.get("low", DEFAULT_RANGE[0]), f"{where}.low")
    high = _number(entry.get("high", DEFAULT_RANGE[1]), f"{where}.high")
    if not low < high:
        raise InputError(f"{where}: low ({low:g}) must be below high ({high:g})")
    return low, high


def read_rows(source: Any, where: str, base_dir: Path | None) -> list[dict[str, str]]:
    """A CSV file's rows (a path, relative to the scenario's folder), or the rows already inlined (a list)."""
    if isinstance(source, list):
        return [{str(key): str(value) for key, value in row.items()} for row in source]
    if not isinstance(source, str):
        raise InputError(f"{where}: give a CSV file's path")
    path = Path(source) if base_dir is None or Path(source).is_absolute() else base_dir / source
    try:
        with path.open(newline="") as handle:
            return [{key.strip(): (value or "").strip() for key, value in row.items() if key is not None}
                    for row in csv.DictReader(handle)]
    except OSError as error:
        raise InputError(f"{where}: cannot read {path} ({error.strerror})") from None


def inline_files(section: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """The section with its CSV files' rows in place of their paths, so the study's record holds everything."""
    inlined = dict(section)
    for key in ("observations", "roughness_csv"):
        if key in inlined:
            inlined[key] = read_rows(inlined[key], f"$.study.{key}", base_dir)
    return inlined


def _roughness(section: dict[str, Any], wn: wntr.network.WaterNetworkModel) -> list[Unknown]:
    unknowns: list[Unknown] = []
    taken: set[str] = set()
    entries = list(section.get("roughness") or [])
    if "roughness_csv" in section:
        groups: dict[str, list[str]] = {}
        for number, row in enumerate(read_rows(section["roughness_csv"], "$.study.roughness_csv", None), start=2):
            if not row.get("pipe") or not row.get("group"):
                raise InputError(f"$.study.roughness_csv line {number}: give pipe and group")
            groups.setdefault(row["group"], []).append(row["pipe"])
        entries += [{"group": group, "pipes": pipes} for group, pipes in groups.items()]
    for position, entry in enumerate(entries):
        where = f"$.study.roughness[{position}]"
        if not isinstance(entry, dict) or set(entry) - {"group", "pipes", "low", "high"}:
            raise InputError(f"{where}: a group has group, pipes, low and high")
        pipes = entry.get("pipes", "*")
        if pipes == "*":
            pipes = [pipe for pipe in wn.pipe_name_list if pipe not in taken]
        pipes = [str(pipe) for pipe in pipes]
        unknown = [pipe for pipe in pipes if pipe not in wn.pipe_name_list]
        if unknown:
            raise InputError(f"{where}.pipes: the model has no pipe {', '.join(unknown[:5])}")
        twice = [pipe for pipe in pipes if pipe in taken]
        if twice or not pipes:
            raise InputError(f"{where}.pipes: " + (f"already in an earlier group: {', '.join(twice[:5])}" if twice
                                                    else "no pipe left for this group"))
        taken.update(pipes)
        unknowns.append(Unknown("roughness", str(entry.get("group", f"group {position}")), pipes, None,
                                *_range(entry, where)))
    return unknowns


def _demand(section: dict[str, Any], wn: wntr.network.WaterNetworkModel) -> list[Unknown]:
    unknowns = []
    for position, entry in enumerate(section.get("demand") or []):
        where = f"$.study.demand[{position}]"
        if not isinstance(entry, dict) or set(entry) - {"group", "nodes", "pattern", "low", "high"} \
                or ("nodes" in entry) == ("pattern" in entry):
            raise InputError(f"{where}: a zone has group, nodes (or pattern), low and high")
        if "pattern" in entry:
            pattern = str(entry["pattern"])
            if pattern not in wn.pattern_name_list:
                raise InputError(f"{where}.pattern: the model has no pattern {pattern}")
            unknowns.append(Unknown("demand", str(entry.get("group", pattern)), [], pattern, *_range(entry, where)))
            continue
        nodes = [str(node) for node in entry["nodes"]]
        unknown = [node for node in nodes if node not in wn.junction_name_list]
        if unknown or not nodes:
            raise InputError(f"{where}.nodes: the model has no junction {', '.join(unknown[:5]) or '(none given)'}")
        unknowns.append(Unknown("demand", str(entry.get("group", f"zone {position}")), nodes, None,
                                *_range(entry, where)))
    return unknowns


def _time(value: str, where: str) -> int:
    if ":" in value:
        hours, _, minutes = value.partition(":")
        return int(_number(hours, where, positive=False) * 3600 + _number(minutes, where, positive=False) * 60)
    return int(_number(value, where, positive=False))


def _observations(rows: list[dict[str, str]], wn: wntr.network.WaterNetworkModel, duration_s: int,
                  report_step_s: int) -> tuple[list[tuple[str, str, str, int]], np.ndarray, np.ndarray,
                                               list[tuple[str, str, int]]]:
    observe, values, weights, labels = [], [], [], []
    if not rows:
        raise InputError("$.study.observations: no observations (element, attribute, time, value[, weight])")
    for number, row in enumerate(rows, start=2):
        where = f"$.study.observations line {number}"
        element, attribute = row.get("element", ""), row.get("attribute", "")
        if attribute not in ATTRIBUTES:
            raise InputError(f"{where}: attribute {attribute!r}: one of {', '.join(ATTRIBUTES)}")
        kind, result, to_si = ATTRIBUTES[attribute]
        names = wn.node_name_list if kind == "node" else wn.link_name_list
        if element not in names or (attribute == "level" and element not in wn.tank_name_list):
            what = "tank" if attribute == "level" else kind
            raise InputError(f"{where}: the model has no {what} {element!r}")
        time_s = _time(row.get("time", ""), f"{where}: time")
        if time_s > duration_s or time_s % report_step_s:
            raise InputError(f"{where}: time {time_s} s is not a report time of the run (every {report_step_s} s "
                             f"up to {duration_s} s)")
        observe.append((kind, result, element, time_s))
        values.append(_number(row.get("value"), f"{where}: value", positive=False) * to_si)
        weights.append(_number(row.get("weight") or 1.0, f"{where}: weight"))
        labels.append((element, attribute, time_s))
    return observe, np.array(values), np.array(weights), labels


def parse_calibration(section: dict[str, Any], wn: wntr.network.WaterNetworkModel,
                      run: dict[str, Any] | None) -> CalibrationStudy:
    """The scenario's calibration study (its files already inlined: ``inline_files``), checked against the model
    and the run; InputError with one sentence for the first problem (nothing is enqueued)."""
    known = {"type", "roughness", "roughness_csv", "demand", "observations", "objective", "optimizer"}
    if set(section) - known:
        raise InputError(f"$.study: a calibration study has {', '.join(sorted(known))}, not "
                         f"{', '.join(sorted(set(section) - known))}")
    unknowns = _roughness(section, wn) + _demand(section, wn)
    if not unknowns:
        raise InputError("$.study: give the unknowns: roughness groups (roughness, roughness_csv) or demand zones")
    duration = int((run or {}).get("duration_s", wn.options.time.duration))
    step = int((run or {}).get("report_step_s", wn.options.time.report_timestep)) or 3600
    observe, observed, weights, labels = _observations(
        read_rows(section.get("observations"), "$.study.observations", None), wn, duration, step)
    objective = section.get("objective", "squared")
    if objective not in OBJECTIVES:
        raise InputError(f"$.study.objective: squared or absolute, not {objective!r}")
    optimizer = section.get("optimizer") or {}
    if not isinstance(optimizer, dict) or set(optimizer) - {"algorithm", "population", "evaluations", "seed",
                                                            "polish"}:
        raise InputError("$.study.optimizer: give algorithm, population, evaluations, seed and polish")
    algorithm = optimizer.get("algorithm", "de")
    if algorithm not in ALGORITHMS:
        raise InputError(f"$.study.optimizer.algorithm: de (scipy's differential_evolution), not {algorithm!r}")
    population = int(_number(optimizer.get("population", DEFAULT_POPULATION), "$.study.optimizer.population"))
    evaluations = int(_number(optimizer.get("evaluations", DEFAULT_EVALUATIONS), "$.study.optimizer.evaluations"))
    seed = int(_number(optimizer.get("seed", 1), "$.study.optimizer.seed", positive=False))
    return CalibrationStudy(unknowns, tuple(observe), observed, weights, labels, objective,
                            Optimizer(algorithm, max(population, 5), evaluations, seed,
                                      bool(optimizer.get("polish", True))))
