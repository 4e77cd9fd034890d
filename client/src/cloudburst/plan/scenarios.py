"""Scenario files: an ensemble described once, drawn into one job document per member (pure, reproducible).

    ensemble: net3-demand          # name: letters, digits, . _ -
    members: 200                   # count (a sweep sets it from the model instead)
    seed: 2024                     # the same seed and file give the same values
    sampling: lhs                  # random (default), lhs (Latin hypercube) or sobol, over all drawn values
    start_time_utc: 2024-06-01T00:00:00Z   # dates the results and starts the model's clock at that time of day
    start_every_s: 3600            # optional: member i starts at start_time_utc + i * start_every_s
    run: {duration_s: 86400}       # simulator settings shared by every member (job schema "run")
    alterations:                   # templates: any number may be a distribution
      - type: demand_scale
        factor: {distribution: truncnorm, mean: 1.0, std: 0.3, low: 0, high: 3}
      - type: pipe_property
        property: roughness
        factor: {distribution: lognormal, mean: 0.0, sigma: 0.1}
    sweep:                         # optional: one member per element
      over: pipes                  # pipes, junctions, pumps, tanks, valves or nodes; ids: [..] to restrict
      alteration: {type: link_status, status: closed}   # the element goes into link / node / pump / tank
    output: {...}                  # job schema "output" (series, summary, statistics), shared by every member
    batch: {seconds: 3}            # optional: members per queue job, sized to run about this long (or {members: N})
    budget: {values: 2e9, bytes: 1e10}   # optional: the whole ensemble's stored series values and bytes
    study: {type: fire_flow, ...}  # optional: a study over the members instead of their series (cloudburst.studies)
    adaptive: {targets: [...]}     # optional: enqueue in waves until the targets are precise (cloudburst.adaptive)
    sensitivity: {base_samples: 256, metric: pressure_min}  # optional: a Saltelli design (cloudburst.sensitivity)

Distributions and designs: ``cloudburst.sampling``. Every member is checked against the schema and the model
(``cloudburst.checks``) before the ensemble is returned, so nothing is uploaded or enqueued for a bad one.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import wntr
import yaml

from cloudburst.engine.checks import budget_problems, job_problems, planned_points
from cloudburst.errors import InputError
from cloudburst.plan import sampling
from cloudburst.plan.sensitivity import DESIGN as SALTELLI
from cloudburst.plan.sensitivity import members_for, parse_sensitivity
from cloudburst.schema.defaults import DEFAULT_START, ENSEMBLE_PATTERN
from cloudburst.schema.job import SCHEMA, parse_job, parse_start

KNOWN_KEYS = ("ensemble", "members", "seed", "sampling", "start_time_utc", "start_every_s", "run", "alterations",
              "sweep", "output", "batch", "budget", "study", "adaptive", "sensitivity")
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


@dataclass(frozen=True)
class Ensemble:
    name: str
    seed: int
    documents: list[dict[str, Any]]
    series_values: int = 0  # every member's series values together (what the budget counts)


def read_scenario_file(path: Path) -> dict[str, Any]:
    """A scenario file's content, JSON-safe (YAML's timestamps become ISO strings)."""
    if not path.is_file():
        raise InputError(f"{path}: no such scenario file")
    text = path.read_text()
    if path.suffix.lower() == ".inp" or text.lstrip().startswith("["):
        raise InputError(f"{path} looks like an EPANET model, not a scenario: give the model (.inp) first, "
                         "then the scenario (.yml)")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"{path} is not valid YAML: {error}") from None
    content: dict[str, Any] = json.loads(json.dumps(document, default=lambda value: value.isoformat()))
    return content


@dataclass(frozen=True)
class _Plan:
    """A scenario read and checked, before any value is drawn."""
    name: str
    seed: int
    design: str
    first_start: datetime
    every_s: int
    templates: list[Any]
    specs: list[sampling.Spec]
    sweep_ids: list[str] | None
    count: int
    dated: bool = False  # the scenario (or the submission) dates its members: each starts at its time of day


def generate(scenario: dict[str, Any], model: wntr.network.WaterNetworkModel, model_input: dict[str, Any],
             name: str | None = None, start: datetime | str | None = None) -> Ensemble:
    """Every member's job document, checked against the schema and the model; raises InputError.

    name: the ensemble's ID (default: the scenario's ``ensemble``); the client makes one per submission.
    start: the first member's start time (default: the scenario's ``start_time_utc``).
    """
    plan = _plan(scenario, model, name, start)
    drawn = sampling.draw_all(plan.specs, plan.count, plan.design, plan.seed)
    base_run = dict(scenario.get("run") or {})
    fixed = base_run.get("alterations", [])
    documents = []
    for member in range(plan.count):
        alterations = _substituted(plan.templates, "$.alterations", drawn, member)
        if plan.sweep_ids is not None:
            alterations.append(_swept(scenario["sweep"]["alteration"], plan.sweep_ids[member]))
        member_start = plan.first_start + timedelta(seconds=member * plan.every_s)
        clock = {"clock_start_s": _time_of_day(member_start)} if plan.dated and "clock_start_s" not in base_run else {}
        documents.append({"schema": SCHEMA, "ensemble": plan.name, "member": member, "seed": plan.seed,
                          "input": {**model_input, "start_time_utc": member_start.isoformat()},
                          "run": {**base_run, **clock, "alterations": fixed + alterations},
                          "output": scenario.get("output") or {}})
    values = _check_members(documents, model, {spec.path: spec for spec in plan.specs}, len(fixed))
    problems = budget_problems(values, len(documents), scenario.get("budget"))
    if problems:
        raise InputError(problems)
    return Ensemble(name=plan.name, seed=plan.seed, documents=documents, series_values=values)


def _time_of_day(moment: datetime) -> int:
    """Seconds after midnight of a member's start (UTC, read as the model's clock)."""
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _plan(scenario: Any, model: wntr.network.WaterNetworkModel, name: str | None,
          start: datetime | str | None) -> _Plan:
    """The scenario's settings, every problem with them raised at once as an InputError."""
    if not isinstance(scenario, dict):
        raise InputError("$: a scenario file holds a mapping (ensemble, members, seed, alterations ...)")
    problems = [f"$.{key}: is not a known field" for key in sorted(set(scenario) - set(KNOWN_KEYS))]
    name = name or scenario.get("ensemble")
    if not isinstance(name, str) or not re.fullmatch(ENSEMBLE_PATTERN, name):
        problems.append("$.ensemble: give a name of letters, digits, '.', '_' or '-' (up to 128)")
    seed = scenario.get("seed", 0)
    if not _whole(seed, 0):
        problems.append("$.seed: must be a whole number >= 0")
    design = scenario.get("sampling", "random")
    if design not in sampling.DESIGNS:
        problems.append(f"$.sampling: unknown design {design!r}; known: {', '.join(sampling.DESIGNS)}")
    first_start, start_problems = _start(start if start is not None else scenario.get("start_time_utc"))
    problems += start_problems
    every = scenario.get("start_every_s", 0)
    if not _whole(every, 0):
        problems.append("$.start_every_s: must be a whole number of seconds >= 0")
    templates = scenario.get("alterations", [])
    if not isinstance(templates, list):
        problems.append("$.alterations: must be a list")
        templates = []
    found: list[tuple[str, dict[str, Any]]] = []
    sampling.find_specs(templates, "$.alterations", found)
    problems += [problem for path, spec in found for problem in sampling.spec_problems(spec, path)]
    sweep_ids: list[str] | None = None
    specs = sampling.columns(found)
    factors = len({spec.column for spec in specs})
    if scenario.get("sensitivity") is not None:
        try:
            sensitivity_plan = parse_sensitivity(scenario["sensitivity"])
        except InputError as refused:
            problems += refused.problems
        else:
            if scenario.get("members") is not None or scenario.get("sweep") is not None:
                problems.append("$.members: a sensitivity study sets the member count (base_samples x (factors + 2))")
            if factors == 0:
                problems.append("$.sensitivity: the scenario draws no value from a distribution: there is no factor")
            design = SALTELLI
    elif scenario.get("sweep") is not None:
        sweep_ids, sweep_problems = _sweep_elements(scenario["sweep"], model)
        problems += sweep_problems
    elif not _whole(scenario.get("members"), 1):
        problems.append(f"$.members: must be a whole number >= 1 (got {scenario.get('members')!r})")
    if problems:
        raise InputError(problems)
    if scenario.get("sensitivity") is not None:
        count = members_for(sensitivity_plan.base_samples, factors)
    else:
        count = len(sweep_ids) if sweep_ids is not None else scenario["members"]
    dated = start is not None or scenario.get("start_time_utc") is not None or bool(every)
    assert isinstance(name, str)  # refused above otherwise
    return _Plan(name, seed, design, first_start, every, templates, specs, sweep_ids, count, dated)


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _start(value: Any) -> tuple[datetime, list[str]]:
    try:
        return parse_start(value, "$.start_time_utc"), []
    except InputError as error:
        return DEFAULT_START, error.problems


def _substituted(value: Any, path: str, drawn: dict[str, list[Any]], member: int) -> Any:
    """The template with each distribution spec replaced by this member's value."""
    if sampling.is_spec(value):
        return drawn[path][member]
    if isinstance(value, dict):
        return {key: _substituted(item, f"{path}.{key}", drawn, member) for key, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item, f"{path}[{index}]", drawn, member) for index, item in enumerate(value)]
    return value


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
    field = ELEMENT_FIELDS.get(str(template.get("type")), "node")
    return {**template, field: [element] if field in ("pipes", "nodes") else element}


def _check_members(documents: list[dict[str, Any]], model: wntr.network.WaterNetworkModel,
                   specs: dict[str, sampling.Spec], fixed: int) -> int:
    """The one check (``job_problems``) for every member; reports the first member with problems, how many
    others have some, and which distribution drew a value out of range. Returns the series values asked for."""
    failing: list[tuple[int, list[str]]] = []
    values = 0
    for document in documents:
        try:
            job = parse_job(document)
            problems = job_problems(job, model)
            values += planned_points(job.output, job.run, model)
        except InputError as error:
            problems = error.problems
        if problems:
            failing.append((document["member"], problems))
    if not failing:
        return values
    member, problems = failing[0]
    sentences = [f"member {member}: {problem}{_drawn_hint(problem, specs, fixed)}" for problem in problems]
    if len(failing) > 1:
        sentences.append(f"{len(failing) - 1} more of the {len(documents)} members have problems")
    raise InputError(sentences)


def _drawn_hint(problem: str, specs: dict[str, sampling.Spec], fixed: int) -> str:
    """Where a problem is at a drawn value, the distribution it came from and how to keep draws in range."""
    match = re.match(r"\$\.run\.alterations\[(\d+)\]([^:]*):", problem)
    if not match or int(match.group(1)) < fixed:
        return ""
    spec = specs.get(f"$.alterations[{int(match.group(1)) - fixed}]{match.group(2)}")
    if spec is None:
        return ""
    return (f" (drawn from {sampling.describe(spec.parameters)}; a bounded distribution such as truncnorm "
            "with low and high keeps every draw in range)")


def factor_names(scenario: dict[str, Any]) -> list[str]:
    """The scenario's factors, one per design column: its shared draw's name, or the path of the value drawn."""
    found: list[tuple[str, dict[str, Any]]] = []
    sampling.find_specs(scenario.get("alterations", []), "$.alterations", found)
    names: dict[int, str] = {}
    for spec in sampling.columns(found):
        names.setdefault(spec.column, spec.parameters.get("draw") or spec.path.removeprefix("$."))
    return [names[column] for column in sorted(names)]
