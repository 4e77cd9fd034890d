"""The Python API (cloudburst.Client, Ensemble) against a real Redis, InfluxDB and Nginx, with worker runners
running the example env: submit, wait, status, summaries, series, percentiles, failures, cancel, retry, dated
runs and bad input."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import wntr

import cloudburst
from cloudburst.errors import InputError
from local_cluster import client_settings, start_workers, stop
from test_client import NET3

START = "2024-06-01T00:00:00Z"
START_S = int(pd.Timestamp(START).timestamp())


def scenario(**changes) -> dict:
    return {"ensemble": "api", "members": 8, "seed": 5, "run": {"duration_s": 21600},
            "alterations": [{"type": "demand_scale",
                             "factor": {"distribution": "triangular", "low": 0.8, "mode": 1.0, "high": 1.3}}],
            "output": {"series": [{"element": "node", "attributes": ["pressure"], "ids": ["123"]}]}, **changes}


@pytest.fixture
def client(cluster) -> cloudburst.Client:
    return cloudburst.Client(client_settings(cluster))


def test_a_study_in_python_submits_waits_and_reads_dataframes(cluster, client):
    workers = start_workers(cluster)
    try:
        ensemble = client.submit(NET3, scenario(start_time_utc=START, start_every_s=3600), name="rolling")
        final = ensemble.wait(progress=False)
    finally:
        stop(workers)
    assert (final.members, final.finished, final.failed, final.running, final.queued) == (8, 8, 0, 0, 0)
    assert ensemble.status() == final and ensemble.uploaded is True
    listed = client.ensembles()
    assert listed[["ensemble", "members", "finished", "failed", "state"]].values.tolist() == \
        [["rolling", 8, 8, 0, "submitted"]]

    # Dated runs: member i's points start at START + i hours.
    status = cluster["influx"].rows("SELECT runtime_s FROM status WHERE ensemble = 'rolling' GROUP BY member",
                                    cluster["db"])
    assert sorted((int(row["member"]), row["time"]) for row in status) == [(i, START_S + 3600 * i) for i in range(8)]

    series = ensemble.series("node:123")
    assert len(series) == 8 * 7 and sorted(series["member"].unique()) == list(range(8))
    first = series[series["member"] == 3]["time"].tolist()
    assert first == [START_S + 3 * 3600 + 3600 * step for step in range(7)]

    # Percentiles align members on the time since their own start, and equal numpy's on the stored values.
    bands = ensemble.percentiles("node:123")
    assert "time" not in bands and bands["elapsed_s"].tolist() == [3600 * step for step in range(7)]
    series["elapsed_s"] = series["time"] - START_S - 3600 * series["member"]
    matrix = series.pivot(index="elapsed_s", columns="member", values="value").to_numpy()
    for percentile in (5, 50, 95):
        assert bands[f"p{percentile}"].tolist() == np.percentile(matrix, percentile, axis=1).tolist()
    assert bands["min"].tolist() == matrix.min(axis=1).tolist() and (bands["members"] == 8).all()

    summaries = ensemble.summaries()
    assert len(summaries) == 8 and summaries["pressure_min"].is_monotonic_increasing
    drawn = {document_member: factor for document_member, factor in enumerate(
        [d["run"]["alterations"][0]["factor"] for d in cloudburst.scenarios.generate(
            scenario(), wntr.network.WaterNetworkModel(str(NET3)), {"url": "x", "sha256": "0" * 64}).documents])}
    assert summaries["member"].iloc[0] == max(drawn, key=drawn.get)  # most demand, lowest pressure
    assert ensemble.failures().empty


def test_members_with_a_shared_start_get_absolute_times_and_one_member_its_own_values(cluster, client):
    workers = start_workers(cluster, count=1)
    try:
        ensemble = client.submit(wntr.network.WaterNetworkModel(str(NET3)), scenario(members=3), name="shared",
                                 start=START)
        ensemble.wait(progress=False)
    finally:
        stop(workers)
    bands = ensemble.percentiles("node:123")
    assert bands["time"].tolist() == [pd.Timestamp(START) + pd.Timedelta(hours=step) for step in range(7)]
    one = ensemble.series("node:123", member=2)
    assert set(one["member"]) == {2} and len(one) == 7


def test_cancel_then_retry_runs_only_what_is_missing(cluster, client):
    ensemble = client.submit(NET3, scenario(), name="later")
    assert ensemble.cancel() == 8 and ensemble.info().state == "cancelled"
    assert ensemble.status().queued == 8 and cluster["redis"].llen("rq:queue:cloudburst") == 0
    workers = start_workers(cluster)
    try:
        assert ensemble.retry() == {"enqueued": 8, "finished": 0, "waiting": 0}
        assert ensemble.wait(progress=False).finished == 8
    finally:
        stop(workers)
    assert ensemble.retry() == {"enqueued": 0, "finished": 8, "waiting": 0}


def test_bad_input_raises_input_error_and_nothing_is_uploaded_or_enqueued(cluster, client):
    with pytest.raises(InputError) as refused:
        client.submit(NET3, scenario(sampling="grid"))
    assert refused.value.problems == ["$.sampling: unknown design 'grid'; known: random, lhs, sobol"]
    with pytest.raises(InputError, match="no ensemble 'nope'"):
        client.ensemble("nope")
    with pytest.raises(InputError, match="an element is node:ID or link:ID, not 'pipe:10'"):
        client.submit(NET3, scenario(), name="taken").percentiles("pipe:10")
    with pytest.raises(InputError, match="ensemble 'taken' exists"):
        client.submit(NET3, scenario(), name="taken")
    assert list((cluster["root"] / "models").iterdir()) != []  # the first 'taken' uploaded the model once
    assert cluster["redis"].llen("rq:queue:cloudburst") == 8   # and only its members are queued


def test_a_member_run_twice_is_counted_as_one_duplicated_execution(cluster, client):
    from rq.job import Job
    from cloudburst.queue import job_id
    workers = start_workers(cluster, count=1)
    try:
        ensemble = client.submit(NET3, scenario(members=4), name="twice")
        ensemble.wait(progress=False)
        once = ensemble.executions()
        assert once["executions"].tolist() == [1, 1, 1, 1]
        assert (once.attrs["lost"], once.attrs["duplicated"]) == (0, 0)
        again = Job.fetch(job_id("twice", 2), connection=client.redis, serializer=client.queue.serializer)
        client.queue.enqueue_job(again)  # as a worker that died after writing, and whose job RQ re-queued
        deadline = time.monotonic() + 60
        while ensemble.executions()["executions"].tolist() != [1, 1, 2, 1]:
            assert time.monotonic() < deadline, ensemble.executions()["executions"].tolist()
            time.sleep(0.2)
    finally:
        stop(workers)
    twice = ensemble.executions()
    assert (twice.attrs["lost"], twice.attrs["duplicated"]) == (0, 1)
    # Its results were overwritten, not added: one status, one series per report time.
    counts = cluster["influx"].rows("SELECT count(pressure) FROM node WHERE ensemble = 'twice' GROUP BY member",
                                    cluster["db"])
    assert {int(row["member"]): row["count"] for row in counts} == {member: 7 for member in range(4)}
