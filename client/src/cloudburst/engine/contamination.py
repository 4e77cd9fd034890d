"""Contamination impacts: one member's hydraulics solved once, then a water-quality run per injection over them (as
EPANET's own command line runs quality over its saved hydraulics file), each injection's concentrations turned into
impacts on the worker: when each candidate sensor node first detects it, and the harm done by then.

The harm, each a running total over the report times before detection (an injection no sensor detects does its
whole run's harm), as the Battle of the Water Sensor Networks defined its objectives (Ostfeld et al. 2008, J. Water
Resour. Plann. Manage. 134(6)):

- ``z1_s``: the time from the injection's start to detection;
- ``z2_people``: the people affected: each node's population (its mean demand / ``per_capita_L_day``) ingests
  ``ingestion_L_day`` a day, timed as the node's demand is (the demand then over its mean), and is affected with
  the probit dose-response Phi(beta x log10(dose / D50)), dose in mg per kg of ``body_kg``;
- ``z3_m3``: the demand delivered at a concentration above ``hazard_mg_L``;
- ``mass_kg``: the contaminant delivered (concentrations above the detection limit, as WNTR's
  ``mass_contaminant_consumed``);
- ``extent_m``: the length of pipe the contaminant entered (a pipe whose upstream node is above the detection limit,
  as WNTR's ``extent_contaminant``).

BWSN's case A is the default: 125 L/h at 230,000 mg/L for 2 h (a mass source of 479,166.67 mg/min), a 5-minute
report step, a conservative contaminant, sensors detecting any concentration above ``detection_limit_mg_L``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import epanet.toolkit as en
import numpy as np
from wntr.epanet.util import FlowUnits, HydParam, to_si

from cloudburst.engine import toolkit
from cloudburst.errors import InputError
from cloudburst.schema.impacts import TaskImpacts

SOURCE_TYPES = {"concen": en.CONCEN, "mass": en.MASS, "setpoint": en.SETPOINT, "flowpaced": en.FLOWPACED}
HARMS = ("z1_s", "z2_people", "z3_m3", "mass_kg", "extent_m")  # an impact row's harm columns, in order


@dataclass(frozen=True)
class ContaminationSettings:
    source_type: str = "mass"
    strength: float = 125 * 230_000 / 60      # mg/min for a mass source; mg/L for the others
    injection_s: int = 7200                   # how long each injection lasts
    duration_s: int = 86400                   # the run's length
    report_step_s: int = 300                  # concentrations are sampled (and harm summed) at this step
    quality_step_s: int = 300                 # EPANET's water-quality time step
    detection_limit_mg_L: float = 1e-6
    hazard_mg_L: float = 0.3
    ingestion_L_day: float = 2.0
    probit_beta: float = 0.34
    dose50_mg_kg: float = 41.0
    body_kg: float = 70.0
    per_capita_L_day: float = 300.0
    bulk_coefficient_per_day: float = 0.0     # first-order decay (0: conservative)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ContaminationSettings:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"$.study: unknown setting {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        settings = cls(**raw)
        problems = []
        if settings.source_type not in SOURCE_TYPES:
            problems.append(f"$.study.source_type: one of {', '.join(SOURCE_TYPES)}, not {settings.source_type!r}")
        for name in ("strength", "detection_limit_mg_L", "hazard_mg_L", "ingestion_L_day", "probit_beta",
                     "dose50_mg_kg", "body_kg", "per_capita_L_day"):
            value = getattr(settings, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                problems.append(f"$.study.{name}: a number > 0, not {value!r}")
        for name in ("injection_s", "duration_s", "report_step_s", "quality_step_s"):
            value = getattr(settings, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"$.study.{name}: whole seconds > 0, not {value!r}")
        if problems:
            raise InputError(problems)
        return settings


@dataclass(frozen=True)
class Injection:
    node: str
    start_s: int


@dataclass
class Impacts:
    """One injection's impacts: each candidate sensor that detects it, when and the harm done by then (in
    ``HARMS`` order), and the harm of its whole run (undetected)."""
    injection: Injection
    sensors: list[str] = field(default_factory=list)
    detected_s: list[int] = field(default_factory=list)
    harm: list[list[float]] = field(default_factory=list)
    undetected: list[float] = field(default_factory=list)


class SharedHydraulics:
    """A member's model opened in the toolkit with the study's times and a chemical, its hydraulics solved once;
    ``impacts`` runs one injection's water quality over them."""

    def __init__(self, project: toolkit.Project, settings: ContaminationSettings, sensors: list[str]):
        self.project, self.settings = project, settings
        project.set_time(en.DURATION, settings.duration_s)
        project.set_time(en.REPORTSTART, 0)
        project.set_time(en.REPORTSTEP, settings.report_step_s)
        project.set_time(en.QUALSTEP, settings.quality_step_s)
        project.set_quality(en.CHEM, chemical="Contaminant", units="mg/L")
        self.node_index = {name: index for index, name in enumerate(project.node_ids, start=1)}
        for index in range(1, project.node_count + 1):  # the model's own sources and initial quality do not count
            project.set_node_value(index, en.SOURCEQUAL, 0.0)
            project.set_node_value(index, en.INITQUAL, 0.0)
        for index in range(1, project.link_count + 1):
            if project.link_type(index) in (en.CVPIPE, en.PIPE):
                project.set_link_value(index, en.KBULK, -settings.bulk_coefficient_per_day)
        self.saved = project.saved_hydraulics()
        units = FlowUnits(project.flow_units())
        self.times = self.saved.times
        # Water is consumed at junctions only (a tank's "demand" is its inflow, a reservoir's its outflow).
        junctions = np.array([project.node_type(index) == en.JUNCTION for index in range(1, project.node_count + 1)])
        demand_m3s = np.asarray(to_si(units, self.saved.demand, HydParam.Demand))
        self.consumed = np.where(junctions, np.clip(demand_m3s, 0, None), 0.0)
        pipes = [index for index in range(1, project.link_count + 1)
                 if project.link_type(index) in (en.CVPIPE, en.PIPE)]
        ends = np.array([project.link_nodes(index) for index in pipes], dtype=np.int64).reshape(-1, 2) - 1
        self.pipe_from, self.pipe_to = ends[:, 0], ends[:, 1]
        self.pipe_length_m = np.asarray(to_si(units, np.array([project.link_value(i, en.LENGTH) for i in pipes]),
                                              HydParam.Length))
        self.pipe_flow = self.saved.flow[:, np.array(pipes, dtype=np.int64) - 1] if pipes else \
            np.empty((len(self.times), 0))
        self.sensor_columns = np.array([self.node_index[name] - 1 for name in sensors], dtype=np.int64)
        self.sensors = sensors
        self.quality = np.empty((len(self.times), project.node_count))
        # Per node: people (mean demand over the run / per-capita use) and the ingestion timing (demand / mean).
        mean_demand = self.consumed.mean(axis=0)
        self.population = mean_demand * 86400 * 1000 / settings.per_capita_L_day
        with np.errstate(divide="ignore", invalid="ignore"):
            self.timing = np.where(mean_demand > 0, self.consumed / mean_demand, 0.0)

    def concentrations(self, injection: Injection) -> np.ndarray:
        """Every node's concentration (mg/L) at every report time after this injection (a view, overwritten by
        the next call). The source is switched on at the injection's start and off at its end, both report times
        (the quality run stops at each), so any start on the report step works, whatever the model's pattern step."""
        settings = self.settings
        step = settings.report_step_s
        if injection.start_s % step or settings.injection_s % step or not 0 <= injection.start_s < settings.duration_s:
            raise InputError(f"an injection at {injection.start_s} s lasting {settings.injection_s} s: starts and "
                             f"lengths are whole report steps ({step} s) within the run ({settings.duration_s} s)")
        node = self.node_index[injection.node]
        self.project.set_node_value(node, en.SOURCETYPE, SOURCE_TYPES[settings.source_type])
        self.project.set_node_value(node, en.SOURCEPAT, 0)
        self.project.set_node_value(node, en.SOURCEQUAL, 0.0)
        end = injection.start_s + settings.injection_s
        self.project.quality_samples(self.quality, (node, injection.start_s, end, settings.strength))
        return self.quality

    def impacts(self, injection: Injection) -> Impacts:
        return impacts_of(self, injection, self.concentrations(injection))



def harm_curves(shared: SharedHydraulics, concentration: np.ndarray) -> np.ndarray:
    """The harms after ``z1_s`` (``HARMS[1:]``) done before each report time, and in the whole run: row k sums
    the report times before the k-th (row 0 is none, the last row all of them), each sample standing for the
    report step that follows it. Only the nodes the contaminant reached, and the pipes they feed, are counted."""
    from scipy.special import ndtr
    settings, step = shared.settings, float(shared.settings.report_step_s)
    reached = np.flatnonzero(concentration.max(axis=0) > 0)
    quality = concentration[:, reached]
    above_limit = quality > settings.detection_limit_mg_L
    volume = shared.consumed[:, reached] * step                                    # m3 per sample
    z3 = (volume * (quality > settings.hazard_mg_L)).sum(axis=1)
    mass_kg = (volume * np.where(above_limit, quality, 0.0)).sum(axis=1) / 1000.0   # mg/L x m3 = g
    dose = np.cumsum(quality * shared.timing[:, reached], axis=0) * (
        settings.ingestion_L_day * step / 86400 / settings.body_kg)                  # mg per kg of body
    affected = np.zeros_like(dose)
    dosed = dose > 0
    affected[dosed] = ndtr(settings.probit_beta * np.log10(dose[dosed] / settings.dose50_mg_kg))
    people = affected @ shared.population[reached]
    # A pipe is entered when its upstream node (by the flow's direction then) is above the detection limit.
    everywhere = np.zeros(concentration.shape, dtype=bool)
    everywhere[:, reached] = above_limit
    fed = np.flatnonzero(np.isin(shared.pipe_from, reached) | np.isin(shared.pipe_to, reached))
    flow = shared.pipe_flow[:, fed]
    upstream = (flow > 0) & everywhere[:, shared.pipe_from[fed]] | (flow < 0) & everywhere[:, shared.pipe_to[fed]]
    extent = np.maximum.accumulate(upstream, axis=0) @ shared.pipe_length_m[fed]
    curves = np.zeros((len(shared.times) + 1, len(HARMS) - 1))
    curves[1:, 0], curves[1:, 1], curves[1:, 2], curves[1:, 3] = people, np.cumsum(z3), np.cumsum(mass_kg), extent
    return curves


def _detections(shared: SharedHydraulics, concentration: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate sensors (columns) that detect the contaminant (a concentration above the detection limit at a
    report time), the report time each first does (rows), and the harm curves."""
    detected = concentration[:, shared.sensor_columns] > shared.settings.detection_limit_mg_L
    columns = np.flatnonzero(detected.any(axis=0))
    return columns, detected[:, columns].argmax(axis=0), harm_curves(shared, concentration)


def impacts_of(shared: SharedHydraulics, injection: Injection, concentration: np.ndarray) -> Impacts:
    """Each candidate sensor's first detection and the harm done before it; the whole run's harm undetected."""
    columns, rows, curves = _detections(shared, concentration)
    impacts = Impacts(injection, [shared.sensors[column] for column in columns],
                      [int(shared.times[row]) for row in rows])
    impacts.harm = [[float(shared.times[row] - injection.start_s), *curves[row].tolist()] for row in rows]
    impacts.undetected = [float(shared.settings.duration_s - injection.start_s), *curves[-1].tolist()]
    return impacts


def task_impacts(shared: SharedHydraulics, member: int, injections: list[Injection]) -> TaskImpacts:
    """Several injections' impacts as one task returns them (``cloudburst.schema.impacts``)."""
    rows, columns, times, harms, undetected = [], [], [], [], []
    for row, injection in enumerate(injections):
        found, first, curves = _detections(shared, shared.concentrations(injection))
        rows.append(np.full(len(found), row, dtype=np.int32))
        columns.append(found.astype(np.int32))
        times.append(shared.times[first])
        harms.append(curves[first])
        undetected.append(curves[-1])
    return TaskImpacts(member, shared.settings.duration_s, list(shared.sensors),
                       [(injection.node, injection.start_s) for injection in injections],
                       np.concatenate(rows), np.concatenate(columns), np.concatenate(times).astype(np.int64),
                       np.concatenate(harms).reshape(-1, len(HARMS) - 1), np.asarray(undetected, dtype=np.float64))
