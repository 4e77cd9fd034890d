"""Contamination studies on a real Redis, Nginx and runner processes: submitted from a scenario (Python and the CLI),
each member's injections run on the workers over its hydraulics solved once, the impacts stored as the task set's
results equal a run here of the same injections, and sensors placed from them (`cloudburst sensors`); bad input
refused with a sentence each and nothing enqueued."""
from __future__ import annotations

import json
from pathlib import Path

import cloudburst
import pytest
import yaml
from cloudburst.engine import toolkit
from cloudburst.engine.contamination import ContaminationSettings, Injection, SharedHydraulics
from cloudburst.errors import InputError
from local_cluster import cli, client_settings, start_workers, stop
from waiting import wait_until

NET3 = Path(__file__).resolve().parents[2] / "files" / "models" / "Net3.inp"
SENSORS = ["10", "15", "20", "35", "101", "123", "149", "189", "199", "211", "253", "275"]
INJECTION_NODES = ["10", "20", "101", "123", "149", "199", "253", "275"]
SCENARIO = {"ensemble": "net3-contamination", "members": 1, "run": {"duration_s": 86400},
            "study": {"type": "contamination", "injections": INJECTION_NODES, "start_times_s": {"every_s": 21600},
                      "sensors": SENSORS}}


def impacts_here(node: str, start_s: int) -> dict:
    """The same injection run here, on a model of its own (the reference for what the workers stored): each
    detecting sensor's time and harms."""
    project = toolkit.Project(NET3)
    try:
        shared = SharedHydraulics(project, ContaminationSettings(duration_s=86400), SENSORS)
        impacts = shared.impacts(Injection(node, start_s))
        return {sensor: (when, harm[1:]) for sensor, when, harm in zip(impacts.sensors, impacts.detected_s,
                                                                         impacts.harm)}
    finally:
        project.close()


def stored_impacts(results) -> dict:
    """What the workers stored, per injection: each detecting sensor's time and harms, decoded independently."""
    import base64
    import io

    import numpy as np
    found = {}
    for sensors, injections, arrays in zip(results["sensors"], results["injections"], results["arrays"]):
        with np.load(io.BytesIO(base64.b64decode(arrays))) as loaded:
            for row, (node, start) in enumerate(injections):
                entries = np.flatnonzero(loaded["row"] == row)
                found[(node, start)] = {sensors[loaded["column"][e]]: (int(loaded["detected_s"][e]),
                                                                         loaded["harm"][e].tolist()) for e in entries}
    return found


def test_a_contamination_study_runs_on_the_workers_and_places_sensors_from_its_impacts(cluster, tmp_path):
    client = cloudburst.Client(client_settings(cluster))
    workers = start_workers(cluster, 2)
    try:
        study = client.submit(NET3, SCENARIO, name="net3-contamination")
        wait_until("the study's tasks to finish", study.status, timeout_s=240,
                   done=lambda progress: progress.finished + progress.failed == progress.members)
    finally:
        stop(workers)
    study = client.study("net3-contamination")
    matrix = study.impacts()
    assert len(matrix.injections) == len(INJECTION_NODES) * 4  # 0, 6, 12 and 18 h
    assert sorted(zip(matrix.injections["node"], matrix.injections["start_s"])) == sorted(
        (node, start) for node in INJECTION_NODES for start in (0, 21600, 43200, 64800))
    stored = stored_impacts(study.finished_results())
    assert len(stored) == len(INJECTION_NODES) * 4
    for key in [("123", 21600), ("253", 64800), ("10", 0)]:
        assert stored[key] == impacts_here(*key)

    exact = study.place(3, "z1_s", "mip")
    fast = study.place(3, "z1_s", "greedy")
    assert len(exact.sensors) == 3 and set(exact.sensors) <= set(SENSORS)
    assert fast.bound <= exact.value + 1e-9 <= fast.value + 1e-9
    from cloudburst.api.placement import mip
    mapped = study.impacts(tmp_path / "mapped")  # read a pack at a time into memory-mapped files
    assert mip(mapped, 3, "z1_s").value == pytest.approx(exact.value) and len(mapped.injections) == len(matrix.injections)

    plot = tmp_path / "sensors.png"
    placed = cli(cluster, "sensors", "net3-contamination", "--k", "3", "--curve", "4", "--plot", str(plot), "--json")
    assert placed.returncode == 0, placed.stderr
    answer = json.loads(placed.stdout)
    assert answer["sensors"] == exact.sensors and answer["value"] == pytest.approx(exact.value)
    assert [row["k"] for row in answer["curve"]] == [1, 2, 3, 4]
    assert plot.stat().st_size > 10_000
    table = cli(cluster, "sensors", "net3-contamination", "--k", "2", "--method", "greedy")
    assert table.returncode == 0 and table.stdout.startswith("2 sensors (greedy, least expected z1_s): "), table
    robust = cli(cluster, "sensors", "net3-contamination", "--k", "2", "--statistic", "cvar", "--alpha", "0.9",
                 "--curve", "2", "--json")
    assert robust.returncode == 0, robust.stderr
    answer = json.loads(robust.stdout)
    cvar = study.place(2, "z1_s", "mip", "cvar", 0.9)
    assert (answer["sensors"], answer["statistic"], answer["cvar_alpha"]) == (cvar.sensors, "cvar", 0.9)
    assert answer["value"] == pytest.approx(cvar.value) == pytest.approx(answer["values"]["cvar_z1_s"])
    assert answer["value"] <= study.place(2, "z1_s", "mip").values["cvar_z1_s"] + 1e-9
    worst = cli(cluster, "sensors", "net3-contamination", "--k", "2", "--statistic", "worst")
    assert worst.returncode == 0 and worst.stdout.startswith("2 sensors (mip, least worst z1_s): "), worst
    refused = cli(cluster, "sensors", "net3-contamination", "--statistic", "worst", "--method", "greedy")
    assert refused.returncode == 2 and "the greedy minimises the expected (mean) harm only" in refused.stderr


@pytest.mark.parametrize("change, sentence", [
    ({"injections": ["10", "NOPE"]}, "$.study.injections: the model has no node NOPE"),
    ({"sensors": ["X1"]}, "$.study.sensors: the model has no node X1"),
    ({"start_times_s": [90000]}, "$.study.start_times_s: 90000 s is past the run's end (86400 s)"),
    ({"detection_limit_mg_L": 0}, "$.study.detection_limit_mg_L: a number > 0, not 0"),
    ({"start_times_s": [1850]}, "injections start and last whole report steps (300 s, report_step_s): 1850 s is not one"),
    ({"injections": "*", "start_times_s": {"every_s": 3600}, "max_runs": 1000},
     "$.study: 1 member x 92 injection nodes x 23 start times = 2,116 quality runs, over the budget of 1,000 "
     "(max_runs): give fewer start times"),
])
def test_bad_contamination_input_is_refused_with_a_sentence_and_nothing_is_enqueued(cluster, tmp_path, change,
                                                                                   sentence):
    client = cloudburst.Client(client_settings(cluster))
    scenario = {**SCENARIO, "study": {**SCENARIO["study"], **change}}
    with pytest.raises(InputError) as refused:
        client.submit(NET3, scenario, name="refused")
    assert sentence in str(refused.value)
    assert cluster["redis"].llen("rq:queue:cloudburst") == 0 and "refused" not in client.records.names()
    path = tmp_path / "scenario.yml"
    path.write_text(yaml.safe_dump(scenario))
    by_cli = cli(cluster, "submit", str(NET3), str(path), "--name", "refused")
    assert by_cli.returncode == 2 and sentence in by_cli.stderr

