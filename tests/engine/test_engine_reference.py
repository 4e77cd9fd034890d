"""Every alteration type, stored by the file path (a scenario's ``run.epanet: "2.2"``), equals a reference run written with plain wntr calls (no
CloudBurst code on the reference side: a wrong alteration cannot be applied identically on both sides), bit for
bit for every stored value, and each summary metric equals the one computed from the reference's results. A
negative control nudges a drawn value by 1e-9 on the reference side and must make the comparison fail."""
from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import wntr
from cloudburst.engine.batch import run_batch
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.batch import make_batch
from cloudburst.state.models import ModelCache
from wntr.network import LinkStatus
from wntr.network.controls import Control, ControlAction, SimTimeCondition

NET3 = Path(__file__).resolve().parents[2] / "files" / "models" / "Net3.inp"
START = 1704067200  # 2024-01-01T00:00:00Z
HOUR = 3600
_members = itertools.count()


@pytest.fixture(scope="module")
def stored(results_store, net3, model_session, tmp_path_factory) -> Callable[[dict, list], dict]:
    """Run a job through the engine into the results store; returns what the store holds: series by (kind,
    attribute) as {(seconds, element): value}, and the member's row (status and summary)."""
    from test_engine import stored_batch
    cache = ModelCache(tmp_path_factory.mktemp("reference-cache"), session=model_session)

    def run(run: dict, series: list) -> dict:
        member = next(_members)
        batch = make_batch("reference", [{
            "schema": "cloudburst.job/1", "ensemble": "reference", "member": member, "seed": 1,
            "input": {**net3, "start_time_utc": "2024-01-01T00:00:00Z"}, "run": {"duration_s": 24 * HOUR, "epanet": "2.2", **run},
            "output": {"series": series}}])
        run_batch(batch, cache, results_store, None)
        row, frame = stored_batch(results_store, "reference", batch["batch"])
        values = {}
        for (kind, attribute), group in frame.groupby([fmt.KIND, fmt.ATTRIBUTE]):
            values[(kind, attribute)] = {(int(elapsed), element): value for elapsed, element, value in
                                         zip(group[fmt.ELAPSED], group[fmt.ELEMENT], group[fmt.VALUE])}
        return {"series": values, "summary": row}
    return run


def reference(alter: Callable[[wntr.network.WaterNetworkModel], None], simulator: str = "epanet",
              quality: str = "NONE") -> tuple[wntr.network.WaterNetworkModel, wntr.sim.results.SimulationResults]:
    """Net3 for 24 h, altered by plain wntr calls, run as a modeller would."""
    wn = wntr.network.WaterNetworkModel(str(NET3))
    wn.options.time.duration = 24 * HOUR
    wn.options.quality.parameter = quality
    alter(wn)
    if simulator == "wntr":
        return wn, wntr.sim.WNTRSimulator(wn).run_sim()
    with tempfile.TemporaryDirectory() as workdir:
        return wn, wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(workdir, "reference"))


def differences(engine: dict, results: wntr.sim.results.SimulationResults) -> int:
    """How many stored values are not bit-identical to the reference's (float32 widened to float64)."""
    count = 0
    for (kind, attribute), values in engine["series"].items():
        frame = (results.node if kind == "node" else results.link)[attribute]
        assert len(values) == frame.shape[1] * 25, f"{kind} {attribute}: {len(values)} values stored"
        for (seconds, element), value in values.items():
            expected = np.float64(frame.loc[seconds, element])
            count += expected.tobytes() != np.float64(value).tobytes()
    return count


NODES = {"element": "node", "attributes": ["pressure"]}
LINKS = {"element": "link", "attributes": ["flowrate"]}


def window(wn: wntr.network.WaterNetworkModel, name: str, start_h: int, end_h: int) -> str:
    wn.add_pattern(name, [1.0 if start_h <= hour < end_h else 0.0 for hour in range(25)])
    return name


def scale_demands(wn, factor: float, names=None, pattern: str | None = None) -> None:
    for name in names or wn.junction_name_list:
        for demand in wn.get_node(name).demand_timeseries_list:
            if pattern is None or demand.pattern_name == pattern:
                demand.base_value *= factor


def closed_between(wn, link_name: str, start_h: int, end_h: int, drop_controls: list[str]) -> None:
    for control in drop_controls:
        wn.remove_control(control)
    link = wn.get_link(link_name)
    if start_h == 0:
        link.initial_status = LinkStatus.Closed
    else:
        wn.add_control("close", Control(SimTimeCondition(wn, "=", start_h * HOUR),
                                        ControlAction(link, "status", LinkStatus.Closed)))
    wn.add_control("open", Control(SimTimeCondition(wn, "=", end_h * HOUR), ControlAction(link, "status", LinkStatus.Open)))


def set_pipes(wn, changes: dict[str, tuple[str, float]], roughness_factor: float) -> None:
    for _, pipe in wn.pipes():
        pipe.roughness *= roughness_factor
    for name, (attribute, value) in changes.items():
        setattr(wn.get_link(name), attribute, value)


PATTERN_2 = ["123", "15", "35"]  # of these only 123 follows pattern 2 in Net3: the filter scales it alone
CASES = {
    "demand_scale": ([{"type": "demand_scale", "factor": 1.13},
                      {"type": "demand_scale", "factor": 0.6, "nodes": PATTERN_2, "pattern": "2"}],
                     lambda wn, d=0.0: (scale_demands(wn, 1.13 + d), scale_demands(wn, 0.6, PATTERN_2, "2"))),
    "pattern_replace": ([{"type": "pattern_replace", "pattern": "1", "multipliers": [0.5, 1.5, 1.0]}],
                        lambda wn, d=0.0: setattr(wn.get_pattern("1"), "multipliers", [0.5 + d, 1.5, 1.0])),
    "pipe_property": ([{"type": "pipe_property", "property": "roughness", "factor": 0.8},
                       {"type": "pipe_property", "property": "diameter", "pipes": ["105"], "value": 0.1},
                       {"type": "pipe_property", "property": "length", "pipes": ["101"], "value": 5000.0}],
                      lambda wn, d=0.0: set_pipes(wn, {"105": ("diameter", 0.1), "101": ("length", 5000.0)}, 0.8 + d)),
    "link_status": ([{"type": "link_status", "link": "330", "start_s": 6 * HOUR, "end_s": 12 * HOUR}],
                    lambda wn, d=0.0: closed_between(wn, "330", 6, 12, ["control 17", "control 18"])),
    "pump_outage": ([{"type": "pump_outage", "pump": "335", "start_s": 0, "end_s": 10 * HOUR}],
                    lambda wn, d=0.0: closed_between(wn, "335", 0, 10, ["control 15", "control 16"])),
    "tank_level": ([{"type": "tank_level", "tank": "1", "init_level_m": 5.0}],
                   lambda wn, d=0.0: setattr(wn.get_node("1"), "init_level", 5.0 + d)),
    "fire_flow": ([{"type": "fire_flow", "node": "255", "flow_m3s": 0.1, "start_s": 10 * HOUR, "end_s": 14 * HOUR}],
                  lambda wn, d=0.0: wn.get_node("255").add_demand(0.1 + d, window(wn, "fire", 10, 14), "fire")),
}


@pytest.mark.parametrize("case", CASES)
def test_each_alteration_stores_exactly_what_plain_wntr_computes(stored, case):
    alterations, alter = CASES[case]
    engine = stored({"alterations": alterations}, [NODES, LINKS])
    wn, results = reference(alter)
    assert differences(engine, results) == 0
    junctions = wn.junction_name_list
    lowest = results.node["pressure"][junctions].min(axis=0)
    assert engine["summary"]["pressure_min"] == float(lowest.min())
    assert engine["summary"]["nodes_below_threshold"] == int((lowest < 20.0).sum())


# Not pattern_replace: wntr writes pattern multipliers to the .inp with fewer digits than a 1e-9 nudge needs.
@pytest.mark.parametrize("case", ["demand_scale", "pipe_property", "fire_flow", "tank_level"])
def test_a_value_nudged_by_1e_9_on_the_reference_side_fails_the_comparison(stored, case):
    alterations, alter = CASES[case]
    engine = stored({"alterations": alterations}, [NODES, LINKS])
    _, nudged = reference(lambda wn: alter(wn, 1e-9))
    assert differences(engine, nudged) > 0


# Strengths are SI (kg/m³, or kg/s for MASS): 0.024 kg/m³ is 24 mg/L; the threshold is mg/L.
@pytest.mark.parametrize("source_type, strength", [("SETPOINT", 0.024), ("CONCEN", 0.024), ("MASS", 0.01)])
def test_a_contaminant_source_reaches_exactly_the_nodes_the_reference_says(stored, source_type, strength):
    engine = stored({"quality": {"mode": "chemical", "threshold": 12.0}, "alterations": [
        {"type": "contaminant_source", "node": "River", "source_type": source_type, "strength": strength,
         "start_s": 0, "end_s": 6 * HOUR}]}, [{"element": "node", "attributes": ["pressure", "quality"]}])
    wn, results = reference(lambda wn: wn.add_source("spill", "River", source_type, strength,
                                                     window(wn, "spill", 0, 6)), quality="CHEMICAL")
    assert differences(engine, results) == 0
    peak = results.node["quality"][wn.junction_name_list].max(axis=0)
    assert engine["summary"]["quality_max"] == float(peak.max())
    # A 12 mg/L threshold; wntr's concentrations are kg/m³ (1 mg/L = 0.001 kg/m³).
    assert engine["summary"]["nodes_reached"] == int((peak * 1000 > 12.0).sum())
    assert 0 < engine["summary"]["nodes_reached"] < len(wn.junction_name_list)


def test_water_age_and_trace_equal_the_reference(stored):
    engine = stored({"quality": {"mode": "age"}}, [{"element": "node", "attributes": ["quality"]}])
    wn, results = reference(lambda wn: None, quality="AGE")
    assert differences(engine, results) == 0
    age = results.node["quality"][wn.junction_name_list]
    assert engine["summary"]["age_max_h"] == float(age.max(axis=0).max()) / 3600.0
    assert engine["summary"]["age_mean_h"] == float(age.to_numpy(dtype=np.float64).mean()) / 3600.0

    def trace_from_lake(wn):
        wn.options.quality.trace_node = "Lake"
    engine = stored({"quality": {"mode": "trace", "trace_node": "Lake"}}, [{"element": "node", "attributes": ["quality"]}])
    _, results = reference(trace_from_lake, quality="TRACE")
    assert differences(engine, results) == 0


# wntr's own simulator is not bit-reproducible: two runs of the same model in one process differ in the last bit
# of some values (measured: 0.11428158280190244 vs ...243). Its results are compared to 1e-12 relative.
WNTR_RTOL = 1e-12


def test_a_leak_with_the_wntr_simulator_equals_the_reference(stored):
    engine = stored({"simulator": "wntr", "duration_s": 4 * HOUR, "alterations": [
        {"type": "leak", "node": "123", "area_m2": 0.005, "start_s": HOUR}]},
        [{"element": "node", "attributes": ["leak_demand"], "ids": ["123"]}])

    def leak(wn):
        wn.options.time.duration = 4 * HOUR
        wn.get_node("123").add_leak(wn, area=0.005, discharge_coeff=0.75, start_time=HOUR, end_time=None)
    _, results = reference(leak, simulator="wntr")
    values = engine["series"][("node", "leak_demand")]
    assert len(values) == 5 and values[(0, "123")] == 0.0
    expected = [results.node["leak_demand"].loc[t, "123"] for (t, _) in values]
    assert np.allclose(list(values.values()), expected, rtol=WNTR_RTOL, atol=0)
    assert values[(2 * HOUR, "123")] > 0.0


def test_pressure_driven_demand_reports_the_reference_water_service_availability(stored):
    engine = stored({"simulator": "wntr", "duration_s": 6 * HOUR, "demand_model": "PDD", "required_pressure_m": 60.0,
                     "minimum_pressure_m": 0.0}, [])

    def pdd(wn):
        wn.options.time.duration = 6 * HOUR
        wn.options.hydraulic.demand_model = "PDD"
        wn.options.hydraulic.required_pressure = 60.0
        wn.options.hydraulic.minimum_pressure = 0.0
    wn, results = reference(pdd, simulator="wntr")
    junctions = wn.junction_name_list
    expected = wntr.metrics.expected_demand(wn)[junctions]
    delivered = results.node["demand"][junctions].loc[expected.index]
    availability = float(delivered.to_numpy(dtype=np.float64).sum()) / float(expected.to_numpy(dtype=np.float64).sum())
    assert engine["summary"]["water_service_availability"] == pytest.approx(availability, rel=WNTR_RTOL)
    assert 0.0 < availability < 1.0
