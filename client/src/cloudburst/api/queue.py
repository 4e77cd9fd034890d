"""An ensemble's jobs in RQ: enqueueing batches of members, and finding them again (queued, running, failed).

Jobs are JSON (RQ's JSONSerializer): a worker never unpickles a payload from Redis. Each job calls the env's
``worker.run`` with one batch document (``cloudburst.schema.batch``), has a timeout, keeps its result and its failure
for set times, and is
retried (``Retry``) when its worker dies: the runner heartbeats running jobs, and RQ's registry cleanup
re-queues a job whose heartbeat went stale while it has retries left. A batch's job ID is derived from its
ensemble and batch name, so its job can be found (status, retry) from the ensemble alone.
"""
from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.typing import EncodableT, FieldT
from rq import Queue
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.utils import utcformat

from cloudburst.api.progress import Progress
from cloudburst.errors import ServiceError
from cloudburst.schema.queues import (
    ENTRY_POINT,
    EVALUATE_ENTRY_POINT,
    FORGET_ENTRY_POINT,
    STATS_QUEUE,
    JobPolicy,
    job_id,
    job_prefix,
    open_queue,
    round_job_id,
)
from cloudburst.state import redis_values
from cloudburst.state.ledger import STAGING_TTL_S, Ledger, MemberStates
from cloudburst.state.records import SUBMITTED, SUBMITTING
from cloudburst.state.records import key_for as record_key

# How long a status read looks again for a retried batch in a worker's hands (popped, not yet registered as started:
# a few milliseconds), and how often.
TRANSIT_S, TRANSIT_POLL_S = 0.5, 0.02

# Removes the ensemble's job IDs (ARGV[1]: their prefix) from the queue list and deletes their job hashes
# (ARGV[2]: RQ's job key prefix), in one step, so no worker takes one half-removed.
_CANCEL_SCRIPT = """
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local kept, removed = {}, {}
for _, id in ipairs(ids) do
  if string.sub(id, 1, #ARGV[1]) == ARGV[1] then
    removed[#removed + 1] = id
    redis.call('DEL', ARGV[2] .. id)
  else
    kept[#kept + 1] = id
  end
end
redis.call('DEL', KEYS[1])
for i = 1, #kept, 5000 do
  redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 4999, #kept)))
end
return removed
"""


def batch_members(batch: dict[str, Any]) -> list[int]:
    return [member["member"] for member in batch["members"]]


def _job_hash(queue: Queue, now: str, entry_point: str, argument: Any, description: str, policy: JobPolicy,
              **fields: Any) -> dict[FieldT, EncodableT]:
    """The hash RQ's own ``enqueue_many`` writes for a job calling ``entry_point(argument)`` (the same fields, JSON
    data compressed as RQ does, read back by RQ's ``Job``), without building an RQ ``Job`` object; ``fields``
    override the policy's (a round's jobs keep no result and carry a ``ttl``)."""
    data = zlib.compress(json.dumps([entry_point, None, [argument], {}], separators=(",", ":")).encode())
    job: dict[str, Any] = {"status": "queued", "origin": queue.name, "created_at": now, "enqueued_at": now,
                           "timeout": policy.timeout_s, "result_ttl": policy.result_ttl_s,
                           "failure_ttl": policy.failure_ttl_s, "data": data, "description": description}
    if policy.retries:
        job.update(retries_left=policy.retries, retry_intervals="[0]")
    return redis_values.fields({**job, **fields})


def enqueue_batches(queue: Queue, ledger: Ledger, ensemble: str, batches: Iterable[dict[str, Any]],
                    policy: JobPolicy = JobPolicy(), chunk: int = 2000, entry_point: str = ENTRY_POINT,
                    members_of: Callable[[dict[str, Any]], list[int]] = batch_members) -> int:
    """Enqueue one job per batch document (FIFO, in order) and plan the batches' members in the ledger, in
    pipelined chunks; returns how many members. A task set's packs come the same way, with their own
    ``entry_point`` and ``members_of`` (the pack's task indices).

    Writes the job hashes RQ's own ``enqueue_many`` writes (the same fields, JSON data compressed as RQ does,
    read back by RQ's ``Job``), without building an RQ ``Job`` object per batch (bench/enqueue.py). The IDs are
    staged chunk by chunk and reach the queue all at once at the end: a client cut off meanwhile queued nothing.
    """
    now = utcformat(datetime.now(UTC))
    count = 0
    connection = queue.connection
    from cloudburst.schema.batch import split  # the batch schema (pydantic): only when enqueueing
    for part in split(batches, chunk):
        pipeline = connection.pipeline(transaction=False)
        ids: list[str] = []
        plan: dict[str, list[int]] = {}
        for batch in part:
            identifier = job_id(ensemble, batch["batch"])
            pipeline.hset(f"{Job.redis_job_namespace_prefix}{identifier}", mapping=_job_hash(
                queue, now, entry_point, batch, f"{entry_point} {ensemble} batch {batch['batch']}", policy))
            ids.append(identifier)
            plan[batch["batch"]] = members_of(batch)
            count += len(plan[batch["batch"]])
        ledger.plan_batches(pipeline, ensemble, plan)
        ledger.stage(pipeline, ensemble, ids)
        pipeline.execute()
    if count == 0 and not connection.exists(ledger.staged_key(ensemble)):
        return 0  # nothing to queue (a retry with nothing missing)
    queued = int(connection.register_script(_PUBLISH)(
        keys=[ledger.staged_key(ensemble), queue.key, Queue.redis_queues_keys, record_key(ensemble)],
        args=[SUBMITTING, SUBMITTED]))
    if queued < 0:
        raise ServiceError(f"the jobs of {ensemble} waited more than {STAGING_TTL_S} s between two chunks and were "
                           f"taken as cut off: none is queued; `cloudburst retry {ensemble}` queues its members")
    return count


ROUND_RESULT_TTL_S = 60  # a round chunk's finished job is kept this long (its answer is on the round's reply list)


def enqueue_round(queue: Queue, chunks: list[dict[str, Any]], policy: JobPolicy, queued_ttl_s: int) -> list[str]:
    """One job per chunk of an evaluation round, at the front of the queue (an optimizer waits on every round; an
    ensemble's batches wait a round's time), in one transaction; returns the job IDs. Each job's hash expires after
    ``queued_ttl_s`` (a round whose client died leaves nothing that lasts) and ``ROUND_RESULT_TTL_S`` after it ran.
    Not at once: RQ 3.0 deletes a finished job with its executions, and raises on one whose worker died and whose
    record expired, failing the job after its answer went out, so that it ran again for nothing."""
    now = utcformat(datetime.now(UTC))
    pipeline = queue.connection.pipeline(transaction=True)
    ids = []
    for chunk in chunks:
        identifier = round_job_id(chunk["session"], chunk["round"], chunk["chunk"])
        key = f"{Job.redis_job_namespace_prefix}{identifier}"
        pipeline.hset(key, mapping=_job_hash(
            queue, now, EVALUATE_ENTRY_POINT, chunk, f"{EVALUATE_ENTRY_POINT} round {chunk['round']} chunk "
            f"{chunk['chunk']}", policy, result_ttl=ROUND_RESULT_TTL_S, ttl=queued_ttl_s))
        pipeline.expire(key, queued_ttl_s)
        ids.append(identifier)
    pipeline.lpush(queue.key, *reversed(ids))  # the first chunk first
    pipeline.sadd(Queue.redis_queues_keys, queue.key)
    pipeline.execute()
    return ids


def drop_round_jobs(queue: Queue, ids: Iterable[str]) -> None:
    """Take a round's unanswered jobs off the queue and delete them (a round that timed out): no worker runs them
    for nobody. One a worker holds already runs to its end; its answer expires unread."""
    pipeline = queue.connection.pipeline(transaction=True)
    for identifier in ids:
        pipeline.lrem(queue.key, 0, identifier)
        pipeline.delete(f"{Job.redis_job_namespace_prefix}{identifier}")
    pipeline.execute()


def chunk_failures(queue: Queue, ids: dict[int, str]) -> dict[int, str]:
    """Of a round's unanswered chunks (chunk -> job ID), those that will not answer: their job failed for good (the
    last line of RQ's reason) or is gone (expired before a worker took it)."""
    pipeline = queue.connection.pipeline(transaction=False)
    for identifier in ids.values():
        pipeline.hget(f"{Job.redis_job_namespace_prefix}{identifier}", "status")
    reasons = {}
    for (chunk, identifier), status in zip(ids.items(), pipeline.execute()):
        if status is None:
            reasons[chunk] = "its job expired before any worker answered it (no worker took it in time)"
        elif redis_values.text(status) == "failed":
            job = Job.fetch(identifier, connection=queue.connection, serializer=queue.serializer)
            reasons[chunk] = f"its job failed: {_failure_line(job)}"
    return reasons


# Every staged job ID onto the queue in one step (Lua runs alone in Redis): a client cut off before this queued
# nothing, one after it queued everything. A "submitting" record becomes "submitted". -1: the staged list expired.
# KEYS: staged, queue, RQ's set of queues, the record; ARGV: the two stamps.
_PUBLISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
for first = 1, #ids, 5000 do
  redis.call('RPUSH', KEYS[2], unpack(ids, first, math.min(first + 4999, #ids)))
end
redis.call('SADD', KEYS[3], KEYS[2])
redis.call('DEL', KEYS[1])
if redis.call('HGET', KEYS[4], 'state') == ARGV[1] then redis.call('HSET', KEYS[4], 'state', ARGV[2]) end
return #ids
"""


def batch_of(ensemble: str, identifier: str) -> str:
    return identifier[len(job_prefix(ensemble)):]


def queued_batches(queue: Queue, ensemble: str) -> set[str]:
    """Batches in the queue, or taken from it by a worker that has not registered them as started yet (RQ's
    intermediate queue): read in the order a job moves, so a job moving meanwhile is seen in one of them."""
    prefix = job_prefix(ensemble)
    queued = [redis_values.text(raw) for key in (queue.key, queue.intermediate_queue_key)
              for raw in queue.connection.lrange(key, 0, -1)]
    return {batch_of(ensemble, job) for job in queued if job.startswith(prefix)}


def _in_registry(registry: StartedJobRegistry | FailedJobRegistry | FinishedJobRegistry,
                 ensemble: str) -> dict[str, str]:
    """The ensemble's job IDs in one of RQ's registries, by batch."""
    prefix = job_prefix(ensemble)
    return {batch_of(ensemble, job): job for job in registry.get_job_ids(cleanup=False) if job.startswith(prefix)}


def running_batches(queue: Queue, ensemble: str) -> set[str]:
    return set(_in_registry(StartedJobRegistry(queue.name, connection=queue.connection), ensemble))


def failed_jobs(queue: Queue, ensemble: str) -> dict[str, str]:
    """Job IDs in RQ's failed registry of the ensemble's batches, by batch."""
    return _in_registry(FailedJobRegistry(queue.name, connection=queue.connection), ensemble)


def _failure_line(job: Job) -> str:
    """The last line of the failure RQ recorded for a job."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or "failed (RQ recorded no reason)"
    return text.strip().splitlines()[-1]


def failure_reasons(queue: Queue, ensemble: str) -> dict[str, str]:
    """Batches whose job is in RQ's failed registry (a crash, a timeout: not a member's own failure, which the
    engine records), with the last line of the failure RQ recorded."""
    failed = failed_jobs(queue, ensemble)
    reasons = {}
    for batch, job in zip(failed, Job.fetch_many(list(failed.values()), connection=queue.connection,
                                                 serializer=queue.serializer)):
        if job is None:
            continue
        reasons[batch] = _failure_line(job)
    return reasons


def _drop_lost_executions(connection: Redis, job: str) -> None:
    """Forget the executions of a job whose record is gone (its worker died mid-job and the record expired): RQ
    3.0's ``Job.delete`` reads every execution its job lists and raises on a missing one."""
    listed = ExecutionRegistry(job_id=job, connection=connection)
    for execution in connection.zrange(listed.key, 0, -1):
        if not connection.exists(Execution(id=redis_values.text(execution), job_id=job, connection=connection).key):
            connection.zrem(listed.key, redis_values.binary(execution))


def forget_jobs(queue: Queue, ensemble: str) -> None:
    """Remove the ensemble's jobs from RQ's failed and finished registries (deleting an ensemble)."""
    connection = queue.connection
    for registry in (FailedJobRegistry(queue.name, connection=connection),
                     FinishedJobRegistry(queue.name, connection=connection)):
        for job in _in_registry(registry, ensemble).values():
            _drop_lost_executions(connection, job)
            registry.remove(job, delete_job=True)


def cancel_queued(queue: Queue, ensemble: str) -> list[str]:
    """Remove the ensemble's queued jobs; returns their batches. Running jobs finish."""
    removed = queue.connection.eval(_CANCEL_SCRIPT, 1, queue.key, job_prefix(ensemble), Job.redis_job_namespace_prefix)
    return [batch_of(ensemble, job.decode()) for job in removed]


def tracked_progress(queue: Queue, ledger: Ledger, name: str, total: int) -> Progress:
    """Finished, failed and unbalanced members (or tasks) from the ledger and RQ's failed registry (a batch that
    crashed or timed out), running ones from RQ's started registry. A failed member queued again (``retry``) counts
    as queued or running until its new batch is recorded.

    A worker taking jobs from several queues pops one (BLPOP) and registers it as started a moment later: in
    between, the job is in neither the queue nor a registry. A retried batch seen nowhere (neither queued, running,
    recorded nor failed in RQ) is read again for up to ``TRANSIT_S`` until it shows; one that stays away was
    cancelled or lost, and its members count as failed, as their last run did."""
    deadline = time.monotonic() + TRANSIT_S
    while True:
        progress, in_transit = _progress_once(queue, ledger, name, total)
        if not in_transit or time.monotonic() >= deadline:
            return progress
        time.sleep(TRANSIT_POLL_S)


def _progress_once(queue: Queue, ledger: Ledger, name: str, total: int) -> tuple[Progress, bool]:
    """The progress, and whether a retried batch of a failed member was seen nowhere (in a worker's hands)."""
    done = ledger.done(name)
    states = MemberStates.of(done)
    plan = ledger.plan(name)
    crashed_batches = failed_jobs(queue, name)
    crashed = {member for batch in crashed_batches for member in plan.get(batch, [])}
    unbalanced = set(states.unbalanced)
    failed = (set(states.failed) | crashed) - states.finished - unbalanced
    in_transit = False
    if failed or unbalanced:  # only then is the queue's list worth reading
        queued_now = queued_batches(queue, name)  # the queue before the registry: the way a job moves
        running_now = running_batches(queue, name)
        seen = queued_now | running_now | set(done) | set(crashed_batches)
        settled_again = failed | unbalanced
        in_transit = any(batch not in seen and not settled_again.isdisjoint(members) for batch, members in plan.items())
        again = {member for batch in queued_now | running_now for member in plan.get(batch, [])}
        failed, unbalanced = failed - again, unbalanced - again
    else:
        running_now = running_batches(queue, name)
    running = {member for batch in running_now for member in plan.get(batch, [])} - states.finished
    running -= failed | unbalanced
    return Progress(total, len(states.finished), len(failed), len(running), len(unbalanced)), in_transit


def crashed_members(queue: Queue, ledger: Ledger, name: str, states: MemberStates) -> dict[int, str]:
    """Members (or tasks) of batches RQ failed (a crash or timeout the worker could not record), with RQ's reason."""
    plan = ledger.plan(name)
    return {member: reason for batch, reason in failure_reasons(queue, name).items()
            for member in plan.get(batch, [])
            if member not in states.finished and member not in states.failed and member not in states.unbalanced}


def waiting_members(queue: Queue, ledger: Ledger, name: str) -> set[int]:
    """Members (or tasks) of batches queued or running now (the queues read before the started registry: the way a
    job moves)."""
    plan = ledger.plan(name)
    return {member for batch in queued_batches(queue, name) | running_batches(queue, name)
            for member in plan.get(batch, [])}


def waiting_count(queue: Queue, ledger: Ledger, names: Iterable[str]) -> int:
    """Members (or tasks) of these ensembles' and task sets' batches queued or running now: the queues and the
    started registry read once for all of them."""
    prefixes = {job_prefix(name): name for name in names}
    if not prefixes:
        return 0
    jobs = [redis_values.text(raw) for key in (queue.key, queue.intermediate_queue_key)
            for raw in queue.connection.lrange(key, 0, -1)]
    jobs += StartedJobRegistry(queue.name, connection=queue.connection).get_job_ids(cleanup=False)
    batches: dict[str, set[str]] = {}
    for job in jobs:
        for prefix, name in prefixes.items():
            if job.startswith(prefix):
                batches.setdefault(name, set()).add(job[len(prefix):])
    plans = {name: ledger.plan(name) for name in batches}
    return sum(len(plans[name].get(batch, [])) for name, found in batches.items() for batch in found)


def other_jobs(queue: Queue, known_prefixes: Iterable[str], limit: int = 100) -> list[dict[str, Any]]:
    """The queue's jobs that belong to no ensemble or task set (enqueued with RQ directly), newest registry
    entries first: job ID, function, status, and the result or the failure's last line."""
    connection = queue.connection
    prefixes = tuple(known_prefixes)
    found: list[tuple[str, str]] = [(redis_values.text(job), "queued")
                                   for job in connection.lrange(queue.key, 0, -1)]
    for status, registry in (("running", StartedJobRegistry), ("finished", FinishedJobRegistry),
                             ("failed", FailedJobRegistry)):
        ids = registry(queue.name, connection=connection).get_job_ids(cleanup=False)
        found += [(job, status) for job in reversed(ids)]
    found = [(job, status) for job, status in found if not job.startswith(prefixes)][:limit]
    rows = []
    for (identifier, status), job in zip(found, Job.fetch_many([job for job, _ in found], connection=connection,
                                                              serializer=queue.serializer)):
        if job is None:
            continue
        row: dict[str, Any] = {"job": identifier, "function": job.func_name, "status": status,
                               "enqueued_at": job.enqueued_at, "ended_at": job.ended_at, "result": None,
                               "error": None}
        result = job.latest_result() if status in ("finished", "failed") else None
        if result is not None and status == "finished":
            row["result"] = result.return_value
        elif result is not None:
            row["error"] = (result.exc_string or "").strip().splitlines()[-1:] or ["failed"]
            row["error"] = row["error"][0]
        rows.append(row)
    return rows


def queue_forget(connection: Redis, name: str, db: str, queue_name: str = STATS_QUEUE) -> None:
    """Ask the workers (who hold InfluxDB's write user) to drop a deleted ensemble's statistics."""
    open_queue(connection, queue_name).enqueue(
        FORGET_ENTRY_POINT, name, db, job_timeout=600, result_ttl=600, failure_ttl=7 * 86400,
        description=f"{FORGET_ENTRY_POINT} {name}")
