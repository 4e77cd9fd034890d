"""The `cloudburst` command: submit an ensemble, follow it, and read its results.

Exit codes: 0 done; 1 the ensemble has failed members (status, submit --wait); 2 bad input (scenario, model,
arguments); 3 a service does not answer or refuses the credentials; 130 interrupted (the ensemble runs on).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from cloudburst.config import ConfigError, Settings
from cloudburst.ensembles import Cluster, Progress, ServiceError
from cloudburst.queue import JobPolicy, enqueue_members, job_id
from cloudburst.scenarios import ScenarioError, generate

EXIT_FAILED, EXIT_INPUT, EXIT_SERVICE, EXIT_INTERRUPTED = 1, 2, 3, 130
UNITS = {"pressure": "pressure (m)", "head": "head (m)", "demand": "demand (m³/s)", "flowrate": "flow (m³/s)",
         "velocity": "velocity (m/s)", "headloss": "headloss", "quality": "quality"}


class InputError(ValueError):
    pass


def load_model(path: Path) -> tuple[bytes, Any]:
    import wntr
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    data = path.read_bytes()
    try:
        return data, wntr.network.WaterNetworkModel(str(path))
    except Exception as error:  # wntr's reader raises many types for a bad file
        raise InputError(f"{path} is not a valid EPANET .inp file: {error}") from None


def load_scenario(path: Path) -> dict[str, Any]:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such scenario file") from None
    except yaml.YAMLError as error:
        raise InputError(f"{path} is not valid YAML: {error}") from None


def bar(progress: Progress, started: float, width: int = 30) -> str:
    done = progress.finished + progress.failed
    filled = int(width * done / progress.members) if progress.members else width
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = f"{(progress.members - done) / rate:5.0f} s" if rate > 0 and done < progress.members else "    -"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{progress.members}  finished {progress.finished}  "
            f"failed {progress.failed}  running {progress.running}  {rate:6.1f}/s  ETA {eta}")


def follow(cluster: Cluster, name: str, stream=sys.stderr) -> Progress:
    started = time.monotonic()
    live = stream.isatty()

    def report(progress: Progress) -> None:
        line = bar(progress, started)
        stream.write(("\r" + line) if live else (line + "\n"))
        stream.flush()

    try:
        final = cluster.wait(name, report, interval_s=1.0 if live else 5.0)
    except KeyboardInterrupt:
        stream.write(f"\nleft running; follow it with: cloudburst status {name}\n")
        raise
    if live:
        stream.write("\n")
    return final


def cmd_submit(args: argparse.Namespace, settings: Settings, cluster_factory: Callable[[], Cluster]) -> int:
    scenario = load_scenario(Path(args.scenario))
    data, model = load_model(Path(args.model))
    sha256 = hashlib.sha256(data).hexdigest()
    placeholder = {"url": f"{settings.cluster_files_url}/models/{sha256}.inp", "sha256": sha256}
    if isinstance(scenario, dict):  # results go to the cluster's database unless the scenario names another
        scenario = {**scenario, "output": {"db": settings.influx_db, **(scenario.get("output") or {})}}
    name = args.name or f"{scenario.get('ensemble', 'ensemble') if isinstance(scenario, dict) else 'ensemble'}-" \
                        f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    ensemble = generate(scenario, model, placeholder, name)  # every check before anything is uploaded or enqueued
    cluster = cluster_factory()
    if ensemble.name in cluster.names():
        raise InputError(f"ensemble {ensemble.name!r} exists; give another --name")
    url, uploaded = cluster.upload_model(data, sha256)
    assert url == placeholder["url"]
    cluster.record(ensemble.name, len(ensemble.documents), ensemble.seed, scenario, sha256)
    policy = JobPolicy(timeout_s=args.timeout)
    started = time.monotonic()
    count = enqueue_members(cluster.queue, ensemble.documents, policy)
    print(f"model {sha256[:12]} {'uploaded' if uploaded else 'already on the cluster'}; {count} members enqueued in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    print(ensemble.name)
    if args.wait:
        final = follow(cluster, ensemble.name)
        return EXIT_FAILED if final.failed else 0
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings, cluster_factory: Callable[[], Cluster]) -> int:
    cluster = cluster_factory()
    info = cluster.info(args.ensemble)
    progress = cluster.progress(args.ensemble)
    print(f"{args.ensemble}: {info.get('state')} {info.get('created_at')}, model {info['model_sha256'][:12]}, "
          f"seed {info['seed']}")
    print(f"members {progress.members}  finished {progress.finished}  failed {progress.failed}  "
          f"running {progress.running}  queued {progress.queued}")
    if progress.failed:
        for _, row in cluster.failures(args.ensemble).head(10).iterrows():
            print(f"  member {row['member']}: {row['error']}")
    return EXIT_FAILED if progress.failed else 0


def cmd_retry(args: argparse.Namespace, settings: Settings, cluster_factory: Callable[[], Cluster]) -> int:
    cluster = cluster_factory()
    info = cluster.info(args.ensemble)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.inp"
        path.write_bytes(cluster.fetch_model(info["model_sha256"]))
        _, model = load_model(path)
    placeholder = {"url": f"{cluster.settings.cluster_files_url}/models/{info['model_sha256']}.inp",
                   "sha256": info["model_sha256"]}
    ensemble = generate(json.loads(info["scenario"]), model, placeholder, args.ensemble)
    waiting = cluster.queued_ids(args.ensemble) | set(cluster.running(args.ensemble))
    finished = cluster.finished_members(args.ensemble)
    again = [document for document in ensemble.documents if document["member"] not in finished
             and job_id(args.ensemble, document["member"]) not in waiting]
    count = enqueue_members(cluster.queue, again, JobPolicy(timeout_s=args.timeout))
    cluster.redis.hset(f"cloudburst:ensemble:{args.ensemble}", "state", "retried")
    print(f"{count} members re-enqueued (failed or missing); {len(finished)} finished, {len(waiting)} queued or running")
    if args.wait and count:
        return EXIT_FAILED if follow(cluster, args.ensemble).failed else 0
    return 0


def cmd_cancel(args: argparse.Namespace, settings: Settings, cluster_factory: Callable[[], Cluster]) -> int:
    removed = cluster_factory().cancel(args.ensemble)
    print(f"{removed} queued members removed; members already running finish")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings, cluster_factory: Callable[[], Cluster]) -> int:
    cluster = cluster_factory()
    print(f"{'ensemble':<32} {'created':<26} {'members':>8} {'finished':>9} {'failed':>7}  state")
    for name in cluster.names():
        info, progress = cluster.info(name), cluster.progress(name)
        print(f"{name:<32} {info['created_at']:<26} {info['members']:>8} {progress.finished:>9} "
              f"{progress.failed:>7}  {info['state']}")
    return 0


def cmd_results(args: argparse.Namespace, settings: Settings, cluster_factory: Callable[[], Cluster]) -> int:
    kind, _, element = args.element.partition(":")
    if kind not in ("node", "link") or not element:
        raise InputError(f"--element takes node:ID or link:ID, not {args.element!r}")
    table = cluster_factory().percentiles(args.ensemble, kind, element, args.attribute)
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.parquet:
        table.to_parquet(args.parquet, index=False)
    if args.plot:
        plot_fan(table, f"{args.ensemble}: {args.attribute} at {kind} {element}", args.attribute, args.plot)
    if not (args.csv or args.parquet or args.plot):
        print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    else:
        written = ", ".join(str(path) for path in (args.csv, args.parquet, args.plot) if path)
        print(f"{len(table)} time steps across up to {int(table['members'].max())} members written to {written}")
    return 0


def plot_fan(table, title: str, attribute: str, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(10, 5))
    hours = (table["time"] - table["time"].iloc[0]).dt.total_seconds() / 3600
    axes.fill_between(hours, table["min"], table["max"], color="tab:blue", alpha=0.15, label="min-max")
    axes.fill_between(hours, table["p5"], table["p95"], color="tab:blue", alpha=0.35, label="p5-p95")
    axes.plot(hours, table["p50"], color="tab:blue", label="median")
    axes.set_xlabel("hours from the start of the run")
    axes.set_ylabel(UNITS.get(attribute, attribute))
    axes.set_title(f"{title} ({int(table['members'].max())} members)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def cmd_summary(args: argparse.Namespace, settings: Settings, cluster_factory: Callable[[], Cluster]) -> int:
    table = cluster_factory().summaries(args.ensemble)
    if args.csv:
        table.to_csv(args.csv, index=False)
    columns = [c for c in ("member", "pressure_min", "pressure_min_node", "nodes_below_threshold", "pressure_mean",
                           "pressure_max", "water_service_availability", "quality_max", "age_max_h") if c in table]
    print(f"{len(table)} members, worst (lowest minimum pressure) first:")
    print(table[columns].head(args.top).to_string(index=False, float_format=lambda value: f"{value:.2f}"))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cloudburst", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="draw an ensemble from a scenario file and enqueue it")
    submit.add_argument("model", help="the base EPANET model (.inp)")
    submit.add_argument("scenario", help="the scenario file (YAML)")
    submit.add_argument("--wait", action="store_true", help="show progress until every member is done")
    submit.add_argument("--name", help="the ensemble's ID (default: the scenario's name and the time)")
    submit.add_argument("--timeout", type=int, default=3600, help="seconds a member may run (default 3600)")
    submit.set_defaults(run=cmd_submit)
    for name, function, text in (("status", cmd_status, "progress and failures of an ensemble"),
                                 ("cancel", cmd_cancel, "remove an ensemble's queued members"),
                                 ("retry", cmd_retry, "re-enqueue the failed or missing members")):
        command = commands.add_parser(name, help=text)
        command.add_argument("ensemble")
        if name == "retry":
            command.add_argument("--wait", action="store_true")
            command.add_argument("--timeout", type=int, default=3600)
        command.set_defaults(run=function)
    commands.add_parser("list", help="the ensembles submitted").set_defaults(run=cmd_list)
    results = commands.add_parser("results", help="percentiles across members per time step")
    results.add_argument("ensemble")
    results.add_argument("--element", required=True, help="node:ID or link:ID")
    results.add_argument("--attribute", default="pressure")
    results.add_argument("--csv")
    results.add_argument("--parquet")
    results.add_argument("--plot", help="write a fan chart (PNG)")
    results.set_defaults(run=cmd_results)
    summary = commands.add_parser("summary", help="per-member summary metrics, worst first")
    summary.add_argument("ensemble")
    summary.add_argument("--top", type=int, default=20)
    summary.add_argument("--csv")
    summary.set_defaults(run=cmd_summary)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.load()
        return args.run(args, settings, lambda: Cluster(settings).checked())
    except (InputError, ScenarioError, LookupError) as error:
        problems = getattr(error, "problems", None) or [str(error)]
        for problem in problems:
            print(f"cloudburst: {problem}", file=sys.stderr)
        return EXIT_INPUT
    except (ConfigError, ServiceError) as error:
        print(f"cloudburst: {error}", file=sys.stderr)
        return EXIT_SERVICE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
