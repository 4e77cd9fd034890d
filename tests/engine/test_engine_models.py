"""Bit for bit on every kind of model: four models the project does not ship, each alteration type and quality mode
where it applies, stored by the warm engine, equal EPANET 2.3.5's own output file (node pressure, head, demand and
quality; link flow, velocity, headloss and status) for the same changes made by plain calls of owa-epanet's own
wrapper. No CloudBurst code on the reference side; wntr's unit tables convert the job's SI values and the output.

The models: ``si-valves-lps`` (written for this test: litres per second, Hazen-Williams, every valve type, [RULES],
a junction with two demand categories on different patterns, a reservoir head pattern, a pump speed pattern, a
2-hour pattern step over a 1-hour hydraulic step); the same network in m³/h with Darcy-Weisbach and a 30-minute
pattern step; wntr's Net1 with a rule added (gallons per minute, a 2-hour pattern step); and wntr's ky10 (935 nodes,
five PRVs). Each model's negative control nudges a value by 1e-9 on the reference side and must fail the
comparison; after every alteration an unaltered member must still equal the unaltered reference (the model put
back).
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
import wntr
from cloudburst.engine.batch import run_batch
from cloudburst.engine.warm import WarmEngine
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.batch import make_batch
from cloudburst.state.models import ModelCache
from test_engine_toolkit import STATUS_OF_CODE, _read_output, save_run
from wntr.epanet.util import FlowUnits, HydParam, MassUnits, QualParam, from_si

HOUR = 3600
DURATION_S = 24 * HOUR
LIBRARY = Path(wntr.__file__).parent / "library" / "networks"
HERE = Path(__file__).parent / "models"
_members = itertools.count()
NODE_ATTRIBUTES = ["pressure", "head", "demand"]
LINK_ATTRIBUTES = ["flowrate", "velocity", "headloss", "status"]
NET1_RULE = "RULE 1\nIF TANK 2 LEVEL ABOVE 140\nTHEN PUMP 9 STATUS IS CLOSED\n\n"


def cmh_darcy(text: str) -> str:
    """The same network in m³/h with Darcy-Weisbach (roughness in mm) and a 30-minute pattern step."""
    out, section = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        fields = line.split()
        if fields and not stripped.startswith((";", "[")):
            if section == "[JUNCTIONS]" and len(fields) >= 3:
                fields[2] = f"{float(fields[2]) * 3.6:g}"
            elif section == "[DEMANDS]":
                fields[1] = f"{float(fields[1]) * 3.6:g}"
            elif section == "[PIPES]":
                fields[5] = {"120": "0.1", "110": "0.2", "100": "0.5"}[fields[5]]
            elif section == "[VALVES]" and fields[4] == "FCV":
                fields[5] = f"{float(fields[5]) * 3.6:g}"
            elif section == "[CURVES]" and fields[0] == "C1":
                fields[1] = f"{float(fields[1]) * 3.6:g}"
            elif section == "[OPTIONS]" and fields[0] in ("Units", "Headloss"):
                fields[1] = {"Units": "CMH", "Headloss": "D-W"}[fields[0]]
            elif section == "[TIMES]" and fields[:2] == ["Pattern", "Timestep"]:
                fields[2] = "0:30"
            line = " " + " ".join(fields)
        out.append(line)
    return "\n".join(out) + "\n"


MODELS: dict[str, Callable[[], str]] = {
    "si-valves-lps": lambda: (HERE / "si-valves-lps.inp").read_text(),
    "si-valves-cmh-dw": lambda: cmh_darcy((HERE / "si-valves-lps.inp").read_text()),
    "net1-rule-gpm": lambda: (LIBRARY / "Net1.inp").read_text().replace("[RULES]\n", "[RULES]\n" + NET1_RULE, 1),
    "ky10-prv-gpm": lambda: (LIBRARY / "ky10.inp").read_text(),
}


class Model:
    """A model served to the workers, with what its cases need, read by owa-epanet's wrapper (not CloudBurst)."""

    def __init__(self, name: str, path: Path, source: dict):
        self.name, self.path, self.source = name, path, source
        project = tk.createproject()
        tk.open(project, str(path), "/dev/null", "")
        try:
            self.units = FlowUnits(tk.getflowunits(project))
            nodes = range(1, tk.getcount(project, tk.NODECOUNT) + 1)
            links = range(1, tk.getcount(project, tk.LINKCOUNT) + 1)
            self.node_ids = [tk.getnodeid(project, node) for node in nodes]
            kinds = {node: tk.getnodetype(project, node) for node in nodes}
            self.junctions = [tk.getnodeid(project, n) for n in nodes if kinds[n] == tk.JUNCTION]
            self.tanks = [tk.getnodeid(project, n) for n in nodes if kinds[n] == tk.TANK]
            self.reservoirs = [tk.getnodeid(project, n) for n in nodes if kinds[n] == tk.RESERVOIR]
            link_kinds = {link: tk.getlinktype(project, link) for link in links}
            self.pipe_flags = np.array([link_kinds[link] in (tk.PIPE, tk.CVPIPE) for link in links])
            self.pipes = [tk.getlinkid(project, link) for link in links if link_kinds[link] == tk.PIPE]
            self.pumps = [tk.getlinkid(project, link) for link in links if link_kinds[link] == tk.PUMP]
            self.valves = [tk.getlinkid(project, link) for link in links if link_kinds[link] > tk.PUMP]
            self.pattern_step = tk.gettimeparam(project, tk.PATTERNSTEP)
            assert tk.gettimeparam(project, tk.PATTERNSTART) == 0
            categories = {n: tk.getnumdemands(project, n) for n in nodes if kinds[n] == tk.JUNCTION}
            self.demanding = [tk.getnodeid(project, n) for n in categories
                              if any(tk.getbasedemand(project, n, c) > 0 for c in range(1, categories[n] + 1))]
            patterned = [n for n, count in categories.items() if count
                         and tk.getdemandpattern(project, n, count) > 0 and tk.getbasedemand(project, n, count) > 0]
            multi = [n for n in patterned if categories[n] > 1]
            scaled = (multi or patterned or [None])[0]  # a node whose last category follows a pattern, if any
            self.filter_node = None if scaled is None else tk.getnodeid(project, scaled)
            self.filter_pattern = None if scaled is None else tk.getpatternid(
                project, tk.getdemandpattern(project, scaled, categories[scaled]))
            self.first_pattern = tk.getpatternid(project, 1)
            # A level inside the first tank's range, in metres as a job gives it.
            self.tank_level_m = None if not self.tanks else round(float(HydParam.Length._to_si(self.units, np.mean([
                tk.getnodevalue(project, tk.getnodeindex(project, self.tanks[0]), what)
                for what in (tk.MINLEVEL, tk.MAXLEVEL)]))), 3)
        finally:
            tk.close(project)
            tk.deleteproject(project)

    def si(self, value: float, parameter) -> float:
        return float(from_si(self.units, value, parameter))

    def window(self, start_s: int, end_s: int) -> list[float]:
        step = self.pattern_step
        return [1.0 if start_s <= period * step < end_s else 0.0 for period in range(DURATION_S // step + 1)]


# --- the reference side: plain owa-epanet calls --------------------------------------------------------------

def set_pattern(project, index: int, values: list[float]) -> None:
    array = tk.doubleArray(len(values))
    for position, value in enumerate(values):
        array[position] = value
    tk.setpattern(project, index, array.cast(), len(values))


def add_window(project, model: Model, name: str, start_s: int, end_s: int) -> int:
    tk.addpattern(project, name)
    index = tk.getpatternindex(project, name)
    set_pattern(project, index, model.window(start_s, end_s))
    return index


def scale_demands(project, factor: float, names: list[str], pattern: str | None = None) -> None:
    wanted = None if pattern is None else tk.getpatternindex(project, pattern)
    for node in (tk.getnodeindex(project, name) for name in names):
        for category in range(1, tk.getnumdemands(project, node) + 1):
            if wanted is None or tk.getdemandpattern(project, node, category) == wanted:
                tk.setbasedemand(project, node, category, tk.getbasedemand(project, node, category) * factor)


def closed_between(project, link_id: str, start_s: int, end_s: int) -> None:
    """The link closed from start_s to end_s: its own controls and the rules acting on it switched off first."""
    link = tk.getlinkindex(project, link_id)
    for control in range(1, tk.getcount(project, tk.CONTROLCOUNT) + 1):
        if tk.getcontrol(project, control)[1] == link:
            tk.setcontrolenabled(project, control, 0)
    for rule in range(1, tk.getcount(project, tk.RULECOUNT) + 1):
        _, thens, elses, _ = tk.getrule(project, rule)
        acted = [tk.getthenaction(project, rule, a)[0] for a in range(1, thens + 1)]
        acted += [tk.getelseaction(project, rule, a)[0] for a in range(1, elses + 1)]
        if link in acted:
            tk.setruleenabled(project, rule, 0)
    if start_s == 0:
        tk.setlinkvalue(project, link, tk.INITSTATUS, tk.CLOSED)
    else:
        tk.addcontrol(project, tk.TIMER, link, float(tk.CLOSED), 0, float(start_s))
    tk.addcontrol(project, tk.TIMER, link, float(tk.OPEN), 0, float(end_s))


def scale_pipes(project, model: Model, factor: float) -> None:
    for link in range(1, tk.getcount(project, tk.LINKCOUNT) + 1):
        if tk.getlinktype(project, link) in (tk.PIPE, tk.CVPIPE):
            tk.setlinkvalue(project, link, tk.ROUGHNESS, tk.getlinkvalue(project, link, tk.ROUGHNESS) * factor)
    tk.setlinkvalue(project, tk.getlinkindex(project, model.pipes[0]), tk.DIAMETER,
                    model.si(0.1, HydParam.PipeDiameter))
    tk.setlinkvalue(project, tk.getlinkindex(project, model.pipes[1]), tk.LENGTH, model.si(500.0, HydParam.Length))


def fire(project, model: Model, flow_m3s: float) -> None:
    add_window(project, model, "fire", 4 * HOUR, 8 * HOUR)
    tk.adddemand(project, tk.getnodeindex(project, model.demanding[-1]),
                 model.si(flow_m3s, HydParam.Demand), "fire", "fire")


SOURCE_TYPES = {"CONCEN": tk.CONCEN, "MASS": tk.MASS, "SETPOINT": tk.SETPOINT, "FLOWPACED": tk.FLOWPACED}


def source(project, model: Model, kind: str, strength: float) -> None:
    tk.setqualtype(project, tk.CHEM, "Chemical", "mg/L", "")
    node = tk.getnodeindex(project, model.demanding[0])
    parameter = QualParam.SourceMassInject if kind == "MASS" else QualParam.Concentration
    tk.setnodevalue(project, node, tk.SOURCEQUAL, float(from_si(model.units, strength, parameter,
                                                                mass_units=MassUnits.mg)))
    tk.setnodevalue(project, node, tk.SOURCEPAT, add_window(project, model, "spill", 0, 6 * HOUR))
    tk.setnodevalue(project, node, tk.SOURCETYPE, SOURCE_TYPES[kind])


Case = tuple[dict, Callable[[object, Model, float], None], str]  # run, reference alteration, quality mode


def cases(model: Model) -> dict[str, Case]:
    """Every alteration type and quality mode that applies to the model: (the job's run, the reference's calls,
    the quality mode); the reference's calls take a nudge ``d`` (1e-9 in the negative control)."""
    found: dict[str, Case] = {
        "unaltered": ({}, lambda p, m, d: None, "none"),
        "demand_scale": ({"alterations": [{"type": "demand_scale", "factor": 1.13}] + ([] if model.filter_node is None
                          else [{"type": "demand_scale", "factor": 0.6, "nodes": [model.filter_node],
                                 "pattern": model.filter_pattern}])},
                         lambda p, m, d: (scale_demands(p, 1.13 + d, m.junctions),
                                          m.filter_node and scale_demands(p, 0.6, [m.filter_node], m.filter_pattern)),
                         "none"),
        "pattern_replace": ({"alterations": [{"type": "pattern_replace", "pattern": model.first_pattern,
                                              "multipliers": [0.5, 1.5, 1.0]}]},
                            lambda p, m, d: set_pattern(p, tk.getpatternindex(p, m.first_pattern), [0.5 + d, 1.5, 1.0]),
                            "none"),
        "pipe_property": ({"alterations": [
            {"type": "pipe_property", "property": "roughness", "factor": 0.8},
            {"type": "pipe_property", "property": "diameter", "pipes": [model.pipes[0]], "value": 0.1},
            {"type": "pipe_property", "property": "length", "pipes": [model.pipes[1]], "value": 500.0}]},
            lambda p, m, d: scale_pipes(p, m, 0.8 + d), "none"),
        "link_status_pipe": ({"alterations": [{"type": "link_status", "link": model.pipes[1], "start_s": 6 * HOUR,
                                               "end_s": 12 * HOUR}]},
                             lambda p, m, d: closed_between(p, m.pipes[1], 6 * HOUR + int(d * 1e9), 12 * HOUR),
                             "none"),
        "fire_flow": ({"alterations": [{"type": "fire_flow", "node": model.demanding[-1], "flow_m3s": 0.01,
                                        "start_s": 4 * HOUR, "end_s": 8 * HOUR}]},
                      lambda p, m, d: fire(p, m, 0.01 + d), "none"),
        "age": ({"quality": {"mode": "age"}}, lambda p, m, d: tk.setqualtype(p, tk.AGE, "", "", ""), "age"),
        "trace": ({"quality": {"mode": "trace", "trace_node": model.reservoirs[0]}},
                  lambda p, m, d: tk.setqualtype(p, tk.TRACE, "", "", m.reservoirs[0]), "trace"),
    }
    if model.valves:
        found["link_status_valve"] = ({"alterations": [{"type": "link_status", "link": model.valves[0],
                                                        "start_s": 6 * HOUR, "end_s": 12 * HOUR}]},
                                      lambda p, m, d: closed_between(p, m.valves[0], 6 * HOUR, 12 * HOUR), "none")
    if model.pumps:
        found["pump_outage"] = ({"alterations": [{"type": "pump_outage", "pump": model.pumps[0], "start_s": 0,
                                                  "end_s": 4 * HOUR}]},
                                lambda p, m, d: closed_between(p, m.pumps[0], 0, 4 * HOUR), "none")
    if model.tanks:
        found["tank_level"] = ({"alterations": [{"type": "tank_level", "tank": model.tanks[0],
                                                 "init_level_m": model.tank_level_m}]},
                               lambda p, m, d: tk.setnodevalue(p, tk.getnodeindex(p, m.tanks[0]), tk.TANKLEVEL,
                                                               m.si(m.tank_level_m + d, HydParam.Length)), "none")
    for kind, strength in (("CONCEN", 0.02), ("MASS", 0.001), ("SETPOINT", 0.02), ("FLOWPACED", 0.005)):
        found[f"source_{kind.lower()}"] = (
            {"quality": {"mode": "chemical"}, "alterations": [
                {"type": "contaminant_source", "node": model.demanding[0], "source_type": kind, "strength": strength,
                 "start_s": 0, "end_s": 6 * HOUR}]},
            lambda p, m, d, kind=kind, strength=strength: source(p, m, kind, strength + d), "chemical")
    return found


def reference(model: Model, alter: Callable[[object], None], quality: str, tmp_path: Path) -> dict:
    """EPANET's own output file for the model altered by ``alter``, 24 h, hydraulics and quality stepped together;
    node and link blocks converted to SI with wntr's unit tables."""
    out = tmp_path / f"reference-{next(_members)}.out"
    project = tk.createproject()
    tk.open(project, str(model.path), "/dev/null", str(out))
    tk.settimeparam(project, tk.DURATION, DURATION_S)
    alter(project)
    save_run(project)
    nodes, links = _read_output(out), _read_output(out, "link")
    converted = {("node", "pressure"): HydParam.Pressure._to_si(model.units, nodes["pressure"]),
                 ("node", "head"): HydParam.HydraulicHead._to_si(model.units, nodes["head"]),
                 ("node", "demand"): HydParam.Demand._to_si(model.units, nodes["demand"]),
                 ("link", "flowrate"): HydParam.Flow._to_si(model.units, links["flowrate"]),
                 ("link", "velocity"): HydParam.Velocity._to_si(model.units, links["velocity"]),
                 ("link", "status"): links["status"].apply(lambda c: c.map(lambda code: STATUS_OF_CODE[int(code)]))}
    headloss = links["headloss"].copy()
    headloss.loc[:, model.pipe_flags] = HydParam.HeadLoss._to_si(model.units, links["headloss"].loc[:, model.pipe_flags])
    headloss.loc[:, ~model.pipe_flags] = HydParam.Length._to_si(model.units, links["headloss"].loc[:, ~model.pipe_flags])
    converted["link", "headloss"] = headloss
    if quality == "age":
        converted["node", "quality"] = QualParam.WaterAge._to_si(model.units, nodes["quality"], mass_units=MassUnits.mg)
    elif quality == "chemical":
        converted["node", "quality"] = QualParam.Concentration._to_si(model.units, nodes["quality"],
                                                                      mass_units=MassUnits.mg)
    elif quality == "trace":
        converted["node", "quality"] = nodes["quality"]
    return converted


@pytest.fixture(scope="module", params=list(MODELS))
def model(request, model_dir, model_server, tmp_path_factory) -> Model:
    data = MODELS[request.param]().encode()
    sha = hashlib.sha256(data).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(data)
    path = tmp_path_factory.mktemp("models") / f"{request.param}.inp"
    path.write_bytes(data)
    return Model(request.param, path, {"url": f"{model_server}/{sha}.inp", "sha256": sha})


@pytest.fixture(scope="module")
def engine(model_session, tmp_path_factory):
    warm = WarmEngine(ModelCache(tmp_path_factory.mktemp("models-cache"), session=model_session))
    yield warm
    warm.close()


def stored(model: Model, engine: WarmEngine, results_store, run: dict, quality: str) -> tuple[dict, dict]:
    """One member on the warm engine, read back from the store: {(kind, attribute): frame (time x element)}, and
    its members row."""
    from test_engine import stored_batch
    series = [{"element": "node", "attributes": NODE_ATTRIBUTES + (["quality"] if quality != "none" else [])},
              {"element": "link", "attributes": LINK_ATTRIBUTES}]
    batch = make_batch("models", [{
        "schema": "cloudburst.job/1", "ensemble": "models", "member": next(_members), "seed": 1,
        "input": {**model.source, "start_time_utc": "2024-01-01T00:00:00Z"},
        "run": {"duration_s": DURATION_S, **run}, "output": {"series": series, "max_points": 50_000_000}}])
    run_batch(batch, engine.cache, results_store, None, engine)
    row, frame = stored_batch(results_store, "models", batch["batch"])
    frames = {key: group.pivot(index=fmt.ELAPSED, columns=fmt.ELEMENT, values=fmt.VALUE)
              for key, group in frame.groupby([fmt.KIND, fmt.ATTRIBUTE])}
    return frames, row


def differences(frames: dict, expected: dict) -> int:
    """Stored values not bit-identical to the reference's (float32 widened to float64), over every attribute."""
    assert set(frames) == set(expected), (sorted(frames), sorted(expected))
    count = 0
    for key, frame in frames.items():
        want = expected[key].loc[frame.index, frame.columns]
        assert frame.shape[0] == 25, (key, frame.shape)
        count += int((frame.to_numpy(np.float64).view(np.int64) != want.to_numpy(np.float64).view(np.int64)).sum())
    return count


def test_every_alteration_and_quality_mode_equals_epanets_own_output_then_the_model_is_put_back(
        model, engine, results_store, tmp_path):
    checked = cases(model)
    unaltered = reference(model, lambda project: None, "none", tmp_path)
    for name, (run, alter, quality) in checked.items():
        frames, row = stored(model, engine, results_store, run, quality)
        assert (row["status"], row["engine"], row["epanet_version"]) == ("finished", "toolkit", "2.3.5"), \
            (model.name, name, row["error"])
        assert differences(frames, reference(model, lambda p: alter(p, model, 0.0), quality, tmp_path)) == 0, \
            (model.name, name)
        put_back, _ = stored(model, engine, results_store, {}, "none")
        assert differences(put_back, unaltered) == 0, (model.name, "after", name)
    assert {"demand_scale", "pipe_property", "fire_flow", "source_mass"} <= set(checked)


def test_a_value_nudged_by_1e_9_on_the_reference_side_fails_the_comparison(model, engine, results_store, tmp_path):
    run, alter, quality = cases(model)["demand_scale"]
    frames, _ = stored(model, engine, results_store, run, quality)
    assert differences(frames, reference(model, lambda p: alter(p, model, 1e-9), quality, tmp_path)) > 0
