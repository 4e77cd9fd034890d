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

from cloudburst.engine.fireflow import FireFlowSettings
from cloudburst.engine.segments import Segment, SegmentSettings, segments_of, valve_layer
from cloudburst.engine.warm import solve_seconds
from cloudburst.errors import EpanetError, InputError
from cloudburst.schema.job import parse_job
from cloudburst.schema.queues import FIRE_FLOW, SEGMENTS, TASK_FUNCTIONS

SEARCH_COMMANDS = {"design": ("design", "design"), "calibration": ("calibrate", "calibrate")}  # command, method
TASK_SECONDS = 3.0         # aim for tasks of about this long
RUNS_PER_ELEMENT = {FIRE_FLOW: 12, SEGMENTS: 1}  # about: a hydrant's search; a segment's isolation


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


Study = FireFlowStudy | SegmentStudy


def parse_study(section: Any, wn: wntr.network.WaterNetworkModel, base_dir: Path | None = None,
                duration_s: int | None = None) -> Study:
    """The scenario's ``study`` section, checked against the model (and the run's ``duration_s``, when the scenario
    sets one); raises InputError."""
    if isinstance(section, dict) and section.get("type") in SEARCH_COMMANDS:
        command, method = SEARCH_COMMANDS[section["type"]]
        raise InputError(f"$.study: a {section['type']} study is searched from the client, a generation at a time: "
                         f"run it with `cloudburst {command} NAME --model MODEL --scenario SCENARIO` or "
                         f"Client.{method}")
    if not isinstance(section, dict) or section.get("type") not in TASK_FUNCTIONS:
        raise InputError(f"$.study: give type ({', '.join(TASK_FUNCTIONS)}) and its settings (see docs/studies.md)")
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
    settings = asdict(study.settings)
    elements = study.elements
    groups = [elements[i:i + per_task] for i in range(0, len(elements), per_task)]
    return [[document, group, settings] for document in documents for group in groups]
