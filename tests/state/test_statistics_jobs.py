"""One statistics job at a time, and never blocked for good: a claim whose job Redis lost, or whose worker's heartbeat
lapsed, is taken over; a claim whose job is queued or running, or that was taken a moment ago, is left alone (a real
Redis, and RQ's own queue, job and started-registry bookkeeping)."""
from __future__ import annotations

import time

import pytest
from cloudburst.schema.queues import STATS_QUEUE, open_queue
from cloudburst.state.ledger import STATS_CLAIM_S, STATS_PENDING, Ledger, key_for
from cloudburst.state.statistics_jobs import CLAIM_GRACE_S, request_statistics
from redis import Redis
from rq import SimpleWorker
from rq.job import Job
from services import redis_server

pytestmark = pytest.mark.services


@pytest.fixture
def redis(tmp_path):
    with redis_server(tmp_path) as url:
        yield Redis.from_url(url)


def claimed(redis: Redis, name: str) -> str | None:
    held = redis.get(key_for(name, STATS_PENDING))
    return None if held is None else held.decode()


def queued_ids(redis: Redis) -> list[str]:
    return open_queue(redis, STATS_QUEUE).get_job_ids()


def age_claim(redis: Redis, name: str, seconds: int) -> None:
    """The claim as it stands ``seconds`` after it was taken (its expiry is what tells its age)."""
    redis.expire(key_for(name, STATS_PENDING), STATS_CLAIM_S - seconds)


def test_the_first_request_queues_one_job_and_the_claim_names_it(redis):
    assert request_statistics(redis, "first")
    assert queued_ids(redis) == [claimed(redis, "first")]
    assert not request_statistics(redis, "first")  # its job is queued: no second one
    assert len(queued_ids(redis)) == 1


def test_a_claim_whose_job_redis_lost_is_taken_over_once_past_its_grace(redis):
    """What a Redis restarted from an append-only file that lost its last second leaves: the claim, not the job."""
    Ledger(redis).claim_statistics("lost", "statistics-lost-in-the-restart")
    assert not request_statistics(redis, "lost")  # a moment old: its claimer may be about to queue it
    assert queued_ids(redis) == []
    age_claim(redis, "lost", CLAIM_GRACE_S + 1)
    assert request_statistics(redis, "lost")
    assert queued_ids(redis) == [claimed(redis, "lost")] != ["statistics-lost-in-the-restart"]


def test_a_running_job_is_left_alone_until_its_heartbeat_lapses(redis):
    """A worker that died mid-job stops heartbeating; RQ's started registry then shows its heartbeat lapsed."""

    class ShortBeats(SimpleWorker):
        def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
            return 2

    assert request_statistics(redis, "running")
    running = claimed(redis, "running")
    queue = open_queue(redis, STATS_QUEUE)
    worker = ShortBeats([queue], connection=redis, serializer=queue.serializer)
    worker.register_birth()
    job, _ = worker.dequeue_job_and_maintain_ttl(timeout=1)
    assert job.id == running
    worker.prepare_execution(job)  # what a worker writes as it starts a job: a heartbeat, then status started
    worker.prepare_job_execution(job, remove_from_intermediate_queue=True)
    age_claim(redis, "running", CLAIM_GRACE_S + 1)
    assert not request_statistics(redis, "running")
    assert claimed(redis, "running") == running and queued_ids(redis) == []
    time.sleep(3)  # the heartbeat lapses: the worker died
    assert request_statistics(redis, "running")
    assert claimed(redis, "running") != running and queued_ids(redis) == [claimed(redis, "running")]


def test_a_finished_job_that_could_not_release_its_claim_is_taken_over(redis):
    assert request_statistics(redis, "ended")
    ended = claimed(redis, "ended")
    Job.fetch(ended, connection=redis).set_status("finished")
    age_claim(redis, "ended", CLAIM_GRACE_S + 1)
    assert request_statistics(redis, "ended")
    assert claimed(redis, "ended") != ended


def test_a_job_taken_for_gone_that_ends_after_all_leaves_its_successors_claim(redis):
    ledger = Ledger(redis)
    ledger.claim_statistics("late", "statistics-taken-for-gone")
    age_claim(redis, "late", CLAIM_GRACE_S + 1)
    assert request_statistics(redis, "late")
    successor = claimed(redis, "late")
    ledger.release_statistics("late", "statistics-taken-for-gone")
    assert claimed(redis, "late") == successor
    ledger.release_statistics("late", successor)
    assert claimed(redis, "late") is None


def test_of_two_callers_that_found_the_same_stale_claim_one_takes_it_over(redis):
    ledger = Ledger(redis)
    ledger.claim_statistics("raced", "statistics-gone")
    stale = ledger.statistics_claim("raced")
    assert stale is not None and stale.job_id == "statistics-gone"
    assert ledger.take_over_statistics("raced", stale, "statistics-first")
    assert not ledger.take_over_statistics("raced", stale, "statistics-second")
    assert claimed(redis, "raced") == "statistics-first"
