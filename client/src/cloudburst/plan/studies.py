"""Studies: analyses built on many runs each, described by a scenario file's ``study`` section and computed on the
workers as a task set (one task per member and group of elements), their results in the results store.

    study:
      type: fire_flow              # the largest fire flow each hydrant delivers (cloudburst.engine.fireflow)
      hydrants: "*"                # or a list of junction IDs
      start_s: 64800               # when the fire starts, seconds from the run's start
      duration_s: 7200             # how long it must be delivered (default 2 h)
      residual_pressure_m: 14      # at the hydrant (default 14 m, 20 psi)
      system_pressure_m: 14        # everywhere else (default 14 m)

    study:
      type: contamination          # each injection's impacts per candidate sensor (cloudburst.engine.contamination)
      injections: "*"              # every junction; or with_demand, or a list of node IDs
      start_times_s: {every_s: 3600}   # or a list; {every_s, from_s (0), to_s (the run's end - injection_s)}
      sensors: "*"                 # candidate sensor nodes: every junction, or a list
      strength: 479166.67          # and ContaminationSettings' other fields (default: BWSN's case A)
      max_runs: 2000000            # the most quality runs (members x injections x start times) it may take

    study:
      type: segments               # what isolating each valve segment costs (cloudburst.engine.segments)
      valves: {generate: strategic, n: 1, seed: 1}   # or [[link, node], ...] or a CSV file (link, node)
      required_pressure_m: 14      # pressure-driven runs: full demand from here (default 14 m) ...
      minimum_pressure_m: 0        # ... nothing below this (default 0)

The scenario's members are its draws (``members``, ``alterations`` with distributions, ``sampling``): each
member's runs use that member's alterations, so each answer is a distribution over them.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import wntr

from cloudburst.engine.contamination import ContaminationSettings
from cloudburst.engine.fireflow import FireFlowSettings
from cloudburst.engine.segments import Segment, SegmentSettings, segments_of, valve_layer
from cloudburst.engine.warm import solve_seconds
from cloudburst.errors import EpanetError, InputError
from cloudburst.plan.ids import checked_ids
from cloudburst.schema.job import parse_job
from cloudburst.schema.queues import CONTAMINATION, FIRE_FLOW, SEGMENTS, TASK_FUNCTIONS

SEARCH_COMMANDS = {"design": ("design", "design"), "calibration": ("calibrate", "calibrate")}  # command, method
TASK_SECONDS = 3.0         # aim for tasks of about this long
RUNS_PER_ELEMENT = {FIRE_FLOW: 12, SEGMENTS: 1, CONTAMINATION: 1}  # a hydrant's search, an isolation, a quality run
MAX_CONTAMINATION_RUNS = 2_000_000  # a contamination study's default budget of quality runs


@dataclass(frozen=True)
class FireFlowStudy:
    hydrants: list[str]
    settings: FireFlowSettings
    kind: str = FIRE_FLOW

    @property
    def elements(self) -> list[Any]:
        return self.hydrants

    @property
    def end_s(self) -> int:
        return self.settings.start_s + self.settings.duration_s


@dataclass(frozen=True)
class SegmentStudy:
    segments: list[Segment]
    settings: SegmentSettings
    kind: str = SEGMENTS

    @property
    def elements(self) -> list[Any]:
        return [[segment.segment, segment.closes, segment.nodes] for segment in self.segments]

    @property
    def end_s(self) -> int:
        return 0


@dataclass(frozen=True)
class ContaminationStudy:
    injections: list[list[Any]]       # [node, start_s] each
    settings: ContaminationSettings
    sensors: list[str] | str          # candidate sensor nodes, or "*": every junction
    kind: str = CONTAMINATION

    @property
    def elements(self) -> list[Any]:
        return self.injections

    @property
    def end_s(self) -> int:
        return self.settings.duration_s

    def task_settings(self) -> dict[str, Any]:
        return {**asdict(self.settings), "sensors": self.sensors}


Study = FireFlowStudy | SegmentStudy | ContaminationStudy


def task_settings(study: Study) -> dict[str, Any]:
    """The settings every task of the study gets."""
    return study.task_settings() if isinstance(study, ContaminationStudy) else asdict(study.settings)


def parse_study(section: Any, wn: wntr.network.WaterNetworkModel, base_dir: Path | None = None,
                duration_s: int | None = None, members: int = 1) -> Study:
    """The scenario's ``study`` section, checked against the model (and the run's ``duration_s``, when the scenario
    sets one); raises InputError."""
    if isinstance(section, dict) and section.get("type") in SEARCH_COMMANDS:
        command, method = SEARCH_COMMANDS[section["type"]]
        raise InputError(f"$.study: a {section['type']} study is searched from the client, a generation at a time: "
                         f"run it with `cloudburst {command} NAME --model MODEL --scenario SCENARIO` or "
                         f"Client.{method}")
    if not isinstance(section, dict) or section.get("type") not in TASK_FUNCTIONS:
        raise InputError(f"$.study: give type ({', '.join(TASK_FUNCTIONS)}) and its settings (see docs/studies.md)")
    if section["type"] == CONTAMINATION:
        return contamination_study(section, wn, duration_s, members)
    if section["type"] == SEGMENTS:
        raw = {key: value for key, value in section.items() if key not in ("type", "valves")}
        if "valves" not in section:
            raise InputError("$.study.valves: give the valve layer (a list of [link, node], a CSV file, or "
                             "{generate: strategic, n: 1})")
        if (duration_s if duration_s is not None else wn.options.time.duration) == 0:
            raise InputError("$.study: a segments study measures the water not served over the run, and this run is a "
                             "steady-state snapshot (duration 0): set run.duration_s (e.g. 86400) for an extended "
                             "period run")
        return SegmentStudy(segments_of(wn, valve_layer(section["valves"], wn, base_dir)), SegmentSettings.parse(raw))
    raw = {key: value for key, value in section.items() if key not in ("type", "hydrants")}
    hydrants = section.get("hydrants", "*")
    if hydrants == "*":
        hydrants = list(wn.junction_name_list)
    elif not isinstance(hydrants, list) or not hydrants:
        raise InputError('$.study.hydrants: "*" (every junction) or a list of junction IDs')
    hydrants = [str(name) for name in hydrants]
    unknown = [name for name in hydrants if name not in wn.junction_name_list]
    if unknown:
        raise InputError(f"$.study.hydrants: not junctions of the model: {', '.join(unknown[:5])}")
    return FireFlowStudy(hydrants, FireFlowSettings.parse(raw))


def _node_list(value: Any, wn: wntr.network.WaterNetworkModel, where: str, form: str) -> list[str]:
    """A list of node IDs (or "*": every junction), each checked against the model."""
    return checked_ids(value, wn.junction_name_list, set(wn.node_name_list), f"$.study.{where}", "node", form)


def _start_times(value: Any, duration_s: int, injection_s: int) -> list[int]:
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"every_s", "from_s", "to_s"})
        every: Any = value.get("every_s")
        first: Any = value.get("from_s", 0)
        last: Any = value.get("to_s", duration_s - injection_s)
        if unknown or not all(isinstance(v, int) and not isinstance(v, bool) for v in (every, first, last)) \
                or every <= 0 or first < 0 or last < first:
            raise InputError("$.study.start_times_s: {every_s: S, from_s: S, to_s: S} in whole seconds (every_s > 0, "
                             "from_s <= to_s)" + (f"; unknown {', '.join(unknown)}" if unknown else ""))
        return list(range(first, last + 1, every))
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                           for v in value):
        raise InputError("$.study.start_times_s: a list of whole seconds >= 0, or {every_s: S}")
    return sorted(set(value))


def contamination_study(section: dict[str, Any], wn: wntr.network.WaterNetworkModel,
                        duration_s: int | None, members: int = 1) -> ContaminationStudy:
    """A contamination study's section, checked against the model and the run: injection and sensor nodes, start
    times within the run and on the model's pattern periods, the settings, and the number of quality runs."""
    known = {"type", "injections", "start_times_s", "sensors", "max_runs"}
    run_s = duration_s if duration_s is not None else int(wn.options.time.duration)
    if run_s <= 0:
        raise InputError("$.study: a contamination study follows the contaminant through an extended period run, "
                         "and this run is a steady-state snapshot (duration 0): set run.duration_s (e.g. 86400)")
    settings = ContaminationSettings.parse({"duration_s": run_s,
                                            **{key: value for key, value in section.items() if key not in known}})
    injections = section.get("injections", "*")
    if injections == "with_demand":
        nodes = [name for name, junction in wn.junctions()
                 if any(demand.base_value > 0 for demand in junction.demand_timeseries_list)]
    else:
        nodes = _node_list(injections, wn, "injections", '"*" (every junction), with_demand, or a list of node IDs')
    sensors_value = section.get("sensors", "*")
    sensors = "*" if sensors_value == "*" else _node_list(sensors_value, wn, "sensors",
                                                          '"*" (every junction) or a list of node IDs')
    starts = _start_times(section.get("start_times_s", [0]), run_s, settings.injection_s)
    late = [start for start in starts if start >= run_s]
    if late:
        raise InputError(f"$.study.start_times_s: {late[0]} s is past the run's end ({run_s} s): start injections "
                         "within the run")
    step = settings.report_step_s
    off = [start for start in starts if start % step] + ([settings.injection_s] if settings.injection_s % step else [])
    if off:
        raise InputError(f"$.study: injections start and last whole report steps ({step} s, report_step_s): {off[0]} s "
                         "is not one")
    budget = section.get("max_runs", MAX_CONTAMINATION_RUNS)
    runs = members * len(nodes) * len(starts)
    if not isinstance(budget, int) or budget <= 0:
        raise InputError(f"$.study.max_runs: a whole number > 0, not {budget!r}")
    if runs > budget:
        raise InputError(f"$.study: {members:,} member{'s' if members != 1 else ''} x {len(nodes):,} injection nodes "
                         f"x {len(starts):,} start times = {runs:,} quality runs, over the budget of {budget:,} "
                         "(max_runs): give fewer start times (a longer every_s), fewer injection nodes (with_demand, "
                         "or a list), fewer members, or a shorter run")
    return ContaminationStudy([[node, start] for start in starts for node in nodes], settings, sensors)


def elements_per_task(data: bytes, wn: wntr.network.WaterNetworkModel, member: dict[str, Any], study: Study) -> int:
    """Hydrants or segments per task for tasks of about TASK_SECONDS, by one timed run here of the unaltered model
    (up to the end of the fire for a fire-flow study)."""
    run = parse_job(member).run
    run = run.model_copy(update={"alterations": [], "duration_s": max(run.duration_s or 0, study.end_s) or None})
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.inp"
        path.write_bytes(data)
        try:
            seconds = solve_seconds(path, wn, run)
        except EpanetError as refused:
            raise InputError(f"studies run on EPANET's toolkit, which does not open the model: {refused}") from None
    per_element = max(seconds * RUNS_PER_ELEMENT[study.kind], 1e-6)
    return max(1, min(len(study.elements), int(TASK_SECONDS / per_element)))


def study_tasks(documents: list[dict[str, Any]], study: Study, per_task: int) -> list[list[Any]]:
    """Each task's arguments: a member's job document, a group of hydrants or segments, the settings."""
    settings = task_settings(study)
    elements = study.elements
    groups = [elements[i:i + per_task] for i in range(0, len(elements), per_task)]
    return [[document, group, settings] for document in documents for group in groups]
