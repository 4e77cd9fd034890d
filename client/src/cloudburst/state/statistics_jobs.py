"""Queueing an ensemble's statistics job: one at a time, and never blocked for good by one that is gone.

The claim (``Ledger.claim_statistics``) names the job its claimer queues; the job releases it when it ends. A job
can end without releasing it: Redis restarted from an append-only file that lost its last second (the enqueue, or
the job's release), or the job's worker died with it. Its claim would then block every later statistics run for
``STATS_CLAIM_S``, and an ensemble whose last batches were recorded meanwhile would never get its final statistics.
So a caller that finds the claim held looks at the job it names, and takes the claim over when that job is neither
queued nor running with a live heartbeat. The workers call this after each batch; a client waiting for the final
statistics calls it too, since once the last batch is recorded no worker will.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from cloudburst.schema.queues import STATS_ENTRY_POINT, STATS_QUEUE, open_queue
from cloudburst.state import redis_values
from cloudburst.state.ledger import Ledger

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

# A claim this young whose job is not in Redis is its claimer's, between the claim and the enqueue.
CLAIM_GRACE_S = 30
STATS_JOB_TIMEOUT_S = 3600
STATS_RESULT_TTL_S = 600
STATS_FAILURE_TTL_S = 7 * 86400


def request_statistics(connection: Redis, name: str, queue_name: str = STATS_QUEUE) -> bool:
    """Queue a statistics job for ``name`` unless one is queued or running; returns whether one was queued."""
    ledger = Ledger(connection)
    job_id = f"statistics-{uuid.uuid4().hex}"
    if not ledger.claim_statistics(name, job_id):
        held = ledger.statistics_claim(name)
        if held is not None and (held.age_s < CLAIM_GRACE_S or job_is_alive(connection, queue_name, held.job_id)):
            return False
        if not ledger.take_over_statistics(name, held, job_id):
            return False  # another caller took it over first
        if held is not None:
            log.warning("statistics of %s: the job %s its claim named is gone (%d s after the claim); queueing %s",
                        name, held.job_id, held.age_s, job_id)
    open_queue(connection, queue_name).enqueue(
        STATS_ENTRY_POINT, name, job_id=job_id, job_timeout=STATS_JOB_TIMEOUT_S, result_ttl=STATS_RESULT_TTL_S,
        failure_ttl=STATS_FAILURE_TTL_S, description=f"{STATS_ENTRY_POINT} {name}")
    return True


def job_is_alive(connection: Redis, queue_name: str, job_id: str) -> bool:
    """Whether the job is queued (or waiting to be), or running on a worker whose heartbeat has not lapsed (the
    runner heartbeats its running jobs in RQ's started registry)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.registry import StartedJobRegistry
    from rq.serializers import JSONSerializer

    try:
        status = Job.fetch(job_id, connection=connection, serializer=JSONSerializer).get_status(refresh=False)
    except NoSuchJobError:
        return False
    if status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
        return True
    if status != JobStatus.STARTED:
        return False  # finished, failed, stopped or cancelled without releasing its claim
    registry = StartedJobRegistry(queue_name, connection=connection)
    beating = connection.zrangebyscore(registry.key, f"({time.time()}", "+inf")  # heartbeat not lapsed
    return any(registry.parse_job_id(redis_values.text(entry)) == job_id for entry in beating)

