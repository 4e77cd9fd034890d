"""A submission as one plan (cloudburst.plan.submission), computed here with no service: an ensemble, a study and
alternatives from the same model, each drawn once and described as ``submit --check`` prints it."""
from __future__ import annotations

from pathlib import Path

import pytest
from cloudburst.errors import InputError
from cloudburst.plan import submission

NET3 = Path(__file__).resolve().parents[2] / "files" / "models" / "Net3.inp"
WHERE = {"url": "http://files.invalid/model.inp", "sha256": "0" * 64}
BASE = {"ensemble": "plan", "members": 4, "seed": 3, "run": {"duration_s": 3600},
        "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.9, "high": 1.1}}]}


@pytest.fixture(scope="module")
def model() -> submission.ModelFile:
    return submission.read_model(NET3)


def test_an_ensemble_plan_holds_every_member_once_and_says_what_submit_would_enqueue(model):
    plan = submission.plan_submission(model, {**BASE, "batch": {"members": 3}}, "plan-1", None, WHERE, "cloudburst")
    assert isinstance(plan, submission.EnsemblePlan) and submission.names(plan) == ["plan-1"]
    assert [document["member"] for document in plan.drawn.documents] == [0, 1, 2, 3]
    assert plan.content["output"]["db"] == "cloudburst"  # the statistics' database, unless the scenario names one
    described = submission.describe(plan, model)
    assert (described["members"], described["batches"], described["members_per_batch"]) == (4, 2, 3)
    assert described["model_sha256"] == model.sha256 and len(model.sha256) == 64


def test_a_study_plan_is_a_task_per_member_and_group_of_hydrants(model):
    scenario = {**BASE, "study": {"type": "fire_flow", "hydrants": ["15", "101", "10"], "start_s": 0,
                                  "duration_s": 3600}}
    plan = submission.plan_submission(model, scenario, "fire", None, WHERE, "cloudburst")
    assert isinstance(plan, submission.StudyPlan) and plan.study == "fire_flow"
    assert plan.function == "cloudburst.worker.studies:run_fire_flow"
    assert sorted({task[0]["member"] for task in plan.tasks}) == [0, 1, 2, 3]
    assert sorted(hydrant for task in plan.tasks if task[0]["member"] == 0 for hydrant in task[1]) == ["10", "101", "15"]
    assert submission.describe(plan, model) == {"study": "fire", "type": "fire_flow", "members": 4,
                                               "tasks": len(plan.tasks), "model_sha256": model.sha256}


def test_alternatives_plan_an_ensemble_per_variant_and_name_each(model):
    scenario = {**BASE, "alternatives": {"base": {}, "more": {"members": 6}}}
    plan = submission.plan_submission(model, scenario, "alt", None, WHERE, "cloudburst")
    assert isinstance(plan, submission.AlternativesPlan)
    assert submission.names(plan) == ["alt.base", "alt.more"]
    assert [len(variant.drawn.documents) for variant in plan.variants] == [4, 6]
    assert [variant["ensemble"] for variant in submission.describe(plan, model)["ensembles"]] == ["alt.base", "alt.more"]


def test_a_scenario_that_is_not_a_mapping_is_refused():
    with pytest.raises(InputError, match="a scenario holds a mapping"):
        submission.read_scenario(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_a_model_epanet_2_3_5_does_not_open_is_refused_saying_2_2_exists_and_planned_when_2_2_is_chosen(tmp_path):
    """EPANET 2.3.5 refuses a pipe from a node to itself (Error 200 with its line); 2.2 opens the file. Refused
    before anything is drawn into the queue, never silently moved to the other version."""
    path = tmp_path / "self-pipe.inp"
    path.write_text(NET3.read_text().replace("[PIPES]", "[PIPES]\n SELF_PIPE 10 10 1000 12 100 0 Open", 1))
    model = submission.read_model(path)
    with pytest.raises(InputError) as refused:
        submission.plan_submission(model, {**BASE, "batch": {"members": 2}}, "self", None, WHERE, "cloudburst")
    message = str(refused.value)
    assert "$.run" in message and "EPANET 2.3.5 does not open the model" in message
    assert 'run: {epanet: "2.2"}' in message
    on_2_2 = {**BASE, "batch": {"members": 2}, "run": {**BASE["run"], "epanet": "2.2"}}
    plan = submission.plan_submission(model, on_2_2, "self", None, WHERE, "cloudburst")
    assert isinstance(plan, submission.EnsemblePlan)
    assert {document["run"]["epanet"] for document in plan.drawn.documents} == {"2.2"}


@pytest.mark.parametrize("run", [{"epanet": "2.2"}, {"simulator": "wntr"}])
def test_a_study_is_refused_on_wntrs_file_path(model, run):
    scenario = {**BASE, "run": {**BASE["run"], **run},
                "study": {"type": "fire_flow", "hydrants": ["15"], "start_s": 0, "duration_s": 3600}}
    with pytest.raises(InputError, match=r"\$\.run: a fire_flow study runs on EPANET 2\.3\.5's toolkit"):
        submission.plan_submission(model, scenario, "fire", None, WHERE, "cloudburst")
