"""Fire-flow availability: for each hydrant, the largest fire flow it delivers for the fire's duration while the
residual pressure at the hydrant and the lowest pressure elsewhere stay at or above their limits.

One search per hydrant and member (a member is one draw of the scenario's alterations), on the model open in
this process's EPANET toolkit: the fire is an extra demand category at the hydrant, on exactly from the fire's
start for its duration whatever the model's pattern step and start (``cloudburst.engine.windows``); each trial
flow solves hydraulics from the start of the run to the end of the fire and reads every
node's lowest pressure over the report times within the fire, both ends included (EPANET's report times, as its
report and output file show them: set the scenario's ``run.report_timestep_s`` for a finer check). The runs are
demand-driven (a pressure-driven run would deliver less than the trial flow and hide the shortfall).

"Elsewhere" is every other junction that meets the system limit without a fire: a junction already below it
(say, beside a pump's suction) would otherwise make every hydrant's answer zero; the member's result names the
junctions left out. A trial the solver cannot balance counts as failing the limits.

The search: the flow is doubled from ``first_guess_lps`` until the limits fail (or ``ceiling_lps`` holds), then
the bracket is narrowed by the Illinois variant of regula falsi on the lowest pressure margin, with a bisection
step whenever one side stalls, until it is narrower than ``tolerance_lps``. The flow reported is the bracket's
feasible side: the limits hold there.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import epanet.toolkit as en
import numpy as np
from wntr.epanet.util import HydParam

from cloudburst.engine.warm import Changes, OpenModel, apply_alterations, apply_settings, si_to_model, window_pattern
from cloudburst.errors import EpanetError, InputError

RESIDUAL, SYSTEM, CEILING, UNSOLVABLE = "residual", "system", "ceiling", "unsolvable"
_FIRE_PATTERN = "cbfireflow"


@dataclass(frozen=True)
class FireFlowSettings:
    """What a hydrant must hold: the fire's start and duration, the two pressure limits, and the search's range
    and precision."""
    start_s: int
    duration_s: int = 7200
    residual_pressure_m: float = 14.0
    system_pressure_m: float = 14.0
    ceiling_lps: float = 500.0
    first_guess_lps: float = 20.0
    tolerance_lps: float = 0.01

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> "FireFlowSettings":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"fire flow: unknown setting {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "start_s" not in raw:
            raise InputError("fire flow: give start_s, the time the fire starts (seconds from the run's start)")
        values: dict[str, Any] = {key: (int(value) if key.endswith("_s") else float(value))
                                  for key, value in raw.items()}
        settings = cls(**values)
        problems = [f"{name} must be > 0" for name in ("duration_s", "ceiling_lps", "first_guess_lps", "tolerance_lps")
                    if getattr(settings, name) <= 0]
        problems += ["start_s must be >= 0"] if settings.start_s < 0 else []
        if settings.first_guess_lps > settings.ceiling_lps:
            problems.append("first_guess_lps must not exceed ceiling_lps")
        if problems:
            raise InputError("fire flow: " + "; ".join(problems))
        return settings


@dataclass(frozen=True)
class Availability:
    """One hydrant's answer for one member. ``limited_by``: residual (the hydrant's own pressure), system (the
    pressure at ``critical_node``), ceiling (it held the search's ceiling) or unsolvable (the solver failed at the
    flow just above). ``flow_lps`` is 0 when even no fire flow meets the residual limit."""
    hydrant: str
    flow_lps: float
    limited_by: str
    critical_node: str | None
    runs: int


@dataclass
class _Trial:
    margin: float  # lowest pressure margin, model units: >= 0 when the limits hold
    limited_by: str
    critical_node: str | None


class HydrantSearch:
    """The searches of one member: the member's alterations applied once to a model open in the toolkit."""

    def __init__(self, model: OpenModel, settings: FireFlowSettings):
        self.model = model
        self.settings = settings
        project = model.project
        self.end_s = settings.start_s + settings.duration_s
        if project.time(en.DURATION) < self.end_s:
            project.set_time(en.DURATION, self.end_s)
        kind, minimum, required, exponent = project.demand_model()
        project.set_demand_model(en.DDA, minimum, required, exponent)
        self.pattern = window_pattern(model, _FIRE_PATTERN, settings.start_s, self.end_s)
        self.residual = si_to_model(model, settings.residual_pressure_m, HydParam.Pressure)
        self.system = si_to_model(model, settings.system_pressure_m, HydParam.Pressure)
        self.lps_to_model = si_to_model(model, 0.001, HydParam.Demand)  # one L/s in the model's flow units
        junctions = np.array([project.node_type(index) == en.JUNCTION for index in range(1, project.node_count + 1)])
        lowest, balanced = project.lowest_pressures(settings.start_s, self.end_s)
        if not balanced:
            raise InputError("fire flow: the member's hydraulics do not balance without a fire")
        self.watched = junctions & (lowest >= self.system)
        self.left_out = [model.project.node_ids[i] for i in np.flatnonzero(junctions & ~self.watched)]

    def _trial(self, node: int, category: int, flow_lps: float) -> _Trial:
        project = self.model.project
        project.set_base_demand(node, category, flow_lps * self.lps_to_model)
        try:
            lowest, balanced = project.lowest_pressures(self.settings.start_s, self.end_s)
        except EpanetError:
            return _Trial(-math.inf, UNSOLVABLE, None)
        if not balanced:
            return _Trial(-math.inf, UNSOLVABLE, None)
        at_hydrant = lowest[node - 1] - self.residual
        watched = self.watched.copy()
        watched[node - 1] = False
        margins = np.where(watched, lowest - self.system, np.inf)
        worst = int(np.argmin(margins))
        if margins[worst] < at_hydrant:
            return _Trial(float(margins[worst]), SYSTEM, project.node_ids[worst])
        return _Trial(float(at_hydrant), RESIDUAL, project.node_ids[node - 1])

    def hydrant(self, hydrant: str) -> Availability:
        project = self.model.project
        node = self.model.node_index[hydrant]
        project.add_demand(node, 0.0, self.pattern, "fire")
        category = len(project.demands(node))
        try:
            return self._search(hydrant, node, category)
        finally:
            project.set_base_demand(node, category, 0.0)  # the category stays, at zero: no other search sees it

    def _search(self, hydrant: str, node: int, category: int) -> Availability:
        settings, runs = self.settings, 1
        low, at_low = 0.0, self._trial(node, category, 0.0)
        if at_low.margin < 0:
            return Availability(hydrant, 0.0, at_low.limited_by, at_low.critical_node, runs)
        high = settings.first_guess_lps
        while True:
            at_high = self._trial(node, category, high)
            runs += 1
            if at_high.margin < 0:
                break
            low, at_low = high, at_high
            if high >= settings.ceiling_lps:
                return Availability(hydrant, settings.ceiling_lps, CEILING, None, runs)
            high = min(2 * high, settings.ceiling_lps)
        # Illinois regula falsi on the margin over the bracket [low (holds), high (fails)]: when the same side
        # moves twice running, the other side's margin is halved, pulling the next trial across the root.
        g_low, g_high, moved, narrowing = at_low.margin, at_high.margin, 0, 0
        while high - low > settings.tolerance_lps:
            narrowing += 1
            if math.isinf(g_high) or narrowing > 30:
                flow = (low + high) / 2
            else:
                flow = high - g_high * (high - low) / (g_high - g_low)
                # No closer to either side than a quarter of the tolerance: every trial narrows the bracket.
                flow = min(max(flow, low + settings.tolerance_lps / 4), high - settings.tolerance_lps / 4)
            trial = self._trial(node, category, flow)
            runs += 1
            if trial.margin >= 0:
                low, g_low = flow, trial.margin
                g_high = g_high / 2 if moved < 0 else g_high
                moved = -1
            else:
                high, at_high, g_high = flow, trial, trial.margin
                g_low = g_low / 2 if moved > 0 else g_low
                moved = 1
        return Availability(hydrant, low, at_high.limited_by, at_high.critical_node, runs)


def search_member(model: OpenModel, job: Any, hydrants: list[str], settings: FireFlowSettings) -> dict[str, Any]:
    """Every hydrant's availability for one member (its drawn alterations applied): rows and the junctions left
    out of "elsewhere". The model is put back afterwards (re-opened: the fire demand and pattern are structural)."""
    unknown = [name for name in hydrants if name not in model.wn.junction_name_list]
    if unknown:
        raise InputError(f"fire flow: not junctions of the model: {', '.join(unknown[:5])}")
    changes = Changes(model)
    changes.structural = True
    try:
        apply_settings(job.run, model, changes)
        apply_alterations(job.run, model, changes)
        search = HydrantSearch(model, settings)
        rows = [asdict(search.hydrant(name)) for name in hydrants]
    finally:
        changes.put_back()
    return {"member": job.member, "hydrants": rows, "left_out": search.left_out}
