"""Bad jobs on the running cluster: one ensemble holds good members and one member per kind of bad job, enqueued
the way another client or script could (the cloudburst CLI refuses these before enqueueing): the bad members in
one batch between good batches, plus a payload that is not a batch and one that is not JSON. Each bad member fails
with a clear reason that `cloudburst status` shows; every good member finishes; the workers that met the bad jobs
are the same processes afterwards and keep taking jobs."""
import hashlib
import json
import time
import zlib
from pathlib import Path

import pytest
import wntr
from cloudburst import Client
from cloudburst.api.queue import enqueue_batches
from cloudburst.schema.batch import batch_name, make_batch, split
from cloudburst.schema.queues import job_id, open_queue
from cloudburst.state.files import model_input
from cloudburst.state.ledger import Ledger
from cloudburst.state.records import EnsembleRecord
from rq import Worker
from stack_view import MASTER, WORKERS, client_settings, cloudburst

testinfra_hosts = [MASTER]
REPO = Path(__file__).resolve().parents[4]
NETWORKS = Path(wntr.__file__).parent / "library" / "networks"
NAME = "bad-input"
GOOD = 30
BROKEN_INP = "[JUNCTIONS]\n J1 10 oops\n[PIPES]\n P1 J1 J9 100 300 100\n[END]\n"
# Net1 with one solver trial, an unreachable accuracy and STOP on an unbalanced system: EPANET cannot converge.
UNBALANCED_INP = ((NETWORKS / "Net1.inp").read_text().replace(" Trials             \t40", " Trials 1")
                  .replace(" Accuracy           \t0.001", " Accuracy 1e-12")
                  .replace(" Unbalanced         \tContinue 10", " Unbalanced STOP"))


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def upload(cluster: Client, text: str) -> str:
    """The model's URL as workers reach it, once the cluster's file service has it."""
    cluster.models.upload(text.encode(), sha256(text))
    return model_input(cluster.settings, sha256(text))["url"]


@pytest.fixture(scope="module")
def cluster() -> Client:
    return Client(client_settings())


@pytest.fixture(scope="module")
def models(cluster) -> dict[str, dict]:
    sources = {"net3": (REPO / "files" / "models" / "Net3.inp").read_text(), "broken": BROKEN_INP,
               "unbalanced": UNBALANCED_INP}
    return {name: {"url": upload(cluster, text), "sha256": sha256(text)}
            for name, text in sources.items()}


def document(member: int, source: dict, run: dict | None = None, output: dict | None = None) -> dict:
    return {"schema": "cloudburst.job/1", "ensemble": NAME, "member": member, "input": source,
            "run": {"duration_s": 86400, **(run or {})},
            "output": output or {"series": [{"element": "node", "attributes": ["pressure"], "ids": ["123"]}]}}


# Each kind of bad job: how to make it (from a member number and the uploaded models) and what status says.
BAD_JOBS = {
    "unknown schema version": (lambda m, models: {**document(m, models["net3"]), "schema": "cloudburst.job/9"},
                               "$.schema: unknown schema version 'cloudburst.job/9'"),
    "unknown element ID": (lambda m, models: document(m, models["net3"], run={"alterations": [
                               {"type": "link_status", "link": "NOPE"}]}),
                           "$.run.alterations[0].link: the model has no link 'NOPE'"),
    "invalid .inp": (lambda m, models: document(m, models["broken"]), "is not a valid EPANET .inp file"),
    "model URL 404": (lambda m, models: document(m, {"url": models["net3"]["url"].replace(
                          models["net3"]["sha256"], "0" * 64), "sha256": "0" * 64}),
                      "answered HTTP 404"),
    "sha256 mismatch": (lambda m, models: document(m, {"url": models["net3"]["url"], "sha256": "1" * 64}),
                        f"the job expects {'1' * 64}"),
    "output above the point budget": (lambda m, models: document(m, models["net3"], output={
                                          "series": [{"element": "node", "attributes": ["pressure", "head"]}],
                                          "max_points": 1000}),
                                      "above the budget of 1000"),
    "not a job document": (lambda m, models: {"ensemble": NAME, "member": m, "inp": "Net3.inp"},
                           "$.schema"),
}
MALFORMED_JSON, NOT_A_BATCH = "malformed job JSON", "a payload that is not a batch"
WHOLE_JOBS = {MALFORMED_JSON: "payload is not a JSON RQ job", NOT_A_BATCH: "$.members: Field required"}
# Not a failure: hydraulics that stop balancing under UNBALANCED STOP are a result of their own class.
STOPPING = "hydraulics that stop balancing"
STOPPED_BECAUSE = "system hydraulically unbalanced (UNBALANCED STOP)"
KINDS = [*BAD_JOBS, *WHOLE_JOBS, STOPPING]
MEMBER_OF = {kind: GOOD + index for index, kind in enumerate(KINDS)}


def enqueue_raw(cluster: Client, member: int, data: bytes) -> None:
    """A job hash as RQ stores one for a batch of one member, with the given payload; the batch planned."""
    batch = batch_name(member, member)
    identifier = job_id(NAME, batch)
    cluster.redis.hset(f"rq:job:{identifier}", mapping={
        "status": "queued", "origin": cluster.queue.name, "created_at": "2026-01-01T00:00:00.000000Z",
        "enqueued_at": "2026-01-01T00:00:00.000000Z", "timeout": 600, "retries_left": 2, "retry_intervals": "[0]",
        "data": data, "description": f"{NAME} batch {batch}"})
    pipeline = cluster.redis.pipeline()
    Ledger(cluster.redis).plan_batches(pipeline, NAME, {batch: [member]})
    pipeline.rpush(cluster.queue.key, identifier)
    pipeline.execute()


def enqueue_malformed(cluster: Client, member: int) -> None:
    """A payload cut off mid-JSON (a truncated write, a buggy client)."""
    payload = json.dumps(["worker.run", None, [document(member, {"url": "x", "sha256": "0" * 64})], {}])
    enqueue_raw(cluster, member, zlib.compress(payload[: len(payload) // 2].encode()))


def enqueue_not_a_batch(cluster: Client, member: int) -> None:
    """Valid JSON for the entry point, but a job document where a batch belongs (an old client)."""
    payload = json.dumps(["worker.run", None, [{"schema": "cloudburst.batch/1", "ensemble": NAME,
                                                "batch": batch_name(member, member), "common": {}}], {}])
    enqueue_raw(cluster, member, zlib.compress(payload.encode()))


def enqueue(cluster: Client, name: str, documents: list[dict], size: int) -> None:
    batches = (make_batch(name, part) for part in split(documents, size))
    enqueue_batches(open_queue(cluster.redis, cluster.settings.queue), cluster.ledger, name, batches)


@pytest.fixture(scope="module")
def ran(cluster, models):
    """Enqueue the ensemble, wait until every member is done; the RQ workers before and after."""
    workers_before = {worker.name for worker in Worker.all(connection=cluster.redis)}
    members = GOOD + len(KINDS)
    cluster.records.create(EnsembleRecord(NAME, members, 0, models["net3"]["sha256"], {"bad-input catalogue": KINDS}))
    good = [document(member, models["net3"], run={"alterations": [
        {"type": "demand_scale", "factor": 0.8 + 0.01 * member}]}) for member in range(GOOD)]
    enqueue(cluster, NAME, good[: GOOD // 2], 5)
    enqueue(cluster, NAME, [make(MEMBER_OF[kind], models) for kind, (make, _) in BAD_JOBS.items()]
            + [document(MEMBER_OF[STOPPING], models["unbalanced"], output={"series": []})], len(BAD_JOBS) + 1)
    enqueue_malformed(cluster, MEMBER_OF[MALFORMED_JSON])
    enqueue_not_a_batch(cluster, MEMBER_OF[NOT_A_BATCH])
    enqueue(cluster, NAME, good[GOOD // 2:], 5)  # good members after the bad ones too
    deadline = time.monotonic() + 300
    while not cluster.ensemble(NAME).status().done:
        assert time.monotonic() < deadline, f"not done within 300 s: {cluster.ensemble(NAME).status()}"
        time.sleep(1)
    return {"workers_before": workers_before, "status": cloudburst("status", NAME)}


@pytest.mark.parametrize("kind", KINDS)
def test_each_bad_job_and_the_member_that_stops_balancing_show_in_status_with_a_clear_reason(ran, kind):
    status = ran["status"]
    assert status.returncode == 1, status.stderr  # 1: the ensemble has failed members
    line = next((line for line in status.stdout.splitlines() if line.strip().startswith(f"member {MEMBER_OF[kind]}:")),
                None)
    assert line is not None, status.stdout
    expected = BAD_JOBS[kind][1] if kind in BAD_JOBS else WHOLE_JOBS.get(kind, STOPPED_BECAUSE)
    assert expected in line, line


def test_nothing_of_the_good_members_is_lost_and_nothing_of_the_bad_stored(ran, cluster):
    progress = cluster.ensemble(NAME).status()
    assert (progress.finished, progress.failed, progress.unbalanced) == (GOOD, len(KINDS) - 1, 1)
    members = cluster.ensemble(NAME).members()
    assert set(members.loc[members["status"] == "finished", "member"]) == set(range(GOOD))
    assert set(cluster.ensemble(NAME).series("node:123")["member"]) == set(range(GOOD))


def test_the_workers_that_met_bad_jobs_keep_serving(ran, cluster, models):
    # The same RQ worker processes (names carry host and PID): no runner died on a bad job.
    assert {worker.name for worker in Worker.all(connection=cluster.redis)} == ran["workers_before"]
    follow_up = [{**document(member, models["net3"]), "ensemble": f"{NAME}-after"} for member in range(20)]
    cluster.records.create(EnsembleRecord(f"{NAME}-after", 20, 0, models["net3"]["sha256"], {}))
    enqueue(cluster, f"{NAME}-after", follow_up, 2)
    deadline = time.monotonic() + 120
    while not cluster.ensemble(f"{NAME}-after").status().done:
        assert time.monotonic() < deadline, "follow-up jobs not done within 120 s"
        time.sleep(1)
    assert cluster.ensemble(f"{NAME}-after").status().finished == 20
    assert set(cluster.ensemble(f"{NAME}-after").members()["worker"]) == set(WORKERS)
