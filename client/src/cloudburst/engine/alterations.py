"""Run settings and network alterations, each one wntr call on a job's own model.

``apply_run`` changes the model; call it on a job that ``cloudburst.checks.job_problems`` found none in.
"""
from __future__ import annotations

import wntr
from wntr.network import LinkStatus as WntrLinkStatus
from wntr.network.controls import Control, ControlAction, SimTimeCondition

from cloudburst.engine import windows
from cloudburst.schema import job as schema

QUALITY_PARAMETER = {"none": "NONE", "age": "AGE", "trace": "TRACE", "chemical": "CHEMICAL"}


def _window_pattern(wn: wntr.network.WaterNetworkModel, name: str, start_s: int, end_s: int | None) -> str:
    """A 0/1 pattern that holds exactly from start_s until end_s on the model's pattern clock (``windows``); the
    model's patterns are re-expressed at a finer step when the edges fall between its periods."""
    times = wn.options.time
    old_step, pattern_start = int(times.pattern_timestep), int(times.pattern_start)
    step = windows.finer_step(old_step, pattern_start, start_s, end_s)
    if step < old_step:
        for _, pattern in wn.patterns():
            pattern.multipliers = windows.repeated(pattern.multipliers, old_step // step)
        times.pattern_timestep = step
    wn.add_pattern(name, windows.window_multipliers(step, pattern_start, int(times.duration), start_s, end_s))
    return name


def _remove_link_controls(wn: wntr.network.WaterNetworkModel, link: object) -> None:
    """Drop the model's own controls and rules with any action on this link, whatever it sets (status, or a
    pump's speed: wntr reads `LINK PU1 1.0 IF ...` as a speed action): otherwise a closed pump or pipe is reopened
    by them (Net3's pump 335 follows tank 1's level) and the closure never shows. The warm engine applies the same
    rule to EPANET's controls and rules (``warm``: every control and rule whose actions name the link)."""
    for name in list(wn.control_name_list):
        if any(action.target()[0] is link for action in wn.get_control(name).actions()):
            wn.remove_control(name)


def _set_status(wn: wntr.network.WaterNetworkModel, name: str, status: str, start_s: int,
                end_s: int | None, label: str) -> None:
    """Force a link's status from start_s (until end_s, when the opposite status is set and kept)."""
    link = wn.get_link(name)
    _remove_link_controls(wn, link)
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
    if run.clock_start_s is not None:
        times.pattern_start = int(times.pattern_start) + windows.clock_shift(int(times.start_clocktime),
                                                                            run.clock_start_s)
        times.start_clocktime = run.clock_start_s
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
    if run.unbalanced is not None:
        hydraulic.unbalanced = run.unbalanced.upper()
        hydraulic.unbalanced_value = None
    quality = wn.options.quality
    quality.parameter = QUALITY_PARAMETER[run.quality.mode]
    if run.quality.mode == "trace":
        quality.trace_node = run.quality.trace_node


def apply_run(run: schema.Run, wn: wntr.network.WaterNetworkModel) -> None:
    """Apply the run settings, then each alteration in order. Call after ``job_problems`` found none."""
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
