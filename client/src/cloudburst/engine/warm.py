"""The warm engine: a worker process keeps each model open in EPANET's toolkit and runs members on it.

Per member the alterations go through the toolkit API in the model's own units (converted from the job's SI
with wntr's EPANET unit tables, as the file path's .inp writer converts them), hydraulics (and quality when
asked) are solved in memory, node results are read at report times straight into numpy, and the model is put
back: values an alteration changed are set back; a member that added controls, demands or patterns, changed
the quality type or disabled the model's own controls re-opens the model (Net3: 1.6 ms).

What is stored equals EPANET's own binary output file for the same project after the same alterations, bit for
bit: the toolkit's double rounded once to float32 in the model's units (EPANET's output writer does the same
from the same in-memory state), then converted to SI by the same wntr conversion the file path applies.

Link series are read from the output file EPANET's own writer fills during the same run (the engine's scratch
file): EPANET's getters report 0 flow for a closed link and total headloss where its output file holds the
solver's flow and headloss per 1,000 units, so only the file's numbers are the file's. An inline model is written
to an .inp once and opened like any other. Every member of a scenario therefore runs on the EPANET its
``run.epanet`` names: 2.3.5 here, or 2.2 on wntr's file path when the scenario asks for it
(``file_path_reason``), never one or the other by what the member's outputs are.
"""
from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import epanet.toolkit as en
import numpy as np
import wntr
from wntr.epanet.util import FlowUnits, HydParam, MassUnits, QualParam, QualType, from_si

from cloudburst.engine import toolkit, windows
from cloudburst.engine.checks import RunTimes, check_job
from cloudburst.engine.epanet_output import reader_for, to_si
from cloudburst.engine.models import load_model, parse_inp
from cloudburst.engine.results import Frames, SeriesBlock, series_blocks, summary_fields
from cloudburst.errors import EpanetError, MemberFailed, MemberUnbalanced
from cloudburst.schema import job as schema
from cloudburst.schema.resultformat import LINK, NODE
from cloudburst.state.models import ModelCache

NODE_PROPERTIES = {"pressure": en.PRESSURE, "head": en.HEAD, "demand": en.DEMAND, "quality": en.QUALITY}
_QUALITY_TYPES = {"age": en.AGE, "trace": en.TRACE, "chemical": en.CHEM}
_QUALITY_UNITS = {"age": QualType.Age, "trace": QualType.Trace, "chemical": QualType.Chem}
_SOURCE_TYPES = {"CONCEN": en.CONCEN, "MASS": en.MASS, "SETPOINT": en.SETPOINT, "FLOWPACED": en.FLOWPACED}
ENGINE = "toolkit"
FULL_DEMAND = "full_demand"  # what a pressure-driven run's nodes asked for; read for the service summary only


# Said with every member the chosen EPANET cannot open or solve: the other version exists, for the whole ensemble.
OTHER_EPANET = {
    schema.EPANET_WARM: 'EPANET 2.2 (the library wntr ships) solves some models 2.3.5 does not: `run: {epanet: "2.2"}` '
                        "runs the whole ensemble on it",
    schema.EPANET_FILE: 'EPANET 2.3.5 (the default, `run: {epanet: "2.3.5"}`) solves some models 2.2 does not',
}


# Why members run on wntr's file path: what their scenario chose.
WNTR_SOLVER_CHOSEN = "simulator 'wntr' (wntr's own solver)"
EPANET_FILE_CHOSEN = "EPANET 2.2, as the scenario's run.epanet asks"


def file_path_reason(job: schema.Job) -> str | None:
    """Why this job runs on wntr's file path instead of the warm engine (what its scenario chose, the same for every
    member); None when the warm engine runs it."""
    if job.run.simulator == "wntr":
        return WNTR_SOLVER_CHOSEN
    if job.run.epanet == schema.EPANET_FILE:
        return EPANET_FILE_CHOSEN
    return None


def inline_sha256(inline: dict[str, Any]) -> str:
    """An inline model's identity: the sha256 of its JSON with sorted keys (the members' provenance names it)."""
    return hashlib.sha256(json.dumps(inline, sort_keys=True, default=str).encode()).hexdigest()


def opening_refusal(data: bytes) -> str | None:
    """Why EPANET 2.3.5 does not open this .inp (saying that 2.2 exists); None when it does."""
    with tempfile.TemporaryDirectory(prefix="cloudburst-") as scratch:
        path = Path(scratch) / "model.inp"
        path.write_bytes(data)
        try:
            toolkit.Project(path).close()
        except EpanetError as refused:
            return f"EPANET {toolkit.VERSION} does not open the model: {refused}. {OTHER_EPANET[schema.EPANET_WARM]}"
    return None


def solve_seconds(inp_path: Path, wn: wntr.network.WaterNetworkModel, run: schema.Run) -> float:
    """Seconds one run of the unaltered model takes on the warm engine with these run settings (what the client
    sizes batches by)."""
    model = OpenModel(inp_path, wn, toolkit.Project(inp_path))
    try:
        apply_settings(run, model, Changes(model))
        started = time.perf_counter()
        try:
            model.project.run([en.PRESSURE, en.DEMAND], run.quality.mode != "none")
        except MemberFailed:
            pass  # the unaltered model does not run; its members' failures will say why, and timing it still tells
        return time.perf_counter() - started
    finally:
        model.project.close()


@dataclass
class OpenModel:
    """A model open in the toolkit, with the parsed (never altered) wntr model its jobs are checked against."""
    path: Path
    wn: wntr.network.WaterNetworkModel
    project: toolkit.Project
    # Where EPANET writes its binary output file when a member asks for link series (None: EPANET's scratch name).
    output: Path | None = None
    flow_units: FlowUnits = field(init=False)
    darcy_weisbach: bool = field(init=False)
    node_index: dict[str, int] = field(init=False)
    link_index: dict[str, int] = field(init=False)
    # The model's own values as opened, read once: members start from them and are put back to them.
    _demands: dict[int, list[tuple[float, int]]] = field(init=False, default_factory=dict)
    _base_demands: dict[tuple[int, int], float] = field(init=False, default_factory=dict)
    _link_values: dict[tuple[int, int], float] = field(init=False, default_factory=dict)
    # Base demands and link values the last member set and left in the project (``Changes.put_back(leave=True)``):
    # the next member sets most of them again, so only those it does not set go back (``put_back_left``).
    left_demands: set[tuple[int, int]] = field(init=False, default_factory=set)
    left_links: set[tuple[int, int]] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.flow_units = FlowUnits(self.project.flow_units())
        self.darcy_weisbach = int(self.project.option(en.HEADLOSSFORM)) == en.DW
        self.node_index = {name: index for index, name in enumerate(self.project.node_ids, start=1)}
        self.link_index = {name: index for index, name in enumerate(self.project.link_ids, start=1)}

    def demands(self, node: int) -> list[tuple[float, int]]:
        """The node's demand categories as opened: (base demand, pattern index) each."""
        if node not in self._demands:
            self._demands[node] = self.project.demands(node)
            self._base_demands.update(((node, category), base)
                                      for category, (base, _) in enumerate(self._demands[node], start=1))
        return self._demands[node]

    def base_demand(self, node: int, category: int) -> float:
        """A demand category's base demand as opened."""
        if (node, category) not in self._base_demands:
            self.demands(node)
        return self._base_demands[node, category]

    @functools.cached_property
    def junction_demands(self) -> list[tuple[int, int, int]]:
        """Every demand category of the junctions, in wntr's junction order: (node, category, pattern index)."""
        return [(node, category, pattern) for node in (self.node_index[name] for name in self.wn.junction_name_list)
                for category, (_, pattern) in enumerate(self.demands(node), start=1)]

    @functools.cached_property
    def pipe_indices(self) -> list[int]:
        """The pipes' link indices, in wntr's pipe order."""
        return [self.link_index[name] for name in self.wn.pipe_name_list]

    @functools.cached_property
    def junction_columns(self) -> np.ndarray:
        """Where each junction (wntr's order) sits among the toolkit's nodes: the captured arrays' columns."""
        return np.array([self.node_index[name] - 1 for name in self.wn.junction_name_list], dtype=np.int64)

    def link_value(self, link: int, what: int) -> float:
        """A link property as opened."""
        if (link, what) not in self._link_values:
            self._link_values[link, what] = self.project.link_value(link, what)
        return self._link_values[link, what]

    def reopen(self) -> None:
        self.project.close()
        self.project = toolkit.Project(self.path, self.output)
        self.left_demands, self.left_links = set(), set()

    def restore(self, demands: Iterable[tuple[int, int]], links: Iterable[tuple[int, int]]) -> None:
        """Set these base demands ((node, category) each) and link values ((link, property) each) back to the
        model's as opened."""
        set_base, set_link = self.project.set_base_demand, self.project.set_link_value
        for node, category in demands:
            set_base(node, category, self.base_demand(node, category))
        for link, what in links:
            set_link(link, what, self.link_value(link, what))

    def put_back_left(self, changes: Changes) -> None:
        """Put back what the last member left set and this member's ``changes`` do not set: the project then holds
        exactly the model as opened with this member's changes, as if every member had been put back."""
        self.restore(self.left_demands.difference(changes.demands), self.left_links.difference(changes.links))
        self.left_demands, self.left_links = set(), set()


class Changes:
    """The toolkit calls a member made, with how to undo each; ``structural`` when only re-opening undoes them."""

    def __init__(self, model: OpenModel):
        self.model = model
        self.undo: list[Callable[[], None]] = []
        self.structural = False
        self.demands: dict[tuple[int, int], float] = {}  # (node, category) -> base demand set for this member
        self.links: dict[tuple[int, int], float] = {}    # (link, property) -> value set for this member

    def scale_base_demands(self, categories: list[tuple[int, int]], factor: float) -> None:
        """Each (node, category)'s base demand as this member has it, times ``factor`` (one pass: a model's every
        junction is the common case)."""
        demands, set_base, original = self.demands, self.model.project.set_base_demand, self.model.base_demand
        for key in categories:
            current = demands.get(key)
            value = (original(*key) if current is None else current) * factor
            set_base(key[0], key[1], value)
            demands[key] = value

    def scale_links(self, links: list[int], what: int, factor: float, value: float | None = None) -> None:
        """Each link's property set to ``value``, or as this member has it times ``factor`` (the value as opened is
        read before the first change, for ``put_back``)."""
        values, set_link, original = self.links, self.model.project.set_link_value, self.model.link_value
        for link in links:
            current = values.get((link, what))
            if current is None:
                current = original(link, what)
            changed = value if value is not None else current * factor
            set_link(link, what, changed)
            values[link, what] = changed

    def set_node(self, index: int, what: int, value: float) -> None:
        project = self.model.project
        old = project.node_value(index, what)
        project.set_node_value(index, what, value)
        self.undo.append(lambda: project.set_node_value(index, what, old))

    def set_time(self, what: int, seconds: int) -> None:
        project = self.model.project
        old = project.time(what)
        if old != seconds:
            project.set_time(what, seconds)
            self.undo.append(lambda: project.set_time(what, old))

    def put_back(self, leave: bool = False) -> None:
        """Undo the member's changes. With ``leave``, the base demands and link values it set stay in the project,
        recorded on the model for the next member (``OpenModel.put_back_left``): a batch's members mostly set the
        same ones, and setting each twice per member was a third of a tiny member's time."""
        if self.structural:
            self.model.reopen()
            return
        if leave:
            self.model.left_demands.update(self.demands)
            self.model.left_links.update(self.links)
        else:
            self.model.restore(self.demands, self.links)
        for undo in reversed(self.undo):
            undo()


def si_to_model(model: OpenModel, value: float, parameter: Any) -> float:
    return float(from_si(model.flow_units, value, parameter, darcy_weisbach=model.darcy_weisbach))


def apply_settings(run: schema.Run, model: OpenModel, changes: Changes) -> None:
    project = model.project
    if run.clock_start_s is not None:
        shift = windows.clock_shift(project.time(en.STARTTIME), run.clock_start_s)
        changes.set_time(en.PATTERNSTART, project.time(en.PATTERNSTART) + shift)
        changes.set_time(en.STARTTIME, run.clock_start_s)
    if run.duration_s is not None:
        changes.set_time(en.DURATION, run.duration_s)
    if run.hydraulic_timestep_s is not None:
        changes.set_time(en.HYDSTEP, run.hydraulic_timestep_s)
    if run.report_timestep_s is not None:
        changes.set_time(en.REPORTSTEP, run.report_timestep_s)
    if run.demand_model is not None or run.minimum_pressure_m is not None or run.required_pressure_m is not None:
        kind, minimum, required, exponent = old = project.demand_model()
        kind = {"PDD": en.PDA, "DD": en.DDA, None: kind}[run.demand_model]
        if run.minimum_pressure_m is not None:
            minimum = si_to_model(model, run.minimum_pressure_m, HydParam.Pressure)
        if run.required_pressure_m is not None:
            required = si_to_model(model, run.required_pressure_m, HydParam.Pressure)
        project.set_demand_model(kind, minimum, required, exponent)
        changes.undo.append(lambda: project.set_demand_model(*old))
    if run.unbalanced is not None:
        old_unbalanced = project.option(en.UNBALANCED)
        project.set_option(en.UNBALANCED, -1 if run.unbalanced == "stop" else 0)  # EPANET: STOP, CONTINUE
        changes.undo.append(lambda: project.set_option(en.UNBALANCED, old_unbalanced))
    if run.quality.mode != "none":
        project.set_quality(_QUALITY_TYPES[run.quality.mode], run.quality.trace_node or "")
        changes.structural = True  # the model's chemical name and units come back by re-opening


def window_pattern(model: OpenModel, name: str, start_s: int, end_s: int | None) -> str:
    """A 0/1 pattern that holds exactly from start_s until end_s on the model's pattern clock (``windows``); the
    model's patterns are re-expressed at a finer step when the edges fall between its periods. Structural: the
    caller re-opens the model to undo it."""
    project = model.project
    step, pattern_start = project.time(en.PATTERNSTEP), project.time(en.PATTERNSTART)
    finer = windows.finer_step(step, pattern_start, start_s, end_s)
    if finer < step:
        for index in range(1, project.count(en.PATCOUNT) + 1):
            project.set_pattern(index, windows.repeated(project.pattern(index), step // finer))
        project.set_time(en.PATTERNSTEP, finer)
    project.add_pattern(name, windows.window_multipliers(finer, pattern_start, project.time(en.DURATION), start_s,
                                                         end_s))
    return name


def force_status(model: OpenModel, changes: Changes, link_id: str, status: str, start_s: int,
                  end_s: int | None) -> None:
    """The model's own controls and rules on the link are switched off (else they reopen a closed pump), then
    the status holds from start_s (until end_s, when the opposite status is set)."""
    project = model.project
    link = model.link_index[link_id]
    for control, controlled in project.controls():
        if controlled == link:
            project.set_control_enabled(control, False)
    for rule, links in project.rule_links():
        if link in links:
            project.set_rule_enabled(rule, False)
    wanted, other = (en.CLOSED, en.OPEN) if status == "closed" else (en.OPEN, en.CLOSED)
    if start_s == 0:
        project.set_link_value(link, en.INITSTATUS, wanted)
    else:
        project.add_timer_control(link, float(wanted), start_s)
    if end_s is not None:
        project.add_timer_control(link, float(other), end_s)
    changes.structural = True


def apply_alterations(run: schema.Run, model: OpenModel, changes: Changes) -> None:
    project = model.project
    for position, change in enumerate(run.alterations):
        label = f"cb{position}"
        match change:
            case schema.DemandScale():
                wanted = None if change.pattern is None else project.pattern_index(change.pattern)
                if change.nodes == "*":
                    slots = model.junction_demands
                else:
                    slots = [(node, category, pattern) for node in (model.node_index[name] for name in change.nodes)
                             for category, (_, pattern) in enumerate(model.demands(node), start=1)]
                changes.scale_base_demands([(node, category) for node, category, pattern in slots
                                            if wanted is None or pattern == wanted], change.factor)
            case schema.PatternReplace():
                index = project.pattern_index(change.pattern)
                old = project.pattern(index)
                project.set_pattern(index, change.multipliers)
                changes.undo.append(functools.partial(project.set_pattern, index, old))
            case schema.PipeProperty():
                what = {"roughness": en.ROUGHNESS, "diameter": en.DIAMETER, "length": en.LENGTH}[change.property]
                parameter = {"roughness": HydParam.RoughnessCoeff, "diameter": HydParam.PipeDiameter,
                             "length": HydParam.Length}[change.property]
                links = model.pipe_indices if change.pipes == "*" else [model.link_index[name] for name in change.pipes]
                value = None if change.value is None else si_to_model(model, change.value, parameter)
                factor = 1.0 if change.factor is None else change.factor  # the schema gives one of the two
                changes.scale_links(links, what, factor, value)
            case schema.LinkStatus():
                force_status(model, changes, change.link, change.status, change.start_s, change.end_s)
            case schema.PumpOutage():
                force_status(model, changes, change.pump, "closed", change.start_s, change.end_s)
            case schema.TankLevel():
                changes.set_node(model.node_index[change.tank], en.TANKLEVEL,
                                 si_to_model(model, change.init_level_m, HydParam.Length))
                # EPANET keeps a tank's initial head in feet: the level read back in metres and set again is not
                # always the same double (an SI model's next member differed in the last bits), so the model is
                # re-opened instead.
                changes.structural = True
            case schema.FireFlow():
                window = window_pattern(model, f"{label}_fire", change.start_s, change.end_s)
                project.add_demand(model.node_index[change.node],
                                   si_to_model(model, change.flow_m3s, HydParam.Demand), window, "fire")
                changes.structural = True
            case schema.ContaminantSource():
                node = model.node_index[change.node]
                window = window_pattern(model, f"{label}_source", change.start_s, change.end_s)
                parameter = QualParam.SourceMassInject if change.source_type == "MASS" else QualParam.Concentration
                strength = float(from_si(model.flow_units, change.strength, parameter, mass_units=MassUnits.mg))
                project.set_node_value(node, en.SOURCEQUAL, strength)
                project.set_node_value(node, en.SOURCEPAT, project.pattern_index(window))
                project.set_node_value(node, en.SOURCETYPE, _SOURCE_TYPES[change.source_type])
                changes.structural = True
            case _:
                raise MemberFailed(f"the toolkit engine cannot apply {change.type}")  # file_path_reason routes it


@dataclass(frozen=True)
class Solved:
    """A member run on the warm engine: its model, results in SI (node, and the links asked for), summary."""
    model: OpenModel
    frames: dict[str, Frames]
    summary: dict[str, Any]
    capture: toolkit.Capture


class WarmEngine:
    """Models open in this process's EPANET toolkit, keyed by their sha256; runs members on them."""

    def __init__(self, cache: ModelCache, keep: int = 4):
        self.cache = cache
        self.keep = keep
        self._open: dict[str, OpenModel] = {}
        self._refused: dict[str, str] = {}  # sha256 -> why EPANET 2.3.5 would not open the model
        # Inline models' .inp files and EPANET's output files, the engine's own: removed by ``close``.
        self._scratch = Path(tempfile.mkdtemp(prefix="cloudburst-warm-"))

    def model(self, source: schema.ModelInput) -> OpenModel:
        """The job's model open in the toolkit (opened the first time); MemberFailed, saying that EPANET 2.2 exists,
        when EPANET 2.3.5 does not open it."""
        key = source.sha256 if source.inline is None else inline_sha256(source.inline)
        assert key is not None
        if key in self._refused:
            raise MemberFailed(self._refused[key])
        opened = self._open.pop(key, None)
        if opened is None:
            if source.inline is None:
                assert source.url is not None
                path = self.cache.path_for(source.url, key)
                wn = parse_inp(path, source.url)
            else:
                path = self._scratch / f"{key}.inp"
                wn = load_model(source, self.cache)
                wntr.network.write_inpfile(wn, str(path))
            output = self._scratch / f"{key}.out"
            try:
                opened = OpenModel(path, wn, toolkit.Project(path, output), output)
            except EpanetError as refused:
                self._refused[key] = (f"EPANET {toolkit.VERSION} does not open the model: {refused}. "
                                      f"{OTHER_EPANET[schema.EPANET_WARM]}")
                raise MemberFailed(self._refused[key]) from None
            while len(self._open) >= self.keep:
                self._open.pop(next(iter(self._open))).project.close()
        self._open[key] = opened  # most recently used last
        return opened

    def close(self) -> None:
        for opened in self._open.values():
            opened.project.close()
        self._open.clear()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def run(self, job: schema.Job) -> tuple[list[SeriesBlock], dict[str, Any], toolkit.Capture]:
        """One member on its open model: its series blocks, summary and what the toolkit reported."""
        solved = self.solve(job)
        times = RunTimes.of(job.run, solved.model.wn)
        blocks = series_blocks(job, solved.model.wn, solved.frames, times.duration_s, times.report_step_s)
        return blocks, solved.summary, solved.capture

    def solve(self, job: schema.Job, with_summary: bool = True) -> Solved:
        """One member on its open model: its node (and asked-for link) results in SI, summary (empty without
        ``with_summary``: a round asking for per-node metrics only) and what the toolkit reported. MemberFailed or
        MemberUnbalanced when it does not run to the end; InputError for a job the model does not fit."""
        model = self.model(job.input)
        check_job(job, model.wn)
        properties = {"pressure", "demand"} | {attribute for request in job.output.series if request.element == NODE
                                               for attribute in request.attributes}
        with_quality = job.run.quality.mode != "none"
        if with_quality:
            properties.add("quality")
        pressure_driven = (job.run.demand_model or model.wn.options.hydraulic.demand_model) in ("PDD", "PDA")
        codes = [NODE_PROPERTIES[name] for name in sorted(properties)] + ([en.FULLDEMAND] if pressure_driven else [])
        link_attributes = {attribute for request in job.output.series if request.element == LINK
                           for attribute in request.attributes}
        changes = Changes(model)
        try:
            apply_settings(job.run, model, changes)
            apply_alterations(job.run, model, changes)
            model.put_back_left(changes)
            capture = model.project.run(codes, with_quality, save_output=bool(link_attributes))
        except EpanetError as failed:
            raise EpanetError(failed.code, f"{failed}. {OTHER_EPANET[schema.EPANET_WARM]}") from None
        finally:
            changes.put_back(leave=True)
        if capture.halted_at is not None:
            raise MemberUnbalanced(capture.halted_at, f"EPANET stopped at {toolkit.clock(capture.halted_at)}: "
                                   f"{toolkit.WARNINGS[1]} (UNBALANCED STOP)")
        node = self._si(model, job, capture)
        frames = {NODE: node, LINK: self._links(model, link_attributes)}
        summary = (summary_fields(job, model.wn.junction_name_list, node, self._service(model, node, pressure_driven),
                                  model.junction_columns) if with_summary else {})
        return Solved(model, frames, summary, capture)

    @staticmethod
    def _links(model: OpenModel, attributes: set[str]) -> Frames:
        """The link results asked for, from the output file EPANET wrote during the run, converted to SI by the
        reader wntr's file path uses (the lean one where it covers them); no file read when none is asked for."""
        if not attributes:
            return Frames.of({})
        reader = reader_for(set(), attributes) or wntr.epanet.io.BinFile()
        assert model.output is not None, "the engine opens its models with an output file"
        results = reader.read(str(model.output), False, model.darcy_weisbach)
        return Frames.of({attribute: results.link[attribute] for attribute in sorted(attributes)})

    @staticmethod
    def _si(model: OpenModel, job: schema.Job, capture: toolkit.Capture) -> Frames:
        """The captured float32 arrays in SI, converted by the same wntr conversion as the file path's reader
        applies to its DataFrames, so both engines turn the same EPANET numbers into the same SI numbers."""
        quality = _QUALITY_UNITS.get(job.run.quality.mode, QualType.NONE)
        values = {name: to_si("demand" if name == FULL_DEMAND else name, capture.values[code], model.flow_units,
                              quality, MassUnits.mg)
                  for name, code in [*NODE_PROPERTIES.items(), (FULL_DEMAND, en.FULLDEMAND)]
                  if code in capture.values}
        return Frames(np.asarray(capture.times, dtype=np.int64), model.project.node_ids, values)

    @staticmethod
    def _service(model: OpenModel, node: Frames, pressure_driven: bool) -> float | None:
        """Delivered over required demand at the junctions (EPANET's own full demand) in a pressure-driven run."""
        if not pressure_driven:
            return None
        junctions = slice(0, model.project.junction_count)  # EPANET numbers junctions first
        required = float(node.values[FULL_DEMAND][:, junctions].astype(np.float64).sum())
        delivered = float(node.values["demand"][:, junctions].astype(np.float64).sum())
        return delivered / required if required > 0 else None
