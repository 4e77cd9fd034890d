"""Queue semantics against a real Redis and the worker runner with the example env: batch payloads as JSON,
timeouts, TTLs and retries as RQ carries them; a failing member is a failed row of its batch, and a payload that
is not a batch fails once, not retried."""
import hashlib
import json
import os
import socket
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import wntr
from cloudburst.api.queue import enqueue_batches
from cloudburst.schema.batch import batch_name, make_batch, split
from cloudburst.schema.queues import JobPolicy, job_id, open_queue
from cloudburst.state.ledger import Ledger
from conftest import MODEL_READER
from env_manifest import write_env_manifest
from redis import Redis
from rq import Retry
from services import redis_server

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "files" / "images" / "worker" / "runner.py"
EXAMPLE_ENV = REPO / "files" / "env" / "epanet"
NET3 = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"


@pytest.fixture
def queue(tmp_path):
    with redis_server(tmp_path) as url:
        yield open_queue(Redis.from_url(url)), url


@pytest.fixture(scope="module")
def net3(model_dir, model_server) -> dict:
    sha = hashlib.sha256(NET3.read_bytes()).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(NET3.read_bytes())
    return {"url": f"{model_server}/{sha}.inp", "sha256": sha, "files": model_server}


def member(net3: dict, number: int, run: dict | None = None) -> dict:
    return {"schema": "cloudburst.job/1", "ensemble": "queue-tests", "member": number, "input": {"url": net3["url"], "sha256": net3["sha256"]},
            "run": run or {"alterations": [{"type": "demand_scale", "factor": 1.0 + number / 10}]}}


def work(redis_url: str, tmp_path: Path, net3: dict, runs: int = 1) -> str:
    """Burst workers with the example env in dry-run mode (no InfluxDB), one after the other (a runner that
    stopped a runaway job exits), fetching models with the workers' credentials; returns their logs."""
    (tmp_path / "files-password").write_text(MODEL_READER[1])
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE_ENV), "CLOUDBURST_MODEL_CACHE": str(tmp_path / "models"),
           "CLOUDBURST_FILES_URL": net3["files"], "CLOUDBURST_FILES_USER": MODEL_READER[0],
           "CLOUDBURST_FILES_PASSWORD_FILE": str(tmp_path / "files-password"),
           "CLOUDBURST_ENV_MANIFEST": str(write_env_manifest((EXAMPLE_ENV,), tmp_path / "env-manifest.json"))}
    env.pop("CLOUDBURST_INFLUX_URL", None)
    logs = ""
    for _ in range(runs):
        done = subprocess.run([sys.executable, str(RUNNER), "--redis-url", redis_url, "--burst", "--heartbeat-s", "1"],
                              env=env, capture_output=True, text=True, timeout=300)
        logs += done.stdout + done.stderr
        assert done.returncode in (0, 75), logs[-3000:]
    return logs


def enqueue(rq_queue, documents: list[dict], size: int = 10, policy: JobPolicy = JobPolicy()) -> int:
    batches = (make_batch("queue-tests", part) for part in split(documents, size))
    return enqueue_batches(rq_queue, Ledger(rq_queue.connection), "queue-tests", batches, policy)


def test_batches_are_stored_as_json_with_their_timeout_ttls_retries_and_planned_members(queue, net3):
    rq_queue, _ = queue
    documents = [member(net3, n) for n in range(5)]
    policy = JobPolicy(timeout_s=900, result_ttl_s=3600, failure_ttl_s=86400, retries=3)
    assert enqueue(rq_queue, documents, size=2, policy=policy) == 5
    names = [batch_name(0, 1), batch_name(2, 3), batch_name(4, 4)]
    assert rq_queue.job_ids == [job_id("queue-tests", name) for name in names]  # FIFO, in member order
    assert Ledger(rq_queue.connection).plan("queue-tests") == {names[0]: [0, 1], names[1]: [2, 3], names[2]: [4]}
    raw = rq_queue.connection.hget(f"rq:job:{job_id('queue-tests', names[1])}", "data")
    function, _, args, _ = json.loads(zlib.decompress(raw))
    assert function == "worker.run" and args == [make_batch("queue-tests", documents[2:4])]
    assert list(make_batch("queue-tests", documents[2:4])["members"][0]) == ["member", "run"]  # the rest shared
    job = rq_queue.fetch_job(job_id("queue-tests", names[1]))
    assert (job.timeout, job.result_ttl, job.failure_ttl, job.retries_left) == (900, 3600, 86400, 3)


def test_the_example_env_runs_enqueued_batches_and_returns_their_counts(queue, net3, tmp_path):
    rq_queue, url = queue
    enqueue(rq_queue, [member(net3, n) for n in range(3)], size=2)
    work(url, tmp_path, net3)
    done = [rq_queue.fetch_job(job_id("queue-tests", name)) for name in (batch_name(0, 1), batch_name(2, 2))]
    assert [job.get_status() for job in done] == ["finished", "finished"]
    assert [job.return_value() for job in done] == [
        {"finished": 2, "failed": 0, "unbalanced": 0, "worker": socket.gethostname()},
        {"finished": 1, "failed": 0, "unbalanced": 0, "worker": socket.gethostname()}]


def test_a_failing_member_is_a_failed_row_and_a_payload_that_is_no_batch_fails_once(queue, net3, tmp_path):
    rq_queue, url = queue
    enqueue(rq_queue, [member(net3, 0, {"alterations": [{"type": "pump_outage", "pump": "P-404"}]}),
                       member(net3, 1)], policy=JobPolicy(retries=2))
    not_a_batch = rq_queue.enqueue("worker.run", {"schema": "cloudburst.batch/1", "ensemble": "x"},
                                   retry=Retry(max=2))
    log = work(url, tmp_path, net3)
    batch = rq_queue.fetch_job(job_id("queue-tests", batch_name(0, 1)))
    assert batch.get_status() == "finished" and batch.return_value()["failed"] == 1
    refused = rq_queue.fetch_job(not_a_batch.id)
    assert refused.get_status() == "failed" and "$.batch: Field required" in refused.latest_result().exc_string
    assert "enqueued for retry" not in log
    assert len(refused.results()) == 1  # one execution


def test_a_batch_running_past_its_timeout_is_stopped_and_failed(queue, net3, tmp_path):
    rq_queue, url = queue
    slow = member(net3, 0, {"simulator": "wntr", "duration_s": 400 * 86400})  # WNTRSimulator, 400 days: minutes
    enqueue(rq_queue, [slow, member(net3, 1)], size=1, policy=JobPolicy(timeout_s=2, retries=0))
    work(url, tmp_path, net3, runs=2)
    stopped, after = (rq_queue.fetch_job(job_id("queue-tests", batch_name(n, n))) for n in range(2))
    # RQ's alarm interrupts the simulation (the member fails with the timeout as its reason) or, where wntr's
    # solver swallows it, the runner fails the job itself and its process exits; either way the job is failed.
    assert stopped.get_status() == "failed"
    assert "Task exceeded maximum timeout value (2 seconds)" in stopped.latest_result().exc_string
    assert after.get_status() == "finished"


def test_forgetting_a_job_whose_worker_died_mid_run_removes_it_though_its_execution_record_is_gone(queue):
    """RQ 3.0 keeps the ID of an execution whose worker died, after the execution's own record expired; its
    Job.delete then raises. Deleting an ensemble or task set must still remove such a job."""
    import time

    from cloudburst.api.queue import forget_jobs
    from rq.executions import ExecutionRegistry
    from rq.registry import FailedJobRegistry
    rq_queue = queue[0]
    job = rq_queue.enqueue("json.dumps", 1, job_id=job_id("died", batch_name(0, 1)))
    failed = FailedJobRegistry(rq_queue.name, connection=rq_queue.connection)
    failed.add(job, ttl=600)
    rq_queue.connection.zadd(ExecutionRegistry(job_id=job.id, connection=rq_queue.connection).key,
                             {"execution-of-a-dead-worker": time.time()})
    forget_jobs(rq_queue, "died")
    assert not rq_queue.connection.exists(job.key) and job.id not in failed.get_job_ids()
