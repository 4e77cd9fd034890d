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
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pandas as pd
from rq import Worker

from cloudburst import lifecycle
from cloudburst import tasks as taskformat
from cloudburst.errors import InputError, redis_errors
from cloudburst.files import current_env_manifest
from cloudburst.job import ENSEMBLE_PATTERN
from cloudburst.ledger import MemberStates, retry_round
from cloudburst.progress import Display, Progress, default_display, follow
from cloudburst.queue import JobPolicy, crashed_members, enqueue_batches, tracked_progress, waiting_members
from cloudburst.records import RETRIED, TaskSetRecord
from cloudburst.store import MEMBERS_DIR

if TYPE_CHECKING:
    from cloudburst.api import Client

# A pack's job may run each of its tasks up to the task timeout, plus this for storing and recording the pack.
PACK_OVERHEAD_S = 120


def check_function(function: str, manifest: dict[str, Any] | None) -> None:
    """Refuse, before anything is enqueued, a function the published env's manifest says it does not have, and an
    env without the cloudburst library (which runs the packs). Without a manifest (no env published: the workers
    run an env of their own), a missing function fails each task with the import error instead."""
    module, name = taskformat.parse_function(function)
    if manifest is None:
        return
    version = manifest["version"][:12]
    wheels = {re.sub(r"[-_.]+", "-", wheel["file"].split("-")[0]).lower() for wheel in manifest.get("wheels", [])}
    if "cloudburst" not in wheels:
        raise InputError(f"the env the workers run (version {version}) has no cloudburst library, which runs task "
                         "sets: add cloudburst to its Pipfile and push it again")
    exports = manifest.get("exports") or {}  # the env's own modules and the names each defines
    top = module.split(".")[0]
    installed = set(manifest.get("modules", [])) | set(exports) | set(sys.stdlib_module_names)
    if "modules" in manifest and top not in installed:
        raise InputError(f"the env the workers run (version {version}) has no module {top} (its own: "
                         f"{', '.join(sorted(exports)) or 'none'}); push the env that has it, or name one of these")
    if exports.get(module) is not None and name not in exports[module]:
        public = ", ".join(exports[module]) or "nothing public"
        raise InputError(f"the env the workers run (version {version}) has no {name} in {module} (it has: "
                         f"{public})")


def submit_map(client: "Client", function: str, iterable: Iterable[Any], name: str | None, timeout_s: int,
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
    client.records.refuse_taken(name)
    check_function(function, current_env_manifest(client.settings))
    workers = Worker.count(queue=client.queue)
    size = taskformat.pack_size(len(arguments), workers, per_job)
    started = time.monotonic()
    record = client.records.create(TaskSetRecord(name=name, tasks=len(arguments), function=function,
                                                 timeout_s=timeout_s))
    _enqueue(client, record, list(enumerate(arguments)), size, round_=0)
    return TaskSet(client, record.name, enqueue_s=time.monotonic() - started, per_job=size)


def _enqueue(client: "Client", record: TaskSetRecord, tasks: list[tuple[int, Any]], size: int, round_: int) -> int:
    packs = list(taskformat.packs(record.name, record.function, tasks, size, record.timeout_s, round_))
    client.ledger.keep_arguments(record.name, {pack["batch"]: pack["tasks"] for pack in packs})
    policy = JobPolicy(timeout_s=record.timeout_s * size + PACK_OVERHEAD_S)
    return enqueue_batches(client.queue, client.ledger, record.name, packs, policy,
                           entry_point=taskformat.ENTRY_POINT, members_of=lambda pack: [i for i, _ in pack["tasks"]])


class TaskSet:
    """One submitted task set; every method reads the cluster's current state."""

    def __init__(self, client: "Client", name: str, *, enqueue_s: float | None = None, per_job: int | None = None):
        self.client = client
        self.name = name
        self.enqueue_s = enqueue_s  # set by map: seconds spent enqueueing
        self.per_job = per_job      # set by map: tasks per queue job

    def __repr__(self) -> str:
        return f"<TaskSet {self.name!r}>"

    @redis_errors
    def info(self) -> TaskSetRecord:
        return self.client.records.get_taskset(self.name)

    @redis_errors
    def status(self) -> Progress:
        """Finished and failed tasks (the ledger, and RQ's failed packs), running tasks (RQ's started registry)."""
        return tracked_progress(self.client.queue, self.client.ledger, self.name, self.info().tasks)

    def wait(self, progress: bool = True, display: Display | None = None, poll_s: float | None = None,
             timeout_s: float | None = None) -> Progress:
        """Until every task finished or failed; shows progress unless told not to. Ctrl-C stops waiting only.
        With ``timeout_s``, raises TimeoutError (naming the progress) when it passes."""
        display = display or (default_display() if progress else None)
        return follow(self.status, lambda current: current.done, f"task set {self.name!r}", display,
                      poll_s or (display.interval_s if display is not None else 0.5), timeout_s)

    def _rows(self) -> pd.DataFrame:
        store = self.client.store
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
        states = MemberStates.of(self.client.ledger.done(self.name))
        reasons = {**crashed_members(self.client.queue, self.client.ledger, self.name, states), **states.failed}
        table = pd.DataFrame(sorted(reasons.items()), columns=["task", "error"])
        if traceback:
            rows = self._rows()
            tracebacks = dict(zip(rows["task"], rows["traceback"]))
            table["traceback"] = [tracebacks.get(task) for task in table["task"]]
        return table

    @redis_errors
    def executions(self) -> pd.DataFrame:
        """Per task: how often its pack ran to the end; ``attrs``: ``lost`` (tasks neither finished nor failed) and
        ``duplicated`` (executions beyond the first)."""
        states = MemberStates.of(self.client.ledger.done(self.name))
        return lifecycle.executions(self.client, self.name, self.info().tasks,
                                    len(states.finished) + len(states.failed), "task")

    @redis_errors
    def cancel(self) -> int:
        """Remove the queued tasks; returns how many. Tasks already running finish."""
        self.info()
        return lifecycle.cancel(self.client, self.name)

    @redis_errors
    def retry(self, per_job: int | None = None) -> dict[str, int]:
        """Re-enqueue the failed and missing tasks (neither finished, queued nor running), as packs of a new round."""
        record = self.info()
        kept = self.client.ledger.arguments(self.name)
        states = MemberStates.of(self.client.ledger.done(self.name))
        waiting = waiting_members(self.client.queue, self.client.ledger, self.name)
        again = [(task, kept[task]) for task in range(record.tasks)
                 if task not in states.finished and task not in waiting and task in kept]
        plan = self.client.ledger.plan(self.name)
        round_ = max((retry_round(pack) for pack in plan), default=0) + 1
        size = taskformat.pack_size(len(again), Worker.count(queue=self.client.queue), per_job)
        count = _enqueue(self.client, record, again, size, round_) if again else 0
        self.client.records.set_state(self.name, RETRIED)
        return {"enqueued": count, "finished": len(states.finished), "waiting": len(waiting)}

    @redis_errors
    def delete(self) -> dict[str, int | bool]:
        """Remove the task set: its queued packs, stored results, ledger, RQ's records of its jobs and its record.
        Tasks running now still finish and store their pack: delete again once they are done."""
        self.info()
        return lifecycle.remove(self.client, self.name)
