"""The Python API (cloudburst.Client, Ensemble) against a real Redis, InfluxDB and Nginx (the results store), with
worker runners running the example env: submit in batches, wait, status, members and summaries and series from the
store, the cluster's statistics, failures, cancel, retry, delete, dated runs and bad input."""
from __future__ import annotations

import dataclasses
import json
import re
import time

import cloudburst
import numpy as np
import pandas as pd
import pytest
import wntr
from cloudburst.errors import InputError
from cloudburst.plan import scenarios
from cloudburst.schema.batch import batch_name
from cloudburst.schema.queues import job_id
from local_cluster import cli, client_settings, start_workers, stop
from rq.job import Job
from test_scenarios import NET3
from waiting import wait_until

START = "2024-06-01T00:00:00Z"
START_S = int(pd.Timestamp(START).timestamp())


def scenario(**changes) -> dict:
    return {"ensemble": "api", "members": 8, "seed": 5, "run": {"duration_s": 21600}, "batch": {"members": 3},
            "alterations": [{"type": "demand_scale",
                             "factor": {"distribution": "triangular", "low": 0.8, "mode": 1.0, "high": 1.3}}],
            "output": {"series": [{"element": "node", "attributes": ["pressure"], "ids": ["123", "10"]}],
                       "statistics": {"percentiles": [5, 50, 95], "below": {"pressure": [40]}}}, **changes}


@pytest.fixture
def client(cluster) -> cloudburst.Client:
    return cloudburst.Client(client_settings(cluster))


def final_statistics(ensemble, element: str, members: int) -> pd.DataFrame:
    """The cluster's statistics once they cover every member (the last batch queues them)."""
    return wait_until(f"statistics of {element} over {members} members", lambda: ensemble.percentiles(element),
                      60, done=lambda table: (table["count"] == members).all(), tolerate=(InputError,))


def influx_percentiles(cluster, values: pd.DataFrame, percentile: float) -> list[float | None]:
    """InfluxDB's own percentile() of the same values, per elapsed time (None where it gives none: a rank below
    1, e.g. p5 of 8 values): the rule the statistics promise."""
    lines = [f"check,elapsed={int(row.elapsed_s)},member={int(row.member)} v={float(row.value)!r} 0"
             for row in values.itertuples()]
    cluster["influx"].write(lines, cluster["db"])
    rows = cluster["influx"].rows(f"SELECT percentile(v, {percentile}) FROM check GROUP BY elapsed", cluster["db"])
    cluster["influx"].query("DROP MEASUREMENT check", cluster["db"])
    found = {int(row["elapsed"]): row["percentile"] for row in rows}
    return [found.get(elapsed) for elapsed in sorted(values["elapsed_s"].unique())]


def test_a_study_in_python_submits_batches_waits_and_reads_the_store_and_the_statistics(cluster, client):
    workers = start_workers(cluster)
    try:
        ensemble = client.submit(NET3, scenario(start_time_utc=START, start_every_s=3600), name="rolling")
        final = ensemble.wait(progress=False, timeout_s=120)
        bands = final_statistics(ensemble, "node:123", 8)
    finally:
        stop(workers)
    assert (final.members, final.finished, final.failed, final.running, final.queued) == (8, 8, 0, 0, 0)
    assert ensemble.status() == final and ensemble.uploaded is True
    assert sorted(client.ledger.plan("rolling")) == [batch_name(0, 2), batch_name(3, 5), batch_name(6, 7)]
    listed = client.ensembles()
    assert listed[["ensemble", "members", "finished", "failed", "state"]].values.tolist() == \
        [["rolling", 8, 8, 0, "finished"]]
    assert listed["bytes"].iloc[0] == sum(path.stat().st_size for path in
                                          (cluster["root"] / "results" / "rolling").rglob("*.parquet"))

    # Dated runs: member i starts at START + i hours; its series are stored by elapsed time.
    members = ensemble.members()
    assert members[["member", "start_s"]].values.tolist() == [[i, START_S + 3600 * i] for i in range(8)]
    series = ensemble.series("node:123")
    assert len(series) == 8 * 7 and sorted(series["member"].unique()) == list(range(8))
    assert series[series["member"] == 3]["time"].tolist() == [START_S + 3 * 3600 + 3600 * step for step in range(7)]

    # The cluster's statistics align members on the time since their own start and are InfluxDB's own
    # nearest-rank percentiles of the stored values; min, max, mean and the threshold fraction likewise.
    assert "elapsed_s" in bands and bands["elapsed_s"].tolist() == [3600 * step for step in range(7)]
    for percentile in (5, 50, 95):  # where InfluxDB has no rank (p5 of 8), the lowest value
        expected = influx_percentiles(cluster, series, percentile)
        assert bands[f"p{percentile}"].tolist() == [low if value is None else value
                                                     for value, low in zip(expected, bands["min"])]
    assert influx_percentiles(cluster, series, 5) == [None] * 7
    matrix = series.pivot(index="elapsed_s", columns="member", values="value").to_numpy(dtype=np.float64)
    assert bands["min"].tolist() == matrix.min(axis=1).tolist() and bands["max"].tolist() == matrix.max(axis=1).tolist()
    assert np.allclose(bands["mean"], matrix.mean(axis=1), rtol=0, atol=1e-12)
    assert bands["below_40"].tolist() == ((matrix < 40).sum(axis=1) / 8).tolist()

    summaries = ensemble.summaries()
    assert len(summaries) == 8 and summaries["pressure_min"].is_monotonic_increasing
    drawn = {document_member: factor for document_member, factor in enumerate(
        [d["run"]["alterations"][0]["factor"] for d in scenarios.generate(
            scenario(), wntr.network.WaterNetworkModel(str(NET3)), {"url": "x", "sha256": "0" * 64}).documents])}
    assert summaries["member"].iloc[0] == max(drawn, key=drawn.get)  # most demand, lowest pressure
    assert ensemble.failures().empty


def test_members_with_a_shared_start_get_absolute_times_and_one_member_its_own_values(cluster, client):
    workers = start_workers(cluster, count=1)
    try:
        ensemble = client.submit(wntr.network.WaterNetworkModel(str(NET3)), scenario(members=3), name="shared",
                                 start=START)
        ensemble.wait(progress=False, timeout_s=120)
        bands = final_statistics(ensemble, "node:123", 3)
    finally:
        stop(workers)
    assert bands["time"].tolist() == [pd.Timestamp(START) + pd.Timedelta(hours=step) for step in range(7)]
    one = ensemble.series("node:123", member=2)
    assert set(one["member"]) == {2} and len(one) == 7
    assert one["value"].tolist() == ensemble.series("node:123").query("member == 2")["value"].tolist()


def test_cancel_then_retry_runs_only_what_is_missing(cluster, client):
    ensemble = client.submit(NET3, scenario(), name="later")
    assert ensemble.cancel() == 8 and ensemble.info().state == "cancelled"
    assert ensemble.status().queued == 8 and cluster["redis"].llen("rq:queue:cloudburst") == 0
    workers = start_workers(cluster)
    try:
        assert ensemble.retry() == {"enqueued": 8, "finished": 0, "waiting": 0}
        assert ensemble.wait(progress=False, timeout_s=120).finished == 8
    finally:
        stop(workers)
    assert ensemble.retry() == {"enqueued": 0, "finished": 8, "waiting": 0}
    assert sorted(client.ledger.done("later")) == [batch_name(0, 2, 1), batch_name(3, 5, 1), batch_name(6, 7, 1)]


def test_unbalanced_members_are_counted_apart_left_out_of_statistics_and_not_retried(cluster, client, tmp_path):
    """Net3 allowed 4 trials per step with UNBALANCED STOP: its first step needs 5, so every member stops there."""
    stiff = tmp_path / "stiff-net3.inp"
    stiff.write_text(NET3.read_text().replace(" Trials             \t40", " Trials             \t4")
                     .replace(" Unbalanced         \tContinue 10", " Unbalanced         \tSTOP"))
    workers = start_workers(cluster)
    try:
        stopped = client.submit(stiff, scenario(members=6), name="stiff")
        progress = stopped.wait(progress=False, timeout_s=120)
        kept = client.submit(stiff, scenario(members=6, run={"duration_s": 21600, "unbalanced": "continue"}),
                             name="kept")
        assert kept.wait(progress=False, timeout_s=120).finished == 6
    finally:
        stop(workers)
    assert (progress.finished, progress.failed, progress.unbalanced, progress.done) == (0, 0, 6, True), \
        stopped.failures().to_dict("records")
    assert stopped.failures().empty
    reasons = stopped.unbalanced()
    assert list(reasons["member"]) == list(range(6))
    assert all("stopped at 0:00:00" in reason and "UNBALANCED STOP" in reason for reason in reasons["error"])
    assert stopped.retry() == {"enqueued": 0, "finished": 0, "waiting": 0}
    rows = wait_until("the progress point", lambda: cluster["influx"].rows(
        "SELECT last(unbalanced) AS unbalanced, last(finished) AS finished FROM progress WHERE ensemble = 'stiff'",
        cluster["db"]), 60)
    assert (rows[0]["unbalanced"], rows[0]["finished"]) == (6, 0)
    status = cli(cluster, "status", "stiff")
    assert status.returncode == 0 and "unbalanced 6" in status.stdout and "left out of the statistics" in status.stdout
    members = kept.members()
    assert (members["status"] == "finished").all()
    assert members["warnings"].str.startswith("system hydraulically unbalanced from 0:00:00").all()


def test_ensembles_say_running_finished_finished_with_failures_cancelled_or_deleted(cluster, client, tmp_path):
    stiff = tmp_path / "stiff-net3.inp"  # every member stops unbalanced at its first step (see the test above)
    stiff.write_text(NET3.read_text().replace(" Trials             \t40", " Trials             \t4")
                     .replace(" Unbalanced         \tContinue 10", " Unbalanced         \tSTOP"))
    client.submit(NET3, scenario(members=3), name="waiting")
    client.submit(NET3, scenario(members=3), name="stopped").cancel()
    states = lambda: dict(client.ensembles()[["ensemble", "state"]].values.tolist())  # noqa: E731
    assert states() == {"waiting": "running", "stopped": "cancelled"}
    client.ensemble("waiting").delete()
    workers = start_workers(cluster)
    try:
        client.submit(NET3, scenario(members=3), name="done").wait(progress=False, timeout_s=120)
        client.submit(stiff, scenario(members=2), name="unsolved").wait(progress=False, timeout_s=120)
    finally:
        stop(workers)
    assert states() == {"waiting": "deleted", "stopped": "cancelled", "done": "finished",
                        "unsolved": "finished with failures"}
    listed = cli(cluster, "list").stdout
    assert re.search(r"^waiting .* deleted$", listed, re.M) and re.search(r"^unsolved .* finished with failures$",
                                                                          listed, re.M)
    status = cli(cluster, "status", "done")
    assert status.returncode == 0 and status.stdout.startswith("done: finished, submitted ")
    gone = cli(cluster, "status", "waiting")
    assert gone.returncode == 2 and "'waiting' was deleted at " in gone.stderr
    client.submit(NET3, scenario(members=3), name="waiting")  # a deleted name is free again
    assert states()["waiting"] == "running"


def test_a_check_says_what_submit_would_do_and_writes_nothing(cluster, client, tmp_path):
    plan = client.check_submission(NET3, scenario(), name="planned")
    assert list((cluster["root"] / "models").iterdir()) == [] and client.records.names() == []
    assert cluster["redis"].llen("rq:queue:cloudburst") == 0
    assert (plan["ensemble"], plan["members"], plan["members_per_batch"], plan["model_on_cluster"]) == \
        ("planned", 8, 3, False)
    workers = start_workers(cluster)
    try:
        ensemble = client.submit(NET3, scenario(), name="planned")
        ensemble.wait(progress=False, timeout_s=120)
    finally:
        stop(workers)
    # What the check announced is what the submission did and stored.
    assert plan["batches"] == len(client.ledger.plan("planned"))
    assert plan["series_values"] == int(ensemble.query("SELECT count(*) AS n FROM series")["n"].iloc[0])
    stored = sum(path.stat().st_size for path in (cluster["root"] / "results" / "planned").rglob("*.parquet"))
    assert stored <= plan["store_bytes_estimate"]  # an upper estimate
    assert client.check_submission(NET3, scenario(), name="planned-again")["model_on_cluster"] is True
    with pytest.raises(InputError, match="an ensemble or task set named 'planned' exists"):
        client.check_submission(NET3, scenario(), name="planned")
    scenario_path = tmp_path / "big.yml"
    scenario_path.write_text(json.dumps(scenario(members=100, budget={"values": 1000})))
    refused = cli(cluster, "submit", str(NET3), str(scenario_path), "--check", "--name", "big")
    assert refused.returncode == 2 and "$.budget.values: the ensemble asks for 1,400 series values" in refused.stderr
    scenario_path.write_text(json.dumps(scenario(members=100)))
    checked = cli(cluster, "submit", str(NET3), str(scenario_path), "--check", "--name", "big")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[:4] == [
        "big: every check passed; nothing was uploaded or enqueued", "  members 100",
        f"  batches {-(-100 // plan['members_per_batch'])} of up to {plan['members_per_batch']} members",
        "  series values 1,400 (budget 2,000,000,000)"]
    assert client.records.names() == ["planned"] and cluster["redis"].llen("rq:queue:cloudburst") == 0


def test_bad_input_raises_input_error_and_nothing_is_uploaded_or_enqueued(cluster, client):
    with pytest.raises(InputError) as refused:
        client.submit(NET3, scenario(sampling="grid"))
    assert refused.value.problems == ["$.sampling: unknown design 'grid'; known: random, lhs, sobol"]
    with pytest.raises(InputError, match=r"\$.batch: give members"):
        client.submit(NET3, scenario(batch={"members": 0}))
    with pytest.raises(InputError, match="no ensemble 'nope'"):
        client.ensemble("nope")
    with pytest.raises(InputError, match="an element is node:ID or link:ID, not 'pipe:10'"):
        client.submit(NET3, scenario(), name="taken").percentiles("pipe:10")
    with pytest.raises(InputError, match="an ensemble or task set named 'taken' exists"):
        client.submit(NET3, scenario(), name="taken")
    assert list((cluster["root"] / "models").iterdir()) != []  # the first 'taken' uploaded the model once
    assert cluster["redis"].llen("rq:queue:cloudburst") == 3   # and only its batches are queued


def test_the_ensemble_budget_refuses_with_the_total_before_anything_is_enqueued(cluster, client):
    everything = {"series": [{"element": "node", "attributes": ["pressure", "head"]}]}  # 97 nodes x 2 x 7 steps
    with pytest.raises(InputError) as refused:
        client.submit(NET3, scenario(members=100, output=everything, budget={"values": 100_000}), name="big")
    assert refused.value.problems == [
        "$.budget.values: the ensemble asks for 135,800 series values in all (100 members), above its budget of "
        "100,000; ask for fewer members, elements or attributes, a longer step_s, or raise budget.values"]
    assert client.records.names() == [] and cluster["redis"].llen("rq:queue:cloudburst") == 0


def test_a_batch_whose_job_runs_again_after_it_was_recorded_is_not_executed_again(cluster, client):
    """As a worker that died after recording, whose job RQ queued again: the new attempt finds the batch recorded
    and runs nothing; one execution, the files as the first attempt stored them (read raw: pyarrow alone)."""
    import pyarrow.parquet as pq
    workers = start_workers(cluster, count=1)
    results = cluster["root"] / "results" / "twice"
    try:
        ensemble = client.submit(NET3, scenario(members=4, batch={"members": 1}), name="twice")
        ensemble.wait(progress=False, timeout_s=120)
        once = ensemble.executions()
        assert once["executions"].tolist() == [1, 1, 1, 1]
        assert (once.attrs["lost"], once.attrs["duplicated"]) == (0, 0)
        files = {path: path.read_bytes() for path in sorted(results.rglob("*.parquet"))}
        again = Job.fetch(job_id("twice", batch_name(2, 2)), connection=client.redis,
                          serializer=client.queue.serializer)
        client.queue.enqueue_job(again)
        wait_until("the job run again", lambda: again.get_status(refresh=True), 60,
                   done=lambda status: status == "finished")
    finally:
        stop(workers)
    assert again.return_value()["superseded"].startswith("the batch was recorded already")
    twice = ensemble.executions()
    assert twice["executions"].tolist() == [1, 1, 1, 1] and (twice.attrs["lost"], twice.attrs["duplicated"]) == (0, 0)
    assert {path: path.read_bytes() for path in sorted(results.rglob("*.parquet"))} == files
    members = pd.concat([pq.read_table(path).to_pandas() for path in sorted((results / "members").glob("*"))])
    assert sorted(members["member"].tolist()) == [0, 1, 2, 3]
    series = pd.concat([pq.read_table(path).to_pandas() for path in sorted((results / "series").glob("*"))])
    assert len(series) == 4 * 2 * 7 and not series.duplicated(["member", "element", "elapsed_s"]).any()


def test_delete_removes_the_files_ledger_jobs_record_and_statistics(cluster, client):
    workers = start_workers(cluster, count=1)
    try:
        ensemble = client.submit(NET3, scenario(members=2), name="gone")
        ensemble.wait(progress=False, timeout_s=120)
        assert (cluster["root"] / "results" / "gone").is_dir()
        assert ensemble.percentiles("node:123")["count"].tolist() == [2] * 7
        assert ensemble.delete() == {"dequeued": 0, "files": True}
        assert not (cluster["root"] / "results" / "gone").exists()
        assert client.records.names() == [] and not cluster["redis"].keys("cloudburst:ensemble:gone*")
        with pytest.raises(InputError, match="no ensemble 'gone'"):
            client.ensemble("gone")
        wait_until("its statistics dropped by a worker", lambda: cluster["influx"].rows(
            "SHOW SERIES WHERE ensemble = 'gone'", cluster["db"]), 60, done=lambda series: series == [])
    finally:
        stop(workers)


def test_risk_query_and_export_answer_network_wide_questions(cluster, client, tmp_path):
    every_node = {"series": [{"element": "node", "attributes": ["pressure"]}],
                  "statistics": {"below": {"pressure": [50]}}}
    workers = start_workers(cluster)
    try:
        ensemble = client.submit(NET3, scenario(members=10, output=every_node), name="network")
        ensemble.wait(progress=False, timeout_s=120)
    finally:
        stop(workers)
    model = wntr.network.WaterNetworkModel(str(NET3))
    nodes, tanks = model.node_name_list, model.tank_name_list + model.reservoir_name_list
    customers = [name for name, junction in model.junctions() if junction.base_demand > 0]  # Net3: one demand each
    risk = ensemble.risk("pressure", below=50)  # by default the junctions customers draw from
    assert sorted(risk["element"]) == sorted(customers) and risk["probability"].is_monotonic_decreasing
    assert risk.attrs["elements"] == "junctions with demand"
    assert sorted(ensemble.risk("pressure", below=50, types=["tank", "reservoir"])["element"]) == sorted(tanks)
    every = ensemble.risk("pressure", below=50, types=["junction", "tank", "reservoir"])
    assert sorted(every["element"]) == sorted(nodes) and every["probability"].iloc[0] == 1.0  # a tank's depth
    # Each node's probability is the largest fraction of members below 50 m at any one time, from the stored values.
    stored = ensemble.query("SELECT element, elapsed_s, avg(CASE WHEN value < 50 THEN 1.0 ELSE 0.0 END) AS share "
                            "FROM series GROUP BY element, elapsed_s")
    expected = stored.groupby("element")["share"].max()
    assert dict(zip(every["element"], every["probability"])) == pytest.approx(expected.to_dict(), abs=1e-12)
    assert 0 < risk["probability"].iloc[0] and risk["probability"].iloc[-1] < 1
    counts = ensemble.query("SELECT count(*) AS n, count(DISTINCT member) AS members FROM series")
    assert counts.values.tolist() == [[10 * len(nodes) * 7, 10]]
    with pytest.raises(InputError, match=r"output.statistics.below: \{pressure: \[30\]\}"):
        ensemble.risk("pressure", below=30)
    with pytest.raises(InputError, match="the query failed"):
        ensemble.query("SELECT nothing FROM nowhere")
    series_csv, members_csv = ensemble.export(tmp_path / "csv", "csv")
    assert len(pd.read_csv(series_csv)) == 10 * len(nodes) * 7 and len(pd.read_csv(members_csv)) == 10
    parquet = ensemble.export(tmp_path / "parquet")
    assert sorted(path.parent.name for path in parquet) == ["members"] * 4 + ["series"] * 4  # 10 members, 4 batches
    drawn = cli(cluster, "risk", "network", "--below", "50", "--top", "3", "--plot", str(tmp_path / "map.png"))
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.startswith(f"{len(customers)} nodes (junctions with demand; --types to include tanks or "
                                   "reservoirs), highest probability of pressure below 50 first:")
    assert not set(tanks) & {line.split()[0] for line in drawn.stdout.splitlines()[2:]}
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cluster_pointed_at_an_s3_compatible_store_stores_there_and_answers_from_it(cluster, tmp_path):
    import boto3
    from services import s3_server
    with s3_server(tmp_path) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="key",
                          aws_secret_access_key="secret")
        s3.create_bucket(Bucket="site-results")
        (tmp_path / "s3-secret").write_text("secret")
        pointed = {**cluster, "worker_env": {**cluster["worker_env"], "CLOUDBURST_RESULTS_URL": "s3://site-results/cb",
                                             "CLOUDBURST_RESULTS_ENDPOINT": endpoint, "CLOUDBURST_RESULTS_USER": "key",
                                             "CLOUDBURST_RESULTS_PASSWORD_FILE": str(tmp_path / "s3-secret")}}
        client = cloudburst.Client(dataclasses.replace(
            client_settings(cluster), results_url="s3://site-results/cb", results_user="key",
            results_password="secret", results_endpoint=endpoint))
        workers = start_workers(pointed)
        try:
            ensemble = client.submit(NET3, scenario(members=4), name="on-s3")
            ensemble.wait(progress=False, timeout_s=120)
            bands = final_statistics(ensemble, "node:123", 4)
        finally:
            stop(workers)
        keys = [entry["Key"] for entry in s3.list_objects_v2(Bucket="site-results")["Contents"]]
        assert sorted(key.split("/")[2] for key in keys) == ["members"] * 2 + ["series"] * 2
        assert not (cluster["root"] / "results").exists()  # nothing went to the file service
        assert len(ensemble.series("node:123")) == 4 * 7 and (bands["count"] == 4).all()
        assert ensemble.delete()["files"] and "Contents" not in s3.list_objects_v2(Bucket="site-results")


def test_wait_returns_when_the_workers_signal_the_last_batch_not_at_the_next_poll(cluster, client):
    """The fallback poll is set to a minute: the wait still ends as soon as the last batch and the statistics are
    recorded, because the workers signal each one."""
    workers = start_workers(cluster)
    try:
        ensemble = client.submit(NET3, scenario(members=4, run={"duration_s": 3600}), name="pushed")
        started = time.monotonic()
        progress = ensemble.wait(progress=False, poll_s=60, timeout_s=300)
        waited = time.monotonic() - started
    finally:
        stop(workers)
    assert progress.done and progress.finished == 4 and ensemble.statistics_current()
    assert waited < 30  # polling every 60 s could not have seen the end before 60 s
