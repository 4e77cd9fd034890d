"""Scenario files: an ensemble described once, drawn into one job document per member (pure, reproducible).

    ensemble: net3-demand          # name: letters, digits, . _ -
    members: 200                   # count (a sweep sets it from the model instead)
    seed: 2024                     # the same seed and file give the same values
    run: {duration_s: 86400}       # simulator settings shared by every member (job schema "run")
    alterations:                   # templates: any number may be a distribution
      - type: demand_scale
        factor: {distribution: uniform, low: 0.8, high: 1.2}
      - type: pipe_property
        property: roughness
        factor: {distribution: lognormal, mean: 0.0, sigma: 0.1}
    sweep:                         # optional: one member per element
      over: pipes                  # pipes, junctions, pumps, tanks, valves or nodes; ids: [..] to restrict
      alteration: {type: link_status, status: closed}   # the element goes into link / node / pump / tank
    output: {...}                  # job schema "output" (series, summary), shared by every member

Distributions: uniform (low, high), normal (mean, std), lognormal (mean, sigma: of the log), choice (values,
optional weights). Draws use numpy's PCG64 generator from the seed, member by member, in file order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import wntr

from cloudburst.alterations import problems_with
from cloudburst.job import ENSEMBLE_PATTERN, SCHEMA, JobError, parse_job
from cloudburst.results import series_problems

DISTRIBUTIONS = {
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "lognormal": ("mean", "sigma"),
    "choice": ("values",),
}
SWEEPS = {  # sweep "over" -> (wntr name list, the alteration field that takes the element)
    "pipes": ("pipe_name_list", ("link", "pipes")),
    "pumps": ("pump_name_list", ("pump", "link")),
    "valves": ("valve_name_list", ("link",)),
    "junctions": ("junction_name_list", ("node", "nodes")),
    "tanks": ("tank_name_list", ("tank", "node")),
    "nodes": ("node_name_list", ("node", "nodes")),
}
ELEMENT_FIELDS = {"link_status": "link", "pump_outage": "pump", "tank_level": "tank", "fire_flow": "node",
                  "leak": "node", "contaminant_source": "node", "pipe_property": "pipes", "demand_scale": "nodes"}


class ScenarioError(ValueError):
    """A scenario file that cannot make an ensemble; ``problems`` holds one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Ensemble:
    name: str
    seed: int
    documents: list[dict[str, Any]]


def _distribution_problems(value: Any, path: str) -> list[str]:
    if isinstance(value, dict):
        if "distribution" not in value:
            return [p for key, item in value.items() for p in _distribution_problems(item, f"{path}.{key}")]
        kind = value["distribution"]
        if kind not in DISTRIBUTIONS:
            return [f"{path}: unknown distribution {kind!r}; known: {', '.join(DISTRIBUTIONS)}"]
        needed = DISTRIBUTIONS[kind]
        missing = [name for name in needed if name not in value]
        if missing:
            return [f"{path}: distribution {kind} needs {', '.join(missing)}"]
        if kind == "uniform" and not value["low"] < value["high"]:
            return [f"{path}: uniform needs low < high"]
        if kind in ("normal", "lognormal") and not value[needed[1]] > 0:
            return [f"{path}: {kind} needs {needed[1]} > 0"]
        if kind == "choice" and (not isinstance(value["values"], list) or not value["values"]):
            return [f"{path}: choice needs a non-empty list of values"]
        return []
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _distribution_problems(item, f"{path}[{i}]")]
    return []


def _draw(value: Any, rng: np.random.Generator) -> Any:
    if isinstance(value, dict) and "distribution" in value:
        kind = value["distribution"]
        if kind == "uniform":
            return float(rng.uniform(value["low"], value["high"]))
        if kind == "normal":
            return float(rng.normal(value["mean"], value["std"]))
        if kind == "lognormal":
            return float(rng.lognormal(value["mean"], value["sigma"]))
        weights = value.get("weights")
        probabilities = np.asarray(weights, dtype=float) / np.sum(weights) if weights else None
        picked = value["values"][int(rng.choice(len(value["values"]), p=probabilities))]
        return picked.item() if isinstance(picked, np.generic) else picked
    if isinstance(value, dict):
        return {key: _draw(item, rng) for key, item in value.items()}
    if isinstance(value, list):
        return [_draw(item, rng) for item in value]
    return value


def generate(scenario: dict[str, Any], model: wntr.network.WaterNetworkModel, model_input: dict[str, Any],
             name: str | None = None) -> Ensemble:
    """Every member's job document, checked against the schema and the model; raises ScenarioError.

    name: the ensemble's ID (default: the scenario's ``ensemble``); the client makes one per submission.
    """
    if not isinstance(scenario, dict):
        raise ScenarioError(["$: a scenario file holds a mapping (ensemble, members, seed, alterations ...)"])
    problems: list[str] = []
    known = {"ensemble", "members", "seed", "run", "alterations", "sweep", "output"}
    problems += [f"$.{key}: is not a known field" for key in sorted(set(scenario) - known)]
    name = name or scenario.get("ensemble")
    if not isinstance(name, str) or not re.fullmatch(ENSEMBLE_PATTERN, name):
        problems.append("$.ensemble: give a name of letters, digits, '.', '_' or '-' (up to 128)")
    seed = scenario.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append("$.seed: must be a whole number >= 0")
    templates = scenario.get("alterations", [])
    if not isinstance(templates, list):
        problems.append("$.alterations: must be a list")
        templates = []
    for index, template in enumerate(templates):
        problems += _distribution_problems(template, f"$.alterations[{index}]")
    sweep = scenario.get("sweep")
    members = scenario.get("members")
    sweep_ids: list[str] | None = None
    if sweep is not None:
        sweep_ids, sweep_problems = _sweep_elements(sweep, model)
        problems += sweep_problems
    elif not isinstance(members, int) or isinstance(members, bool) or members < 1:
        problems.append(f"$.members: must be a whole number >= 1 (got {members!r})")
    if problems:
        raise ScenarioError(problems)

    rng = np.random.default_rng(seed)
    count = len(sweep_ids) if sweep_ids is not None else members
    base_run = dict(scenario.get("run") or {})
    documents = []
    for member in range(count):
        alterations = [_draw(template, rng) for template in templates]
        if sweep_ids is not None:
            alterations.append(_swept(sweep["alteration"], sweep_ids[member]))
        documents.append({"schema": SCHEMA, "ensemble": name, "member": member, "seed": seed, "input": model_input,
                          "run": {**base_run, "alterations": base_run.get("alterations", []) + alterations},
                          "output": scenario.get("output") or {}})
    _check_members(documents, model)
    return Ensemble(name=name, seed=seed, documents=documents)


def _sweep_elements(sweep: Any, model: wntr.network.WaterNetworkModel) -> tuple[list[str], list[str]]:
    if not isinstance(sweep, dict) or not isinstance(sweep.get("alteration"), dict):
        return [], ["$.sweep: give over (pipes, junctions ...) and an alteration template"]
    over = sweep.get("over")
    if over not in SWEEPS:
        return [], [f"$.sweep.over: unknown element kind {over!r}; known: {', '.join(SWEEPS)}"]
    available = list(getattr(model, SWEEPS[over][0]))
    ids = sweep.get("ids", "*")
    if ids != "*":
        unknown = [element for element in ids if element not in available]
        if unknown:
            return [], [f"$.sweep.ids: the model has no {over} {', '.join(map(str, unknown[:5]))}"]
        available = list(ids)
    if not available:
        return [], [f"$.sweep.over: the model has no {over}"]
    return available, []


def _swept(template: dict[str, Any], element: str) -> dict[str, Any]:
    field = ELEMENT_FIELDS.get(template.get("type"), "node")
    return {**template, field: [element] if field in ("pipes", "nodes") else element}


def _check_members(documents: list[dict[str, Any]], model: wntr.network.WaterNetworkModel) -> None:
    """Schema and model checks for every member: problems are reported for the first member that has them."""
    for document in documents:
        try:
            job = parse_job(document)
            problems = problems_with(job, model) + series_problems(job.output, job.run, model)
        except JobError as error:
            problems = error.problems
        if problems:
            raise ScenarioError([f"member {document['member']}: {problem}" for problem in problems])
