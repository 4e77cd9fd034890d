"""Fire-flow studies on a real Redis, Nginx and runner processes: submitted, searched on the workers per member, the distribution per hydrant; and a study stored under the names before the package split."""
from __future__ import annotations

import cloudburst
import numpy as np
import pandas as pd
import pytest
import yaml
from cloudburst.api.queue import enqueue_batches
from cloudburst.engine.models import parse_inp
from cloudburst.errors import InputError
from cloudburst.plan.scenarios import generate
from cloudburst.schema import taskpack
from cloudburst.schema.queues import (
    FIRE_FLOW,
    LEGACY_PACK_ENTRY_POINT,
    LEGACY_TASK_FUNCTIONS,
    JobPolicy,
)
from cloudburst.state.records import TaskSetRecord
from local_cluster import cli, client_settings, start_workers, stop
from rq.job import Job
from rq.serializers import JSONSerializer
from test_fireflow import (
    DURATION_S,
    NET3,
    START_S,
    member_job,
    searched,
)
from waiting import wait_until

STUDY_SCENARIO = {
    "ensemble": "net3-fire", "members": 6, "seed": 5, "sampling": "lhs",
    "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8, "high": 1.3}}],
    "study": {"type": "fire_flow", "hydrants": ["15", "101", "10", "261", "35"], "start_s": START_S,
              "duration_s": DURATION_S},
}


def test_a_fire_flow_study_runs_on_the_workers_and_gives_each_hydrants_distribution(cluster):
    client = cloudburst.Client(client_settings(cluster))
    workers = start_workers(cluster, 2)
    try:
        study = client.submit(NET3, STUDY_SCENARIO, name="net3-fire")
        wait_until("the study's tasks to finish", study.status, timeout_s=240,
                   done=lambda progress: progress.finished + progress.failed == progress.members)
    finally:
        stop(workers)
    table = client.study("net3-fire").table()
    assert len(table) == 6 * 5 and set(table["member"]) == set(range(6))
    # Each member's rows are exactly what the search gives here for that member's drawn demand.
    drawn = generate({key: value for key, value in STUDY_SCENARIO.items() if key != "study"},
                     parse_inp(NET3, str(NET3)), member_job(1.0)["input"], "net3-fire")
    for member in (0, 5):
        factor = drawn.documents[member]["run"]["alterations"][0]["factor"]
        here = {row["hydrant"]: row["flow_lps"] for row in searched(factor, STUDY_SCENARIO["study"]["hydrants"])["hydrants"]}
        assert dict(zip(table[table["member"] == member]["hydrant"], table[table["member"] == member]["flow_lps"])) == here
    availability = study.availability()
    assert list(availability.columns[:3]) == ["p5_lps", "p50_lps", "p95_lps"]
    flows = table.pivot(index="member", columns="hydrant", values="flow_lps")
    for hydrant, row in availability.iterrows():
        assert row["p5_lps"] == pytest.approx(np.percentile(flows[hydrant], 5))
        assert row["p5_lps"] <= row["p50_lps"] <= row["p95_lps"]
    assert availability.loc["10", "p95_lps"] == 0.0 and availability.loc["35", "share_ceiling"] == 1.0
    assert availability.loc["15", "p95_lps"] > availability.loc["15", "p5_lps"] > 0  # the draws spread it
    assert "10" in study.left_out()


def test_a_study_naming_a_hydrant_the_model_lacks_is_refused_before_anything_is_enqueued(cluster):
    client = cloudburst.Client(client_settings(cluster))
    scenario = {**STUDY_SCENARIO, "study": {**STUDY_SCENARIO["study"], "hydrants": ["15", "no-such-node"]}}
    with pytest.raises(InputError, match="not junctions of the model: no-such-node"):
        client.submit(NET3, scenario, name="bad-fire")
    assert cluster["redis"].keys("*bad-fire*") == []


def test_the_cli_submits_a_study_from_a_scenario_file_and_prints_each_hydrants_distribution(cluster, tmp_path):
    scenario = tmp_path / "fire.yml"
    scenario.write_text(yaml.safe_dump({**STUDY_SCENARIO, "members": 3}))
    checked = cli(cluster, "submit", str(NET3), str(scenario), "--name", "cli-fire", "--check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[:2] == ["cli-fire: every check passed; nothing was uploaded or enqueued",
                                               "  fire-flow study: 3 members, 3 tasks"]
    workers = start_workers(cluster, 2)
    try:
        submitted = cli(cluster, "submit", str(NET3), str(scenario), "--name", "cli-fire", "--wait", timeout=300)
    finally:
        stop(workers)
    assert submitted.returncode == 0, submitted.stderr
    assert "fire-flow study cli-fire: 3 tasks enqueued" in submitted.stderr
    shown = cli(cluster, "fireflow", "cli-fire", "--csv", str(tmp_path / "fire.csv"))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:4] == ["hydrant", "p5", "L/s", "p50"] and lines[1].split()[0] == "10"  # lowest first
    table = pd.read_csv(tmp_path / "fire.csv", index_col="hydrant", dtype={"hydrant": str})
    assert len(table) == 5 and table.loc["35", "share_ceiling"] == 1.0
    assert "residual 100%" in next(line for line in lines if line.startswith("10 "))
    assert "ceiling (500 L/s held) 100%" in next(line for line in lines if line.startswith("35 "))  # the default


def test_a_study_stored_under_the_names_before_the_package_split_still_runs_and_reads(cluster):
    """Before the package split (0.2) a study's record named its function ``cloudburst.fireflow:run_task`` and its
    queued packs called ``cloudburst.taskrun.run_pack``. A record and packs written with those names, as 0.2 wrote
    them, run on today's workers (through the shims) and read as a fire-flow study with the searches' answers."""
    client = cloudburst.Client(client_settings(cluster))
    scenario = {**STUDY_SCENARIO, "members": 2, "study": {**STUDY_SCENARIO["study"], "hydrants": ["15", "101"]}}
    model_file, plan = client.plan(NET3, scenario, name="net3-fire-0.2")
    client.models.upload(model_file.data, model_file.sha256)
    record = client.records.create(TaskSetRecord(name=plan.name, tasks=len(plan.tasks),
                                                 function=LEGACY_TASK_FUNCTIONS[FIRE_FLOW], timeout_s=600))
    packs = list(taskpack.packs(record.name, record.function, list(enumerate(plan.tasks)), 1, record.timeout_s, 0))
    client.ledger.keep_arguments(record.name, {pack["batch"]: pack["tasks"] for pack in packs})
    enqueue_batches(client.queue, client.ledger, record.name, packs, JobPolicy(timeout_s=600),
                    entry_point=LEGACY_PACK_ENTRY_POINT, members_of=lambda pack: [i for i, _ in pack["tasks"]])
    queued = [Job.fetch(job, connection=client.redis, serializer=JSONSerializer).func_name
              for job in client.queue.job_ids]
    assert queued == [LEGACY_PACK_ENTRY_POINT] * len(packs)
    workers = start_workers(cluster, 2)
    try:
        study = client.study(record.name)
        assert isinstance(study, cloudburst.FireFlow)
        wait_until("the 0.2 study's tasks to finish", study.status, timeout_s=240,
                   done=lambda progress: progress.finished + progress.failed == progress.members)
    finally:
        stop(workers)
    assert study.status().failed == 0
    table = study.table()
    for member, document in enumerate(plan.drawn.documents):
        factor = document["run"]["alterations"][0]["factor"]
        here = {row["hydrant"]: row["flow_lps"] for row in searched(factor, ["15", "101"])["hydrants"]}
        rows = table[table["member"] == member]
        assert dict(zip(rows["hydrant"], rows["flow_lps"])) == here
