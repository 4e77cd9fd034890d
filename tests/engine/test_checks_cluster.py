"""The client's checks against the worker's on served models: a member the client accepts is one the worker runs."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import wntr
from cloudburst.engine.batch import run_member
from cloudburst.engine.checks import planned_points
from cloudburst.errors import InputError
from cloudburst.plan.scenarios import generate
from cloudburst.schema.job import parse_job
from cloudburst.state.models import ModelCache
from test_checks import REPO

NET3 = REPO / "files" / "models" / "Net3.inp"  # 97 nodes, 168 h at a 1 h report step


@pytest.fixture(scope="module")
def served(model_dir, model_server):
    """Net3 as shipped, and Net3 with a 3-hour report step, on a real HTTP server."""
    three_hourly = NET3.read_text().replace(" Report Timestep    \t1:00", " Report Timestep    \t3:00")
    assert three_hourly != NET3.read_text()
    models = {}
    for name, text in (("net3", NET3.read_text()), ("net3-3h", three_hourly)):
        (model_dir / f"{name}.inp").write_text(text)
        models[name] = {"url": f"{model_server}/{name}.inp", "sha256": hashlib.sha256(text.encode()).hexdigest()}
    return models


def verdicts(tmp_path: Path, model: dict, run: dict, output: dict) -> tuple[str, str, dict]:
    """The client's problems (from generate), the worker's (from run_member) and the job, for one member; the
    worker records its problems joined by "; " in the member's status, so the client's are joined alike."""
    wn = wntr.network.WaterNetworkModel(str(Path(model["path"])))
    scenario = {"ensemble": "checks", "members": 1, "run": run, "output": output}
    try:
        document = generate(scenario, wn, model["input"]).documents[0]
        client = ""
    except InputError as refused:
        client = "; ".join(problem.removeprefix("member 0: ") for problem in refused.problems)
        document = {"schema": "cloudburst.job/1", "ensemble": "checks", "member": 0, "input": model["input"],
                    "run": run, "output": output}
    worker = run_member(document, ModelCache(tmp_path / "cache", session=model["session"])).status["error"]
    return client, worker, document


@pytest.fixture
def net3(served, model_dir, model_session):
    return {"path": model_dir / "net3.inp", "input": served["net3"], "session": model_session}


def test_a_day_of_a_week_long_model_is_checked_against_the_day(tmp_path, net3):
    every_node = [{"element": "node", "attributes": ["pressure"]}]
    # 97 nodes x 25 report times = 2,425 values for the day; the model's own 168 h would be 16,393.
    client, worker, document = verdicts(tmp_path, net3, {"duration_s": 86400},
                                        {"series": every_node, "max_points": 5000})
    assert client == worker == ""
    wn = wntr.network.WaterNetworkModel(str(net3["path"]))
    job = parse_job(document)
    assert planned_points(job.output, job.run, wn) == 97 * 25


def test_a_finer_report_step_set_by_the_run_makes_finer_steps_valid(tmp_path, served, model_dir, model_session):
    coarse = {"path": model_dir / "net3-3h.inp", "input": served["net3-3h"], "session": model_session}
    series = [{"element": "node", "attributes": ["pressure"], "ids": ["123"], "step_s": 3600}]
    client, worker, _ = verdicts(tmp_path, coarse, {"duration_s": 86400, "report_timestep_s": 3600},
                                 {"series": series})
    assert client == worker == ""
    # Without the run's report step the same request is refused on both sides, with the same sentence.
    client, worker, _ = verdicts(tmp_path, coarse, {"duration_s": 86400}, {"series": series})
    assert client == worker == "$.output.series[0].step_s: 3600 s is not a multiple of the report step (10800 s)"


def test_a_finer_report_step_that_breaks_the_budget_is_refused_by_the_client_as_by_the_worker(tmp_path, net3):
    every_node = [{"element": "node", "attributes": ["pressure"]}]
    # At the model's 1 h step the day is 2,425 values; at 300 s it is 97 x 289 = 28,033, above 20,000.
    client, worker, _ = verdicts(tmp_path, net3, {"duration_s": 86400, "report_timestep_s": 300},
                                 {"series": every_node, "max_points": 20000})
    assert client == worker == ("$.output.max_points: the series asked for come to 28033 points, above the budget "
                                "of 20000; select fewer elements, attributes or a longer step_s")


def test_a_resolution_for_an_attribute_no_series_asks_for_is_refused_by_client_and_worker(tmp_path, net3):
    client, worker, _ = verdicts(tmp_path, net3, {"duration_s": 3600},
                                 {"series": [{"element": "node", "attributes": ["pressure"], "ids": ["10"]}],
                                  "resolution": {"head": 0.01}})
    assert client == worker == "$.output.resolution.head: no series asks for 'head' (series attributes: pressure)"
