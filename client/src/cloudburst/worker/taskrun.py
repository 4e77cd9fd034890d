"""Running a task pack on a worker: the queue job ``cloudburst.taskrun.run_pack`` every task set enqueues.

Each task calls the pack's function with its arguments, in this process (the runner's preloaded env), under the
task set's timeout. A task that raises, times out or returns something that is not JSON is a failed row, not a
failed job: a re-run would fail it the same way. The pack's rows go to the results store as one file, then the
pack is recorded in the ledger in one step; a job whose worker died before that runs again (RQ's retry) and
replaces the file, so every task has exactly one row.
"""
from __future__ import annotations

import contextlib
import importlib
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from rq import get_current_job

from cloudburst.errors import InputError, TaskTimeout
from cloudburst.schema.queues import task_refusal
from cloudburst.schema.taskpack import FAILED, FINISHED, Arguments, encode_rows, parse_function, parse_pack, to_json
from cloudburst.state.ledger import DELETED, OVERTAKEN, RECORDED_ALREADY, BatchOutcome, Ledger
from cloudburst.worker import environment as cluster


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TaskTimeout inside the block after ``seconds``. RQ's own alarm (the job's timeout) is put back
    afterwards, less the time spent; where it would come first, it is left to fire. Main thread only (signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    job_remaining_s, _ = signal.getitimer(signal.ITIMER_REAL)
    if job_remaining_s and job_remaining_s <= seconds:
        yield
        return
    previous = signal.getsignal(signal.SIGALRM)

    def expire(signum: int, frame: Any) -> None:
        raise TaskTimeout(f"the task ran past its timeout of {seconds:g} s")

    started = time.monotonic()
    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if job_remaining_s:
            signal.setitimer(signal.ITIMER_REAL, max(job_remaining_s - (time.monotonic() - started), 0.001))


def resolve(name: str) -> Callable[..., Any]:
    """The function ``module:function`` names, imported in this process (raises what importing raises)."""
    module_name, function_name = parse_function(name)
    module = importlib.import_module(module_name)
    function = getattr(module, function_name, None)
    if function is None:
        raise AttributeError(f"module {module_name!r} has no function {function_name!r}")
    if not callable(function):
        raise TypeError(f"{module_name}.{function_name} is a {type(function).__name__}, not a function")
    return function


def last_line(error: BaseException) -> str:
    """The exception as a traceback's last line says it, by its class's own name."""
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[-1]}" if message else type(error).__name__


def run_task(function: Callable[..., Any], arguments: Arguments, timeout_s: float) -> dict[str, Any]:
    """One task's row: its return value as JSON, or its failure."""
    started = time.perf_counter()
    try:
        with time_limit(timeout_s):
            value = function(**arguments) if isinstance(arguments, dict) else function(*arguments)
        try:
            row = {"status": FINISHED, "value": to_json(value)}
        except (TypeError, ValueError) as error:
            row = {"status": FAILED, "error": f"the return value is not JSON: {error}"}
    except (Exception, SystemExit) as error:  # the task's own failure: recorded, the worker serves on
        row = {"status": FAILED, "error": last_line(error), "traceback": traceback.format_exc()}
    return {**row, "seconds": time.perf_counter() - started}


def run_pack(document: dict[str, Any]) -> dict[str, Any]:
    """Run every task of a pack, store their rows, record the pack; returns the pack's counts."""
    current = get_current_job()
    try:
        pack = parse_pack(document)
    except InputError:  # not a pack: the same every time, so not retried
        if current is not None:
            current.retries_left = 0
        raise
    worker = socket.gethostname()
    store = cluster.results_store()
    ledger = Ledger(current.connection) if current is not None and store is not None else None
    token = ledger.begin(pack.taskset, pack.batch) if ledger is not None else None
    if token is not None and token <= 0:
        return {"superseded": RECORDED_ALREADY if token == 0 else DELETED, "worker": worker}
    refusal = task_refusal(pack.function, cluster.declared_callables())  # before anything of it is imported
    try:
        function = None if refusal is not None else resolve(pack.function)
    except Exception as error:  # noqa: BLE001 - every task of the pack fails with why, and the worker serves on
        refusal = f"cannot call {pack.function}: {last_line(error)}"
        trace = traceback.format_exc()
    else:
        trace = ""
    if function is None:
        rows: list[dict[str, Any]] = [
            {"task": index, "status": FAILED, "error": refusal, "traceback": trace, "seconds": 0.0, "worker": worker}
            for index, _ in pack.tasks]
    else:
        rows = [{"task": index, **run_task(function, arguments, pack.timeout_s), "worker": worker}
                for index, arguments in pack.tasks]
    if ledger is not None and token is not None and not ledger.is_latest(pack.taskset, pack.batch, token):
        return {"superseded": DELETED if ledger.deleted(pack.taskset) else OVERTAKEN, "worker": worker}
    if store is not None:
        store.put_batch(pack.taskset, pack.batch, None, encode_rows(rows))
    outcome = BatchOutcome(finished=[row["task"] for row in rows if row["status"] == FINISHED],
                           failed={row["task"]: row["error"] for row in rows if row["status"] == FAILED})
    if ledger is not None and ledger.record_batch(pack.taskset, pack.batch, outcome, token) is None:
        if ledger.deleted(pack.taskset):
            if store is not None:  # deleted while the rows went up: they go too
                store.delete(pack.taskset)
            return {"superseded": DELETED, "worker": worker}
        return {"superseded": OVERTAKEN, "worker": worker}
    return {"finished": len(outcome.finished), "failed": len(outcome.failed), "worker": worker}
