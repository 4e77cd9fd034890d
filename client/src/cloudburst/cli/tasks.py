"""`cloudburst tasks ...` and `cloudburst upload`: your own functions on the cluster, over ``cloudburst.taskset``.

    cloudburst upload files/models/stormwater.inp            # prints the file's sha256, for tasks to name
    cloudburst tasks submit swmm_worker:run_member storm.jsonl --name storm-1 --wait
    cloudburst tasks status storm-1                          # (no name: every task set, and jobs enqueued directly)
    cloudburst tasks results storm-1 --parquet storm.parquet
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cloudburst.api.progress import Progress, TerminalDisplay
from cloudburst.errors import InputError

if TYPE_CHECKING:
    from cloudburst.api.client import Client
    from cloudburst.api.taskset import TaskSet

EXIT_FAILED = 1


def _emit(args: argparse.Namespace, data: object, text: str) -> None:
    print(json.dumps(data, default=str) if getattr(args, "json", False) else text)


def _follow(tasks: "TaskSet", args: argparse.Namespace) -> Progress:
    try:
        return tasks.wait(progress=not args.quiet, display=None if args.quiet else TerminalDisplay())
    except KeyboardInterrupt:
        print(f"\nleft running; follow it with: cloudburst tasks status {tasks.name}", file=sys.stderr)
        raise


def read_task_file(path: str) -> list:
    try:
        with open(path, encoding="utf-8") as lines:
            from cloudburst.schema.taskpack import read_task_lines  # pandas: only when a task file is read
            return read_task_lines(lines, Path(path).name)
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not text (UTF-8): give one JSON list or object per line") from None


def cmd_submit(args: argparse.Namespace, client: "Client") -> int:
    from cloudburst.schema.taskpack import parse_function
    parse_function(args.function)  # before reading a file that may be large
    tasks = client.map(args.function, read_task_file(args.arguments), name=args.name, timeout_s=args.timeout,
                       per_job=args.per_job)
    count = tasks.info().tasks
    if not args.quiet:
        print(f"{count} tasks enqueued, {tasks.per_job} per job, in {tasks.enqueue_s:.1f} s", file=sys.stderr)
    final = _follow(tasks, args) if args.wait else None
    _emit(args, {"taskset": tasks.name, "tasks": count, **({"progress": final.as_dict()} if final else {})},
          tasks.name)
    return EXIT_FAILED if final is not None and final.failed else 0


def status_lines(tasks: "TaskSet") -> tuple[dict, str, int]:
    record, progress = tasks.info(), tasks.status()
    failures = tasks.failures() if progress.failed else None
    from cloudburst.api.progress import shown_state
    state = shown_state(tasks.stamp(record), progress)
    lines = [f"{record.name}: {state}, submitted {record.created_at}, {record.function}, timeout {record.timeout_s} s",
             f"tasks {progress.members}  finished {progress.finished}  failed {progress.failed}  "
             f"running {progress.running}  queued {progress.queued}"]
    if failures is not None:
        lines += [f"  task {row.task}: {row.error}" for row in failures.head(10).itertuples()]
    data = {"taskset": record.name, "state": state, "created_at": record.created_at,
            "function": record.function, **progress.as_dict(),
            "failures": [] if failures is None else failures.to_dict("records")}
    return data, "\n".join(lines), EXIT_FAILED if progress.failed else 0


def cmd_status(args: argparse.Namespace, client: "Client") -> int:
    if args.taskset:
        data, text, code = status_lines(client.taskset(args.taskset))
        _emit(args, data, text)
        return code
    table, others = client.tasksets(), client.other_jobs()
    lines = [f"{'task set':<32} {'function':<32} {'tasks':>7} {'finished':>9} {'failed':>7} {'running':>8}  state"]
    lines += [f"{row.taskset:<32} {row.function:<32} {row.tasks:>7} {row.finished:>9} {row.failed:>7} "
              f"{row.running:>8}  {row.state}" for row in table.itertuples()]
    lines += ["", f"jobs enqueued with RQ directly: {len(others)}"]
    lines += [f"  {row.job:<38} {row.function:<32} {row.status:<9} "
              f"{str(row.error) if row.status == 'failed' else json.dumps(row.result, default=str)[:60]}"
              for row in others.itertuples()]
    _emit(args, {"tasksets": table.to_dict("records"), "other_jobs": others.to_dict("records")}, "\n".join(lines))
    return 0


def cmd_results(args: argparse.Namespace, client: "Client") -> int:
    tasks = client.taskset(args.taskset)
    table = tasks.results(traceback=args.traceback)
    if args.jsonl:
        table.to_json(args.jsonl, orient="records", lines=True)
    if args.parquet:
        table.to_parquet(args.parquet, index=False)
    written = [path for path in (args.jsonl, args.parquet) if path]
    if written:
        print(f"{len(table)} tasks written to {', '.join(written)}")
    else:
        print(table.to_string(index=False))
    return 0


def cmd_cancel(args: argparse.Namespace, client: "Client") -> int:
    print(f"{client.taskset(args.taskset).cancel()} queued tasks removed; tasks already running finish")
    return 0


def cmd_retry(args: argparse.Namespace, client: "Client") -> int:
    tasks = client.taskset(args.taskset)
    counts = tasks.retry(per_job=args.per_job)
    print(f"{counts['enqueued']} tasks re-enqueued (failed or missing); {counts['finished']} finished, "
          f"{counts['waiting']} queued or running")
    if args.wait and counts["enqueued"]:
        return EXIT_FAILED if _follow(tasks, args).failed else 0
    return 0


def cmd_upload(args: argparse.Namespace, client: "Client") -> int:
    sha256 = client.upload(args.file)
    _emit(args, {"file": args.file, "sha256": sha256}, sha256)
    return 0


def add_commands(commands: argparse._SubParsersAction, delete_command) -> None:
    """``tasks`` (its own subcommands) and ``upload`` on the top-level parser's subcommands."""
    upload = commands.add_parser("upload", help="put a file (e.g. a model your tasks read) on the cluster; prints "
                                 "its sha256", description="put a file on the cluster's file service")
    upload.add_argument("file")
    upload.add_argument("--json", action="store_true", help="print JSON instead of text")
    upload.set_defaults(run=cmd_upload)
    group = commands.add_parser("tasks", help="your own functions on the cluster: submit, follow, collect",
                                description="task sets: any function of the pushed env, once per line of arguments")
    sub = group.add_subparsers(dest="tasks_command", required=True, metavar="TASKS_COMMAND")

    def command(name: str, text: str, run, json_output: bool = False, taskset: str | None = "required"):
        parser = sub.add_parser(name, help=text, description=text)
        if taskset == "required":
            parser.add_argument("taskset", help="the task set's name")
        elif taskset == "optional":
            parser.add_argument("taskset", nargs="?", help="the task set's name (default: all, and direct jobs)")
        if json_output:
            parser.add_argument("--json", action="store_true", help="print JSON instead of text")
        parser.set_defaults(run=run)
        return parser

    submit = command("submit", "enqueue a task per line of a JSON-lines file", cmd_submit, True, None)
    submit.add_argument("function", help="module:function in the pushed env, e.g. stormwater:run_member")
    submit.add_argument("arguments", help="ARGS.jsonl: per line, a JSON list (positional) or object (keyword)")
    submit.add_argument("--name", help="the task set's name (default: the function's name and the time)")
    submit.add_argument("--wait", action="store_true", help="show progress until every task is done")
    submit.add_argument("--timeout", type=int, default=3600, help="seconds a task may run (default 3600)")
    submit.add_argument("--per-job", type=int, help="tasks per queue job (default: about 4 jobs per worker "
                                                    "process, at most 500 tasks each)")
    command("status", "progress and failures of a task set (no name: every task set, and jobs enqueued "
                      "with RQ directly)", cmd_status, True, "optional")
    results = command("results", "every task's return value or error", cmd_results)
    results.add_argument("--jsonl", help="write the table as JSON lines")
    results.add_argument("--parquet", help="write the table as Parquet")
    results.add_argument("--traceback", action="store_true", help="add each failed task's whole traceback")
    command("cancel", "remove a task set's queued tasks", cmd_cancel)
    retry = command("retry", "re-enqueue the failed or missing tasks", cmd_retry)
    retry.add_argument("--wait", action="store_true", help="show progress until every task is done")
    retry.add_argument("--per-job", type=int, help="tasks per queue job")
    delete = command("delete", "remove a task set: queued tasks, stored results, records", delete_command)
    delete.add_argument("--yes", action="store_true", help="do not ask")
    command("list", "the task sets submitted, with their progress", cmd_status, True, None).set_defaults(taskset=None)
