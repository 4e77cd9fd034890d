"""The worker runner (files/images/worker/runner.py) against a real Redis: preloading, JSON-only payloads,
and a job whose process is killed mid-run being run again to the end."""
import base64
import importlib.util
import os
import pickle
import random
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Retry
from rq.job import Job, JobStatus
from env_manifest import write_env_manifest
from rq.serializers import JSONSerializer
from services import redis_server
from waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "files" / "images" / "worker" / "runner.py"
PROBE_ENV = Path(__file__).resolve().parents[1] / "probe_env"


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path, password="probe-password") as url:
        yield url


@pytest.fixture
def probe_dir(tmp_path) -> Path:
    directory = tmp_path / "probe"
    directory.mkdir()
    return directory


def probe_env(probe_dir: Path) -> dict[str, str]:
    """A worker's environment on the probe env, its manifest written into ``probe_dir``."""
    return {**os.environ, "PYTHONPATH": str(PROBE_ENV), "PROBE_DIR": str(probe_dir),
            "CLOUDBURST_ENV_MANIFEST": str(write_env_manifest((PROBE_ENV,), probe_dir / "env-manifest.json"))}


def start_runner(redis_url: str, probe_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUNNER), "--redis-url", redis_url, *extra], env=probe_env(probe_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def runner_and_reference(redis_url: str, reference_url: str) -> list[tuple[str, str, list[str]]]:
    """The runner on the test's Redis and RQ's own SimpleWorker (the reference) on another, each in burst mode."""
    return [("runner", redis_url, [sys.executable, str(RUNNER), "--redis-url", redis_url, "--burst"]),
            ("rq", reference_url, [sys.executable, "-c", REFERENCE_WORKER, reference_url])]


def run_to_the_end(command: list[str], probe_dir: Path) -> None:
    """A burst worker on the probe env, until its queue is empty."""
    done = subprocess.run(command, env=probe_env(probe_dir), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def wait_for(condition, timeout_s: float = 30, what: str = "condition") -> None:
    wait_until(what, condition, timeout_s, poll_s=0.1)


def json_queue(redis_url: str) -> Queue:
    return Queue("cloudburst", connection=Redis.from_url(redis_url), serializer=JSONSerializer)


def test_every_job_runs_in_a_process_that_imported_the_env_once_before(redis_url, probe_dir):
    queue = json_queue(redis_url)
    jobs = [queue.enqueue("worker.whoami", f"job-{n}") for n in range(5)]
    runner = start_runner(redis_url, probe_dir, "--burst")
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0, output
    assert "preloaded worker" in output
    imports = (probe_dir / "imports").read_text().split()
    assert imports == [str(runner.pid)]
    for job in jobs:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED
        assert job.return_value()["pid"] == runner.pid


def test_a_pickled_payload_is_refused_and_never_unpickled(redis_url, probe_dir, tmp_path):
    evidence = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {evidence}",))

    pickling_queue = Queue("cloudburst", connection=Redis.from_url(redis_url))  # RQ's default: pickle
    planted = pickling_queue.enqueue("worker.whoami", Exploit())
    # The planted payload is live: unpickling it here runs the command (on purpose, to prove the test can fail).
    pickle.loads(zlib.decompress(Redis.from_url(redis_url).hget(planted.key, "data")))
    assert evidence.exists()
    evidence.unlink()
    follower = json_queue(redis_url).enqueue("worker.whoami", "after")
    runner = start_runner(redis_url, probe_dir, "--burst")
    output, _ = runner.communicate(timeout=60)
    assert not evidence.exists(), "the worker unpickled a payload from Redis"
    refused = Job.fetch(planted.id, connection=Redis.from_url(redis_url), serializer=JSONSerializer)
    assert refused.get_status() == JobStatus.FAILED
    assert "payload is not a JSON RQ job" in refused.exc_info and refused.retries_left == 0
    follower.refresh()
    assert follower.get_status() == JobStatus.FINISHED, output


def test_a_job_whose_process_is_killed_mid_run_is_run_again_and_finished(redis_url, probe_dir):
    queue = json_queue(redis_url)
    job = queue.enqueue("worker.slow_first_attempt", "victim", 120, retry=Retry(max=2), job_timeout=600)
    timing = ("--heartbeat-s", "1", "--maintenance-s", "1")
    victim = start_runner(redis_url, probe_dir, *timing)
    attempts = probe_dir / "victim.attempts"
    wait_for(attempts.exists, what="the first attempt")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    rescuer = start_runner(redis_url, probe_dir, *timing)
    try:
        # 1 s heartbeats and maintenance: re-queued and re-run well within 30 s (the default TTL alone is 30 s).
        wait_until("the killed job finished by another worker", lambda: job.get_status(refresh=True), 30,
                   done=lambda status: status == JobStatus.FINISHED)
    finally:
        rescuer.terminate()
        rescuer.communicate(timeout=30)
    assert job.return_value() == 2
    assert attempts.read_text().split() == [str(victim.pid), str(rescuer.pid)]


def test_a_job_that_swallows_its_timeout_is_failed_by_the_runner_which_then_exits(redis_url, probe_dir):
    queue = json_queue(redis_url)
    job = queue.enqueue("worker.stubborn", 120, job_timeout=1)
    follower = queue.enqueue("worker.whoami", "after")
    runner = start_runner(redis_url, probe_dir, "--burst", "--heartbeat-s", "1")
    output, _ = runner.communicate(timeout=30)  # 1 s timeout + 5 s grace, not the job's 120 s
    assert runner.returncode == 75, output
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert "stopped by the runner" in job.latest_result().exc_string
    assert follower.get_status(refresh=True) == JobStatus.QUEUED  # left for the replacement process


def test_a_job_naming_anything_the_env_does_not_declare_fails_before_import_and_nothing_runs(redis_url, probe_dir,
                                                                                           tmp_path):
    from rq import Callback
    canary = tmp_path / "canary"
    queue = json_queue(redis_url)
    refused = {
        "subprocess.getoutput": queue.enqueue("subprocess.getoutput", f"touch {canary}", retry=Retry(max=2)),
        "os.system": queue.enqueue("os.system", f"touch {canary}"),
        "builtins.eval": queue.enqueue("builtins.eval", f"open({str(canary)!r}, 'w')"),
        "rq.utils.import_attribute": queue.enqueue("rq.utils.import_attribute", "os.getpid"),  # a wheel's module
        "worker.Path": queue.enqueue("worker.Path", str(canary)),  # a name the env module only imports
        "canary._private": queue.enqueue("canary._private"),  # an env module that declares nothing
    }
    callback = queue.enqueue("worker.whoami", "callback", on_success=Callback("subprocess.getoutput"))
    follower = queue.enqueue("worker.whoami", "after")
    runner = start_runner(redis_url, probe_dir, "--burst")
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0, output
    assert not canary.exists() and not (probe_dir / "canary-imported").exists()
    for name, job in refused.items():
        job.refresh()
        assert job.get_status() == JobStatus.FAILED and job.retries_left == 0, name
        assert job.exc_info.startswith(f"CloudBurstRefusedFunction: job {job.id} names {name}, which is neither one "
                                       "of CloudBurst's entry points nor a function the env declares callable "
                                       "(declared: worker.slow_first_attempt, worker.stubborn, worker.weigh, "
                                       "worker.whoami)"), name
    callback.refresh()
    assert callback.get_status() == JobStatus.FAILED
    assert f"job {callback.id} names a callback (subprocess.getoutput)" in callback.exc_info
    follower.refresh()
    assert follower.get_status() == JobStatus.FINISHED and follower.return_value()["tag"] == "after"


REFERENCE_WORKER = """
import sys
from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
SimpleWorker([Queue("cloudburst", connection=Redis.from_url(sys.argv[1]), serializer=JSONSerializer)],
             connection=Redis.from_url(sys.argv[1]), serializer=JSONSerializer).work(burst=True)
"""


def rq_records(connection: Redis, job: Job) -> dict:
    """What a finished job leaves in Redis, with its id and execution ids named generically: the keys (and whether
    each expires), the job's fields and status, the worker's counts, the registries' members and its result's type."""
    def generic(key: bytes) -> str:
        text = key.decode().replace(job.id, "JOB")
        if text.startswith("rq:worker:"):
            return "rq:worker:NAME"
        return "EXECUTION-KEY" if ":execution:" in text or text.startswith("rq:execution") else text
    results = connection.xrange(f"rq:results:{job.id}")
    [worker_key] = connection.keys("rq:worker:*")
    return {
        "keys and whether each expires": sorted({(generic(key), connection.ttl(key) > 0)
                                                 for key in connection.keys("*")}),
        "worker counts": connection.hmget(worker_key, "successful_job_count", "failed_job_count", "state"),
        "job fields": sorted(field.decode() for field in connection.hkeys(job.key)),
        "status": connection.hget(job.key, "status"),
        "finished": [member.decode().replace(job.id, "JOB") for member in connection.zrange(
            "rq:finished:cloudburst", 0, -1)],
        "started": connection.zcard("rq:wip:cloudburst"),
        "intermediate": connection.llen("rq:queue:cloudburst:intermediate"),
        "result types": [fields[b"type"] for _, fields in results],
    }


def test_a_finished_job_leaves_in_redis_what_rqs_own_worker_leaves(redis_url, probe_dir, tmp_path):
    """The runner writes a job's start and end in fewer round trips than RQ's worker; what it leaves must not
    differ. The reference is RQ's own SimpleWorker on a second Redis."""
    (tmp_path / "reference").mkdir()
    with redis_server(tmp_path / "reference") as reference_url:
        recorded = {}
        for label, url, command in runner_and_reference(redis_url, reference_url):
            job = json_queue(url).enqueue("worker.whoami", label, result_ttl=600)
            run_to_the_end(command, probe_dir)
            assert job.return_value(refresh=True)["tag"] == label
            recorded[label] = rq_records(Redis.from_url(url), job)
    assert recorded["runner"]["status"] == b"finished"
    assert recorded["runner"] == recorded["rq"]


def test_a_finished_job_s_payload_is_not_sent_back_to_redis(redis_url, probe_dir, tmp_path):
    """RQ rewrites a finished job's whole hash, its payload compressed again; the runner leaves the payload as it
    was enqueued and sends Redis less than its size. The reference is RQ's own SimpleWorker, which sends it back."""
    payload = base64.b64encode(random.Random(7).randbytes(150_000)).decode()  # 200 KB, compressing to ~150 KB
    (tmp_path / "reference").mkdir()
    with redis_server(tmp_path / "reference") as reference_url:
        sent = {}
        for label, url, command in runner_and_reference(redis_url, reference_url):
            connection = Redis.from_url(url)
            job = json_queue(url).enqueue("worker.weigh", payload, result_ttl=600)
            enqueued = connection.hget(job.key, "data")
            before = connection.info("stats")["total_net_input_bytes"]
            run_to_the_end(command, probe_dir)
            sent[label] = connection.info("stats")["total_net_input_bytes"] - before
            assert job.return_value(refresh=True) == len(payload)
            assert job.get_status(refresh=True) == JobStatus.FINISHED
            assert connection.hget(job.key, "data") == enqueued
    assert sent["rq"] > len(enqueued) > 10 * sent["runner"], sent


def test_a_queued_job_costs_redis_three_round_trips_from_the_runner(redis_url, probe_dir):
    """Take and read it, start it, end it: Redis's read events per job, from the difference between a run of 30
    jobs and one of 10 (what a runner reads once, its start and its last look at the empty queues, falls out)."""
    connection = Redis.from_url(redis_url)

    def reads_for(jobs: int) -> int:
        for n in range(jobs):
            json_queue(redis_url).enqueue("worker.whoami", f"job-{n}")
        before = connection.info("stats")["total_reads_processed"]
        runner = start_runner(redis_url, probe_dir, "--burst")
        output, _ = runner.communicate(timeout=60)
        assert runner.returncode == 0, output
        return connection.info("stats")["total_reads_processed"] - before

    per_job = (reads_for(30) - reads_for(10)) / 20
    assert 2.9 <= per_job <= 3.2, per_job  # RQ's own worker: about ten


@pytest.mark.parametrize("queues", [["cloudburst"], ["cloudburst-stats", "cloudburst"]])
def test_a_queued_job_whose_hash_is_gone_is_passed_over_and_the_next_one_runs(redis_url, probe_dir, queues):
    """As RQ's own dequeue does, on both of the runner's ways of taking a job: moving it to the intermediate list
    (one queue) and popping it (several)."""
    connection = Redis.from_url(redis_url)
    queue = json_queue(redis_url)
    gone, kept = queue.enqueue("worker.whoami", "gone"), queue.enqueue("worker.whoami", "kept")
    connection.delete(gone.key)
    runner = start_runner(redis_url, probe_dir, "--burst", *[part for name in queues for part in ("--queue", name)])
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0, output
    assert kept.get_status(refresh=True) == JobStatus.FINISHED and kept.return_value()["tag"] == "kept"
    assert connection.llen(queue.key) == 0 and connection.exists(gone.key) == 0


def test_between_jobs_the_worker_keeps_its_own_expiry_and_is_idle(redis_url, probe_dir):
    """A running job gives the worker's key a short expiry (3 heartbeats); once the job is done the worker is
    listening, idle, for up to its maintenance interval, and its key must outlive that wait."""
    runner = start_runner(redis_url, probe_dir, "--name", "probe-runner", "--heartbeat-s", "2",
                          "--maintenance-s", "30")
    try:
        jobs = [json_queue(redis_url).enqueue("worker.whoami", f"job-{n}") for n in range(3)]  # back to back
        wait_until("the jobs finished", lambda: [job.get_status(refresh=True) for job in jobs], 30,
                   done=lambda statuses: statuses == [JobStatus.FINISHED] * 3)
        connection = Redis.from_url(redis_url)
        wait_until("the worker idle", lambda: connection.hget("rq:worker:probe-runner", "state"), 10,
                   done=lambda state: state == b"idle")
        assert connection.hget("rq:worker:probe-runner", "successful_job_count") == b"3"
        assert connection.ttl("rq:worker:probe-runner") > 30 + 15  # its worker_ttl, not the job's 3 x 2 s
    finally:
        runner.terminate()
        runner.communicate(timeout=30)


def test_a_warm_shutdown_asked_while_a_finished_job_is_written_lets_it_finish_and_takes_no_other(redis_url):
    """The runner writes a job's end and the worker's idle state in one round trip. A SIGTERM arriving then must
    wait for that write (RQ's handler raises at once in an idle worker, which would fail the finished job), and the
    worker must stop before the next job. The signal is real, sent from inside that write."""
    spec = importlib.util.spec_from_file_location("runner_under_test", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)

    class SignalledWhileEnding(runner.PreloadedWorker):
        ending = False

        def handle_job_success(self, *args, **kwargs):
            self.ending = True
            super().handle_job_success(*args, **kwargs)

        def heartbeat(self, timeout=None, pipeline=None):
            super().heartbeat(timeout, pipeline)
            if self.ending and pipeline is not None:
                self.ending = False
                os.kill(os.getpid(), signal.SIGTERM)

    connection = Redis.from_url(redis_url)
    queue = Queue("cloudburst", connection=connection, serializer=JSONSerializer)
    first, second = queue.enqueue("os.getpid"), queue.enqueue("os.getpid")
    worker = SignalledWhileEnding([queue.name], connection=connection, serializer=JSONSerializer)
    worker.declared = runner.Declared({"os": ["getpid"]})
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.work(burst=True)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    assert first.get_status(refresh=True) == JobStatus.FINISHED, first.latest_result().exc_string
    assert first.return_value() == os.getpid()
    assert second.get_status(refresh=True) == JobStatus.QUEUED
