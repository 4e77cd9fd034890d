"""Races and partitions on a real Redis, InfluxDB, Nginx and worker runners: two clients submitting one name at
once, delete while batches run and statistics compute, cancel and retry while batches run, and a client cut off
in the middle of its submit. Each ends in one of the states a user can understand: never half an ensemble, no
file, series or record coming back after a delete, every member run to a record once."""
from __future__ import annotations

import threading

import cloudburst
import pytest
from cloudburst.api.queue import queued_batches
from cloudburst.errors import InputError
from cloudburst.schema.queues import STATS_QUEUE
from local_cluster import client_settings, start_workers, stop
from rq.registry import StartedJobRegistry
from test_scenarios import NET3
from waiting import wait_until

# Members of about half a second each (four days at a one-minute step with water age), two per batch: a delete or
# a cancel lands while batches run.
SLOW = {"duration_s": 4 * 86400, "hydraulic_timestep_s": 60, "quality": {"mode": "age"}}


def scenario(members: int, **changes) -> dict:
    return {"ensemble": "races", "members": members, "seed": 9, "run": SLOW, "batch": {"members": 2},
            "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}],
            "output": {"series": [{"element": "node", "attributes": ["pressure"], "ids": ["123"], "step_s": 86400}]},
            **changes}


@pytest.fixture
def client(cluster) -> cloudburst.Client:
    return cloudburst.Client(client_settings(cluster))


def idle(cluster) -> bool:
    """No job queued or running on either queue."""
    redis = cluster["redis"]
    return all(redis.llen(f"rq:queue:{queue}") == 0 and StartedJobRegistry(queue, connection=redis).count == 0
               for queue in ("cloudburst", STATS_QUEUE))


def test_two_clients_submitting_one_name_at_once_one_wins_and_the_other_is_told(cluster):
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def submit() -> None:
        own = cloudburst.Client(client_settings(cluster))
        start.wait()
        try:
            outcomes.append(own.submit(NET3, scenario(6, run={"duration_s": 3600}), name="same"))
        except Exception as refused:  # noqa: BLE001 - the assertion below names whatever it was
            outcomes.append(refused)
    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [outcome for outcome in outcomes if isinstance(outcome, InputError)]
    assert len(refused) == 1 and len(outcomes) == 2, outcomes
    assert "an ensemble or task set named 'same' exists; give another name" in str(refused[0])
    client = cloudburst.Client(client_settings(cluster))
    assert client.records.names() == ["same"]
    planned = [member for members in client.ledger.plan("same").values() for member in members]
    assert sorted(planned) == list(range(6)) and cluster["redis"].llen("rq:queue:cloudburst") == 3  # one submit's


def test_delete_while_batches_run_and_statistics_compute_leaves_nothing_behind(cluster, client):
    workers = start_workers(cluster, 2)
    try:
        ensemble = client.submit(NET3, scenario(40, output={**scenario(40)["output"],
                                                            "statistics": {"percentiles": [50]}}), name="doomed")
        wait_until("a statistics job queued or running while batches run", lambda: (
            cluster["redis"].exists("cloudburst:ensemble:doomed:stats-pending"), ensemble.status().running), 120,
            done=lambda seen: seen[0] == 1 and seen[1] > 0)
        ensemble.delete()
        wait_until("the workers idle", lambda: idle(cluster), 120)
    finally:
        stop(workers)
    assert not (cluster["root"] / "results" / "doomed").exists()
    assert cluster["redis"].keys("cloudburst:ensemble:doomed*") == []
    assert "doomed" not in client.records.names() and "doomed" in client.records.deleted()
    series = cluster["influx"].rows("SHOW SERIES WHERE \"ensemble\" = 'doomed'", cluster["db"])
    assert series == []


def test_cancel_while_batches_run_then_retry_runs_each_member_to_one_record(cluster, client):
    workers = start_workers(cluster, 2)
    try:
        ensemble = client.submit(NET3, scenario(16), name="paused")
        wait_until("batches running", lambda: ensemble.status().running, 120, done=lambda running: running > 0)
        cancelled = ensemble.cancel()
        assert cancelled > 0
        wait_until("the running batches finished", lambda: idle(cluster), 120)
        middle = ensemble.status()
        assert middle.running == 0 and 0 < middle.finished < 16 and middle.finished + cancelled == 16
        retried = ensemble.retry()
        assert retried["enqueued"] == cancelled and retried["finished"] == middle.finished
        final = ensemble.wait(progress=False, timeout_s=180)
    finally:
        stop(workers)
    assert (final.finished, final.failed) == (16, 0)
    executions = ensemble.executions()
    assert executions["executions"].tolist() == [1] * 16 and executions.attrs == {"lost": 0, "duplicated": 0}


def test_retry_while_batches_run_enqueues_nothing_that_is_queued_or_running(cluster, client):
    workers = start_workers(cluster, 2)
    try:
        ensemble = client.submit(NET3, scenario(12), name="eager")
        wait_until("batches running", lambda: ensemble.status().running, 120, done=lambda running: running > 0)
        retried = ensemble.retry()
        assert retried["enqueued"] == 0 and retried["waiting"] + retried["finished"] == 12
        final = ensemble.wait(progress=False, timeout_s=180)
    finally:
        stop(workers)
    assert (final.finished, final.failed) == (12, 0)
    executions = ensemble.executions()
    assert executions["executions"].tolist() == [1] * 12 and executions.attrs == {"lost": 0, "duplicated": 0}


def test_a_client_cut_off_mid_submit_queued_nothing_and_retry_queues_every_member_once(cluster, client, tmp_path):
    """`cloudburst submit` killed while it writes its jobs (Redis's writes paused after the first chunk reached it, so
    the kill lands mid-submit): nothing is queued, `status` says "submitting" and then, once its staging expired,
    cut off; `wait` says so instead of waiting for ever; `retry` queues every member once."""
    import os
    import signal
    import subprocess
    import sys

    import yaml
    from cloudburst.state.ledger import STAGING_TTL_S
    from local_cluster import cli
    members = 30_000  # one member per batch: 15 chunks of jobs
    path = tmp_path / "big.yml"
    path.write_text(yaml.safe_dump(scenario(members, run={"duration_s": 3600}, batch={"members": 1})))
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDBURST_")}
    submitting = subprocess.Popen([sys.executable, "-m", "cloudburst.cli", "submit", str(NET3), str(path), "--name",
                                   "cut"], env={**env, **cluster["env"]}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    redis = cluster["redis"]
    staged = "cloudburst:ensemble:cut:staged"
    wait_until("the first chunk staged", lambda: redis.llen(staged), 120, poll_s=0.005)
    redis.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
    try:
        submitting.send_signal(signal.SIGKILL)
        submitting.wait(timeout=30)
    finally:
        redis.execute_command("CLIENT", "UNPAUSE")
    assert 0 < redis.llen(staged) < members and redis.llen("rq:queue:cloudburst") == 0
    assert "cut: submitting" in cli(cluster, "status", "cut").stdout
    ensemble = client.ensemble("cut")
    wait_until("the staging expired", lambda: redis.exists(staged), STAGING_TTL_S + 10, done=lambda left: left == 0)
    shown = cli(cluster, "status", "cut").stdout
    assert "cut: cut off (retry or delete)" in shown, shown
    with pytest.raises(InputError, match=r"the submit of ensemble 'cut' was cut off before its jobs were queued: "
                                         r"nothing of it runs; `cloudburst retry cut` queues them"):
        ensemble.wait(progress=False, timeout_s=10)
    waited = cli(cluster, "wait", "cut", timeout=30)
    assert waited.returncode == 2 and "was cut off before its jobs were queued" in waited.stderr, waited
    assert ensemble.retry()["enqueued"] == members
    queued = queued_batches(client.queue, "cut")
    assert len(queued) == redis.llen("rq:queue:cloudburst") == members
    plan = client.ledger.plan("cut")
    assert sorted(member for batch in queued for member in plan[batch]) == list(range(members))
    assert ensemble.stamp() == "retried"
