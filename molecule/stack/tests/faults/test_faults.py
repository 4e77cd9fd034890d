"""Faults during a running ensemble: each test submits its own ensemble with the cloudburst CLI, breaks one
thing once a tenth of it has finished, lets the cluster recover without help (except powering a stopped host
back on or healing a cut network, as an operator would), and then asserts every member finished, every batch
finished in RQ, each member stored once in the results store (one row, one value per series step, read from the
raw files), and counts executions from the ledger's records: lost (never finished) and duplicated (a batch recorded
as run to the end more than once counts each of its members), both asserted 0: each attempt at a batch holds a
fencing token and only the latest records. Recovery times are printed and collected in
``$MOLECULE_EPHEMERAL_DIRECTORY/reliability.json`` (docs/reliability.md records them)."""
import functools
import io
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis
import requests
import yaml
from cloudburst import Client
from cloudburst.config import Settings
from cloudburst.errors import ServiceError
from cloudburst.schema.queues import job_id, job_prefix
from cloudburst.state.store import MEMBERS_DIR, SERIES_DIR
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from stack_view import (
    MASTER,
    WORKERS,
    client_env,
    client_settings,
    cloudburst,
    cluster_host,
    master_address,
    playbook,
)

testinfra_hosts = [MASTER]
REPO = Path(__file__).resolve().parents[4]
MODEL = REPO / "files" / "models" / "Net3.inp"
MEMBERS = 240
# Four days at a one-minute hydraulic step with water age: ~0.5 s a member, so the ensemble (~1 min on the
# two worker hosts) outlasts each fault and its recovery.
DURATION_S = 4 * 86400
NODES = ["123", "247"]
REPORT = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reliability.json"


def raw_table(data: bytes | None) -> dict[str, list]:
    """A Parquet file's columns as lists, read by pyarrow alone."""
    assert data is not None, "a listed batch's file is gone"
    return pq.read_table(io.BytesIO(data)).to_pydict()


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.5) -> float:
    """Seconds until condition() holds. Errors of services that are down (Redis, HTTP, sockets, and the client's
    ServiceError) count as "not yet"; any other error fails the test at once. On the deadline the assertion says
    what the condition last returned and the last error it met."""
    started = time.monotonic()
    last, error = "nothing yet", None
    while True:
        try:
            last = condition()
            if last:
                return time.monotonic() - started
        except (redis.RedisError, requests.RequestException, OSError, ServiceError) as down:
            error = down
        assert time.monotonic() - started < timeout_s, (
            f"{what}: not within {timeout_s} s; last seen {last!r}"
            + (f", last error {type(error).__name__}: {error}" if error else ""))
        time.sleep(poll_s)


def record(fault: str, figures: dict) -> None:
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[fault] = figures
    REPORT.write_text(json.dumps(report, indent=2))
    print(f"\n{fault}: {json.dumps(figures)}")


@functools.cache
def settings() -> Settings:
    return client_settings()


@functools.cache
def connection() -> redis.Redis:
    current = settings()
    return redis.Redis.from_url(current.redis_url, username=current.redis_user or None, ssl_ca_certs=current.ca_file,
                                password=current.redis_password, socket_timeout=5, socket_connect_timeout=5)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=120).stdout


def container_of(host: str, service: str) -> str:
    return cluster_host(host).check_output(
        f"docker ps -q --filter label=com.docker.swarm.service.name=cloudburst_{service}").strip()


def services_answer() -> bool:
    current = settings()
    connection().ping()
    ping = requests.get(f"{current.influx_url}/ping", timeout=5, verify=current.ca_file)
    files = requests.get(f"{current.files_url}/env/current", timeout=5, verify=current.ca_file,
                         auth=(current.files_user, current.files_password))
    return ping.status_code == 204 and files.status_code == 200


def workers_started_on(host: str, since: datetime) -> int:
    """RQ workers on host that registered after since (a rebooted host's new ones)."""
    return sum(worker.name.split(".")[0] == host and worker.birth_date is not None
               and worker.birth_date.replace(tzinfo=timezone.utc) > since
               for worker in Worker.all(connection=connection()))


class RunningEnsemble:
    """An ensemble submitted with the CLI and left to run; a tenth finished before the fault is made."""

    def __init__(self, fault: str, tmp_path: Path, members: int):
        self.name = name = f"fault-{fault}-{int(time.time())}"
        self.members = members
        scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
        scenario.update(members=members, seed=11)
        scenario["run"].update(duration_s=DURATION_S, hydraulic_timestep_s=60, report_timestep_s=3600,
                               quality={"mode": "age"})
        scenario["output"]["series"] = [{"element": "node", "attributes": ["pressure"], "ids": NODES}]
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(scenario))
        submitted = cloudburst("submit", str(MODEL), str(path), "--name", name)
        assert submitted.returncode == 0, submitted.stderr
        self.cluster = Client(settings())
        self.submitted_at = time.monotonic()
        wait_for(f"{name}: a tenth finished", lambda: self.finished() >= members // 10, 300)

    def finished(self) -> int:
        return self.cluster.ensemble(self.name).status().finished

    def running_on(self, host: str) -> list[str]:
        """IDs of the ensemble's jobs a worker on host is running now."""
        started = StartedJobRegistry("cloudburst", connection=connection(), serializer=JSONSerializer)
        jobs = Job.fetch_many(started.get_job_ids(), connection=connection(), serializer=JSONSerializer)
        return [job.id for job in jobs if job is not None and (job.worker_name or "").split(".")[0] == host]

    def given_up_by(self, host: str, ids: list[str]) -> bool:
        """None of the jobs is still held by host: RQ re-queued them (to the queue's end) or they finished."""
        jobs = Job.fetch_many(ids, connection=connection(), serializer=JSONSerializer)
        return all(job is not None and (job.get_status(refresh=False) in ("queued", "finished")
                                        or (job.worker_name or "").split(".")[0] != host) for job in jobs)

    def resumed_after(self, baseline: int) -> bool:
        return self.finished() > baseline

    def diagnosis(self, ids: list[str]) -> str:
        """What an ensemble that did not finish left behind: each unfinished batch with its RQ status and worker."""
        done = set(self.cluster.ledger.done(self.name))
        lines = []
        for batch, job_id_ in zip(self.cluster.ledger.plan(self.name), ids):
            if batch in done:
                continue
            job = Job.fetch_many([job_id_], connection=connection(), serializer=JSONSerializer)[0]
            lines.append(f"  {batch}: RQ {job.get_status(refresh=False) if job else 'missing'}"
                         f" on {job.worker_name if job else '-'}, retries left {job.retries_left if job else '-'}")
        workers = ", ".join(f"{worker.name} {worker.state}" for worker in Worker.all(connection=connection()))
        return f"batches not done ({len(lines)}):\n" + "\n".join(lines) + f"\nworkers: {workers}"

    def assert_complete_once(self) -> dict:
        """Every member finished; each has one row and one value per series step in the store; RQ agrees."""
        ids = [job_id(self.name, batch) for batch in self.cluster.ledger.plan(self.name)]

        def rq_statuses() -> list[str]:
            return [job.get_status(refresh=False) if job else "missing"
                    for job in Job.fetch_many(ids, connection=connection(), serializer=JSONSerializer)]

        try:
            wait_for(f"{self.name}: every member finished", lambda: self.finished() == self.members, 900, poll_s=2)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}\n{self.diagnosis(ids)}") from None
        elapsed = time.monotonic() - self.submitted_at
        # A job whose end RQ had not recorded when Redis went away is re-run once its heartbeat is stale; it
        # replaces its batch's files. Wait for RQ to settle too.
        wait_for(f"{self.name}: RQ settled", lambda: set(rq_statuses()) == {"finished"}, 300, poll_s=2)
        # The store's raw files, each read with pyarrow alone: nothing between them and the count could drop a
        # duplicate row or value.
        store = self.cluster.store
        rows = [raw_table(store.read(self.name, MEMBERS_DIR, batch)) for batch in store.batches(self.name)]
        stored = [member for table in rows for member in table["member"]]
        assert sorted(stored) == list(range(self.members)), "a member stored twice, or not at all"
        assert {status for table in rows for status in table["status"]} == {"finished"}
        assert {engine for table in rows for engine in table["engine"]} == {"toolkit"}  # the warm engine ran them
        steps = DURATION_S // 3600 + 1
        series = [raw_table(store.read(self.name, SERIES_DIR, batch)) for batch in store.batches(self.name, SERIES_DIR)]
        values = [(member, element, elapsed) for table in series
                  for member, element, elapsed in zip(table["member"], table["element"], table["elapsed_s"])]
        assert len(values) == self.members * steps * len(NODES), "a value stored twice, or not at all"
        assert len(set(values)) == len(values), "one member, element and step stored twice"
        failed = FailedJobRegistry("cloudburst", connection=connection(), serializer=JSONSerializer)
        assert not set(failed.get_job_ids()) & set(ids)
        # Executions, counted from one record per execution (the results above overwrite, so they cannot tell):
        # a member that never finished is lost; a member that ran to the end twice is one duplicated execution.
        executions = self.cluster.ensemble(self.name).executions()
        assert executions.attrs["lost"] == 0 and (executions["executions"] >= 1).all()
        assert executions.attrs["duplicated"] == 0, executions[executions["executions"] > 1]
        return {"members": self.members, "lost": executions.attrs["lost"],
                "duplicated": executions.attrs["duplicated"],
                "ensemble_s": round(elapsed, 1), "rq_settled_s": round(time.monotonic() - self.submitted_at, 1)}


@pytest.fixture
def ensemble_named(tmp_path):
    return lambda name, members=MEMBERS: RunningEnsemble(name, tmp_path, members)


def power_on(host: str) -> float:
    """Start a stopped host; seconds until its worker registers with RQ again."""
    since = datetime.now(timezone.utc)
    docker("start", host)
    return round(wait_for(f"{host}'s worker back", lambda: workers_started_on(host, since) > 0, 300), 1)


def test_a_worker_host_killed_mid_ensemble(ensemble_named):
    run = ensemble_named("worker-killed")
    victim = WORKERS[0]
    in_flight = run.running_on(victim)
    assert in_flight, f"{victim} was running none of the ensemble's jobs"
    docker("kill", victim)
    requeued_s = wait_for("the killed host's jobs re-queued", lambda: run.given_up_by(victim, in_flight), 300)
    figures = run.assert_complete_once()
    figures.update(in_flight_on_host=len(in_flight), its_jobs_requeued_s=round(requeued_s, 1),
                   host_powered_on_worker_back_s=power_on(victim))
    record("worker host killed", figures)


def test_a_worker_host_killed_mid_taskset(tmp_path):
    """Your own function (the example env's ``worker.lowest_pressure``) as a task set; a worker host killed while
    it runs some of its packs: every task finished, each has one row in the store, none was lost."""
    uploaded = cloudburst("upload", str(MODEL))
    assert uploaded.returncode == 0, uploaded.stderr
    tasks_file = tmp_path / "tasks.jsonl"
    count = 480
    tasks_file.write_text("".join(json.dumps({"model": uploaded.stdout.strip(), "demand_factor": 0.8 + 0.4 * i / count})
                                  + "\n" for i in range(count)))
    name = f"fault-taskset-{int(time.time())}"
    submitted = cloudburst("tasks", "submit", "worker:lowest_pressure", str(tasks_file), "--name", name)
    assert submitted.returncode == 0, submitted.stderr
    started = time.monotonic()
    tasks = Client(settings()).taskset(name)
    victim = WORKERS[0]
    prefix = job_prefix(name)
    running = StartedJobRegistry("cloudburst", connection=connection(), serializer=JSONSerializer)

    def packs_on_victim() -> list[str]:
        jobs = Job.fetch_many([job for job in running.get_job_ids() if job.startswith(prefix)],
                              connection=connection(), serializer=JSONSerializer)
        return [job.id for job in jobs if job is not None and (job.worker_name or "").split(".")[0] == victim]

    wait_for(f"{victim} runs a pack of {name}", packs_on_victim, 300, poll_s=0.2)
    in_flight = packs_on_victim()
    docker("kill", victim)
    wait_for(f"{name}: every task finished", lambda: tasks.status().finished == count, 900, poll_s=2)
    elapsed = time.monotonic() - started
    ids = [job_id(name, pack) for pack in tasks.services.ledger.plan(name)]
    wait_for(f"{name}: RQ settled", lambda: {job.get_status(refresh=False) if job else "missing" for job in
                                            Job.fetch_many(ids, connection=connection(), serializer=JSONSerializer)}
             == {"finished"}, 300, poll_s=2)
    store = tasks.services.store
    stored = [task for pack in store.batches(name) for task in raw_table(store.read(name, MEMBERS_DIR, pack))["task"]]
    assert sorted(stored) == list(range(count)), "a task stored twice, or not at all"
    results = tasks.results()
    assert (results["status"] == "finished").all() and results["pressure_m"].notna().all()
    assert results["pressure_m"].iloc[0] > results["pressure_m"].iloc[-1]  # more demand, lower pressure
    executions = tasks.executions()
    assert executions.attrs["lost"] == 0 and (executions["executions"] >= 1).all()
    assert executions.attrs["duplicated"] == 0, executions[executions["executions"] > 1]
    record("worker host killed mid task set", {
        "tasks": count, "packs_in_flight_on_host": len(in_flight), "lost": executions.attrs["lost"],
        "duplicated": executions.attrs["duplicated"], "taskset_s": round(elapsed, 1),
        "host_powered_on_worker_back_s": power_on(victim)})
    tasks.delete()


CUT_OFF_RULES = ["INPUT -i eth0 -j DROP", "OUTPUT -o eth0 -j DROP"]


def cut_off_while_running(run: "RunningEnsemble", host: str) -> tuple[list[str], float]:
    """Cut host off while it runs some of the ensemble's jobs; the IDs of those jobs and when the cut was made.

    The jobs are read once the cut is in place: read before, a host finishing a ~0.5 s job could start
    another between the read and the cut. If it was between jobs at that moment, reconnect and try again."""
    target = cluster_host(host)
    for _ in range(5):
        wait_for(f"{host} runs a job", lambda: run.running_on(host), 60, poll_s=0.2)
        for rule in CUT_OFF_RULES:
            target.check_output(f"iptables -I {rule}")
        cut_at = time.monotonic()
        time.sleep(1)  # a registration already on the wire lands in Redis
        in_flight = run.running_on(host)
        if in_flight:
            return in_flight, cut_at
        reconnect(host)
    raise AssertionError(f"{host} was between jobs at each of 5 cuts")


def reconnect(host: str) -> None:
    for rule in CUT_OFF_RULES:
        cluster_host(host).check_output(f"iptables -D {rule}")


def test_a_worker_host_cut_off_and_reconnected(ensemble_named):
    """Cut off for longer than a job's heartbeat TTL: its jobs are re-queued and run elsewhere while the cut-off
    host may still finish them too; either way each member's results are stored once."""
    run = ensemble_named("worker-partitioned", members=4 * MEMBERS)  # still running when the network returns
    victim = WORKERS[1]
    in_flight, cut_at = cut_off_while_running(run, victim)
    try:
        def requeued_while_cut_off() -> bool:
            assert set(run.running_on(victim)) <= set(in_flight), f"{victim} took a job while cut off"
            return run.given_up_by(victim, in_flight)
        wait_for("the cut-off host's jobs re-queued", requeued_while_cut_off, 120, poll_s=2)
        requeued_s = time.monotonic() - cut_at
    finally:
        reconnect(victim)
    assert run.finished() < run.members, "the ensemble ended before the network came back: make it longer"
    back_s = wait_for(f"{victim} takes jobs again", lambda: set(run.running_on(victim)) - set(in_flight), 300)
    figures = run.assert_complete_once()
    figures.update(in_flight_on_host=len(in_flight), its_jobs_requeued_s=round(requeued_s, 1),
                   host_takes_jobs_after_reconnect_s=round(back_s, 1))
    record("worker host cut off until its jobs were re-queued, then reconnected", figures)


@pytest.mark.parametrize("service", ["redis", "influxdb"])
def test_a_master_service_killed_mid_ensemble(ensemble_named, service):
    """Also `cloudburst wait`, started before the kill, follows the ensemble through it to the end."""
    run = ensemble_named(f"{service}-killed")
    waiting = subprocess.Popen(["cloudburst", "wait", run.name], env=client_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    # Its first progress line: it is following (a client started while a service is down is told so at once).
    first_line = ""
    for _ in range(50):
        first_line += waiting.stderr.readline()
        if "finished" in first_line or waiting.poll() is not None:
            break
    assert "finished" in first_line, first_line
    killed = container_of(MASTER, service)
    cluster_host(MASTER).check_output(f"docker kill {killed}")
    back_s = wait_for(f"{service} answers again", services_answer, 300)
    baseline = run.finished()
    resumed_s = back_s + wait_for("members finish again", lambda: run.resumed_after(baseline), 300)
    figures = run.assert_complete_once()
    out, err = waiting.communicate(timeout=300)
    err = first_line + err
    assert waiting.returncode == 0, err[-2000:]
    assert f"{run.members}/{run.members}" in err, err[-2000:]
    # The statistics end up covering every member at every element and time, the outage notwithstanding.
    ensemble = run.cluster.ensemble(run.name)
    wait_for(f"{run.name}: statistics over every member", ensemble.statistics_current, 300, poll_s=2)
    for node in NODES:
        counts = ensemble.percentiles(f"node:{node}")["count"]
        assert len(counts) == DURATION_S // 3600 + 1 and (counts == run.members).all(), (node, counts.tolist())
    figures.update(service_back_s=round(back_s, 1), members_finishing_again_s=round(resumed_s, 1))
    record(f"{service} killed (swarm restarts it)", figures)


def worker_logs_since(started: str) -> str:
    # Not check_output: the stream also asks for the tasks of hosts rebooted earlier, whose old nodes are gone, and
    # then ends with an error after every log it could read.
    return cluster_host(MASTER).run(f"docker service logs --raw --since {started} cloudburst_worker 2>&1").stdout


def test_the_results_store_down_while_batches_write_to_it(ensemble_named):
    """Nginx is held down (scaled to no task) until some batch's write to it has failed and is being retried, so a
    write is known to be in flight during the outage whatever the timing; then it comes back and that batch's
    retry lands: every member stored once, none lost."""
    run = ensemble_named("nginx-down")
    stopped_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    master = cluster_host(MASTER)
    master.check_output("docker service scale --detach cloudburst_nginx=0")
    try:
        wait_for("nginx's task gone", lambda: not container_of(MASTER, "nginx"), 60)
        down_s = wait_for("a batch's write to the results store retried",
                          lambda: worker_logs_since(stopped_at).count("retrying in") > 0, 120, poll_s=2)
        retries = worker_logs_since(stopped_at).count("retrying in")
    finally:
        master.check_output("docker service scale --detach cloudburst_nginx=1")
    back_s = wait_for("nginx answers again", services_answer, 300)
    baseline = run.finished()
    resumed_s = back_s + wait_for("members finish again", lambda: run.resumed_after(baseline), 300)
    figures = run.assert_complete_once()
    figures.update(write_retries_logged_while_down=retries, held_down_until_a_retry_s=round(down_s, 1),
                   service_back_s=round(back_s, 1), members_finishing_again_s=round(resumed_s, 1))
    record("nginx (the results store) down until a batch's write was retrying, then back", figures)


def test_the_master_host_power_cycled(ensemble_named):
    run = ensemble_named("master-restarted")
    queued_before = connection().llen("rq:queue:cloudburst")
    docker("kill", MASTER)
    docker("start", MASTER)
    back_s = wait_for("the stack answers again", services_answer, 600, poll_s=1)
    baseline = run.finished()
    resumed_s = back_s + wait_for("members finish again", lambda: run.resumed_after(baseline), 300)
    figures = run.assert_complete_once()
    figures.update(queued_when_killed=queued_before, stack_back_s=round(back_s, 1),
                   members_finishing_again_s=round(resumed_s, 1))
    record("master host power-cycled", figures)


def served_certificate(port: int) -> bytes:
    """The certificate the master presents on a port, verified against the cluster's CA (DER)."""
    context = ssl.create_default_context(cafile=settings().ca_file)
    with socket.create_connection((master_address(), port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=master_address()) as connection:
        return connection.getpeercert(binary_form=True)


def test_the_masters_certificate_rotated_mid_ensemble(ensemble_named):
    """playbooks/rotate-certificates.yml while an ensemble runs: Redis, InfluxDB and Nginx restart on a new
    certificate from the same CA, the workers reconnect over TLS, every member finishes once, and the client's
    ca.crt (unchanged) verifies the new certificate."""
    run = ensemble_named("certificate-rotated")
    before = {port: served_certificate(port) for port in (6379, 8086, 8080)}
    ca_before = Path(settings().ca_file).read_bytes()
    started = time.monotonic()
    rotated = playbook("playbooks/rotate-certificates.yml")
    assert rotated.returncode == 0, rotated.stdout[-3000:]
    rotated_s = time.monotonic() - started
    back_s = wait_for("the stack answers on the new certificate", services_answer, 300)
    after = {port: served_certificate(port) for port in before}
    assert all(after[port] != before[port] for port in before) and len(set(after.values())) == 1
    assert Path(settings().ca_file).read_bytes() == ca_before
    figures = run.assert_complete_once()
    figures.update(rotation_playbook_s=round(rotated_s, 1), services_answer_after_s=round(back_s, 1))
    record("master's certificate rotated mid-ensemble", figures)
