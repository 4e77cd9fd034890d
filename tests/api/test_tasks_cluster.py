"""Task sets on a real Redis, Nginx and runner processes running the pushed envs."""
from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path

import cloudburst
import pandas as pd
import pytest
from cloudburst.errors import InputError
from local_cluster import (
    REPO,
    SWMM_ENV,
    TASK_PROBES,
    cli,
    client_settings,
    start_workers,
    stop,
)
from rq import Queue
from rq.serializers import JSONSerializer
from waiting import wait_until

sys.path.insert(0, str(REPO / "roles" / "push_env" / "files"))
package_env = importlib.import_module("package_env")  # push-env's packaging, as the playbook runs it


STORM_MODEL = REPO / "files" / "models" / "stormwater.inp"


ENV_DIRS = (SWMM_ENV, TASK_PROBES)


PRELOAD = ("worker", "probe_tasks")  # the SWMM env's worker.py (it imports stormwater.py)


@pytest.fixture
def client(cluster) -> cloudburst.Client:
    return cloudburst.Client(client_settings(cluster))


@pytest.fixture
def workers(cluster):
    running = start_workers(cluster, 2, ENV_DIRS, PRELOAD)
    yield running
    stop(running)


def publish_env(cluster, env_dir: Path, wheels: list[str]) -> str:
    """An env version on the cluster's Nginx as push-env publishes it: env.zip (with its manifest) and
    env/current; ``wheels`` only named in the manifest."""
    manifest_only = Path(cluster["tmp"]) / "wheels"
    manifest_only.mkdir(exist_ok=True)
    paths = []
    for name in wheels:
        (manifest_only / name).write_bytes(name.encode())
        paths.append(manifest_only / name)
    archive, _ = package_env.build_zip(env_dir, paths, "worker")
    version = hashlib.sha256(archive).hexdigest()
    (cluster["root"] / "env" / version).mkdir(parents=True)
    (cluster["root"] / "env" / version / "env.zip").write_bytes(archive)
    (cluster["root"] / "env" / "current").write_text(version + "\n")
    return version


def test_a_task_set_runs_every_task_once_in_packs_and_collects_return_values_as_a_dataframe(cluster, client, workers,
                                                                                            tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    marked = client.map("probe_tasks:mark", ([str(calls), task] for task in range(60)), name="marked", per_job=7)
    squares = client.map("probe_tasks:square", range(50), name="squares")
    described = client.map("probe_tasks:describe", [{"a": 1, "b": 2}, [5], {"a": 1, "label": "x"}], name="described")
    for tasks in (marked, squares, described):
        progress = tasks.wait(progress=False, timeout_s=120)
        assert progress.finished == progress.members and progress.failed == 0
    assert marked.per_job == 7 and len(client.ledger.plan("marked")) == 9
    assert sorted(int(path.stem) for path in calls.glob("*.calls")) == list(range(60))
    assert all(len(path.read_text().split()) == 1 for path in calls.glob("*.calls"))
    executions = marked.executions()
    assert (executions["executions"] == 1).all() and executions.attrs == {"lost": 0, "duplicated": 0}
    table = squares.results()
    assert list(table["task"]) == list(range(50)) and list(table["value"]) == [x * x for x in range(50)]
    assert set(table["status"]) == {"finished"} and table["error"].isna().all()
    rows = described.results()
    assert list(rows["total"]) == [3, 5, 1] and list(rows["label"]) == ["sum", "sum", "x"]
    assert set(rows.columns) >= {"task", "status", "total", "label", "pid", "error", "seconds", "worker"}


def test_a_task_that_raises_times_out_or_returns_no_json_is_a_failed_row_with_its_reason_and_runs_once(
        cluster, client, workers):
    tasks = client.map("probe_tasks:fail", [["no such pipe"], ["bad demand"]], name="raising")
    slow = client.map("probe_tasks:sleep_for", [30, 0.1], name="slow", timeout_s=1, per_job=2)
    odd = client.map("probe_tasks:not_json", [[]], name="odd")
    arrays = client.map("probe_tasks:numpy_values", [3], name="arrays")
    for each in (tasks, slow, odd, arrays):
        each.wait(progress=False, timeout_s=120)
    failures = tasks.failures(traceback=True)
    assert list(failures["error"]) == ["ValueError: no such pipe", "ValueError: bad demand"]
    assert all("probe_tasks.py" in text and "raise ValueError(message)" in text for text in failures["traceback"])
    assert tasks.executions()["executions"].tolist() == [1, 1]  # a task that raised is not retried
    timed = slow.results()
    assert timed["status"].tolist() == ["failed", "finished"] and timed["value"].tolist()[1] == 0.1
    assert timed["error"][0] == "TaskTimeout: the task ran past its timeout of 1 s" and timed["seconds"][0] < 5
    assert odd.failures()["error"][0] == "the return value is not JSON: Object of type set is not JSON serializable"
    assert arrays.results()[["mean", "values"]].to_dict("records") == [{"mean": 1.5, "values": [0, 1, 2]}]
    status = cli(cluster, "status", "raising")
    assert status.returncode == 1 and "task 0: ValueError: no such pipe" in status.stdout


DECLARED = ("probe_tasks:describe, probe_tasks:fail, probe_tasks:mark, probe_tasks:not_json, probe_tasks:numpy_values, "
            "probe_tasks:record, probe_tasks:sleep_for, probe_tasks:square, stormwater:run_member, "
            "stormwater:scaled_model, worker:run_member, worker:scaled_model")


def test_a_function_the_env_does_not_declare_fails_each_task_unrun_and_the_workers_serve_on(cluster, client, workers,
                                                                                          tmp_path):
    canary = tmp_path / "canary"
    undeclared = {"subprocess:getoutput": [[f"touch {canary}"]], "os:system": [[f"touch {canary}"]],
                  "no_such_module:run": [[1], [2]], "probe_tasks:nope": [[1]],
                  "probe_tasks:NOT_A_FUNCTION": [[1]],  # a constant
                  "probe_tasks:Path": [[str(canary)]]}  # a name the module only imports
    sets = {function: client.map(function, tasks, name=f"undeclared-{index}")
            for index, (function, tasks) in enumerate(undeclared.items())}
    for function, tasks in sets.items():
        assert tasks.wait(progress=False, timeout_s=60).failed == tasks.info().tasks
        assert tasks.failures()["error"].tolist() == [
            f"refused {function}: it is not a function the env declares callable (an env module's __all__, or else "
            f"the functions it defines; declared: {DECLARED}); nothing was run"] * tasks.info().tasks
    assert not canary.exists()
    assert client.map("probe_tasks:square", [4], name="after").wait(progress=False, timeout_s=60).finished == 1


def test_with_an_env_published_a_function_it_does_not_declare_is_refused_before_anything_is_enqueued(cluster,
                                                                                                    client):
    version = publish_env(cluster, TASK_PROBES, ["cloudburst-0.2.0-py3-none-any.whl", "rq-3.0.0-py3-none-any.whl"])
    for function in ("probe_tasks:nope", "probe_tasks:Path", "probe_tasks:cloudburst_worker"):
        with pytest.raises(InputError, match=rf"the env the workers run \(version {version[:12]}\) declares no "
                                             rf"{function.split(':')[1]} in probe_tasks \(callable: describe, fail, "
                                             r"mark, not_json, numpy_values, record, sleep_for, square; a module"):
            client.map(function, [[1]], name="refused")
    for function, module in (("stormwater:run_member", "stormwater"), ("json:dumps", "json"),
                             ("subprocess:getoutput", "subprocess")):
        with pytest.raises(InputError, match=rf"has no module {module} of its own \(its own: probe_tasks\); the "
                                             "workers run only the functions an env's modules declare"):
            client.map(function, [[1]], name="elsewhere")
    assert client.redis.llen(client.queue.key) == 0 and client.records.names() == []
    client.map("probe_tasks:square", [[1]], name="accepted")  # declared: enqueued
    client.map("cloudburst.worker.studies:run_fire_flow", [[1]], name="own")  # CloudBurst's own study
    assert client.redis.llen(client.queue.key) == 2
    publish_env(cluster, SWMM_ENV, ["rq-3.0.0-py3-none-any.whl"])
    with pytest.raises(InputError, match="has no cloudburst library, which runs task sets"):
        client.map("stormwater:run_member", [[1]], name="no-library")


def test_bad_task_files_and_arguments_get_a_sentence_and_nothing_is_enqueued(cluster, client, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('[1]\n{"x": \n"text"\n')
    result = cli(cluster, "tasks", "submit", "probe_tasks:square", str(bad), "--name", "bad")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["cloudburst: bad.jsonl line 2: not JSON (Expecting value at column 7)"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert "empty.jsonl holds no task" in cli(cluster, "tasks", "submit", "probe_tasks:square", str(empty)).stderr
    assert "a function is named module:function" in cli(cluster, "tasks", "submit", "square", str(bad)).stderr
    with pytest.raises(InputError, match=r"task 1: the arguments are not JSON \(Object of type object"):
        client.map("probe_tasks:square", [[1], [object()]], name="objects")
    with pytest.raises(InputError, match="a task's timeout is a whole number"):
        client.map("probe_tasks:square", [[1]], name="zero", timeout_s=0)
    assert client.redis.llen(client.queue.key) == 0 and client.records.names() == []


def test_cancel_retry_and_delete_know_task_sets(cluster, client, tmp_path):
    tasks = client.map("probe_tasks:fail", [["first"]] * 3, name="later", per_job=1)
    assert tasks.status().queued == 3
    assert tasks.cancel() == 3 and client.redis.llen(client.queue.key) == 0
    assert tasks.info().state == "cancelled"
    assert client.tasksets()["state"].tolist() == ["cancelled"]
    workers = start_workers(cluster, 1, ENV_DIRS, PRELOAD)
    try:
        assert tasks.retry() == {"enqueued": 3, "finished": 0, "waiting": 0}
        progress = tasks.wait(progress=False, timeout_s=60)
        assert progress.failed == 3
        assert tasks.retry()["enqueued"] == 3  # failed tasks run again when asked
        tasks.wait(progress=False, timeout_s=60)
        assert tasks.executions()["executions"].tolist() == [2, 2, 2]
    finally:
        stop(workers)
    listed = cli(cluster, "list")
    assert "later" in listed.stdout and "finished with failures  probe_tasks:fail" in listed.stdout
    assert client.tasksets()["state"].tolist() == ["finished with failures"]
    assert cli(cluster, "status", "later").stdout.splitlines()[1] == (
        "tasks 3  finished 0  failed 3  running 0  queued 0")
    deleted = cli(cluster, "delete", "later", "--yes")
    assert deleted.returncode == 0 and "task set later deleted" in deleted.stdout
    assert client.records.names() == [] and client.store.batches("later") == []
    assert not [key for key in cluster["redis"].keys("cloudburst:ensemble:later*")]
    assert client.tasksets()[["taskset", "tasks", "state"]].values.tolist() == [["later", 3, "deleted"]]


def test_a_job_enqueued_with_rq_directly_runs_on_the_workers_and_shows_in_tasks_status(cluster, client, workers):
    queue = Queue("cloudburst", connection=client.redis, serializer=JSONSerializer)
    job = queue.enqueue("worker.run_member", str(STORM_MODEL), 1.2, member=7)
    failing = queue.enqueue("worker.run_member", str(STORM_MODEL), -1.0)
    wait_until("the direct jobs to end", lambda: job.get_status(refresh=True), 60,
               done=lambda status: status == "finished" and failing.get_status(refresh=True) == "failed")
    assert job.return_value()["member"] == 7 and job.return_value()["peak_outfall_flow_cms"] > 0
    shown = cli(cluster, "tasks", "status", "--json")
    assert shown.returncode == 0
    others = {row["job"]: row for row in json.loads(shown.stdout)["other_jobs"]}
    assert others[job.id]["status"] == "finished" and others[job.id]["function"] == "worker.run_member"
    assert others[job.id]["result"]["member"] == 7
    assert others[failing.id]["error"] == "ValueError: factors are >= 0, not rain -1.0 and impervious 1.0"


def test_a_task_writes_points_to_the_clusters_influxdb_with_the_workers_credentials(cluster, client, workers):
    tasks = client.map("probe_tasks:record", [["probe_points", 1.5, "a"], ["probe_points", 2.5, "b"]], name="points")
    assert tasks.wait(progress=False, timeout_s=60).finished == 2
    assert tasks.results()["value"].tolist() == [1, 1]
    rows = cluster["influx"].rows("SELECT value, probe FROM probe_points", cluster["db"])
    assert sorted((row["probe"], row["value"]) for row in rows) == [("a", 1.5), ("b", 2.5)]


def test_the_stormwater_example_runs_end_to_end_from_the_cli(cluster, client, workers, tmp_path):
    uploaded = cli(cluster, "upload", str(STORM_MODEL))
    sha256 = uploaded.stdout.strip()
    assert uploaded.returncode == 0 and sha256 == hashlib.sha256(STORM_MODEL.read_bytes()).hexdigest()
    members = tmp_path / "storm.jsonl"
    factors = [0.5 + 0.05 * member for member in range(24)]
    members.write_text("".join(json.dumps({"model": sha256, "rain_factor": factor, "member": member}) + "\n"
                               for member, factor in enumerate(factors)))
    submitted = cli(cluster, "tasks", "submit", "stormwater:run_member", str(members), "--name", "storm", "--wait",
                    timeout=300)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == "storm" and "24/24" in submitted.stderr
    parquet = tmp_path / "storm.parquet"
    assert cli(cluster, "tasks", "results", "storm", "--parquet", str(parquet)).returncode == 0
    table = pd.read_parquet(parquet)
    assert table["member"].tolist() == list(range(24)) and (table["status"] == "finished").all()
    sys.path.insert(0, str(SWMM_ENV))
    import stormwater  # the same function, run here on the file: the cluster changed nothing
    direct = [stormwater.run_member(str(STORM_MODEL), factor, member=member) for member, factor in
              enumerate(factors[:3])]
    assert table.head(3)["peak_outfall_flow_cms"].tolist() == [row["peak_outfall_flow_cms"] for row in direct]
    assert table["peak_outfall_flow_cms"].is_monotonic_increasing  # more rain, higher peaks
    assert table["flooding_m3"].iloc[-1] > table["flooding_m3"].iloc[0] == 0


def test_your_own_function_in_the_epanet_example_env_reads_an_uploaded_model(cluster, client):
    import wntr
    sha256 = client.upload(REPO / "files" / "models" / "Net3.inp")
    workers = start_workers(cluster, 2)  # the EPANET example env, as pushed by default
    try:
        tasks = client.map("worker:lowest_pressure", [{"model": sha256, "demand_factor": f} for f in (0.8, 1.0, 1.2)],
                           name="own-epanet")
        assert tasks.wait(progress=False, timeout_s=120).finished == 3
    finally:
        stop(workers)
    rows = tasks.results()
    wn = wntr.network.WaterNetworkModel(str(REPO / "files" / "models" / "Net3.inp"))
    pressure = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(cluster["tmp"] / "net3")).node["pressure"]
    lowest = pressure[wn.junction_name_list].min()
    assert rows["node"][1] == lowest.idxmin() and rows["pressure_m"][1] == float(lowest.min())
    assert rows["pressure_m"][0] > rows["pressure_m"][1] > rows["pressure_m"][2]  # more demand, lower pressure


def test_a_retried_task_a_worker_has_popped_but_not_yet_registered_counts_as_running_not_failed(cluster, client):
    """A worker on several queues pops a job (BLPOP) and registers it as started a moment later; a status read in
    between saw the retried task's earlier failure and nothing else, and `wait` returned before the retry ran (CI,
    2026-12-05: `[2, 2, 1]` executions). The pop and the registration here are a real RQ worker's own steps."""
    import threading

    from rq import SimpleWorker
    from rq.registry import StartedJobRegistry

    tasks = client.map("probe_tasks:fail", [["first"]] * 2, name="in-hand", per_job=1)
    workers = start_workers(cluster, 1, ENV_DIRS, PRELOAD)
    try:
        assert tasks.wait(progress=False, timeout_s=60).failed == 2
    finally:
        stop(workers)
    assert tasks.retry()["enqueued"] == 2
    queue = Queue(client.queue.name, connection=client.redis, serializer=JSONSerializer)
    worker = SimpleWorker([Queue("cloudburst-stats", connection=client.redis), queue], connection=client.redis,
                          serializer=JSONSerializer)
    worker.register_birth()
    job, _ = worker.dequeue_job_and_maintain_ttl(timeout=1)  # popped: in neither the queue nor a registry
    registered = threading.Timer(0.15, lambda: worker.prepare_execution(job))
    registered.start()
    try:
        progress = tasks.status()
    finally:
        registered.join()
    assert (progress.failed, progress.running, progress.queued) == (0, 1, 1), progress
    started = StartedJobRegistry(queue.name, connection=client.redis).key
    client.redis.zrem(started, *client.redis.zrange(started, 0, -1))  # the worker "died": its job is nowhere now
    gone = tasks.status()
    assert (gone.failed, gone.running, gone.queued) == (1, 0, 1), gone  # lost, as its last run: failed
