"""Task sets in the Python API: any function of the pushed env, mapped over arguments on the cluster.

    tasks = client.map("swmm_worker:run_member", ({"model": sha, "rain_factor": f} for f in factors), name="storm")
    tasks.wait()                      # a progress bar with rate and ETA
    tasks.results()                   # a row per task: its return value (a column per key of returned objects)
    tasks.failures(traceback=True)    # failed tasks: the exception's last line, and the whole traceback

An item of the iterable is a task's arguments: a list or tuple (positional), a dict (keyword), or any other JSON
value (the one positional argument, as ``multiprocessing.Pool.map`` calls it).
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pandas as pd
from rq import Worker

from cloudburst.api.queue import enqueue_batches
from cloudburst.api.submitted import Submitted
from cloudburst.errors import InputError, redis_errors
from cloudburst.schema import taskpack as taskformat
from cloudburst.schema.defaults import ENSEMBLE_PATTERN
from cloudburst.schema.queues import MANIFEST_CALLABLES, PACK_ENTRY_POINT, JobPolicy, task_refusal
from cloudburst.state.files import current_env_manifest
from cloudburst.state.records import TaskSetRecord
from cloudburst.state.store import MEMBERS_DIR

if TYPE_CHECKING:
    from cloudburst.api.services import Services

# A pack's job may run each of its tasks up to the task timeout, plus this for storing and recording the pack.
PACK_OVERHEAD_S = 120


def check_function(function: str, manifest: dict[str, Any] | None) -> None:
    """Refuse, before anything is enqueued, a function the published env's manifest does not declare callable (the
    workers would refuse it), and an env without the cloudburst library (which runs the packs). Without a manifest
    (no env published: the workers run an env of their own), the workers' refusal fails each task instead."""
    module, name = taskformat.parse_function(function)
    if manifest is None:
        return
    version = manifest["version"][:12]
    wheels = {re.sub(r"[-_.]+", "-", wheel["file"].split("-")[0]).lower() for wheel in manifest.get("wheels", [])}
    if "cloudburst" not in wheels:
        raise InputError(f"the env the workers run (version {version}) has no cloudburst library, which runs task "
                         "sets: add cloudburst to its Pipfile and push it again")
    if MANIFEST_CALLABLES not in manifest:
        raise InputError(f"the env the workers run (version {version}) was pushed before envs declared their "
                         "callable functions: push it again (push-env.yml)")
    callables = manifest[MANIFEST_CALLABLES]
    if task_refusal(f"{module}:{name}", callables) is None:
        return
    if module not in callables:
        raise InputError(f"the env the workers run (version {version}) has no module {module} of its own (its own: "
                         f"{', '.join(sorted(callables)) or 'none'}); the workers run only the functions an env's "
                         "modules declare: push the env that has it, or name one of these")
    raise InputError(f"the env the workers run (version {version}) declares no {name} in {module} (callable: "
                     f"{', '.join(callables[module]) or 'none'}; a module declares its __all__, or else the "
                     "functions it defines)")


def submit_map(services: Services, function: str, iterable: Iterable[Any], name: str | None, timeout_s: int,
               per_job: int | None) -> "TaskSet":
    module, function_name = taskformat.parse_function(function)
    function = taskformat.function_name(module, function_name)
    name = name or f"{function_name.replace('_', '-')}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    if not re.fullmatch(ENSEMBLE_PATTERN, name):
        raise InputError(f"a task set's name is letters, digits, '.', '_' and '-' (up to 64), not {name!r}")
    if not isinstance(timeout_s, int) or timeout_s < 1:
        raise InputError(f"a task's timeout is a whole number of seconds > 0, not {timeout_s!r}")
    arguments = [taskformat.as_arguments(item, f"task {index}") for index, item in enumerate(iterable)]
    if not arguments:
        raise InputError("no task to run: the iterable is empty")
    services.records.refuse_taken(name)
    services.refuse_over_quota(len(arguments))
    check_function(function, current_env_manifest(services.settings))
    workers = Worker.count(queue=services.queue)
    size = taskformat.pack_size(len(arguments), workers, per_job)
    started = time.monotonic()
    record = services.records.create(TaskSetRecord(name=name, tasks=len(arguments), function=function,
                                                 timeout_s=timeout_s))
    assert isinstance(record, TaskSetRecord)
    _enqueue(services, record, list(enumerate(arguments)), size, round_=0)
    return TaskSet(services, record.name, enqueue_s=time.monotonic() - started, per_job=size)


def _enqueue(services: Services, record: TaskSetRecord, tasks: list[tuple[int, Any]], size: int, round_: int) -> int:
    packs = list(taskformat.packs(record.name, record.function, tasks, size, record.timeout_s, round_))
    services.ledger.keep_arguments(record.name, {pack["batch"]: pack["tasks"] for pack in packs})
    policy = JobPolicy(timeout_s=record.timeout_s * size + PACK_OVERHEAD_S)
    return enqueue_batches(services.queue, services.ledger, record.name, packs, policy,
                           entry_point=PACK_ENTRY_POINT, members_of=lambda pack: [i for i, _ in pack["tasks"]])


class TaskSet(Submitted):
    """One submitted task set; every method reads the cluster's current state."""
    noun, unit, poll_s = "task set", "task", 0.5

    def __init__(self, services: Services, name: str, *, enqueue_s: float | None = None, per_job: int | None = None):
        super().__init__(services, name)
        self.enqueue_s = enqueue_s  # set by map: seconds spent enqueueing
        self.per_job = per_job      # set by map: tasks per queue job

    @redis_errors
    def info(self) -> TaskSetRecord:
        return self.services.records.get_taskset(self.name)

    def total(self) -> int:
        return self.info().tasks

    def _rows(self) -> pd.DataFrame:
        store = self.services.store
        packs = store.batches(self.name, MEMBERS_DIR)
        with ThreadPoolExecutor(max_workers=8) as readers:
            files = [data for data in readers.map(lambda pack: store.read(self.name, MEMBERS_DIR, pack), packs)
                     if data is not None]
        if not files:
            return pd.DataFrame({column: pd.Series(dtype="float64" if column == "seconds" else
                                                   "int64" if column == "task" else "object")
                                 for column in taskformat.COLUMNS})
        return pd.concat([taskformat.decode_rows(data) for data in files], ignore_index=True)

    def results(self, traceback: bool = False) -> pd.DataFrame:
        """A row per stored task, in task order: ``task``, ``status``, the return value (``value``, or a column per
        key when every finished task returned an object), ``error``, ``seconds``, ``worker`` (and ``traceback``)."""
        self.info()
        return taskformat.results_frame(self._rows(), traceback)

    @redis_errors
    def failures(self, traceback: bool = False) -> pd.DataFrame:
        """Each failed task's reason: the exception's last line (``traceback``: the whole of it), or, for a pack
        that failed before it could be recorded (a timeout, a crash), RQ's."""
        self.info()
        reasons = self._failure_reasons(self._states())
        table = pd.DataFrame(sorted(reasons.items()), columns=["task", "error"])
        if traceback:
            rows = self._rows()
            tracebacks = dict(zip(rows["task"], rows["traceback"]))
            table["traceback"] = [tracebacks.get(task) for task in table["task"]]
        return table

    @redis_errors
    def retry(self, per_job: int | None = None) -> dict[str, int]:
        """Re-enqueue the failed and missing tasks (neither finished, queued nor running), as packs of a new round."""
        return self._retry(per_job=per_job)

    def _enqueue_again(self, wanted: Callable[[int], bool], round_: int, **options: Any) -> int:
        record = self.info()
        kept = self.services.ledger.arguments(self.name)
        again = [(task, kept[task]) for task in range(record.tasks) if wanted(task) and task in kept]
        if not again:
            return 0
        size = taskformat.pack_size(len(again), Worker.count(queue=self.services.queue), options["per_job"])
        return _enqueue(self.services, record, again, size, round_)
