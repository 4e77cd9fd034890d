"""One RQ worker process of a CloudBurst worker: imports the env's module first, then takes jobs.

Started by the worker image's entrypoint with the env's own venv Python. RQ's default worker forks a
fresh process per job, which pays the env's imports (``import wntr``: about 1.1 s) on every job; this
worker runs jobs in its own process, so the imports done here at start-up serve every job.

Jobs are JSON (RQ's JSONSerializer): a payload in Redis is never unpickled here. A job runs only when it names
one of CloudBurst's own entry points or a function the env's manifest declares callable (``--env-manifest``): anything
else (``subprocess.getoutput``, ``os.system``, a wheel's function the env did not declare, a callback) fails with the
reason before its module is imported. While a job runs, a
thread keeps its heartbeat fresh with a short TTL, so when this process or its host dies the job is
found abandoned within ``--heartbeat-s`` x 3 and re-queued by RQ's own registry cleanup (``Retry``).

A job's bookkeeping costs Redis three round trips here while jobs are queued (take and read it, start it, end it)
where RQ's own worker makes ten or more: over TLS the master's Redis pays for each. What it leaves in Redis is RQ's
own, but for the job's payload, which is not sent back unchanged at its end. The cost: RQ's dependent jobs
(``depends_on``), which CloudBurst never makes, are not released by these workers. This rides on RQ 3's internals;
an env with another RQ gets RQ's own bookkeeping.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import os
import socket
import sys
import threading
import time

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from rq import Queue, SimpleWorker
from rq import __version__ as rq_version
from rq.exceptions import DeserializationError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import as_text, get_version, now
from rq.worker import WorkerStatus

try:  # RQ 3's internals, which the merged bookkeeping follows; an env with another RQ gets RQ's own bookkeeping
    from rq.executions import Execution
    from rq.intermediate_queue import IntermediateQueue
    from rq.job import parse_job_id
    from rq.rate_limit import release_slot
    from rq.results import Result
    MERGED_BOOKKEEPING = rq_version.startswith("3.")
except ImportError:
    MERGED_BOOKKEEPING = False

try:  # the names are CloudBurst's (its schema owns them); an env without the cloudburst library runs its own only
    from cloudburst.schema.queues import MANIFEST_CALLABLES, OWN_JOB_FUNCTIONS
    from cloudburst.state.connection import connect
except ImportError:
    MANIFEST_CALLABLES, OWN_JOB_FUNCTIONS = "callables", frozenset()

    def connect(url: str, username: str | None = None, password: str | None = None, ca_file: str | None = None,
                **options) -> Redis:
        tls = {"ssl_ca_certs": ca_file} if ca_file and url.startswith("rediss://") else {}
        return Redis.from_url(url, username=username or None, password=password or None, **tls, **options)

log = logging.getLogger("cloudburst.runner")

# Takes the first job of the first queue holding one, as RQ's LPOP over the queues does (or, with one queue, moves it
# to that queue's intermediate list, as RQ's LMOVE does), and reads the job's hash in the same round trip. KEYS: the
# queues in order (with one queue, then its intermediate list); ARGV: the job keys' prefix, 1 to move.
_TAKE_AND_READ = """
local move = ARGV[2] == '1'
for i = 1, (move and 1 or #KEYS) do
  local id
  if move then id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') else id = redis.call('LPOP', KEYS[i]) end
  if id then return {KEYS[i], id, redis.call('HGETALL', ARGV[1] .. id)} end
end
return false
"""


class OneTripQueue(Queue):
    """RQ's queue, whose workers take a job and read it in one round trip while jobs are queued; only an empty
    queue is waited on RQ's own way (a blocking pop, then the job's read)."""
    _take_and_read: Script | None = None  # the script, registered once (then run by its SHA)

    @classmethod
    def dequeue_any(cls, queues, timeout, connection, job_class=None, serializer=None,  # type: ignore[override]
                    death_penalty_class=None):
        queues = list(queues)
        move = len(queues) == 1 and get_version(connection) >= (6, 2, 0)
        keys = [queues[0].key, IntermediateQueue.get_intermediate_queue_key(queues[0].key)] if move else \
            [queue.key for queue in queues]
        job_cls = job_class or cls.job_class
        take = cls._take_and_read or connection.register_script(_TAKE_AND_READ)
        cls._take_and_read = take
        while True:
            taken = take(keys=keys, args=[job_cls.redis_job_namespace_prefix, int(move)], client=connection)
            if not taken:
                return super().dequeue_any(queues, timeout, connection, job_class, serializer, death_penalty_class)
            queue_key, job_id, flat = taken
            if not flat:  # the job is gone (deleted while queued): RQ takes the next one too
                continue
            queue = cls.from_queue_key(as_text(queue_key), connection=connection, job_class=job_cls,
                                       serializer=serializer, death_penalty_class=death_penalty_class)
            job = job_cls(parse_job_id(as_text(job_id)), connection=connection, serializer=serializer)
            try:
                job.restore(dict(zip(flat[::2], flat[1::2])))
            except Exception as error:  # as RQ reports a job it cannot read
                error.job_id, error.queue = as_text(job_id), queue  # type: ignore[attr-defined]
                raise
            return job, queue


class Declared:
    """What jobs may name on this worker: CloudBurst's own entry points and the functions the env declares."""

    def __init__(self, callables: dict[str, list[str]] | None, version: str = ""):
        self.callables = callables or {}
        self.version = version

    @classmethod
    def from_manifest(cls, path: str | None) -> Declared:
        if not path:
            return cls(None)
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        return cls(manifest.get(MANIFEST_CALLABLES), str(manifest.get("version", ""))[:12])

    def allows(self, name: str) -> bool:
        module, _, function = name.rpartition(".")
        return name in OWN_JOB_FUNCTIONS or function in self.callables.get(module, ())

    def refusal(self, job: Job) -> str | None:
        """Why the job may not run here (None when it may), read from its stored names without importing them."""
        if job.instance is not None:
            return f"job {job.id} calls a method of an instance; CloudBurst workers call functions only"
        for callback in (job._success_callback_name, job._failure_callback_name, job._stopped_callback_name):
            if callback:
                return f"job {job.id} names a callback ({callback}); CloudBurst workers run none"
        if not self.allows(job.func_name or ""):
            env = f"the env{' ' + self.version if self.version else ''}"
            declared = ", ".join(f"{module}.{name}" for module, names in sorted(self.callables.items())
                                 for name in names)
            return (f"job {job.id} names {job.func_name}, which is neither one of CloudBurst's entry points nor a "
                    f"function {env} declares callable (declared: {declared or 'none'}); nothing was run")
        return None


class PreloadedWorker(SimpleWorker):
    """A SimpleWorker (no fork per job) that heartbeats running jobs from a thread.

    A job's timeout is RQ's alarm signal raised inside the job, which library code can swallow (wntr's solver
    catches broad exceptions). So the heartbeat thread also enforces it: a job still running HARD_TIMEOUT_GRACE_S
    after its timeout is failed (or retried) the way RQ fails a timed-out job, and this process exits for its
    supervisor to replace it.
    """

    HARD_TIMEOUT_GRACE_S = 5
    BEAT_AGAIN_S = 1.0
    SUSPENSION_AGAIN_S = 1.0
    declared = Declared(None)
    merged_bookkeeping = MERGED_BOOKKEEPING  # start and end a job in a round trip each (RQ 3 only)
    queue_class = OneTripQueue if MERGED_BOOKKEEPING else Queue  # take and read a queued job in one (RQ 3 only)
    _beat: tuple[float, int] | None = None  # when this process last beat (alone or in a pipeline), and its expiry
    _state_sent: str | None = None  # the state this process last wrote to its worker hash
    _suspension_read = float("-inf")  # when this process last read whether the queues are suspended

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.job_monitoring_interval * 3

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's worker heartbeat (its hash's last beat and two expiries), sent as one round trip rather than three,
        and not again within ``BEAT_AGAIN_S`` of the last one with the same expiry: RQ beats three times around each
        job, milliseconds apart, each keeping the worker's keys for a minute or more, and over TLS each round trip
        costs the master's Redis a record each way."""
        expiry = timeout or self.worker_ttl + 60
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            self._beat = (time.monotonic(), expiry)
            return
        if self._beat is not None and self._beat[1] == expiry and time.monotonic() - self._beat[0] < self.BEAT_AGAIN_S:
            return
        with self.connection.pipeline(transaction=False) as batched:
            super().heartbeat(timeout, batched)
            batched.execute()
        self._beat = (time.monotonic(), expiry)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """RQ's worker state, not written again when unchanged: RQ's loop sets idle before every dequeue, and the end
        of a successful job already set it in that job's last round trip."""
        if pipeline is None and state == self._state_sent:
            self._state = state
            return
        super().set_state(state, pipeline)
        self._state_sent = state

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's check, before each job, whether someone suspended the queues, read at most once per
        ``SUSPENSION_AGAIN_S``: a suspension takes effect within that second."""
        if time.monotonic() - self._suspension_read < self.SUSPENSION_AGAIN_S:
            return
        super().check_for_suspension(burst)
        self._suspension_read = time.monotonic()

    def start_execution(self, job: Job) -> Execution:
        """What RQ writes when a job starts (its execution record and the started registry's entry, the worker
        busy, both heartbeats, the job started, out of the intermediate queue), in one round trip where RQ makes
        two."""
        heartbeat_ttl = self.get_heartbeat_ttl(job)
        with self.connection.pipeline() as pipeline:
            execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=self.name)
            self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)
            job.heartbeat(now(), heartbeat_ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            pipeline.persist(job.key)
            if len(self.queues) == 1:
                pipeline.lrem(Queue(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
            pipeline.execute()
        self.executions[execution.id] = execution
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Nothing left to write: ``start_execution`` wrote it with the execution."""
        if not self.merged_bookkeeping:
            super().prepare_job_execution(job, remove_from_intermediate_queue)
            return
        self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """The job's end time; RQ's extra heartbeat of the job here (a round trip) is left out, as the job's outcome
        is written a moment later in one round trip and CloudBurst's jobs have no callbacks to protect."""
        if not self.merged_bookkeeping:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
            return
        job.ended_at = now()
        job.last_heartbeat = job.ended_at

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry,
                           execution: Execution) -> None:
        """A finished job's outcome (its result, the finished registry, out of the started one, the worker's counts
        and idle state) in one round trip. RQ first watches and reads the job's dependents, two round trips for
        jobs CloudBurst never makes: a job enqueued with RQ's ``depends_on`` is never released by these workers.
        A repeating job (RQ's ``Repeat``, which CloudBurst never makes either) takes RQ's own way."""
        if job.repeats_left or not self.merged_bookkeeping:
            super().handle_job_success(job, queue, started_job_registry, execution)
            return
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            if result_ttl != 0:
                self.write_success(job, result_ttl, pipeline, execution)
            job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            job._status = JobStatus.FINISHED
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            # Idle in Redis, but busy in this process until the job has ended: a warm shutdown asked meanwhile must
            # wait for it (RQ's handler stops an idle worker at once, raising inside whatever runs).
            pipeline.hset(self.key, "state", WorkerStatus.IDLE)
            self.heartbeat(pipeline=pipeline)  # the worker's own expiry again, not the running job's short one
            pipeline.execute()
        self._state_sent = WorkerStatus.IDLE
        release_slot(job)
        log.info("Successfully completed job %s in %ss", job.id, job.ended_at - job.started_at)

    def write_success(self, job: Job, result_ttl: int, pipeline: Pipeline, execution: Execution) -> None:
        """What RQ's ``Job._handle_success`` writes (the job's fields, its result, the finished registry) but the
        job's payload: unchanged since this worker read it, it is not sent back (RQ re-sends it compressed again,
        6.6 KB for a batch of 250 Net3 members)."""
        job.set_status(JobStatus.FINISHED, pipeline=pipeline)
        fields = job.to_dict(include_meta=False, include_result=False)
        del fields["data"]
        pipeline.hset(job.key, mapping=fields)
        Result.create(job, Result.Type.SUCCESSFUL, return_value=job._result, ttl=result_ttl,
                      worker_name=self.name, pipeline=pipeline, execution_id=execution.id,
                      execution_started_at=execution.created_at, execution_ended_at=job.ended_at)
        job.finished_job_registry.add(job, result_ttl, pipeline)

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            _ = job.args  # RQ decodes a payload lazily, deep inside its bookkeeping: decode it here, first
        except DeserializationError as error:
            self.refuse_payload(job, queue, error)
            return
        refusal = self.declared.refusal(job)
        if refusal is not None:
            self.refuse(job, queue, f"CloudBurstRefusedFunction: {refusal}")
            return
        execution = self.start_execution(job) if self.merged_bookkeeping else self.prepare_execution(job)
        finished = threading.Event()
        limit_s = job.timeout + self.HARD_TIMEOUT_GRACE_S if job.timeout and job.timeout > 0 else None
        started = time.monotonic()

        def keep_alive() -> None:
            while not finished.wait(self.job_monitoring_interval):
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception:  # a missed beat is retried at the next interval
                    log.exception("heartbeat for job %s failed", job.id)
                if limit_s is not None and time.monotonic() - started > limit_s and not finished.is_set():
                    log.error("job %s still running %d s past its %d s timeout: failing it and restarting",
                              job.id, self.HARD_TIMEOUT_GRACE_S, job.timeout)
                    self.handle_job_failure(job, queue, exc_string=(
                        f"JobTimeoutException: Task exceeded maximum timeout value ({job.timeout} seconds); "
                        "stopped by the runner"), execution=execution)
                    os._exit(75)

        beat = threading.Thread(target=keep_alive, name="heartbeat", daemon=True)
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            finished.set()
            beat.join()
        # Not set idle here, as RQ's SimpleWorker does: RQ's loop sets it before its next dequeue, a moment later.

    def refuse_payload(self, job: Job, queue: Queue, error: DeserializationError) -> None:
        """Fail a job whose payload is not JSON (malformed, or pickled by another RQ client) with a reason that
        says so; no retry, as the payload will not change. Nothing of it is executed or unpickled."""
        self.refuse(job, queue, f"CloudBurstPayloadError: job {job.id}'s payload is not a JSON RQ job "
                                f"({error.__cause__ or 'undecodable'}); CloudBurst workers take only JSON job "
                                "documents")

    def refuse(self, job: Job, queue: Queue, reason: str) -> None:
        """Fail a job with the reason, never retried: it would be refused the same way."""
        log.error("%s", reason)
        job.retries_left = 0
        self.handle_job_failure(job, queue, exc_string=reason)
        self.set_state(WorkerStatus.IDLE)


def read_secret(path: str | None) -> str | None:
    if not path:
        return None
    with open(path, encoding="utf-8") as secret:
        return secret.read().strip()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=env("CLOUDBURST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--redis-user", default=env("CLOUDBURST_REDIS_USER"), help="Redis's ACL user (the workers')")
    parser.add_argument("--redis-password-file", default=env("CLOUDBURST_REDIS_PASSWORD_FILE"))
    parser.add_argument("--ca-file", default=env("CLOUDBURST_CA_FILE"),
                        help="the cluster's CA: a rediss:// server is verified against it")
    parser.add_argument("--queue", action="append", dest="queues",
                        help="queue to take jobs from, first named first (default: cloudburst)")
    parser.add_argument("--preload", action="append",
                        help="module to import before taking jobs (default: worker, the env's worker.py)")
    parser.add_argument("--env-manifest", default=env("CLOUDBURST_ENV_MANIFEST"),
                        help="the env's manifest (its callables); without one only CloudBurst's entry points run")
    parser.add_argument("--name", default=env("CLOUDBURST_WORKER_NAME"))
    parser.add_argument("--heartbeat-s", type=int, default=int(env("CLOUDBURST_HEARTBEAT_S", "10")))
    parser.add_argument("--maintenance-s", type=int, default=int(env("CLOUDBURST_MAINTENANCE_S", "30")))
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--log-level", default=env("CLOUDBURST_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    args.queues = args.queues or env("CLOUDBURST_QUEUES", "cloudburst").split(",")
    args.preload = args.preload or env("CLOUDBURST_PRELOAD", "worker").split(",")
    return args


def preload(modules: list[str]) -> None:
    """Import the env's modules with the cyclic garbage collector paused: an import of wntr allocates hundreds of
    thousands of objects that live as long as the process, and collecting them as they pile up is a sixth of the
    import's time. Frozen afterwards, the collector never walks them again."""
    gc.disable()
    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    declared = Declared.from_manifest(args.env_manifest)
    preload(args.preload)
    log.info("preloaded %s", ", ".join(args.preload))
    connection = connect(args.redis_url, args.redis_user, read_secret(args.redis_password_file), args.ca_file)
    worker = PreloadedWorker(
        args.queues,
        name=args.name or f"{socket.gethostname()}.{os.getpid()}",
        connection=connection,
        serializer=JSONSerializer,
        job_monitoring_interval=args.heartbeat_s,
        maintenance_interval=args.maintenance_s,
        # An idle worker wakes from its blocking dequeue (worker_ttl - 15 s) for each maintenance round,
        # which is where abandoned jobs are found and re-queued.
        worker_ttl=args.maintenance_s + 15,
    )
    worker.declared = declared
    worker.work(burst=args.burst, logging_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
