"""Whether a job can run on its model: the one check the client, the worker and the API all call.

``job_problems`` judges a parsed job against its (unaltered) model as the worker will run it, that is
*after* the job's run settings apply: the duration, report step and element selection the simulation will
really have decide the series steps and the point budget. It changes nothing, so the client can check every
member before anything is uploaded or enqueued and reach the verdict the worker reaches.
"""
from __future__ import annotations

from dataclasses import dataclass

import wntr

from cloudburst.engine.results import report_times, selected_ids
from cloudburst.errors import InputError
from cloudburst.schema import job as schema
from cloudburst.schema.resultformat import ATTRIBUTES


@dataclass(frozen=True)
class RunTimes:
    """The times a member's simulation will have once its run settings apply."""
    duration_s: int
    report_step_s: int

    @classmethod
    def of(cls, run: schema.Run, wn: wntr.network.WaterNetworkModel) -> "RunTimes":
        times = wn.options.time
        duration = run.duration_s if run.duration_s is not None else times.duration
        report_step = run.report_timestep_s if run.report_timestep_s is not None else times.report_timestep
        return cls(int(duration), int(report_step))


def job_problems(job: schema.Job, wn: wntr.network.WaterNetworkModel) -> list[str]:
    """Every problem that stops the job running on this model, each a sentence led by its JSON path."""
    return _model_problems(job, wn) + _series_problems(job.output, job.run, wn)


def check_job(job: schema.Job, wn: wntr.network.WaterNetworkModel) -> None:
    """Raise InputError listing every problem that stops the parsed job running on this model."""
    problems = job_problems(job, wn)
    if problems:
        raise InputError(problems)


def planned_points(output: schema.Output, run: schema.Run, wn: wntr.network.WaterNetworkModel) -> int:
    """How many series values the job asks for, at the times its run will report."""
    times = RunTimes.of(run, wn)
    return sum(len(report_times(times.duration_s, times.report_step_s, request.step_s))
               * len(selected_ids(request, wn)) * len(request.attributes) for request in output.series)


def _series_problems(output: schema.Output, run: schema.Run, wn: wntr.network.WaterNetworkModel) -> list[str]:
    """Attributes the simulation will not produce, steps that are not report steps, and the point budget."""
    problems = []
    report_step = RunTimes.of(run, wn).report_step_s
    for index, request in enumerate(output.series):
        valid = ATTRIBUTES[request.element]
        for attr_index, attribute in enumerate(request.attributes):
            where = f"$.output.series[{index}].attributes[{attr_index}]"
            if attribute not in valid:
                problems.append(f"{where}: {attribute!r} is not a {request.element} result ({', '.join(valid)})")
            elif attribute == "quality" and run.quality.mode == "none":
                problems.append(f"{where}: 'quality' needs run.quality.mode other than 'none'")
            elif attribute == "leak_demand" and run.simulator != "wntr":
                problems.append(f"{where}: 'leak_demand' needs simulator 'wntr'")
        if request.step_s is not None and request.step_s % report_step:
            problems.append(f"$.output.series[{index}].step_s: {request.step_s} s is not a multiple of the "
                            f"report step ({report_step} s)")
    asked = sorted({attribute for request in output.series for attribute in request.attributes})
    for attribute in output.resolution:
        if attribute not in asked:
            problems.append(f"$.output.resolution.{attribute}: no series asks for {attribute!r} "
                            f"(series attributes: {', '.join(asked) or 'none'})")
    points = planned_points(output, run, wn)
    if points > output.max_points:
        problems.append(f"$.output.max_points: the series asked for come to {points} points, above the budget "
                        f"of {output.max_points}; select fewer elements, attributes or a longer step_s")
    return problems


def _names(wn: wntr.network.WaterNetworkModel, kind: str) -> list[str]:
    """Names of a kind ("node", "link") or type ("junction", "pump", ...) of element."""
    names: list[str] = getattr(wn, f"{kind}_name_list")
    return names


def _missing(wn: wntr.network.WaterNetworkModel, ids: schema.ElementIds, kind: str, path: str) -> list[str]:
    if ids == "*":
        return []
    known = set(_names(wn, kind))
    return [f"{path}: the model has no {kind} {name!r}" for name in ids if name not in known]


def _model_problems(job: schema.Job, wn: wntr.network.WaterNetworkModel) -> list[str]:
    """Element IDs and kinds the model lacks, and what the chosen simulator cannot do."""
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


# The store's cost of an ensemble, for the budget: bytes per series value (zstd Parquet of float32 values, measured
# 2-3.4 B on Net6; the larger figure, so the estimate does not undershoot) and per member (its members row).
BYTES_PER_VALUE = 3.5
BYTES_PER_MEMBER = 600
# Per batch: its two Parquet files' schemas and footers (measured 2.1 kB series + 8.1 kB members on Net3, 3 members).
BYTES_PER_BATCH = 10_500
DEFAULT_BUDGET = {"values": 2_000_000_000, "bytes": 10_000_000_000}


def store_bytes(values: int, members: int, batches: int = 0) -> int:
    """The results store's estimated bytes for an ensemble's series values, members and batches (an upper
    estimate; the budget counts values and members, known before the batches are sized)."""
    return int(values * BYTES_PER_VALUE + members * BYTES_PER_MEMBER + batches * BYTES_PER_BATCH)


def budget_limits(budget: object) -> dict[str, float] | None:
    """The scenario's ``budget`` over ``DEFAULT_BUDGET``; None when it is not a valid budget."""
    limits: dict[str, float] = dict(DEFAULT_BUDGET)
    if budget is not None:
        if not isinstance(budget, dict) or set(budget) - set(limits) or not all(
                isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
                for value in budget.values()):
            return None
        limits.update(budget)
    return limits


def budget_problems(values: int, members: int, budget: object) -> list[str]:
    """The ensemble budget: the whole ensemble's series values and estimated store bytes against the limits the
    scenario's ``budget`` sets (default ``DEFAULT_BUDGET``)."""
    limits = budget_limits(budget)
    if limits is None:
        return ["$.budget: give values and/or bytes, each a number > 0, e.g. {values: 2e9, bytes: 1e10}"]
    size = store_bytes(values, members)
    problems = []
    if values > limits["values"]:
        problems.append(f"$.budget.values: the ensemble asks for {values:,} series values in all ({members:,} "
                        f"members), above its budget of {int(limits['values']):,}; ask for fewer members, elements "
                        "or attributes, a longer step_s, or raise budget.values")
    if size > limits["bytes"]:
        problems.append(f"$.budget.bytes: the ensemble would store about {size:,} bytes, above its budget of "
                        f"{int(limits['bytes']):,}; ask for fewer members or series, or raise budget.bytes")
    return problems
