"""The warm engine stores exactly what EPANET 2.3 writes to its own binary output file for the same project after
the same alterations, bit for bit, for every alteration type.

The reference side uses none of CloudBurst's code: owa-epanet's own SWIG wrapper opens Net3, makes the
alteration with plain toolkit calls (SI values converted with wntr's EPANET unit tables, as the job's values
are), and has EPANET write its binary output file (hydraulics and quality run together, EN_SAVE); the test reads
that file itself and applies wntr's conversion to SI. A negative control nudges a value by 1e-9 on the reference
side and must make the comparison fail. Each alteration is also run on wntr's file path (EPANET 2.2) and must
agree to within float32 noise: both engines read the alteration the same way.
"""
from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

import epanet.toolkit as tk
import numpy as np
import pandas as pd
import pytest
from cloudburst.engine.batch import run_batch
from cloudburst.engine.warm import WarmEngine
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.batch import make_batch
from cloudburst.state.models import ModelCache
from test_engine_reference import NET3
from wntr.epanet.util import FlowUnits, HydParam, MassUnits, QualParam, from_si

HOUR = 3600
GPM = FlowUnits.GPM  # Net3's flow units
_members = itertools.count()
NODE_BLOCKS = {"demand": 0, "head": 1, "pressure": 2, "quality": 3}
LINK_BLOCKS = {"flowrate": 0, "velocity": 1, "headloss": 2, "status": 4}
# EPANET's link status codes (0 XHEAD, 1 TEMPCLOSED, 2 CLOSED, 3 OPEN, 4 ACTIVE, 5-7 XFLOW, XFCV, XPRESSURE) as
# wntr's LinkStatus reads them: closed 0, open 1, active 2.
STATUS_OF_CODE = {0: 0, 1: 0, 2: 0, 3: 1, 4: 2, 5: 1, 6: 1, 7: 1}
TO_SI = {"demand": HydParam.Demand, "head": HydParam.HydraulicHead, "pressure": HydParam.Pressure}


@pytest.fixture(scope="module")
def warm_cache(model_session, tmp_path_factory) -> ModelCache:
    return ModelCache(tmp_path_factory.mktemp("toolkit-cache"), session=model_session)


@pytest.fixture(scope="module")
def engine(warm_cache):
    engine = WarmEngine(warm_cache)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def stored(results_store, net3, warm_cache, engine) -> Callable[..., dict]:
    """Run a one-member batch on the warm engine (or the file path) into the results store; returns what the
    store holds: {"series": {attribute: frame (time x node)}, "row": the member's status and summary}."""
    from test_engine import stored_batch, values

    def run(run: dict, attributes: list[str], warm: bool = True, output: dict | None = None,
            links: list[str] | None = None, source: dict | None = None) -> dict:
        series = [{"element": "node", "attributes": attributes}]
        if links:
            series.append({"element": "link", "attributes": links})
        batch = make_batch("toolkit", [{
            "schema": "cloudburst.job/1", "ensemble": "toolkit", "member": next(_members), "seed": 1,
            "input": {**(source or net3), "start_time_utc": "2024-01-01T00:00:00Z"},
            "run": {"duration_s": 24 * HOUR, **({} if warm else {"epanet": "2.2"}), **run},
            "output": {"series": series, **(output or {})}}])
        run_batch(batch, warm_cache, results_store, None, engine)
        row, frame = stored_batch(results_store, "toolkit", batch["batch"])
        node = frame[frame[fmt.KIND] == fmt.NODE]
        link = frame[frame[fmt.KIND] == fmt.LINK]
        return {"series": {attribute: values(node, attribute) for attribute in attributes},
                "links": {attribute: values(link, attribute) for attribute in links or []}, "row": row}
    return run


def _read_output(path: Path, kind: str = "node") -> dict[str, pd.DataFrame]:
    """EPANET's binary output file (toolkit manual, "Output File Format"): node (or link) blocks per report
    period."""
    raw = np.fromfile(path, dtype=np.uint8)
    prolog = raw[:60].view(np.int32)
    nodes, links = int(prolog[2]), int(prolog[4])
    start, step = int(prolog[12]), int(prolog[13])
    names = [bytes(raw[884 + 32 * i:884 + 32 * (i + 1)]).rstrip(b"\0").decode() for i in range(nodes + links)]
    periods = int(raw[-12:-8].view(np.int32)[0])
    width = 4 * nodes + 8 * links
    data = raw[len(raw) - 28 - periods * width * 4:len(raw) - 28].view(np.float32).reshape(periods, width)
    times = [start + k * step for k in range(periods)]
    if kind == "link":
        return {name: pd.DataFrame(data[:, 4 * nodes + block * links:4 * nodes + (block + 1) * links], index=times,
                                   columns=names[nodes:]) for name, block in LINK_BLOCKS.items()}
    return {name: pd.DataFrame(data[:, block * nodes:(block + 1) * nodes], index=times, columns=names[:nodes])
            for name, block in NODE_BLOCKS.items()}


def save_run(project) -> None:
    """Hydraulics and quality stepped together (EN_SAVE): EPANET writes its output file from the in-memory values,
    as the warm engine steps; then the project is closed and freed."""
    tk.openH(project)
    tk.initH(project, tk.SAVE)
    tk.openQ(project)
    tk.initQ(project, tk.SAVE)
    while True:
        tk.runH(project)
        tk.runQ(project)
        tk.nextH(project)
        if tk.nextQ(project) <= 0:
            break
    tk.closeQ(project)
    tk.closeH(project)
    tk.close(project)
    tk.deleteproject(project)


def reference_links(alter: Callable[[object], None], tmp_path: Path) -> dict[str, pd.DataFrame]:
    """Net3 for 24 h altered by plain owa-epanet calls; EPANET's own output file's link blocks, converted to SI with
    wntr's unit tables: headloss per 1,000 length units for pipes, a length for pumps and valves."""
    out = tmp_path / f"reference-{next(_members)}.out"
    project = tk.createproject()
    tk.open(project, str(NET3), "/dev/null", str(out))
    tk.settimeparam(project, tk.DURATION, 24 * HOUR)
    pipes = np.array([tk.getlinktype(project, link) in (tk.PIPE, tk.CVPIPE)
                      for link in range(1, tk.getcount(project, tk.LINKCOUNT) + 1)])
    alter(project)
    save_run(project)
    frames = _read_output(out, "link")
    headloss = frames["headloss"].copy()
    headloss.loc[:, pipes] = HydParam.HeadLoss._to_si(GPM, frames["headloss"].loc[:, pipes])
    headloss.loc[:, ~pipes] = HydParam.Length._to_si(GPM, frames["headloss"].loc[:, ~pipes])
    return {"flowrate": HydParam.Flow._to_si(GPM, frames["flowrate"]),
            "velocity": HydParam.Velocity._to_si(GPM, frames["velocity"]), "headloss": headloss,
            "status": frames["status"].apply(lambda column: column.map(lambda code: STATUS_OF_CODE[int(code)]))}


def reference(alter: Callable[[object], None], tmp_path: Path, quality: str = "none") -> dict[str, pd.DataFrame]:
    """Net3 for 24 h altered by plain owa-epanet calls; EPANET's own output file, converted to SI by wntr."""
    out = tmp_path / f"reference-{next(_members)}.out"
    project = tk.createproject()
    tk.open(project, str(NET3), "/dev/null", str(out))
    tk.settimeparam(project, tk.DURATION, 24 * HOUR)
    alter(project)
    save_run(project)
    frames = _read_output(out)
    converted = {name: TO_SI[name]._to_si(GPM, frame) for name, frame in frames.items() if name in TO_SI}
    if quality == "age":
        converted["quality"] = QualParam.WaterAge._to_si(GPM, frames["quality"], mass_units=MassUnits.mg)
    elif quality == "chemical":
        converted["quality"] = QualParam.Concentration._to_si(GPM, frames["quality"], mass_units=MassUnits.mg)
    else:
        converted["quality"] = frames["quality"]
    return converted


def differences(engine: dict, expected: dict[str, pd.DataFrame], kind: str = "series") -> int:
    """How many stored values are not bit-identical to the reference's (float32 widened to float64)."""
    count = 0
    for attribute, frame in engine[kind].items():
        reference_frame = expected[attribute].loc[frame.index, frame.columns]
        assert frame.shape == (25, 97 if kind == "series" else 119), f"{attribute}: {frame.shape}"
        count += int((frame.to_numpy(np.float64).view(np.int64)
                      != reference_frame.to_numpy(np.float64).view(np.int64)).sum())
    return count


# --- the reference side's alterations: plain toolkit calls -----------------------------------------------------

def _nodes_of_type(project, kind: int) -> list[int]:
    return [i for i in range(1, tk.getcount(project, tk.NODECOUNT) + 1) if tk.getnodetype(project, i) == kind]


def scale_demands(project, factor: float, names: list[str] | None = None, pattern: str | None = None) -> None:
    nodes = [tk.getnodeindex(project, name) for name in names] if names else _nodes_of_type(project, tk.JUNCTION)
    wanted = None if pattern is None else tk.getpatternindex(project, pattern)
    for node in nodes:
        for category in range(1, tk.getnumdemands(project, node) + 1):
            if wanted is None or tk.getdemandpattern(project, node, category) == wanted:
                tk.setbasedemand(project, node, category, tk.getbasedemand(project, node, category) * factor)


def set_pattern(project, index: int, values: list[float]) -> None:
    array = tk.doubleArray(len(values))
    for position, value in enumerate(values):
        array[position] = value
    tk.setpattern(project, index, array.cast(), len(values))


def add_window(project, name: str, start_h: int, end_h: int) -> int:
    tk.addpattern(project, name)
    index = tk.getpatternindex(project, name)
    set_pattern(project, index, [1.0 if start_h <= hour < end_h else 0.0 for hour in range(25)])
    return index


def closed_between(project, link_id: str, start_h: int, end_h: int) -> None:
    link = tk.getlinkindex(project, link_id)
    for control in range(1, tk.getcount(project, tk.CONTROLCOUNT) + 1):
        if tk.getcontrol(project, control)[1] == link:
            tk.setcontrolenabled(project, control, 0)
    if start_h == 0:
        tk.setlinkvalue(project, link, tk.INITSTATUS, tk.CLOSED)
    else:
        tk.addcontrol(project, tk.TIMER, link, float(tk.CLOSED), 0, float(start_h * HOUR))
    tk.addcontrol(project, tk.TIMER, link, float(tk.OPEN), 0, float(end_h * HOUR))


def set_pipes(project, roughness_factor: float) -> None:
    for link in range(1, tk.getcount(project, tk.LINKCOUNT) + 1):
        if tk.getlinktype(project, link) in (tk.PIPE, tk.CVPIPE):
            tk.setlinkvalue(project, link, tk.ROUGHNESS, tk.getlinkvalue(project, link, tk.ROUGHNESS) * roughness_factor)
    tk.setlinkvalue(project, tk.getlinkindex(project, "105"), tk.DIAMETER, from_si(GPM, 0.1, HydParam.PipeDiameter))
    tk.setlinkvalue(project, tk.getlinkindex(project, "101"), tk.LENGTH, from_si(GPM, 5000.0, HydParam.Length))


def fire(project, flow_m3s: float) -> None:
    add_window(project, "fire", 10, 14)
    tk.adddemand(project, tk.getnodeindex(project, "255"), from_si(GPM, flow_m3s, HydParam.Demand), "fire", "fire")


PATTERN_2 = ["123", "15", "35"]  # of these only 123 follows pattern 2 in Net3: the filter scales it alone
CASES = {
    "unaltered": ([], lambda project, d=0.0: None),
    "demand_scale": ([{"type": "demand_scale", "factor": 1.13},
                      {"type": "demand_scale", "factor": 0.6, "nodes": PATTERN_2, "pattern": "2"}],
                     lambda project, d=0.0: (scale_demands(project, 1.13 + d),
                                             scale_demands(project, 0.6, PATTERN_2, "2"))),
    "pattern_replace": ([{"type": "pattern_replace", "pattern": "1", "multipliers": [0.5, 1.5, 1.0]}],
                        lambda project, d=0.0: set_pattern(project, tk.getpatternindex(project, "1"),
                                                           [0.5 + d, 1.5, 1.0])),
    "pipe_property": ([{"type": "pipe_property", "property": "roughness", "factor": 0.8},
                       {"type": "pipe_property", "property": "diameter", "pipes": ["105"], "value": 0.1},
                       {"type": "pipe_property", "property": "length", "pipes": ["101"], "value": 5000.0}],
                      lambda project, d=0.0: set_pipes(project, 0.8 + d)),
    "link_status": ([{"type": "link_status", "link": "330", "start_s": 6 * HOUR, "end_s": 12 * HOUR}],
                    lambda project, d=0.0: closed_between(project, "330", 6, 12)),
    "pump_outage": ([{"type": "pump_outage", "pump": "335", "start_s": 0, "end_s": 10 * HOUR}],
                    lambda project, d=0.0: closed_between(project, "335", 0, 10)),
    "tank_level": ([{"type": "tank_level", "tank": "1", "init_level_m": 5.0}],
                   lambda project, d=0.0: tk.setnodevalue(project, tk.getnodeindex(project, "1"), tk.TANKLEVEL,
                                                          from_si(GPM, 5.0 + d, HydParam.Length))),
    "fire_flow": ([{"type": "fire_flow", "node": "255", "flow_m3s": 0.1, "start_s": 10 * HOUR, "end_s": 14 * HOUR}],
                  lambda project, d=0.0: fire(project, 0.1 + d)),
}
ATTRIBUTES = ["pressure", "head", "demand"]


@pytest.mark.parametrize("case", CASES)
def test_each_alteration_stores_exactly_what_epanet_writes_to_its_output_file(stored, tmp_path, case):
    alterations, alter = CASES[case]
    engine = stored({"alterations": alterations}, ATTRIBUTES)
    assert engine["row"]["engine"] == "toolkit" and engine["row"]["epanet_version"] == tk_version()
    expected = reference(alter, tmp_path)
    assert differences(engine, expected) == 0
    junctions = [name for name in expected["pressure"].columns][:92]  # Net3: 92 junctions come first
    lowest = expected["pressure"][junctions].min(axis=0)
    assert engine["row"]["pressure_min"] == float(lowest.min())
    assert engine["row"]["nodes_below_threshold"] == int((lowest < 20.0).sum())


# A 10-hour outage of pump 335 empties tank 1, where EPANET 2.3 and 2.2 part (7.4 m at node 10 once it is empty;
# 2.3 changed how empty and full tanks are handled); four hours leave the tank above empty.
SAME_MEANING = {**{case: alterations for case, (alterations, _) in CASES.items() if case != "unaltered"},
                "pump_outage": [{"type": "pump_outage", "pump": "335", "start_s": 0, "end_s": 4 * HOUR}]}


@pytest.mark.parametrize("case", SAME_MEANING)
def test_each_alteration_means_the_same_on_the_file_path(stored, case):
    """EPANET 2.2 via wntr's .inp and EPANET 2.3 via the toolkit: the same network change, float32 noise apart."""
    alterations = SAME_MEANING[case]
    warm = stored({"alterations": alterations}, ["pressure"])
    file_path = stored({"alterations": alterations}, ["pressure"], warm=False)
    assert file_path["row"]["engine"] == "file"
    apart = np.abs(warm["series"]["pressure"].to_numpy(np.float64) - file_path["series"]["pressure"].to_numpy(np.float64))
    assert float(apart.max()) < 1e-3, f"{case}: {float(apart.max())} m apart"


@pytest.mark.parametrize("case", ["demand_scale", "pipe_property", "fire_flow", "tank_level", "pattern_replace"])
def test_a_value_nudged_by_1e_9_on_the_reference_side_fails_the_comparison(stored, tmp_path, case):
    alterations, alter = CASES[case]
    engine = stored({"alterations": alterations}, ATTRIBUTES)
    assert differences(engine, reference(lambda project: alter(project, 1e-9), tmp_path)) > 0


def test_a_resolution_rounds_each_value_to_the_nearest_multiple_of_its_power_of_two_step(stored):
    exact = stored({}, ["pressure", "head"])["series"]
    coarse = stored({}, ["pressure", "head"], output={"resolution": {"pressure": 0.001}})["series"]
    step = 2.0 ** -10  # the largest power of two not above 1 mm
    values, reference = coarse["pressure"].to_numpy(np.float64), exact["pressure"].to_numpy(np.float64)
    assert np.array_equal(values, np.round(values / step) * step)
    assert float(np.abs(values - reference).max()) <= step / 2 and not np.array_equal(values, reference)
    assert coarse["head"].equals(exact["head"])  # only the attributes named are rounded


def test_members_after_altered_ones_see_the_model_as_it_was(stored, tmp_path):
    """Values set back, or the model re-opened: an unaltered member run after every alteration equals EPANET's
    output for the unaltered model."""
    for alterations, _ in CASES.values():
        stored({"alterations": alterations}, ["pressure"])
    assert differences(stored({}, ATTRIBUTES), reference(lambda project: None, tmp_path)) == 0


def test_a_contaminant_source_with_chemical_quality_equals_the_reference(stored, tmp_path):
    engine = stored({"quality": {"mode": "chemical", "threshold": 12.0}, "alterations": [
        {"type": "contaminant_source", "node": "River", "strength": 0.024, "start_s": 0, "end_s": 6 * HOUR}]},
        ["pressure", "quality"])

    def spill(project):
        tk.setqualtype(project, tk.CHEM, "Chemical", "mg/L", "")
        node = tk.getnodeindex(project, "River")
        tk.setnodevalue(project, node, tk.SOURCEQUAL,
                        from_si(GPM, 0.024, QualParam.Concentration, mass_units=MassUnits.mg))
        tk.setnodevalue(project, node, tk.SOURCEPAT, add_window(project, "spill", 0, 6))
        tk.setnodevalue(project, node, tk.SOURCETYPE, tk.SETPOINT)
    expected = reference(spill, tmp_path, quality="chemical")
    assert differences(engine, expected) == 0
    peak = expected["quality"].iloc[:, :92].max(axis=0)
    assert engine["row"]["quality_max"] == float(peak.max())
    # 24 mg/L at the source, a 12 mg/L threshold; the reference's concentrations are SI, kg/m³ (1 mg/L = 0.001 kg/m³).
    assert 0 < engine["row"]["nodes_reached"] == int((peak * 1000 > 12.0).sum()) < 92


def test_water_age_and_trace_equal_the_reference(stored, tmp_path):
    engine = stored({"quality": {"mode": "age"}}, ["quality"])
    assert differences(engine, reference(lambda p: tk.setqualtype(p, tk.AGE, "", "", ""), tmp_path, "age")) == 0
    engine = stored({"quality": {"mode": "trace", "trace_node": "Lake"}}, ["quality"])
    expected = reference(lambda p: tk.setqualtype(p, tk.TRACE, "", "", "Lake"), tmp_path, "trace")
    assert differences(engine, expected) == 0
    assert float(expected["quality"].to_numpy().max()) > 50.0  # percent of water from the lake somewhere


def test_pressure_driven_demand_equals_the_reference_and_reports_service(stored, tmp_path):
    engine = stored({"demand_model": "PDD", "required_pressure_m": 60.0, "minimum_pressure_m": 0.0},
                    ["pressure", "demand"])

    def pda(project):
        exponent = tk.getdemandmodel(project)[3]
        tk.setdemandmodel(project, tk.PDA, from_si(GPM, 0.0, HydParam.Pressure),
                          from_si(GPM, 60.0, HydParam.Pressure), exponent)
    assert differences(engine, reference(pda, tmp_path)) == 0
    assert 0.0 < engine["row"]["water_service_availability"] < 1.0


LINKS = ["flowrate", "velocity", "headloss", "status"]


@pytest.mark.parametrize("case", CASES)
def test_link_series_store_exactly_what_epanet_writes_for_links_and_leave_node_values_as_they_were(
        stored, tmp_path, case):
    """Link series run on the warm engine (EPANET 2.3.5, like node series): closed links' flows and the headloss per
    1,000 units are the output file's own, and asking for them changes no node value."""
    alterations, alter = CASES[case]
    with_links = stored({"alterations": alterations}, ATTRIBUTES, links=LINKS)
    assert with_links["row"]["engine"] == "toolkit" and with_links["row"]["epanet_version"] == tk_version()
    assert differences(with_links, reference_links(alter, tmp_path), "links") == 0
    without = stored({"alterations": alterations}, ATTRIBUTES)
    for attribute in ATTRIBUTES:
        assert with_links["series"][attribute].equals(without["series"][attribute]), attribute
    assert with_links["row"]["pressure_min"] == without["row"]["pressure_min"]


def test_a_link_value_nudged_by_1e_9_on_the_reference_side_fails_the_comparison(stored, tmp_path):
    alterations, alter = CASES["pipe_property"]
    engine = stored({"alterations": alterations}, ["pressure"], links=LINKS)
    assert differences(engine, reference_links(lambda project: alter(project, 1e-9), tmp_path), "links") > 0


def test_closed_links_hold_the_solvers_flow_not_the_getters_zero(stored, tmp_path):
    """Pump 335 closed for ten hours: EPANET's getter reports 0 flow, its output file (and the store) the solver's."""
    alterations, alter = CASES["pump_outage"]
    flows = stored({"alterations": alterations}, ["pressure"], links=["flowrate", "status"])["links"]
    closed = flows["status"]["335"] == 0
    assert closed.sum() >= 10
    assert (flows["flowrate"]["335"][closed] != 0).all()  # the solver's residual flow through a closed link


# The demo's member 166 (Net3, 24 h): the tank empties, where EPANET 2.2 and 2.3.5 part by metres.
MEMBER_166 = [{"type": "demand_scale", "factor": 1.1831}, {"type": "pipe_property", "property": "roughness",
                                                           "factor": 0.7031}]


def test_the_demo_member_166_gives_one_minimum_on_every_path_of_its_epanet(stored, net3, tmp_path):
    """Node series only, node and link series, or the model inline: the same EPANET, the same minimum pressure;
    only asking for EPANET 2.2 (the whole ensemble's choice) gives 2.2's."""
    import wntr
    node_only = stored({"alterations": MEMBER_166}, ["pressure"])
    with_links = stored({"alterations": MEMBER_166}, ["pressure"], links=["flowrate", "headloss"])
    inline = stored({"alterations": MEMBER_166}, ["pressure"],
                    source={"inline": wntr.network.to_dict(wntr.network.WaterNetworkModel(str(NET3)))})
    file_path = stored({"alterations": MEMBER_166}, ["pressure"], warm=False)
    rows = [node_only["row"], with_links["row"], inline["row"]]
    assert {(row["status"], row["engine"], row["epanet_version"]) for row in rows} == {
        (fmt.FINISHED, "toolkit", tk_version())}
    assert node_only["row"]["pressure_min"] == with_links["row"]["pressure_min"]
    assert node_only["series"]["pressure"].equals(with_links["series"]["pressure"])
    # wntr writes the inline model's .inp with its own number formats: the same network to float32 noise.
    assert abs(inline["row"]["pressure_min"] - node_only["row"]["pressure_min"]) < 1e-3
    assert (file_path["row"]["engine"], file_path["row"]["epanet_version"]) == ("file", "2.2")
    assert abs(file_path["row"]["pressure_min"] - node_only["row"]["pressure_min"]) > 1.0


def test_a_model_epanet_cannot_solve_fails_its_members_saying_the_other_version_exists(
        stored, model_dir, model_server):
    """Net3 with an island of two junctions and no source: EPANET cannot solve it (Error 110); the member fails with
    EPANET's words and the sentence naming the other version, and never runs on 2.2 unasked; asked for 2.2, the
    sentence names 2.3.5. A file EPANET 2.3.5 does not open says the same."""
    import hashlib

    def served(text: str) -> dict:
        data = text.encode()
        sha = hashlib.sha256(data).hexdigest()
        (model_dir / f"{sha}.inp").write_bytes(data)
        return {"url": f"{model_server}/{sha}.inp", "sha256": sha}
    island = served(NET3.read_text().replace("[PIPES]", "[PIPES]\n ISLAND_PIPE ISLAND_A ISLAND_B 1000 12 100 0 Open", 1)
                    .replace("[JUNCTIONS]", "[JUNCTIONS]\n ISLAND_A 10 5\n ISLAND_B 10 5", 1))
    row = stored({}, ["pressure"], source=island)["row"]
    assert row["status"] == fmt.FAILED and row["engine"] == "toolkit" and row["epanet_version"] == tk_version()
    assert "Error 110: cannot solve network hydraulic equations" in row["error"]
    assert 'run: {epanet: "2.2"}' in row["error"], row["error"]
    row = stored({}, ["pressure"], source=island, warm=False)["row"]
    assert row["status"] == fmt.FAILED and (row["engine"], row["epanet_version"]) == ("file", "2.2")
    assert "Error 110" in row["error"] and 'run: {epanet: "2.3.5"}' in row["error"], row["error"]
    unopened = served(NET3.read_text().replace("[PIPES]", "[PIPES]\n SELF_PIPE 10 10 1000 12 100 0 Open", 1))
    row = stored({}, ["pressure"], source=unopened)["row"]
    assert row["status"] == fmt.FAILED and row["epanet_version"] == tk_version()
    assert "does not open the model" in row["error"] and 'run: {epanet: "2.2"}' in row["error"], row["error"]


def tk_version() -> str:
    number = tk.getversion()
    return f"{number // 10000}.{number % 10000 // 100}.{number % 100}"


@pytest.fixture(scope="module")
def stiff_net3(model_dir, model_server) -> dict:
    """Net3 allowed 4 trials per step, stopping when a step does not balance: its first step needs 5."""
    text = NET3.read_text()
    text = text.replace(" Trials             \t40", " Trials             \t4")
    data = text.replace(" Unbalanced         \tContinue 10", " Unbalanced         \tSTOP").encode()
    assert data != NET3.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(data)
    return {"url": f"{model_server}/{sha}.inp", "sha256": sha}


@pytest.mark.parametrize("warm", [True, False], ids=["toolkit", "file"])
def test_a_member_that_stops_balancing_is_unbalanced_not_failed_and_continue_keeps_it(
        results_store, stiff_net3, warm_cache, engine, warm):
    from test_engine import stored_batch
    documents = [{"schema": "cloudburst.job/1", "ensemble": "stiff", "member": member, "input": stiff_net3,
                  "run": {"duration_s": 6 * HOUR, **({} if warm else {"epanet": "2.2"}), **run}, "output": {"series": [{"element": "node",
                                                                                  "attributes": ["pressure"]}]}}
                 for member, run in enumerate([{}, {"unbalanced": "continue"}])]
    batch = make_batch("stiff", documents)
    outcome = run_batch(batch, warm_cache, results_store, None, engine)
    assert outcome.unbalanced.keys() == {0} and outcome.finished == [1] and not outcome.failed
    assert "0:00:00" in outcome.unbalanced[0]
    rows = member_rows_of(results_store, batch["batch"])
    assert rows[0]["status"] == fmt.UNBALANCED and rows[1]["status"] == fmt.FINISHED
    if warm:
        assert "UNBALANCED STOP" in rows[0]["error"]
        assert rows[1]["warnings"].startswith("system hydraulically unbalanced from 0:00:00")
    _, series = stored_batch(results_store, "stiff", batch["batch"])
    assert set(series[fmt.MEMBER]) == {1} and len(series) == 7 * 97  # the unbalanced member stores no series


def member_rows_of(store, batch: str) -> dict[int, dict]:
    from cloudburst.state.reader import member_rows
    return {int(row["member"]): row for row in member_rows(store, "stiff", [batch]).to_dict("records")}
