"""Calibration studies (``Client.calibrate``, ``cloudburst calibrate``) against the local cluster: a synthetic case
whose observations are made here by plain owa-epanet calls on Net3 with its roughness and served demands perturbed
by known factors; the fit recovers them within 2 %, says that a zone of junctions without demand cannot be told,
and its residuals are what plain EPANET gives with the fitted factors."""
from __future__ import annotations

import copy
import csv
import json

import epanet.toolkit as tk
import numpy as np
import pytest
from cloudburst.errors import InputError
from local_cluster import cli
from test_scenarios import NET3
from wntr.epanet.util import FlowUnits, HydParam

HOURS = 6
TRUE_ROUGHNESS, TRUE_DEMAND = 0.8, 1.15
FOOT_M = 0.3048


def junctions(with_demand: bool) -> list[str]:
    project = tk.createproject()
    tk.open(project, str(NET3), "/dev/null", "")
    found = [tk.getnodeid(project, node) for node in range(1, tk.getcount(project, tk.NODECOUNT) + 1)
             if tk.getnodetype(project, node) == tk.JUNCTION
             and (tk.getnodevalue(project, node, tk.BASEDEMAND) > 0) == with_demand]
    tk.close(project)
    tk.deleteproject(project)
    return found


SERVED, IDLE = junctions(True), junctions(False)
SENSORS = [SERVED[0], SERVED[20], SERVED[40], SERVED[58]]


def plain_observations(roughness: float, demand: float) -> list[dict]:
    """Net3 for six hours with every pipe's roughness times ``roughness`` and the served junctions' base demands
    times ``demand``, by plain owa-epanet calls: pressures (m) at the sensors, tank 2's level (m) and pipe 20's flow
    (L/s) at each whole hour, converted with wntr's unit tables."""
    project = tk.createproject()
    tk.open(project, str(NET3), "/dev/null", "")
    tk.settimeparam(project, tk.DURATION, HOURS * 3600)
    for link in range(1, tk.getcount(project, tk.LINKCOUNT) + 1):
        if tk.getlinktype(project, link) == tk.PIPE:
            tk.setlinkvalue(project, link, tk.ROUGHNESS, tk.getlinkvalue(project, link, tk.ROUGHNESS) * roughness)
    for name in SERVED:
        node = tk.getnodeindex(project, name)
        for category in range(1, tk.getnumdemands(project, node) + 1):
            base = tk.getbasedemand(project, node, category)
            tk.setbasedemand(project, node, category, base * demand)
    units = FlowUnits(tk.getflowunits(project))
    tank = tk.getnodeindex(project, "2")
    pipe = tk.getlinkindex(project, "20")
    rows = []
    tk.openH(project)
    tk.initH(project, 0)
    while True:
        now = tk.runH(project)
        if now % 3600 == 0 and now > 0:
            for name in SENSORS:
                psi = tk.getnodevalue(project, tk.getnodeindex(project, name), tk.PRESSURE)
                rows.append({"element": name, "attribute": "pressure", "time": now,
                             "value": float(HydParam.Pressure._to_si(units, psi))})
            level_ft = tk.getnodevalue(project, tank, tk.HEAD) - tk.getnodevalue(project, tank, tk.ELEVATION)
            rows.append({"element": "2", "attribute": "level", "time": now, "value": level_ft * FOOT_M})
            flow = float(HydParam.Flow._to_si(units, tk.getlinkvalue(project, pipe, tk.FLOW)))
            rows.append({"element": "20", "attribute": "flow", "time": now, "value": flow * 1000})
        if tk.nextH(project) <= 0:
            break
    tk.closeH(project)
    tk.close(project)
    tk.deleteproject(project)
    return rows


def scenario(tmp_path, evaluations: int = 2400) -> dict:
    observed = tmp_path / "observed.csv"
    with observed.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["element", "attribute", "time", "value"])
        writer.writeheader()
        writer.writerows(plain_observations(TRUE_ROUGHNESS, TRUE_DEMAND))
    return {"ensemble": "net3-fit", "run": {"duration_s": HOURS * 3600},
            "study": {"type": "calibration",
                      "roughness": [{"group": "all", "pipes": "*", "low": 0.5, "high": 1.5}],
                      "demand": [{"group": "served", "nodes": SERVED, "low": 0.5, "high": 1.5},
                                 {"group": "idle", "nodes": IDLE, "low": 0.5, "high": 1.5}],
                      "observations": str(observed),
                      "optimizer": {"population": 10, "evaluations": evaluations, "seed": 2}}}


def test_a_synthetic_calibration_recovers_its_factors_and_flags_the_zone_it_cannot_tell(cluster, client, workers,
                                                                                         tmp_path):
    fit = client.calibrate(NET3, scenario(tmp_path), name="net3-fit")
    fitted = fit.fitted().set_index("group")
    assert fitted.loc["all", "value"] == pytest.approx(TRUE_ROUGHNESS, rel=0.02)
    assert fitted.loc["served", "value"] == pytest.approx(TRUE_DEMAND, rel=0.02)
    assert fitted.loc["all", "identifiable"] and fitted.loc["served", "identifiable"]
    assert not fitted.loc["idle", "identifiable"]
    # The residuals are plain EPANET's with the fitted factors (the idle zone's factor changes nothing).
    again = plain_observations(fitted.loc["all", "value"], fitted.loc["served", "value"])
    residuals = fit.residuals()
    assert len(residuals) == len(again) == HOURS * (len(SENSORS) + 2)
    simulated = {(row["element"], row["attribute"], row["time"]): row["value"] for row in again}
    for row in residuals.itertuples():
        assert row.simulated == pytest.approx(simulated[row.element, row.attribute, row.time_s], abs=1e-3)
    convergence = fit.convergence()
    assert (np.diff(convergence["best_objective"]) <= 0).all()
    assert convergence["best_objective"].iloc[-1] == pytest.approx(fitted["objective"].iloc[0])


def test_a_stopped_calibration_resumes_to_the_same_fit_with_no_file(cluster, client, workers, tmp_path):
    content = scenario(tmp_path, evaluations=900)
    whole = client.calibrate(NET3, content, name="fit-whole")

    def stop_at_three(step: dict) -> None:
        if step["generation"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.calibrate(NET3, content, name="fit-resumed", on_generation=stop_at_three)
    (tmp_path / "observed.csv").unlink()  # the study kept its observations: no file is needed to resume
    replayed: list[bool] = []
    resumed = client.calibrate(name="fit-resumed", on_generation=lambda step: replayed.append(step["replayed"]))
    assert replayed[:3] == [True] * 3 and not any(replayed[3:])
    assert resumed.fitted().equals(whole.fitted())


@pytest.mark.parametrize("change, sentence", [
    (lambda study, rows: study["roughness"][0].update(pipes=["20", "P-404"]), "the model has no pipe P-404"),
    (lambda study, rows: study["demand"][0].update(nodes=["J-9"]), "the model has no junction J-9"),
    (lambda study, rows: rows.append({"element": "2", "attribute": "level", "time": 99 * 3600, "value": 1}),
     "is not a report time of the run"),
    (lambda study, rows: rows.append({"element": "Z", "attribute": "pressure", "time": 3600, "value": 1}),
     "the model has no node 'Z'"),
    (lambda study, rows: rows.append({"element": "20", "attribute": "speed", "time": 3600, "value": 1}),
     "attribute 'speed'"),
])
def test_a_bad_calibration_is_refused_with_one_sentence_and_nothing_runs(cluster, client, tmp_path, change,
                                                                          sentence):
    content = copy.deepcopy(scenario(tmp_path))
    rows = plain_observations(1.0, 1.0)[:3]
    change(content["study"], rows)
    content["study"]["observations"] = rows
    with pytest.raises(InputError) as refused:
        client.calibrate(NET3, content, name="fit-bad")
    assert sentence in str(refused.value)
    assert client.queue.count == 0 and "fit-bad" not in client.records.names()


def test_the_cli_calibrates_and_shows_the_fit(cluster, workers, tmp_path):
    content = scenario(tmp_path, evaluations=600)
    path = tmp_path / "fit.json"  # JSON is YAML
    path.write_text(json.dumps(content))
    plot = tmp_path / "fit.png"
    ran = cli(cluster, "calibrate", "fit-cli", "--model", str(NET3), "--scenario", str(path), "--json",
              "--plot", str(plot), timeout=300)
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(ran.stdout)
    assert shown["state"] == "finished" and [row["group"] for row in shown["fitted"]] == ["all", "served", "idle"]
    assert plot.stat().st_size > 10_000
    again = cli(cluster, "calibrate", "fit-cli")
    assert again.returncode == 0 and "NO: the observations do not move with it" in again.stdout
