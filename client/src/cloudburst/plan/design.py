"""A design study planned on the client: the scenario's ``study: {type: design}`` section checked against the model,
and what turns a design (one option index per decision pipe) into the alteration sets a round runs and into its
cost. Nothing here talks to the cluster; ``cloudburst.api.design`` runs the search.

    study:
      type: design
      groups:                        # the decision pipes, each group with its table of options
        - pipes: "*"                 # or a list of pipe IDs
          options:                   # per option: diameter_mm (or diameter_in) and cost_per_m (> 0)
            - {diameter_in: 12, cost_per_m: 45.726}
            - {diameter_in: 16, cost_per_m: 70.4}
          keep: false                # true: option "keep" (the pipe as it is, no cost) comes first
          duplicate: false           # true: an option lays a new pipe beside the existing one (Hazen-Williams)
      loadings:                      # default: one, the model as it is
        - {name: peak, demand_multiplier: 1.0}
        - {name: fire, fire_flows: [{node: "12", flow_lps: 50, start_s: 0}]}
      pressure:
        min_m: 30                    # a number, or per junction: {"*": 77.7, "16": 79.2}
        max_m: null                  # optional, likewise
        nodes: "*"                   # the junctions the limits apply to
      objectives: [cost]             # or [cost, resilience] / [cost, deficit]: a Pareto front
      optimizer: {algorithm: ga, population: 100, evaluations: 20000, seed: 1}

Pressures are the least (and greatest) over the run's report times at each junction, for every loading. A design is
feasible when every limit holds under every loading; ``deficit`` is the worst shortfall below ``min_m`` (metres).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import wntr

from cloudburst.errors import InputError
from cloudburst.plan.ids import checked_ids

DESIGN = "design"
ALGORITHMS = {1: ("ga",), 2: ("nsga2",)}      # per number of objectives, the first is the default
SECOND_OBJECTIVES = ("resilience", "deficit")
INCH_M = 0.0254
# Hazen-Williams as EPANET writes it (head loss ~ D^-4.871 Q^1.852): flow ~ D^(4.871/1.852), so two parallel pipes of
# the same length and C carry what one pipe carries whose D^2.63 is the sum of theirs.
HAZEN_WILLIAMS_EXPONENT = 4.871 / 1.852
DEFAULT_POPULATION = 100
DEFAULT_EVALUATIONS = 20_000
MAX_EVALUATIONS = 10_000_000


@dataclass(frozen=True)
class Option:
    diameter_m: float
    cost_per_m: float


@dataclass(frozen=True)
class Group:
    pipes: list[str]
    options: list[Option]
    keep: bool = False
    duplicate: bool = False

    @property
    def choices(self) -> int:
        return len(self.options) + (1 if self.keep else 0)


@dataclass(frozen=True)
class Loading:
    name: str
    demand_multiplier: float = 1.0
    fire_flows: list[dict[str, Any]] = field(default_factory=list)   # fire_flow alterations, SI

    @property
    def alterations(self) -> list[dict[str, Any]]:
        scaled = [] if self.demand_multiplier == 1.0 else [{"type": "demand_scale", "factor": self.demand_multiplier}]
        return scaled + self.fire_flows


@dataclass(frozen=True)
class Optimizer:
    algorithm: str
    population: int
    evaluations: int
    seed: int


@dataclass(frozen=True)
class DesignStudy:
    """A checked design study: one decision variable per pipe of ``pipes`` (an option index of its group)."""
    groups: list[Group]
    loadings: list[Loading]
    nodes: list[str]                  # the junctions the pressure limits apply to
    min_m: np.ndarray                 # per node of ``nodes``; NaN where no limit
    max_m: np.ndarray
    objectives: list[str]
    optimizer: Optimizer
    pipes: list[str]                  # the decision pipes, in the design vector's order
    group_of: np.ndarray              # per decision pipe, its group's index
    lengths_m: np.ndarray
    existing_m: np.ndarray            # per decision pipe, its diameter in the model
    kind: str = DESIGN

    @property
    def upper(self) -> np.ndarray:
        """Each variable's largest option index."""
        return np.array([self.groups[group].choices - 1 for group in self.group_of], dtype=np.int64)

    @functools.cached_property
    def cost_table(self) -> np.ndarray:
        """Per group and option index, the cost per metre ("keep" costs nothing)."""
        return self._table(lambda option: option.cost_per_m, 0.0)

    @functools.cached_property
    def diameter_table(self) -> np.ndarray:
        """Per group and option index, the diameter in metres (NaN for "keep")."""
        return self._table(lambda option: option.diameter_m, np.nan)

    def pipe_costs(self, designs: np.ndarray) -> np.ndarray:
        """Each design's cost per pipe: length times the chosen option's cost per metre."""
        costs: np.ndarray = self.cost_table[self.group_of, designs] * self.lengths_m
        return costs

    def costs(self, designs: np.ndarray) -> np.ndarray:
        """Each design's cost."""
        costs: np.ndarray = self.pipe_costs(designs).sum(axis=1)
        return costs

    def diameters_m(self, designs: np.ndarray) -> np.ndarray:
        """The diameter each pipe runs with: the option's, the existing one ("keep"), or for a duplicate the single
        pipe that carries what the existing and the new one carry together."""
        chosen = self.diameter_table[self.group_of, designs]
        kept = np.isnan(chosen)
        duplicate = np.array([self.groups[group].duplicate for group in self.group_of])
        equivalent = (self.existing_m ** HAZEN_WILLIAMS_EXPONENT
                      + np.where(kept, 0.0, chosen) ** HAZEN_WILLIAMS_EXPONENT) ** (1 / HAZEN_WILLIAMS_EXPONENT)
        return np.where(kept, self.existing_m, np.where(duplicate, equivalent, chosen))

    def _table(self, value: Any, keep_value: float) -> np.ndarray:
        width = max(group.choices for group in self.groups)
        table = np.full((len(self.groups), width), np.nan)
        for index, group in enumerate(self.groups):
            row = ([keep_value] if group.keep else []) + [value(option) for option in group.options]
            table[index, :len(row)] = row
        return table

    def sets(self, design: np.ndarray) -> list[list[dict[str, Any]]]:
        """A design's alteration sets, one per loading: the pipes' diameters (one alteration per diameter used),
        then the loading's own alterations."""
        diameters = self.diameters_m(design.reshape(1, -1))[0]
        changed = np.flatnonzero(diameters != self.existing_m)
        values, groups = np.unique(diameters[changed], return_inverse=True)
        pipes = [{"type": "pipe_property", "property": "diameter", "value": float(value),
                  "pipes": [self.pipes[index] for index in changed[groups == position]]}
                 for position, value in enumerate(values)]
        return [pipes + loading.alterations for loading in self.loadings]

    def shortfall(self, pressure_min: np.ndarray, pressure_max: np.ndarray | None) -> np.ndarray:
        """Per design (rows: designs x loadings, columns: ``nodes``), the worst metres by which a limit is missed
        under any loading (<= 0: feasible); NaN rows (failed runs) give +inf."""
        rows = pressure_min.shape[0] // len(self.loadings)
        below = (self.min_m - pressure_min).reshape(rows, len(self.loadings), -1)
        worst = np.where(np.isnan(self.min_m), -np.inf, below).max(axis=(1, 2))
        if pressure_max is not None and not np.isnan(self.max_m).all():
            above = (pressure_max - self.max_m).reshape(rows, len(self.loadings), -1)
            worst = np.maximum(worst, np.where(np.isnan(self.max_m), -np.inf, above).max(axis=(1, 2)))
        failed = np.isnan(pressure_min).reshape(rows, -1).any(axis=1)
        return np.where(failed, np.inf, worst)

    def metrics(self) -> list[str]:
        wanted = ["node_pressure_min"] + (["node_pressure_max"] if not np.isnan(self.max_m).all() else [])
        return wanted + (["resilience"] if "resilience" in self.objectives else [])

    @property
    def threshold_m(self) -> float:
        """The pressure resilience counts surplus above: the smallest minimum asked for (0 without one)."""
        limits = self.min_m[~np.isnan(self.min_m)]
        return float(limits.min()) if limits.size else 0.0


def _number(value: Any, where: str, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise InputError(f"{where}: give a {'positive ' if positive else ''}number, not {value!r}")
    return float(value)


def _options(raw: Any, where: str) -> list[Option]:
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: give a list of options, each {{diameter_mm (or diameter_in), cost_per_m}}")
    options = []
    for position, option in enumerate(raw):
        at = f"{where}[{position}]"
        if not isinstance(option, dict) or set(option) - {"diameter_mm", "diameter_in", "cost_per_m"}:
            raise InputError(f"{at}: an option has diameter_mm (or diameter_in) and cost_per_m")
        if ("diameter_mm" in option) == ("diameter_in" in option):
            raise InputError(f"{at}: give one of diameter_mm or diameter_in")
        diameter = (_number(option["diameter_mm"], f"{at}.diameter_mm") / 1000 if "diameter_mm" in option
                    else _number(option["diameter_in"], f"{at}.diameter_in") * INCH_M)
        options.append(Option(diameter, _number(option.get("cost_per_m"), f"{at}.cost_per_m")))
    return options


def _groups(raw: Any, wn: wntr.network.WaterNetworkModel) -> list[Group]:
    if not isinstance(raw, list) or not raw:
        raise InputError("$.study.groups: give a list of groups, each {pipes, options}")
    groups, seen = [], set()
    for position, group in enumerate(raw):
        at = f"$.study.groups[{position}]"
        if not isinstance(group, dict) or set(group) - {"pipes", "options", "keep", "duplicate"}:
            raise InputError(f"{at}: a group has pipes, options, keep and duplicate")
        pipes = checked_ids(group.get("pipes", "*"), wn.pipe_name_list, set(wn.pipe_name_list), f"{at}.pipes", "pipe",
                            '"*" or a list of pipe IDs')
        twice = [pipe for pipe in pipes if pipe in seen]
        if twice:
            raise InputError(f"{at}.pipes: already in an earlier group: {', '.join(twice[:5])}")
        seen.update(pipes)
        duplicate = bool(group.get("duplicate", False))
        if duplicate and wn.options.hydraulic.headloss != "H-W":
            raise InputError(f"{at}.duplicate: a duplicate pipe is counted as one equivalent pipe by Hazen-Williams, "
                             f"and the model uses {wn.options.hydraulic.headloss}")
        groups.append(Group(pipes, _options(group.get("options"), f"{at}.options"), bool(group.get("keep", False)),
                            duplicate))
    return groups


def _loadings(raw: Any, wn: wntr.network.WaterNetworkModel) -> list[Loading]:
    if raw is None:
        return [Loading("base")]
    if not isinstance(raw, list) or not raw:
        raise InputError("$.study.loadings: give a list of loading conditions, each {name, demand_multiplier, "
                         "fire_flows}")
    loadings = []
    for position, loading in enumerate(raw):
        at = f"$.study.loadings[{position}]"
        if not isinstance(loading, dict) or set(loading) - {"name", "demand_multiplier", "fire_flows"}:
            raise InputError(f"{at}: a loading has name, demand_multiplier and fire_flows")
        fires = []
        for number, fire in enumerate(loading.get("fire_flows") or []):
            where = f"{at}.fire_flows[{number}]"
            if not isinstance(fire, dict) or set(fire) - {"node", "flow_lps", "start_s", "end_s"}:
                raise InputError(f"{where}: a fire flow has node, flow_lps, start_s and end_s")
            node = str(fire.get("node"))
            if node not in wn.junction_name_list:
                raise InputError(f"{where}.node: the model has no junction {node}")
            fires.append({"type": "fire_flow", "node": node,
                          "flow_m3s": _number(fire.get("flow_lps"), f"{where}.flow_lps") / 1000,
                          "start_s": int(fire.get("start_s", 0)), "end_s": fire.get("end_s")})
        multiplier = _number(loading.get("demand_multiplier", 1.0), f"{at}.demand_multiplier")
        loadings.append(Loading(str(loading.get("name", f"loading {position}")), multiplier, fires))
    return loadings


def _limits(raw: Any, nodes: list[str], where: str) -> np.ndarray:
    """A limit per node: one number for all, or a mapping of nodes (``"*"`` for the rest) to numbers; NaN: none."""
    limits = np.full(len(nodes), np.nan)
    if raw is None:
        return limits
    values = raw if isinstance(raw, dict) else {"*": raw}
    position = {node: index for index, node in enumerate(nodes)}
    named: dict[int, float] = {}
    for node, value in values.items():
        metres = _number(value, f"{where}[{node!r}]" if isinstance(raw, dict) else where, positive=False)
        if node == "*":
            limits[:] = metres
        elif str(node) in position:
            named[position[str(node)]] = metres
        else:
            raise InputError(f"{where}: {node} is not one of the constrained junctions (pressure.nodes)")
    for index, metres in named.items():
        limits[index] = metres
    return limits


def parse_design(section: dict[str, Any], wn: wntr.network.WaterNetworkModel) -> DesignStudy:
    """The scenario's design study, checked against the model; InputError with one sentence per problem found
    first (nothing is enqueued)."""
    known = {"type", "groups", "loadings", "pressure", "objectives", "optimizer"}
    if set(section) - known:
        raise InputError(f"$.study: a design study has {', '.join(sorted(known))}, not "
                         f"{', '.join(sorted(set(section) - known))}")
    groups = _groups(section.get("groups"), wn)
    loadings = _loadings(section.get("loadings"), wn)
    pressure = section.get("pressure") or {}
    if not isinstance(pressure, dict) or set(pressure) - {"min_m", "max_m", "nodes"}:
        raise InputError("$.study.pressure: give min_m (and max_m) and nodes")
    nodes = pressure.get("nodes", "*")
    nodes = list(wn.junction_name_list) if nodes == "*" else [str(node) for node in nodes]
    unknown = [node for node in nodes if node not in wn.junction_name_list]
    if unknown:
        raise InputError(f"$.study.pressure.nodes: the model has no junction {', '.join(unknown[:5])}")
    min_m = _limits(pressure.get("min_m"), nodes, "$.study.pressure.min_m")
    max_m = _limits(pressure.get("max_m"), nodes, "$.study.pressure.max_m")
    objectives = section.get("objectives", ["cost"])
    if objectives not in (["cost"], *[["cost", second] for second in SECOND_OBJECTIVES]):
        raise InputError(f"$.study.objectives: [cost], [cost, resilience] or [cost, deficit], not {objectives!r}")
    if np.isnan(min_m).all() and (len(objectives) == 1 or objectives[1] == "deficit"):
        raise InputError("$.study.pressure.min_m: give the least pressure a design must keep (metres)")
    if "resilience" in objectives and wn.pump_name_list:
        raise InputError("$.study.objectives: resilience counts no pump power, and the model has pumps")
    optimizer = section.get("optimizer") or {}
    if not isinstance(optimizer, dict) or set(optimizer) - {"algorithm", "population", "evaluations", "seed"}:
        raise InputError("$.study.optimizer: give algorithm, population, evaluations and seed")
    algorithm = optimizer.get("algorithm", ALGORITHMS[len(objectives)][0])
    if algorithm not in ALGORITHMS[len(objectives)]:
        raise InputError(f"$.study.optimizer.algorithm: {len(objectives)} objective(s) take "
                         f"{' or '.join(ALGORITHMS[len(objectives)])}, not {algorithm!r}")
    population = int(_number(optimizer.get("population", DEFAULT_POPULATION), "$.study.optimizer.population"))
    evaluations = int(_number(optimizer.get("evaluations", DEFAULT_EVALUATIONS), "$.study.optimizer.evaluations"))
    if not population >= 4 or not population <= evaluations <= MAX_EVALUATIONS:
        raise InputError(f"$.study.optimizer: population at least 4 and evaluations from the population up to "
                         f"{MAX_EVALUATIONS:,}")
    seed = int(_number(optimizer.get("seed", 1), "$.study.optimizer.seed", positive=False))
    pipes = [pipe for group in groups for pipe in group.pipes]
    group_of = np.array([index for index, group in enumerate(groups) for _ in group.pipes], dtype=np.int64)
    lengths = np.array([wn.get_link(pipe).length for pipe in pipes])
    existing = np.array([wn.get_link(pipe).diameter for pipe in pipes])
    return DesignStudy(groups, loadings, nodes, min_m, max_m, list(objectives),
                       Optimizer(algorithm, population, evaluations, seed), pipes, group_of, lengths, existing)
