"""Task sets: any function of the pushed env, called once per task, in packs of tasks per queue job.

Owned here, as ``batches`` owns an ensemble's batch document and ``resultformat`` its results:

- the function a task set calls (``module:function``; RQ's own ``module.function`` is read too);
- a task's arguments: a JSON list (positional) or object (keyword), or another JSON value (the one argument), one
  per line of a ``.jsonl`` file;
- the pack document (schema ``cloudburst.tasks/1``): one queue job's tasks, ``tasks: [[index, arguments] ...]``,
  named like a batch (first and last task, retry round), so the ledger, the queue and the store treat a pack as
  they treat a batch of members;
- the pack's results file (Parquet, a row per task): ``task``, ``status``, ``value`` (the return value as JSON),
  ``error`` (the exception's last line), ``traceback``, ``seconds``, ``worker``.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudburst.errors import InputError
from cloudburst.schema.batch import BATCH_PATTERN, batch_name, split
from cloudburst.schema.defaults import ENSEMBLE_PATTERN
from cloudburst.schema.resultformat import decode, encode

SCHEMA = "cloudburst.tasks/1"
FINISHED, FAILED = "finished", "failed"
COLUMNS = ("task", "status", "value", "error", "traceback", "seconds", "worker")
DEFAULT_TIMEOUT_S = 3600
# A pack holds at most this many tasks: packing amortises the queue's cost per job over trivial tasks, and a
# pack rerun (its worker died) repeats at most this many.
MAX_PACK_TASKS = 500
# Tasks are spread so each listening worker process gets about this many packs: enough to even out uneven tasks.
PACKS_PER_WORKER = 4
_MODULE = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_FUNCTION = r"[A-Za-z_][A-Za-z0-9_]*"
Arguments = list[Any] | dict[str, Any]


def parse_function(text: str) -> tuple[str, str]:
    """``module:function`` (or RQ's ``module.function``) -> (module, function)."""
    module, colon, function = text.partition(":")
    if not colon:
        module, _, function = text.rpartition(".")
    if not (re.fullmatch(_MODULE, module or "") and re.fullmatch(_FUNCTION, function or "")):
        raise InputError(f"a function is named module:function (e.g. swmm_worker:run_member), not {text!r}")
    return module, function


def function_name(module: str, function: str) -> str:
    return f"{module}:{function}"


def check_arguments(arguments: Arguments, where: str) -> Arguments:
    """A task's arguments (a list or a dict, as ``as_arguments`` makes them), JSON all the way down."""
    if isinstance(arguments, dict) and not all(isinstance(key, str) for key in arguments):
        raise InputError(f"{where}: keyword arguments are named by strings")
    try:
        json.dumps(arguments, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise InputError(f"{where}: the arguments are not JSON ({error})") from None
    return arguments


def as_arguments(item: Any, where: str) -> Arguments:
    """A task's arguments from one item (a line, an element of ``map``'s iterable): a list or tuple (positional), a
    dict (keyword), or any other JSON value (the one positional argument, as ``multiprocessing.Pool.map`` calls)."""
    if isinstance(item, tuple):
        item = list(item)
    elif not isinstance(item, (list, dict)):
        item = [item]
    return check_arguments(item, where)


def read_task_lines(lines: Iterable[str], source: str, most_problems: int = 10) -> list[Arguments]:
    """Every task of a JSON-lines file (blank lines skipped); InputError naming each bad line (up to
    ``most_problems``) and nothing read when any is bad."""
    tasks: list[Arguments] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            tasks.append(as_arguments(json.loads(line.rstrip("\r\n")), f"{source} line {number}"))
        except json.JSONDecodeError as error:
            problems.append(f"{source} line {number}: not JSON ({error.msg} at column {error.colno})")
        except InputError as error:
            problems.extend(error.problems)
        if len(problems) >= most_problems:
            problems.append(f"{source}: stopped reading after {most_problems} problems")
            break
    if problems:
        raise InputError(problems)
    if not tasks:
        raise InputError(f"{source} holds no task: give one JSON list or object per line")
    return tasks


def pack_size(tasks: int, workers: int, per_job: int | None = None) -> int:
    """Tasks per queue job: ``per_job`` when given, else enough that each listening worker process gets about
    PACKS_PER_WORKER packs, at most MAX_PACK_TASKS."""
    if per_job is not None:
        if per_job < 1:
            raise InputError(f"tasks per job is a whole number > 0, not {per_job}")
        return per_job
    return max(1, min(MAX_PACK_TASKS, math.ceil(tasks / (max(workers, 1) * PACKS_PER_WORKER))))


class TaskPack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: Literal["cloudburst.tasks/1"] = Field(alias="schema")
    taskset: str = Field(pattern=f"^{ENSEMBLE_PATTERN}$")
    batch: str = Field(pattern=BATCH_PATTERN)
    function: str
    timeout_s: int = Field(gt=0)
    tasks: list[tuple[int, list[Any] | dict[str, Any]]] = Field(min_length=1)


def parse_pack(document: Any) -> TaskPack:
    try:
        pack = TaskPack.model_validate(document)
    except ValidationError as error:
        raise InputError([f"$.{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()]) \
            from None
    parse_function(pack.function)
    return pack


def make_pack(name: str, function: str, tasks: Sequence[tuple[int, Arguments]], timeout_s: int,
              round_: int = 0) -> dict[str, Any]:
    return {"schema": SCHEMA, "taskset": name, "batch": batch_name(tasks[0][0], tasks[-1][0], round_),
            "function": function, "timeout_s": timeout_s, "tasks": [[index, arguments] for index, arguments in tasks]}


def packs(name: str, function: str, tasks: Iterable[tuple[int, Arguments]], size: int, timeout_s: int,
          round_: int = 0) -> Iterator[dict[str, Any]]:
    for part in split(tasks, size):
        yield make_pack(name, function, part, timeout_s, round_)


def to_json(value: Any) -> str:
    """A return value as JSON; numpy scalars and arrays become numbers and lists. TypeError when it is not JSON."""
    def numpy_values(item: Any) -> Any:
        if hasattr(item, "tolist") and type(item).__module__ == "numpy":
            return item.tolist()
        raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
    return json.dumps(value, default=numpy_values, separators=(",", ":"))


def encode_rows(rows: Sequence[dict[str, Any]]) -> bytes:
    """A pack's results file."""
    table = pa.table({"task": pa.array([row["task"] for row in rows], pa.int64()),
                      **{column: pa.array([row.get(column) for row in rows], pa.string())
                         for column in ("status", "value", "error", "traceback", "worker")},
                      "seconds": pa.array([row.get("seconds") for row in rows], pa.float64())})
    return encode(table.select(list(COLUMNS)))


def decode_rows(data: bytes) -> pd.DataFrame:
    frame: pd.DataFrame = decode(data).to_pandas()
    return frame


def results_frame(rows: pd.DataFrame, traceback: bool = False) -> pd.DataFrame:
    """Every task's row in task order: the return value decoded (``value``), or, when every finished task returned
    an object, a column per key; ``error`` on failed tasks; ``traceback`` when asked for."""
    rows = rows.sort_values("task").drop_duplicates("task", keep="last").reset_index(drop=True)
    values = [json.loads(text) if isinstance(text, str) else None for text in rows["value"]]
    finished = [value for value, status in zip(values, rows["status"]) if status == FINISHED]
    frame = rows[["task", "status"]].copy()
    if finished and all(isinstance(value, dict) for value in finished):
        expanded = pd.DataFrame([value if isinstance(value, dict) else {} for value in values], index=rows.index)
        expanded.columns = [f"value.{key}" if key in COLUMNS else str(key) for key in expanded.columns]
        frame = pd.concat([frame, expanded], axis=1)
    else:
        frame["value"] = values
    frame["error"] = rows["error"]
    frame["seconds"] = rows["seconds"]
    frame["worker"] = rows["worker"]
    if traceback:
        frame["traceback"] = rows["traceback"]
    return frame
