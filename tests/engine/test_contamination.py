"""Contamination impacts (cloudburst.engine.contamination): a member's hydraulics solved once and a quality run per
injection over them give, bit for bit, the concentrations of EPANET's own full run of each injection written into
the model file (a fresh project each: the injection's pattern and source as a modeller writes them, hydraulics
then quality, read through owa-epanet's own wrapper); and the harms equal WNTR's water-security metrics computed
from WNTR's own run (EPANET 2.2) of each injection."""
from __future__ import annotations

import os
from pathlib import Path

import epanet.toolkit as en
import numpy as np
import pytest
import wntr
from cloudburst.engine import toolkit
from cloudburst.engine.contamination import ContaminationSettings, Injection, SharedHydraulics
from cloudburst.errors import InputError

REPO = Path(__file__).resolve().parents[2]
NET3 = REPO / "files" / "models" / "Net3.inp"
SETTINGS = ContaminationSettings(duration_s=86400)
INJECTIONS = [Injection("10", 3600), Injection("123", 7200), Injection("20", 0), Injection("15", 36000),
              Injection("253", 43200)]
STEP_S = 3600  # Net3's pattern step (its pattern start is 0)


def clock(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def injected_model(scratch: Path, injection: Injection, settings: ContaminationSettings) -> Path:
    """Net3 as a modeller would write the injection: a chemical, the study's times, an injection pattern of 1 over
    the pattern periods the injection covers, and a mass source at the node (sections appended: EPANET reads the
    later lines last)."""
    periods = (settings.duration_s // STEP_S) + 2
    multipliers = ["1" if injection.start_s <= period * STEP_S < injection.start_s + settings.injection_s else "0"
                   for period in range(periods)]
    extra = (f"[OPTIONS]\n Quality Chemical mg/L\n[TIMES]\n Duration {clock(settings.duration_s)}\n"
             f" Report Timestep {clock(settings.report_step_s)}\n Report Start 0:00\n"
             f" Quality Timestep {clock(settings.quality_step_s)}\n"
             f"[PATTERNS]\n inject {' '.join(multipliers)}\n"
             f"[SOURCES]\n {injection.node} MASS {settings.strength!r} inject\n[END]\n")
    path = scratch / f"net3-{injection.node}-{injection.start_s}.inp"
    path.write_text(NET3.read_text().replace("[END]", extra))
    return path


def full_run(path: Path) -> np.ndarray:
    """EPANET's own order (hydraulics solved and saved, then quality over them), every node's quality at each
    report time, through owa-epanet's wrapper."""
    project = en.createproject()
    en.open(project, str(path), os.devnull, "")
    try:
        nodes = en.getcount(project, en.NODECOUNT)
        step, duration = en.gettimeparam(project, en.REPORTSTEP), en.gettimeparam(project, en.DURATION)
        en.solveH(project)
        en.openQ(project)
        en.initQ(project, en.NOSAVE)
        rows, report_at = [], 0
        while True:
            now = en.runQ(project)
            if now >= report_at and report_at <= duration:
                rows.append([en.getnodevalue(project, index, en.QUALITY) for index in range(1, nodes + 1)])
                report_at += step
            if en.nextQ(project) <= 0:
                break
        en.closeQ(project)
        return np.array(rows)
    finally:
        en.close(project)
        en.deleteproject(project)


@pytest.fixture(scope="module")
def shared():
    project = toolkit.Project(NET3)
    junctions = [name for index, name in enumerate(project.node_ids, 1) if project.node_type(index) == en.JUNCTION]
    yield SharedHydraulics(project, SETTINGS, junctions)
    project.close()


def test_quality_over_shared_hydraulics_equals_epanets_full_run_of_each_injection_bit_for_bit(shared, tmp_path):
    for injection in INJECTIONS:
        expected = full_run(injected_model(tmp_path, injection, SETTINGS))
        got = shared.concentrations(injection)
        assert got.shape == expected.shape == (86400 // 300 + 1, shared.project.node_count)
        assert np.array_equal(got, expected), injection
        assert got.max() > 1.0  # the injection reached the network


def wntr_metrics(tmp_path: Path, injection: Injection, settings: ContaminationSettings) -> dict:
    """WNTR's own run (EPANET 2.2) of the injection and its water-security metrics over the whole run."""
    wn = wntr.network.WaterNetworkModel(str(NET3))
    wn.options.quality.parameter = "CHEMICAL"
    wn.options.time.duration = settings.duration_s
    wn.options.time.report_timestep = settings.report_step_s
    wn.options.time.quality_timestep = settings.quality_step_s
    wn.options.time.report_start = 0
    periods = settings.duration_s // STEP_S + 2
    wn.add_pattern("inject", [1.0 if injection.start_s <= p * STEP_S < injection.start_s + settings.injection_s
                              else 0.0 for p in range(periods)])
    wn.add_source("contaminant", injection.node, "MASS", settings.strength / 60 / 1e6, "inject")  # kg/s
    results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(tmp_path / f"wntr-{injection.node}"))
    junctions = wn.junction_name_list
    demand, quality = results.node["demand"][junctions], results.node["quality"][junctions]
    limit_kg_m3 = settings.detection_limit_mg_L / 1000
    from wntr.metrics import water_security
    return {"quality_mg_L": results.node["quality"] * 1000,
            "z2_people": bwsn_population_affected(demand, quality, settings),
            "z3_m3": float(water_security.volume_contaminant_consumed(demand, quality,
                                                                      settings.hazard_mg_L / 1000).sum().sum()),
            "mass_kg": float(water_security.mass_contaminant_consumed(demand, quality, limit_kg_m3).sum().sum()),
            "extent_m": float(water_security.extent_contaminant(results.node["quality"], results.link["flowrate"], wn,
                                                                limit_kg_m3).iloc[-1])}


def bwsn_population_affected(demand, quality, settings: ContaminationSettings) -> float:
    """BWSN's Z2 over the whole run, written out node by node: each junction's people (mean demand / 300 L a day
    each) drink 2 L a day timed as the junction's demand, and are affected with probability
    Phi(0.34 log10(dose / 41 mg/kg)) for a 70 kg body."""
    from math import erf, log10, sqrt
    total = 0.0
    step_day = settings.report_step_s / 86400
    for node in demand.columns:
        flows = [max(value, 0.0) for value in demand[node]]
        mean = sum(flows) / len(flows)
        if mean <= 0:
            continue
        people = mean * 86400 * 1000 / settings.per_capita_L_day
        ingested_mg = sum(c * 1000 * (q / mean) * settings.ingestion_L_day * step_day
                          for c, q in zip(quality[node], flows))
        dose = ingested_mg / settings.body_kg
        if dose > 0:
            total += people * 0.5 * (1 + erf(settings.probit_beta * log10(dose / settings.dose50_mg_kg) / sqrt(2)))
    return total


def test_each_injections_harms_equal_wntrs_water_security_metrics_from_its_own_run(shared, tmp_path):
    for injection in INJECTIONS[:3]:
        reference = wntr_metrics(tmp_path, injection, SETTINGS)
        impacts = shared.impacts(injection)
        z1, z2, z3, mass, extent = impacts.undetected
        assert z1 == SETTINGS.duration_s - injection.start_s
        assert z2 == pytest.approx(reference["z2_people"], rel=2e-3), injection
        assert z3 == pytest.approx(reference["z3_m3"], rel=2e-3), injection
        assert mass == pytest.approx(reference["mass_kg"], rel=2e-3), injection
        assert extent == pytest.approx(reference["extent_m"], rel=1e-6), injection
        ours = shared.concentrations(injection)
        names = shared.project.node_ids
        theirs = reference["quality_mg_L"][names].to_numpy()
        assert np.allclose(ours, theirs, rtol=1e-3, atol=1e-3), injection


def test_a_sensor_at_the_injection_node_detects_at_the_first_report_time_after_the_start(shared):
    impacts = shared.impacts(Injection("123", 7200))
    at_node = impacts.sensors.index("123")
    assert impacts.detected_s[at_node] == 7200 + 300
    assert impacts.harm[at_node][0] == 300
    downstream = sorted(zip(impacts.detected_s, impacts.sensors))
    assert downstream[0][0] == 7500 and all(when > 7200 for when, _ in downstream)
    # harm grows with the time to detection, and no detection is worse than any
    order = np.argsort(impacts.detected_s)
    z3 = np.array([impacts.harm[i][2] for i in order])
    assert (np.diff(z3) >= 0).all() and z3[-1] <= impacts.undetected[2]


def test_bad_settings_get_one_sentence_each():
    with pytest.raises(InputError) as refused:
        ContaminationSettings.parse({"detection_limit_mg_L": 0, "source_type": "spray", "report_step_s": 0,
                                     "colour": "red"})
    assert refused.value.problems == ["$.study: unknown setting colour; known: " + ", ".join(
        sorted(ContaminationSettings.__dataclass_fields__))]
    with pytest.raises(InputError) as refused:
        ContaminationSettings.parse({"detection_limit_mg_L": 0, "source_type": "spray", "report_step_s": 0})
    assert refused.value.problems == ["$.study.source_type: one of concen, mass, setpoint, flowpaced, not 'spray'",
                                      "$.study.detection_limit_mg_L: a number > 0, not 0",
                                      "$.study.report_step_s: whole seconds > 0, not 0"]


def test_an_injection_off_the_report_step_is_refused_with_a_sentence(shared):
    with pytest.raises(InputError, match="starts and lengths are whole report steps"):
        shared.impacts(Injection("10", 1850))


def switched_source_run(node: str, start_s: int, settings: ContaminationSettings) -> np.ndarray:
    """The reference for an injection between the model's pattern periods: EPANET's own order through owa-epanet's
    wrapper, the source's quality set at the start and cleared at the end, each a report time of the run."""
    project = en.createproject()
    en.open(project, str(NET3), os.devnull, "")
    try:
        en.settimeparam(project, en.DURATION, settings.duration_s)
        en.settimeparam(project, en.REPORTSTEP, settings.report_step_s)
        en.settimeparam(project, en.REPORTSTART, 0)
        en.settimeparam(project, en.QUALSTEP, settings.quality_step_s)
        en.setqualtype(project, en.CHEM, "Contaminant", "mg/L", "")
        index = en.getnodeindex(project, node)
        en.setnodevalue(project, index, en.SOURCETYPE, en.MASS)
        nodes = en.getcount(project, en.NODECOUNT)
        en.solveH(project)
        en.openQ(project)
        en.initQ(project, en.NOSAVE)
        rows, report_at = [], 0
        while True:
            now = en.runQ(project)
            if now == start_s:
                en.setnodevalue(project, index, en.SOURCEQUAL, settings.strength)
            if now == start_s + settings.injection_s:
                en.setnodevalue(project, index, en.SOURCEQUAL, 0.0)
            if now >= report_at and report_at <= settings.duration_s:
                rows.append([en.getnodevalue(project, i, en.QUALITY) for i in range(1, nodes + 1)])
                report_at += settings.report_step_s
            if en.nextQ(project) <= 0:
                break
        en.closeQ(project)
        return np.array(rows)
    finally:
        en.close(project)
        en.deleteproject(project)


def test_an_injection_starting_between_pattern_periods_equals_the_switched_source_run_bit_for_bit(shared):
    for injection in (Injection("123", 3900), Injection("10", 300), Injection("20", 85800)):
        assert np.array_equal(shared.concentrations(injection),
                              switched_source_run(injection.node, injection.start_s, SETTINGS)), injection


def test_a_model_whose_hydraulics_stop_balancing_is_refused_with_when_and_what_to_change():
    """BWSN network 2 (the epyt wheel's copy) under EPANET 2.3.5 stops balancing at 27 h, and says UNBALANCED STOP:
    its 48 h run cannot be shared; 24 h can."""
    import importlib.util
    network = Path(importlib.util.find_spec("epyt").origin).parent / "networks" / "asce-tf-wdst" / "BWSN_Network_2.inp"
    project = toolkit.Project(network)
    try:
        with pytest.raises(toolkit.EpanetError, match=r"EPANET stopped the hydraulics at 27:00:00 of 48:00:00: system "
                                                      r"hydraulically unbalanced \(the model's UNBALANCED STOP\); a "
                                                      r"shorter run \(run.duration_s\)"):
            SharedHydraulics(project, ContaminationSettings(duration_s=48 * 3600), ["JUNCTION-0"])
        shared = SharedHydraulics(project, ContaminationSettings(duration_s=24 * 3600), ["JUNCTION-0"])
        assert shared.saved.balanced and shared.times[-1] == 24 * 3600
    finally:
        project.close()
