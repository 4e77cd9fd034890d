"""The queue contract: every queue name, entry point, job ID and serializer that the client and the workers must
agree on. A name here is stored in Redis (queued jobs, task sets' records): change one only with a shim that keeps
the old name working (see ``LEGACY_TASK_FUNCTIONS``).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

QUEUE_NAME = "cloudburst"          # members' batches and task packs
STATS_QUEUE = "cloudburst-stats"   # statistics, apart so they never wait behind members

# The env's functions (``files/env/epanet/worker.py``), named as RQ imports them on a worker.
ENTRY_POINT = "worker.run"                  # one batch document (schema cloudburst.batch/1)
STATS_ENTRY_POINT = "worker.statistics"     # an ensemble's name: compute and write its statistics
FORGET_ENTRY_POINT = "worker.forget"        # an ensemble's name and InfluxDB database: drop its statistics
EVALUATE_ENTRY_POINT = "worker.evaluate"     # one chunk of an evaluation round (schema cloudburst.round/1)
PACK_ENTRY_POINT = "cloudburst.worker.taskrun.run_pack"  # every task pack's job, in the env's own venv

# Studies run as task sets of CloudBurst's own functions.
FIRE_FLOW, SEGMENTS, CONTAMINATION = "fire_flow", "segments", "contamination"
TASK_FUNCTIONS = {FIRE_FLOW: "cloudburst.worker.studies:run_fire_flow",
                  SEGMENTS: "cloudburst.worker.studies:run_segments",
                  CONTAMINATION: "cloudburst.worker.studies:run_contamination"}
# The names stored before the package split (0.2): their records and queued packs still name these. Shims at the old
# paths (``cloudburst/fireflow.py``, ``segments.py``, ``taskrun.py``) keep them working for one release.
LEGACY_TASK_FUNCTIONS = {FIRE_FLOW: "cloudburst.fireflow:run_task", SEGMENTS: "cloudburst.segments:run_task"}
LEGACY_PACK_ENTRY_POINT = "cloudburst.taskrun.run_pack"

# What a worker runs: CloudBurst's own functions below, and the functions the running env declares callable (its
# manifest's ``callables``: per env module, the names its ``__all__`` lists or else the functions it defines; written
# by push-env's ``package_env.py``). Anything else a job or a task names is refused before it is imported.
MANIFEST_CALLABLES = "callables"
OWN_JOB_FUNCTIONS = frozenset({PACK_ENTRY_POINT, LEGACY_PACK_ENTRY_POINT})
OWN_TASK_FUNCTIONS = frozenset(TASK_FUNCTIONS.values()) | frozenset(LEGACY_TASK_FUNCTIONS.values())


def task_refusal(function: str, callables: Mapping[str, Sequence[str]] | None) -> str | None:
    """Why a task's ``module:function`` may not run on the workers (None when it may): it is neither one of
    CloudBurst's studies nor a function the env declares callable."""
    if function in OWN_TASK_FUNCTIONS:
        return None
    module, _, name = function.partition(":")
    if callables is not None and name in callables.get(module, ()):
        return None
    if callables is None:
        return (f"refused {function}: it is not one of CloudBurst's own functions, and this worker has no env "
                "manifest declaring others; nothing was run")
    declared = ", ".join(f"{module}:{name}" for module, names in sorted(callables.items()) for name in names)
    return (f"refused {function}: it is not a function the env declares callable (an env module's __all__, or "
            f"else the functions it defines; declared: {declared or 'none'}); nothing was run")


@dataclass(frozen=True)
class JobPolicy:
    timeout_s: int = 3600           # a batch running longer is stopped and fails
    result_ttl_s: int = 7 * 86400   # finished jobs (and their status) stay in Redis this long
    failure_ttl_s: int = 30 * 86400  # failed jobs stay in the failed registry this long
    retries: int = 2                # re-runs after the worker or its host died mid-job


def job_prefix(ensemble: str) -> str:
    """What every job ID of the ensemble starts with. RQ allows letters, digits, _ and - in job IDs: the ensemble
    name made so, plus its hash (keeps "a.b" and "a_b" apart)."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", ensemble)
    return f"{readable}-{hashlib.sha256(ensemble.encode()).hexdigest()[:8]}-"


def job_id(ensemble: str, batch: str) -> str:
    return f"{job_prefix(ensemble)}{batch}"


def open_queue(connection: Redis, name: str = QUEUE_NAME) -> Queue:
    """A queue whose jobs are JSON (RQ's JSONSerializer): a worker never unpickles a payload from Redis."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=connection, serializer=JSONSerializer)


def study_kind(function: str) -> str | None:
    """The study a task set's function runs (its current or its legacy name), or None for a user's function."""
    for kinds in (TASK_FUNCTIONS, LEGACY_TASK_FUNCTIONS):
        for kind, name in kinds.items():
            if name == function:
                return kind
    return None


def round_job_id(session: str, round_: int, chunk: int) -> str:
    """A round chunk's job ID: its session's, round's and chunk's numbers (a session is a hex token)."""
    return f"round-{session}-{round_}-{chunk}"
