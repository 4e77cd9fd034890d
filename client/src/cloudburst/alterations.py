"""Run settings and network alterations, each one wntr call on a job's own model.

``problems_with`` checks a job against the loaded model (element IDs and kinds, simulator support)
and returns every problem as a sentence with its JSON path; ``apply_run`` then changes the model.
"""
from __future__ import annotations

import math

import wntr
from wntr.network import LinkStatus as WntrLinkStatus
from wntr.network.controls import Control, ControlAction, SimTimeCondition

from cloudburst import job as schema

QUALITY_PARAMETER = {"none": "NONE", "age": "AGE", "trace": "TRACE", "chemical": "CHEMICAL"}


def _names(wn: wntr.network.WaterNetworkModel, kind: str) -> list[str]:
    """Names of a kind ("node", "link") or type ("junction", "pump", ...) of element."""
    return getattr(wn, f"{kind}_name_list")


def _missing(wn: wntr.network.WaterNetworkModel, ids: schema.ElementIds, kind: str, path: str) -> list[str]:
    if ids == "*":
        return []
    known = set(_names(wn, kind))
    return [f"{path}: the model has no {kind} {name!r}" for name in ids if name not in known]


def problems_with(job: schema.Job, wn: wntr.network.WaterNetworkModel) -> list[str]:
    """Everything in the job the model or simulator cannot do, before anything runs."""
    problems: list[str] = []
    run = job.run
    for index, change in enumerate(run.alterations):
        path = f"$.run.alterations[{index}]"
        match change:
            case schema.DemandScale():
                problems += _missing(wn, change.nodes, "junction", f"{path}.nodes")
                if change.pattern is not None and change.pattern not in wn.pattern_name_list:
                    problems.append(f"{path}.pattern: the model has no pattern {change.pattern!r}")
            case schema.PatternReplace():
                if change.pattern not in wn.pattern_name_list:
                    problems.append(f"{path}.pattern: the model has no pattern {change.pattern!r}")
            case schema.PipeProperty():
                problems += _missing(wn, change.pipes, "pipe", f"{path}.pipes")
            case schema.LinkStatus():
                problems += _missing(wn, [change.link], "link", f"{path}.link")
            case schema.PumpOutage():
                problems += _missing(wn, [change.pump], "pump", f"{path}.pump")
            case schema.TankLevel():
                if change.tank not in wn.tank_name_list:
                    problems.append(f"{path}.tank: the model has no tank {change.tank!r}")
                else:
                    tank = wn.get_node(change.tank)
                    if not tank.min_level <= change.init_level_m <= tank.max_level:
                        problems.append(f"{path}.init_level_m: {change.init_level_m} m is outside tank "
                                        f"{change.tank!r}'s range {tank.min_level:g}-{tank.max_level:g} m")
            case schema.FireFlow():
                problems += _missing(wn, [change.node], "junction", f"{path}.node")
            case schema.Leak():
                problems += _missing(wn, [change.node], "junction", f"{path}.node")
                if run.simulator == "epanet":
                    problems.append(f"{path}: leaks need simulator 'wntr'; EPANET ignores them without a word")
            case schema.ContaminantSource():
                problems += _missing(wn, [change.node], "node", f"{path}.node")
                if run.quality.mode != "chemical":
                    problems.append(f"{path}: a contaminant source needs run.quality.mode 'chemical'")
    if run.quality.trace_node is not None and run.quality.trace_node not in wn.node_name_list:
        problems.append(f"$.run.quality.trace_node: the model has no node {run.quality.trace_node!r}")
    if run.simulator == "wntr" and run.quality.mode != "none":
        problems.append("$.run.quality.mode: water quality needs simulator 'epanet'; wntr's own simulator "
                        "is hydraulic only")
    for index, request in enumerate(job.output.series):
        for type_index, kind in enumerate(request.types or []):
            valid = schema.ELEMENT_TYPES[request.element]
            if kind not in valid:
                problems.append(f"$.output.series[{index}].types[{type_index}]: {kind!r} is not a "
                                f"{request.element} type ({', '.join(valid)})")
        problems += _missing(wn, request.ids, request.element, f"$.output.series[{index}].ids")
    return problems


def _window_pattern(wn: wntr.network.WaterNetworkModel, name: str, start_s: int, end_s: int | None) -> str:
    """A 0/1 pattern that is 1 from start_s until end_s, long enough never to wrap within the run."""
    step = wn.options.time.pattern_timestep
    steps = max(1, math.ceil(max(wn.options.time.duration, end_s or 0, start_s) / step) + 1)
    multipliers = [1.0 if start_s <= i * step and (end_s is None or i * step < end_s) else 0.0
                   for i in range(steps)]
    wn.add_pattern(name, multipliers)
    return name


def _remove_status_controls(wn: wntr.network.WaterNetworkModel, link: object) -> None:
    """Drop the model's own controls and rules that set this link's status: otherwise a closed pump or
    pipe is reopened by them (Net3's pump 335 follows tank 1's level) and the closure never shows."""
    for name in list(wn.control_name_list):
        if any(action.target() == (link, "status") for action in wn.get_control(name).actions()):
            wn.remove_control(name)


def _set_status(wn: wntr.network.WaterNetworkModel, name: str, status: str, start_s: int,
                end_s: int | None, label: str) -> None:
    """Force a link's status from start_s (until end_s, when the opposite status is set and kept)."""
    link = wn.get_link(name)
    _remove_status_controls(wn, link)
    wanted = WntrLinkStatus.Closed if status == "closed" else WntrLinkStatus.Open
    other = WntrLinkStatus.Open if status == "closed" else WntrLinkStatus.Closed
    if start_s == 0:
        link.initial_status = wanted
    else:
        wn.add_control(f"{label}_start", Control(SimTimeCondition(wn, "=", start_s),
                                                 ControlAction(link, "status", wanted)))
    if end_s is not None:
        wn.add_control(f"{label}_end", Control(SimTimeCondition(wn, "=", end_s),
                                               ControlAction(link, "status", other)))


def _apply_run_settings(run: schema.Run, wn: wntr.network.WaterNetworkModel) -> None:
    times = wn.options.time
    if run.duration_s is not None:
        times.duration = run.duration_s
    if run.hydraulic_timestep_s is not None:
        times.hydraulic_timestep = run.hydraulic_timestep_s
    if run.report_timestep_s is not None:
        times.report_timestep = run.report_timestep_s
    hydraulic = wn.options.hydraulic
    if run.demand_model is not None:
        hydraulic.demand_model = run.demand_model
    if run.required_pressure_m is not None:
        hydraulic.required_pressure = run.required_pressure_m
    if run.minimum_pressure_m is not None:
        hydraulic.minimum_pressure = run.minimum_pressure_m
    quality = wn.options.quality
    quality.parameter = QUALITY_PARAMETER[run.quality.mode]
    if run.quality.mode == "trace":
        quality.trace_node = run.quality.trace_node


def apply_run(run: schema.Run, wn: wntr.network.WaterNetworkModel) -> None:
    """Apply the run settings, then each alteration in order. Call after ``problems_with`` found none."""
    _apply_run_settings(run, wn)
    for index, change in enumerate(run.alterations):
        label = f"cb{index}"
        match change:
            case schema.DemandScale():
                names = wn.junction_name_list if change.nodes == "*" else change.nodes
                for name in names:
                    for demand in wn.get_node(name).demand_timeseries_list:
                        if change.pattern is None or demand.pattern_name == change.pattern:
                            demand.base_value *= change.factor
            case schema.PatternReplace():
                wn.get_pattern(change.pattern).multipliers = change.multipliers
            case schema.PipeProperty():
                names = wn.pipe_name_list if change.pipes == "*" else change.pipes
                for name in names:
                    pipe = wn.get_link(name)
                    current = getattr(pipe, change.property)
                    setattr(pipe, change.property, change.value if change.value is not None
                            else current * change.factor)
            case schema.LinkStatus():
                _set_status(wn, change.link, change.status, change.start_s, change.end_s, label)
            case schema.PumpOutage():
                _set_status(wn, change.pump, "closed", change.start_s, change.end_s, label)
            case schema.TankLevel():
                wn.get_node(change.tank).init_level = change.init_level_m
            case schema.FireFlow():
                pattern = _window_pattern(wn, f"{label}_fire", change.start_s, change.end_s)
                wn.get_node(change.node).add_demand(base=change.flow_m3s, pattern_name=pattern, category="fire")
            case schema.Leak():
                wn.get_node(change.node).add_leak(wn, area=change.area_m2, discharge_coeff=change.discharge_coeff,
                                                  start_time=change.start_s, end_time=change.end_s)
            case schema.ContaminantSource():
                pattern = _window_pattern(wn, f"{label}_source", change.start_s, change.end_s)
                wn.add_source(f"{label}_source", change.node, change.source_type, change.strength, pattern)
