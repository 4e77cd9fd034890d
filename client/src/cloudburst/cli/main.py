"""The `cloudburst` command: submit an EPANET ensemble (or a task set of your own function) to a CloudBurst
cluster, follow it, and read its results.

A thin layer over ``cloudburst``'s API: it parses arguments, calls the API and prints.

Exit codes: 0 done; 1 the ensemble has failed members (or the task set failed tasks) (status, submit --wait);
2 bad input (scenario, model, arguments); 3 a service does not answer or refuses the credentials; 130 interrupted
(the ensemble runs on).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cloudburst.cli import tasks as taskcli
from cloudburst.cli.completion import bash_completion
from cloudburst.errors import InputError, ServiceError
from cloudburst.version import __version__

# The CLI starts in a fraction of a second: what a command needs (pandas, wntr, matplotlib through the API) is
# imported by that command, not here.
if TYPE_CHECKING:
    from cloudburst.api.client import Client
    from cloudburst.api.ensemble import Ensemble
    from cloudburst.api.progress import Progress
    from cloudburst.api.studies import StudyRun
    from cloudburst.api.taskset import TaskSet

EXIT_FAILED, EXIT_INPUT, EXIT_SERVICE, EXIT_INTERRUPTED = 1, 2, 3, 130
SUMMARY_COLUMNS = ("member", "pressure_min", "pressure_min_node", "nodes_below_threshold", "pressure_mean",
                   "pressure_max", "water_service_availability", "quality_max", "age_max_h")


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print JSON with --json, the text otherwise."""
    print(json.dumps(data, default=str) if getattr(args, "json", False) else text)


def follow(ensemble: Ensemble | TaskSet, args: argparse.Namespace) -> Progress:
    from cloudburst.api.progress import TerminalDisplay
    try:
        return ensemble.wait(progress=not args.quiet, display=None if args.quiet else TerminalDisplay())
    except KeyboardInterrupt:
        print(f"\nleft running; follow it with: cloudburst status {ensemble.name}", file=sys.stderr)
        raise


def cmd_submit(args: argparse.Namespace, client: Client) -> int:
    if args.check:
        return checked_submission(args, client)
    from cloudburst.api.ensemble import Alternatives
    from cloudburst.api.studies import StudyRun
    ensemble = client.submit(args.model, args.scenario, name=args.name, start=args.start, timeout_s=args.timeout)
    if isinstance(ensemble, StudyRun):
        return submitted_study(args, ensemble)
    if isinstance(ensemble, Alternatives):
        names = [member.name for member in ensemble]
        if not args.quiet:
            print(f"{len(names)} alternatives enqueued: {', '.join(names)}; compare them with: cloudburst compare "
                  f"{args.name or names[0].rsplit('.', 1)[0]}", file=sys.stderr)
        finals = [follow(member, args) for member in ensemble] if args.wait else []
        emit(args, {"ensembles": names, **({"progress": [final.as_dict() for final in finals]} if finals else {})},
             "\n".join(names))
        return EXIT_FAILED if any(final.failed for final in finals) else 0
    members = ensemble.info().members
    if not args.quiet:
        print(f"model {'uploaded' if ensemble.uploaded else 'already on the cluster'}; {members} members enqueued "
              f"in {ensemble.enqueue_s:.1f} s", file=sys.stderr)
    if ensemble.waves is not None:  # adaptive: --wait drives the waves; without it, `cloudburst adapt` does
        if not args.quiet:
            print(f"adaptive: {members} members in the first waves; "
                  + ("driving the waves until the targets are met" if args.wait
                     else f"run `cloudburst adapt {ensemble.name}` to drive the rest"), file=sys.stderr)
        state = follow_adaptive(args, ensemble) if args.wait else None
        emit(args, {"ensemble": ensemble.name, "members": ensemble.info().members, "uploaded": ensemble.uploaded,
                    **({"adaptive": state} if state else {})}, ensemble.name)
        return 0
    final = follow(ensemble, args) if args.wait else None
    emit(args, {"ensemble": ensemble.name, "members": members, "uploaded": ensemble.uploaded,
                **({"progress": final.as_dict()} if final else {})}, ensemble.name)
    return EXIT_FAILED if final is not None and final.failed else 0


def checked_submission(args: argparse.Namespace, client: Client) -> int:
    plan = client.check_submission(args.model, args.scenario, name=args.name, start=args.start)
    model = f"  model {plan['model_sha256'][:12]} " + ("already on the cluster" if plan["model_on_cluster"]
                                                      else "would be uploaded")
    if "study" in plan:
        lines = [f"{plan['study']}: every check passed; nothing was uploaded or enqueued",
                 f"  {plan['type'].replace('_', '-')} study: {plan['members']:,} members, {plan['tasks']:,} tasks",
                 model]
    elif "alternatives" in plan:
        lines = [f"{plan['alternatives']}: every check passed; nothing was uploaded or enqueued"]
        lines += [f"  {variant['ensemble']}: members {variant['members']:,}, batches {variant['batches']:,} of up to "
                  f"{variant['members_per_batch']:,} members" for variant in plan["ensembles"]]
        lines.append(model)
    else:
        lines = ensemble_check_lines(plan) + [model]
    emit(args, plan, "\n".join(lines))
    return 0


def ensemble_check_lines(plan: dict) -> list[str]:
    budget = plan["budget"]
    first = plan["members_enqueued_first"]
    lines = [f"{plan['ensemble']}: every check passed; nothing was uploaded or enqueued",
             f"  members {plan['members']:,}" + (f" ({first:,} enqueued first: adaptive waves)"
                                                 if first != plan["members"] else ""),
             f"  batches {plan['batches']:,} of up to {plan['members_per_batch']:,} members",
             f"  series values {plan['series_values']:,} (budget {int(budget['values']):,})",
             f"  results store about {human_bytes(plan['store_bytes_estimate'])} (budget "
             f"{human_bytes(int(budget['bytes']))})"]
    return lines


def submitted_study(args: argparse.Namespace, study: StudyRun) -> int:
    from cloudburst.api.studies import FireFlow
    tasks = study.taskset.info().tasks
    if not args.quiet:
        command = "fireflow" if isinstance(study, FireFlow) else "segments"
        print(f"{study.kind.replace('_', '-')} study {study.name}: {tasks} tasks enqueued; its answers: cloudburst "
              f"{command} {study.name}", file=sys.stderr)
    final = follow(study.taskset, args) if args.wait else None
    emit(args, {"study": study.name, "tasks": tasks, **({"progress": final.as_dict()} if final else {})}, study.name)
    return EXIT_FAILED if final is not None and final.failed else 0


def study_of(client: Client, name: str, kind: type) -> Any:
    study = client.study(name)
    if not isinstance(study, kind):
        raise InputError(f"{name} is a {study.kind.replace('_', '-')} study")
    return study


def cmd_segments(args: argparse.Namespace, client: Client) -> int:
    from cloudburst.api.studies import Segments
    study = study_of(client, args.ensemble, Segments)
    criticality = study.criticality()
    if args.csv:
        criticality.to_csv(args.csv)
    if args.members_csv:
        study.table().to_csv(args.members_csv, index=False)
    lines = [f"{'segment':>8} {'unserved m3 (mean)':>19} {'p95':>9} {'junctions dry':>14} {'hours':>6}  nodes"]
    for segment, row in criticality.head(args.top).iterrows():
        nodes = (row.nodes if len(row.nodes) <= 40 else row.nodes[:37] + "...") or "(pipes only)"
        lines.append(f"{segment:>8} {row.mean_unserved_m3:>19.1f} {row.p95_unserved_m3:>9.1f} "
                     f"{row.nodes_without_water:>14} {row.hours_without_water:>6.1f}  {nodes}")
    emit(args, criticality.reset_index().to_dict("records"), "\n".join(lines))
    return 0


def cmd_fireflow(args: argparse.Namespace, client: Client) -> int:
    from cloudburst.api.studies import FireFlow
    study = study_of(client, args.ensemble, FireFlow)
    table = study.table()
    availability = study.availability().sort_values("p5_lps")
    if args.csv:
        availability.to_csv(args.csv)
    if args.members_csv:
        table.to_csv(args.members_csv, index=False)
    held = table.loc[table["limited_by"] == "ceiling", "flow_lps"]
    ceiling = f" ({held.max():g} L/s held)" if len(held) else ""  # the search's ceiling_lps
    lines = [f"{'hydrant':<12} {'p5 L/s':>9} {'p50 L/s':>9} {'p95 L/s':>9} {'members':>8}"
             "  limited by (share of members)"]
    for hydrant, row in availability.head(args.top).iterrows():
        limits = ", ".join(f"{limit}{ceiling if limit == 'ceiling' else ''} {row[f'share_{limit}']:.0%}"
                           for limit in ("residual", "system", "ceiling", "unsolvable") if row[f"share_{limit}"])
        lines.append(f"{hydrant:<12} {row.p5_lps:>9.2f} {row.p50_lps:>9.2f} {row.p95_lps:>9.2f} {int(row.members):>8}  "
                     f"{limits}")
    left_out = study.left_out()
    if left_out:
        lines.append(f"below the system limit without a fire, so not counted elsewhere: {', '.join(left_out[:20])}")
    emit(args, availability.reset_index().to_dict("records"), "\n".join(lines))
    return 0


def cmd_sensors(args: argparse.Namespace, client: Client) -> int:
    from cloudburst.api.placement import value_key
    from cloudburst.api.studies import Contamination
    study = study_of(client, args.ensemble, Contamination)
    placement = study.place(args.k, args.objective, args.method, args.statistic, args.alpha)
    values = placement.values
    minimised = {"mean": f"expected {placement.objective}", "worst": f"worst {placement.objective}",
                 "cvar": f"CVaR({args.alpha:g}) of {placement.objective}"}[args.statistic]
    lines = [f"{len(placement.sensors)} sensors ({placement.method}, least {minimised}): "
             f"{' '.join(placement.sensors)}",
             f"{minimised} {placement.value:,.6g} ("
             + ("the best placement, proved" if placement.proven else
                f"no placement of {args.k} does better than {placement.bound:,.6g}") + ")",
             f"Z1 time to detection {values['z1_s'] / 60:,.1f} min, Z2 people affected {values['z2_people']:,.1f}, "
             f"Z3 contaminated demand {values['z3_m3']:,.2f} m3, Z4 detected {values['z4_detected']:.1%}; "
             f"mass {values['mass_kg']:,.3f} kg, extent {values['extent_m']:,.0f} m (means over the injections)",
             f"worst {placement.objective} {values[value_key('worst', placement.objective)]:,.6g}, "
             f"CVaR({args.alpha:g}) {values[value_key('cvar', placement.objective)]:,.6g}"]
    data: dict[str, Any] = {"sensors": placement.sensors, "method": placement.method,
                            "objective": placement.objective, "statistic": placement.statistic,
                            "cvar_alpha": placement.cvar_alpha, "value": placement.value, "bound": placement.bound,
                            "proven": placement.proven, "values": values}
    if args.curve:
        curve_method = "greedy" if args.statistic == "mean" else "mip"
        curve = study.trade_off(list(range(1, args.curve + 1)), args.objective, curve_method, args.statistic,
                                args.alpha)
        column = value_key(args.statistic, args.objective)
        lines += ["", f"{'k':>3} {column:>18} {'Z4 detected':>12}  sensors ({curve_method})"]
        lines += [f"{row['k']:>3} {row[column]:>18,.6g} {row['z4_detected']:>12.1%}  {row['sensors']}"
                  for row in curve.to_dict("records")]
        data["curve"] = curve.to_dict("records")
        if args.csv:
            curve.to_csv(args.csv, index=False)
    if args.plot:
        from cloudburst.cli.plots import plot_sensors
        harm = study.injection_table().groupby("node")[args.objective].mean()
        plot_sensors(study.model(), harm, placement.sensors,
                     f"{args.ensemble}: {len(placement.sensors)} sensors, mean undetected {args.objective} per "
                     "injection node", args.plot)
        lines.append(f"map: {args.plot}")
    emit(args, data, "\n".join(lines))
    return 0


def search_progress(args: argparse.Namespace, kind: str, best_of: Callable[[dict], str]) -> Callable[[dict], None]:
    """A design or calibration study's start checked (both --model and --scenario, or neither to resume), and its
    progress printer: a line every ``--every`` generations, with the best so far as ``best_of`` words it."""
    if (args.model is None) != (args.scenario is None):
        raise InputError(f"give both --model and --scenario to start a {kind} study (neither to resume one)")

    def progress(step: dict) -> None:
        if not args.quiet and (step["generation"] % args.every == 0 or step["generation"] == 1):
            print(f"generation {step['generation']:>5}  evaluations {step['evaluations']:>8,}  {best_of(step)}"
                  f"{'  (replayed from the store)' if step['replayed'] else ''}  {step['seconds']:.1f} s",
                  file=sys.stderr)
    return progress


def cmd_design(args: argparse.Namespace, client: Client) -> int:
    progress = search_progress(args, "design", lambda step: "best " + (
        f"{step['best_cost']:,.0f}" if step["best_cost"] < float("inf") else "none feasible yet"))
    design = client.design(args.model, args.scenario, name=args.ensemble, timeout_s=args.timeout,
                           on_generation=progress)
    status = design.status()
    best = design.best() if status["best_cost"] == status["best_cost"] else None
    if args.csv and best is not None:
        best.to_csv(args.csv, index=False)
    if args.plot:
        design.plot(args.plot)
    lines = [f"{design.name}: {status['state']}, {status['generations']} generations, {status['evaluations']:,} "
             f"evaluations ({status['algorithm']}, objectives {', '.join(status['objectives'])})"]
    if best is None:
        lines.append("no feasible design found")
    else:
        lines.append(f"best feasible cost {status['best_cost']:,.2f}")
        pressures = design.pressures()
        worst = pressures.iloc[int(pressures["pressure_min_m"].to_numpy().argmin())]
        lines.append(f"least pressure {worst.pressure_min_m:.2f} m at {worst.node} ({worst.loading})")
        lines.append(f"{'pipe':<10} {'diameter mm':>12} {'length m':>10} {'cost':>14}")
        lines += [f"{row.pipe:<10} " + (f"{'kept':>12}" if row.kept else f"{row.diameter_mm:>12.1f}")
                  + f" {row.length_m:>10.1f} {row.cost:>14,.2f}" + ("  (new pipe beside it)" if row.duplicate
                                                                      and not row.kept else "")
                  for row in best.itertuples()]
    if len(status["objectives"]) > 1:
        pareto = design.pareto()
        lines.append(f"Pareto front: {len(pareto)} designs from {pareto['cost'].min():,.0f} to "
                     f"{pareto['cost'].max():,.0f}" if len(pareto) else "Pareto front: empty")
    emit(args, {**status, "best": None if best is None else best.to_dict("records")}, "\n".join(lines))
    return 0


def cmd_calibrate(args: argparse.Namespace, client: Client) -> int:
    progress = search_progress(args, "calibration", lambda step: f"best objective {step['best_objective']:.6g}")
    fit = client.calibrate(args.model, args.scenario, name=args.ensemble, timeout_s=args.timeout,
                           on_generation=progress)
    status, fitted = fit.status(), fit.fitted()
    if args.csv:
        fit.residuals().to_csv(args.csv, index=False)
    if args.plot:
        fit.plot(args.plot)
    lines = [f"{fit.name}: {status['state']}, {status['generations']} generations, {status['evaluations']:,} "
             f"evaluations, objective {status['best_objective']:.6g}",
             f"{'unknown':<28} {'low':>6} {'high':>6} {'fitted':>9}  identifiable"]
    lines += [f"{row.unknown:<28} {row.low:>6.3g} {row.high:>6.3g} {row.value:>9.4f}  "
              + ("yes" if row.identifiable else "NO: the observations do not move with it")
              for row in fitted.itertuples()]
    emit(args, {**status, "fitted": fitted.to_dict("records")}, "\n".join(lines))
    return 0


def adaptive_lines(state: dict) -> list[str]:
    """An adaptive ensemble's members enqueued, why it stopped, and each target's interval."""
    stopped = f"stopped: {state['stopped']}" if state.get("stopped") else "running"
    lines = [f"adaptive: {state['enqueued']} of at most {state['cap']} members enqueued; {stopped}"]
    for item in state["intervals"]:
        lines.append(f"  {item['target']}: {item['estimate']:.3f} [{item['low']:.3f}, {item['high']:.3f}] "
                     f"{interval_sides(item)} over {item['members']} members (asked a half width of {item['wanted']}: "
                     f"{'met' if item['precise'] else 'not yet'})")
    return lines


def interval_sides(item: dict) -> str:
    """How far the interval reaches below and above the estimate (an order-statistic interval is not symmetric),
    and its half width, which the target is held against."""
    if item["half_width"] == float("inf"):
        return "unbounded yet"
    return (f"-{item['estimate'] - item['low']:.3f}/+{item['high'] - item['estimate']:.3f} "
            f"(half width {item['half_width']:.3f})")


def follow_adaptive(args: argparse.Namespace, ensemble: Ensemble) -> dict:
    def report(state: dict) -> None:
        if not args.quiet:
            print(f"{state['settled']} members settled; " + "; ".join(
                f"{item['target']} {interval_sides(item)}" for item in state["intervals"]), file=sys.stderr)
    return ensemble.adapt(report=report)


def cmd_adapt(args: argparse.Namespace, client: Client) -> int:
    state = follow_adaptive(args, client.ensemble(args.ensemble))
    emit(args, state, "\n".join(adaptive_lines(state)))
    return 0


def cmd_compare(args: argparse.Namespace, client: Client) -> int:
    from cloudburst.cli.plots import plot_bands
    chosen = client.compare(args.ensembles)
    table = chosen.summaries()
    if args.csv:
        table.to_csv(args.csv)
    columns = [column for column in table.columns if column.startswith(("pressure_min_", "nodes_below_threshold_"))]
    lines = [f"{'ensemble':<36} {'members':>8} " + " ".join(f"{column:>26}" for column in columns)]
    lines += [f"{name:<36} {int(row.members):>8} " + " ".join(f"{row[column]:>26.3f}" for column in columns)
              for name, row in table.iterrows()]
    data: dict = {"summaries": table.reset_index().to_dict("records")}
    if args.element:
        banded = chosen.bands(args.element, args.attribute)
        data["bands"] = banded.to_dict("records")
        if args.bands_csv:
            banded.to_csv(args.bands_csv, index=False)
        if args.plot:
            plot_bands(banded, f"{args.attribute} at {args.element}", args.attribute, args.plot)
            lines.append(f"bands of {args.attribute} at {args.element} drawn in {args.plot}")
    elif args.plot or args.bands_csv:
        raise InputError("--plot and --bands-csv need --element (node:ID or link:ID)")
    emit(args, data, "\n".join(lines))
    return 0


def cmd_sensitivity(args: argparse.Namespace, client: Client) -> int:
    ensemble = client.ensemble(args.ensemble)
    found = ensemble.sensitivity()
    if args.csv:
        found.to_csv(args.csv)
    metric = ensemble.info().scenario["sensitivity"].get("metric", "pressure_min")
    lines = [f"Sobol' indices of {metric} ({found.attrs['rows_used']} design rows; +/- the bootstrap interval):",
             f"{'factor':<40} {'first order':>18} {'total':>18}"]
    for factor, row in found.sort_values("ST", ascending=False).iterrows():
        lines.append(f"{factor:<40} {row.S1:>9.3f} +/- {row.S1_conf:<5.3f} {row.ST:>9.3f} +/- {row.ST_conf:<5.3f}")
    emit(args, found.reset_index().to_dict("records"), "\n".join(lines))
    return 0


def cmd_status(args: argparse.Namespace, client: Client) -> int:
    from cloudburst.api.progress import shown_state
    from cloudburst.state.records import TASKS
    if client.records.kind(args.ensemble) == TASKS:
        data, text, code = taskcli.status_lines(client.taskset(args.ensemble))
        emit(args, data, text)
        return code
    ensemble = client.ensemble(args.ensemble)
    record, progress = ensemble.info(), ensemble.status()
    failures = ensemble.failures() if progress.failed else None
    unbalanced = ensemble.unbalanced() if progress.unbalanced else None
    state = shown_state(ensemble.stamp(record), progress)
    lines = [f"{record.name}: {state}, submitted {record.created_at}, model {record.model_sha256[:12]}, "
             f"seed {record.seed}",
             f"members {progress.members}  finished {progress.finished}  failed {progress.failed}  "
             f"unbalanced {progress.unbalanced}  running {progress.running}  queued {progress.queued}"]
    if failures is not None:
        lines += [f"  member {row.member}: {row.error}" for row in failures.head(10).itertuples()]
    adaptive = ensemble.adaptive()
    if adaptive is not None:
        lines += adaptive_lines(adaptive)
    if unbalanced is not None:
        lines += [f"{progress.unbalanced} unbalanced members are left out of the statistics (the model says UNBALANCED "
                  "STOP; `unbalanced: continue` in the scenario's run keeps them):"]
        lines += [f"  member {row.member}: {row.error}" for row in unbalanced.head(10).itertuples()]
    emit(args, {"ensemble": record.name, "state": state, "created_at": record.created_at,
                "model_sha256": record.model_sha256, "seed": record.seed, **progress.as_dict(),
                "failures": [] if failures is None else failures.to_dict("records"), "adaptive": adaptive,
                "unbalanced_members": [] if unbalanced is None else unbalanced.to_dict("records")}, "\n".join(lines))
    return EXIT_FAILED if progress.failed else 0


def cmd_wait(args: argparse.Namespace, client: Client) -> int:
    from cloudburst.state.records import TASKS
    if client.records.kind(args.ensemble) == TASKS:
        return EXIT_FAILED if follow(client.taskset(args.ensemble), args).failed else 0
    return EXIT_FAILED if follow(client.ensemble(args.ensemble), args).failed else 0


def cmd_retry(args: argparse.Namespace, client: Client) -> int:
    ensemble = client.ensemble(args.ensemble)
    counts = ensemble.retry(timeout_s=args.timeout)
    print(f"{counts['enqueued']} members re-enqueued (failed or missing); {counts['finished']} finished, "
          f"{counts['waiting']} queued or running")
    if args.wait and counts["enqueued"]:
        return EXIT_FAILED if follow(ensemble, args).failed else 0
    return 0


def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    removed = client.ensemble(args.ensemble).cancel()
    print(f"{removed} queued members removed; members already running finish")
    return 0


def cmd_list(args: argparse.Namespace, client: Client) -> int:
    ensembles, tasks = client.ensemble_rows(), client.taskset_rows()
    lines = [f"{'ensemble':<32} {'owner':<12} {'created':<26} {'members':>8} {'finished':>9} {'failed':>7} "
             f"{'size':>9}  state"]
    lines += [f"{row['ensemble']:<32} {row['owner'] or '-':<12} {row['created_at']:<26} {row['members']:>8} "
              f"{row['finished']:>9} {row['failed']:>7} {human_bytes(row['bytes']):>9}  {row['state']}"
              for row in ensembles]
    if tasks:
        lines += ["", f"{'task set':<32} {'owner':<12} {'created':<26} {'tasks':>8} {'finished':>9} {'failed':>7} "
                      f"{'size':>9}  state  function"]
        lines += [f"{row['taskset']:<32} {row['owner'] or '-':<12} {row['created_at']:<26} {row['tasks']:>8} "
                  f"{row['finished']:>9} {row['failed']:>7} {human_bytes(row['bytes']):>9}  {row['state']}  "
                  f"{row['function']}" for row in tasks]
    searches = client.study_rows()
    if searches:
        lines += ["", f"{'study':<32} {'owner':<12} {'created':<26} {'kind':>12} {'generations':>12}  state"]
        lines += [f"{row['study']:<32} {row['owner'] or '-':<12} {row['created_at']:<26} {row['kind']:>12} "
                  f"{row['generations']:>12}  {row['state']}" for row in searches]
    emit(args, ensembles + tasks + searches, "\n".join(lines))
    return 0


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def cmd_delete(args: argparse.Namespace, client: Client) -> int:
    from cloudburst.api.taskset import TaskSet
    name = getattr(args, "ensemble", None) or args.taskset
    submitted = client.submitted(name)
    from cloudburst.api.search import Search
    what, parts = (("task set", "tasks") if isinstance(submitted, TaskSet) else
                   (f"{submitted.kind} study", "rounds") if isinstance(submitted, Search) else ("ensemble", "members"))
    if not args.yes:
        if not sys.stdin.isatty():
            raise InputError(f"deleting {name} removes its results for good: add --yes to confirm")
        answer = input(f"delete {what} {name}, its queued {parts} and every stored result? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    done = submitted.delete()
    print(f"{what} {name} deleted: {done['dequeued']} queued {parts} removed, "
          f"{'its files' if done['files'] else 'no files'} removed")
    return 0


def cmd_prune(args: argparse.Namespace, client: Client) -> int:
    names = client.expired(args.older_than)
    if not names:
        print("no ensemble is past the retention period")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise InputError(f"pruning deletes {len(names)} ensembles for good ({', '.join(names[:5])}"
                             f"{' ...' if len(names) > 5 else ''}): add --yes to confirm")
        answer = input(f"delete {len(names)} ensembles ({', '.join(names[:5])}{' ...' if len(names) > 5 else ''})"
                       " and every stored result? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    for name in names:
        client.submitted(name).delete()
    print(f"{len(names)} ensembles deleted: {', '.join(names)}")
    return 0


def cmd_results(args: argparse.Namespace, client: Client) -> int:
    from cloudburst.api.ensemble import parse_element
    from cloudburst.cli.plots import plot_fan
    kind, element = parse_element(args.element)
    if args.plot and args.member is not None:
        raise InputError("--plot draws the percentiles across members; leave out --member to plot")
    ensemble = client.ensemble(args.ensemble)
    if args.member is not None:
        table = ensemble.series(args.element, args.attribute, member=args.member)
    else:
        table = ensemble.percentiles(args.element, args.attribute)
    for path, write in ((args.csv, table.to_csv), (args.parquet, table.to_parquet)):
        if path:
            write(path, index=False)
    if args.plot:
        plot_fan(table, f"{args.ensemble}: {args.attribute} at {kind} {element}", args.attribute, args.plot)
    written = [str(path) for path in (args.csv, args.parquet, args.plot) if path]
    if not written:
        print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    elif args.member is not None:
        print(f"{len(table)} values of member {args.member} written to {', '.join(written)}")
    else:
        print(f"{len(table)} time steps across up to {int(table['count'].max())} members written to "
              f"{', '.join(written)}")
    return 0


def cmd_risk(args: argparse.Namespace, client: Client) -> int:
    from cloudburst.cli.plots import plot_risk_map
    ensemble = client.ensemble(args.ensemble)
    types = args.types.split(",") if args.types else None
    table = ensemble.risk(args.attribute, below=args.below, above=args.above, kind=args.kind, types=types)
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.plot:
        side = f"< {args.below:g}" if args.below is not None else f"> {args.above:g}"
        plot_risk_map(ensemble.model(), table, f"{args.ensemble}: P({args.attribute} {side}) at any time", args.plot)
    shown = table.head(args.top)
    side = f"below {args.below:g}" if args.below is not None else f"above {args.above:g}"
    hint = "; --types to include tanks or reservoirs" if table.attrs["elements"] == "junctions with demand" else ""
    emit(args, shown.to_dict("records"), f"{len(table)} {args.kind}s ({table.attrs['elements']}{hint}), highest "
         f"probability of {args.attribute} {side} first:\n"
         + shown.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    return 0


def cmd_query(args: argparse.Namespace, client: Client) -> int:
    table = client.ensemble(args.ensemble).query(args.sql)
    assert not isinstance(table, list)  # one statement: one table
    if args.csv:
        table.to_csv(args.csv, index=False)
    emit(args, table.to_dict("records"), table.to_string(index=False))
    return 0


def cmd_export(args: argparse.Namespace, client: Client) -> int:
    written = client.ensemble(args.ensemble).export(args.directory, args.format)
    print(f"{len(written)} files written under {args.directory}")
    return 0


def cmd_summary(args: argparse.Namespace, client: Client) -> int:
    table = client.ensemble(args.ensemble).summaries()
    if args.csv:
        table.to_csv(args.csv, index=False)
    shown = table[[column for column in SUMMARY_COLUMNS if column in table]].head(args.top)
    emit(args, shown.to_dict("records"), f"{len(table)} members, worst (lowest minimum pressure) first:\n"
         + shown.to_string(index=False, float_format=lambda value: f"{value:.2f}"))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cloudburst", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"cloudburst {__version__}")
    top.add_argument("--profile", help="the cluster's profile in the settings file (default: its top-level keys)")
    noise = top.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="count", default=0, help="say more (-vv: debug)")
    noise.add_argument("-q", "--quiet", action="store_true", help="errors and results only: no progress")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, run, json_output: bool = False, ensemble: bool = True):
        sub = commands.add_parser(name, help=text, description=text)
        if ensemble:
            sub.add_argument("ensemble", help="the ensemble's name")
        if json_output:
            sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        sub.set_defaults(run=run)
        return sub

    submit = command("submit", "draw an ensemble from a scenario file and enqueue it", cmd_submit, True, False)
    submit.add_argument("model", help="the base EPANET model (.inp)")
    submit.add_argument("scenario", help="the scenario file (YAML)")
    submit.add_argument("--wait", action="store_true", help="show progress until every member is done")
    submit.add_argument("--check", action="store_true", help="run every check and print what would be submitted "
                                                             "(members, batches, values, bytes); upload and enqueue "
                                                             "nothing")
    submit.add_argument("--name", help="the ensemble's name (default: the scenario's name and the time)")
    submit.add_argument("--start", help="member 0's start time, e.g. 2024-06-01T00:00:00Z (default: the "
                                        "scenario's start_time_utc, else 2000-01-01T00:00:00Z)")
    submit.add_argument("--timeout", type=int, default=3600, help="seconds a member may run (default 3600)")
    command("status", "progress and failures of an ensemble (or a task set)", cmd_status, True)
    command("wait", "show progress until every member of an ensemble (or task of a task set) is done; waits "
                    "through a service restarting", cmd_wait)
    command("cancel", "remove an ensemble's queued members", cmd_cancel)
    compare = command("compare", "ensembles side by side: member summaries, and an element's bands (alternatives: "
                                 "give the name they were submitted under)", cmd_compare, True, False)
    compare.add_argument("ensembles", nargs="+", help="ensemble names, or the alternatives' common name")
    compare.add_argument("--element", help="node:ID or link:ID: also compare its bands over time")
    compare.add_argument("--attribute", default="pressure", help="the element's result (default pressure)")
    compare.add_argument("--plot", help="draw the bands (PNG), one colour per ensemble")
    compare.add_argument("--csv", help="write the summaries table as CSV")
    compare.add_argument("--bands-csv", help="write the bands as CSV")
    sensitivity = command("sensitivity", "Sobol' indices (first order, total) of a sensitivity study's metric per "
                                         "factor", cmd_sensitivity, True)
    sensitivity.add_argument("--csv", help="write the indices as CSV")
    command("adapt", "drive an adaptive ensemble's waves until its targets are met (what submit --wait does)",
            cmd_adapt, True)
    retry = command("retry", "re-enqueue the failed or missing members", cmd_retry)
    retry.add_argument("--wait", action="store_true", help="show progress until every member is done")
    retry.add_argument("--timeout", type=int, default=3600, help="seconds a member may run (default 3600)")
    command("list", "the ensembles, task sets and design and calibration studies, with their progress", cmd_list, True,
            False)
    delete = command("delete", "remove an ensemble (or a task set): queued members, stored results, records",
                     cmd_delete)
    delete.add_argument("--yes", action="store_true", help="do not ask")
    prune = command("prune", "delete every ensemble older than the retention period", cmd_prune, ensemble=False)
    prune.add_argument("--older-than", type=float, metavar="DAYS",
                       help="days since submission (default: the retention_days setting; 0 keeps all)")
    prune.add_argument("--yes", action="store_true", help="do not ask")
    results = command("results", "the cluster's statistics across members per time step (or one member's series)",
                      cmd_results)
    results.add_argument("--element", required=True, help="node:ID or link:ID")
    results.add_argument("--attribute", default="pressure", help="a node or link result (default pressure)")
    results.add_argument("--member", type=int, help="one member's stored values instead of percentiles")
    results.add_argument("--csv", help="write the table as CSV")
    results.add_argument("--parquet", help="write the table as Parquet")
    results.add_argument("--plot", help="write a fan chart (PNG)")
    risk = command("risk", "per element, the highest probability of passing a threshold, worst first", cmd_risk, True)
    side = risk.add_mutually_exclusive_group(required=True)
    side.add_argument("--below", type=float, help="the threshold the value falls below, e.g. 20 (metres)")
    side.add_argument("--above", type=float, help="the threshold the value rises above")
    risk.add_argument("--attribute", default="pressure", help="a node or link result (default pressure)")
    risk.add_argument("--kind", default="node", choices=["node", "link"], help="element kind (default node)")
    risk.add_argument("--types", help="node types, comma-separated: junction, tank, reservoir (default for pressure: "
                                      "junctions with demand; for other attributes: every node)")
    risk.add_argument("--top", type=int, default=20, help="how many elements to show (default 20)")
    risk.add_argument("--csv", help="write every element's probability as CSV")
    risk.add_argument("--plot", help="write a network map coloured by probability (PNG)")
    query = command("query", "DuckDB SQL over the ensemble's files (views: series, members)", cmd_query, True)
    query.add_argument("sql", help='e.g. "SELECT element, min(value) FROM series GROUP BY element"')
    query.add_argument("--csv", help="write the result as CSV")
    export = command("export", "the whole ensemble as files: Parquet (as stored) or CSV", cmd_export)
    export.add_argument("directory", help="where to write")
    export.add_argument("--format", default="parquet", choices=["parquet", "csv"], help="default parquet")
    summary = command("summary", "per-member summary metrics, worst first", cmd_summary, True)
    summary.add_argument("--top", type=int, default=20, help="how many members to show (default 20)")
    summary.add_argument("--csv", help="write every member's summary as CSV")
    fireflow = command("fireflow", "a fire-flow study's available flow per hydrant (p5/p50/p95 over the members), "
                                   "lowest first", cmd_fireflow, True)
    fireflow.add_argument("--top", type=int, default=30, help="how many hydrants to show (default 30)")
    fireflow.add_argument("--csv", help="write every hydrant's row as CSV")
    fireflow.add_argument("--members-csv", help="write every member's search (one row per member and hydrant) as CSV")
    segments = command("segments", "a segment criticality study: per valve segment, the demand not served while it is "
                                   "isolated, most first", cmd_segments, True)
    segments.add_argument("--top", type=int, default=30, help="how many segments to show (default 30)")
    segments.add_argument("--csv", help="write every segment's row as CSV")
    segments.add_argument("--members-csv", help="write every member's isolations as CSV")
    sensors = command("sensors", "place k sensors from a contamination study's impacts (least expected, worst or "
                                 "CVaR harm)", cmd_sensors, True)
    sensors.add_argument("--k", type=int, default=5, help="how many sensors (default 5)")
    sensors.add_argument("--objective", default="z1_s", choices=["z1_s", "z2_people", "z3_m3", "mass_kg", "extent_m"],
                         help="the harm to minimise (default z1_s, time to detection)")
    sensors.add_argument("--statistic", default="mean", choices=["mean", "worst", "cvar"],
                         help="over the injections: mean (default), worst, or cvar (the mean of the worst 1 - alpha)")
    sensors.add_argument("--alpha", type=float, default=0.95, help="the CVaR's alpha (default 0.95: the worst 5 %%)")
    sensors.add_argument("--method", default="mip", choices=["mip", "greedy"],
                         help="mip (exact, HiGHS) or greedy (lazy, with its bound; the mean only); default mip")
    sensors.add_argument("--curve", type=int, default=0, help="also the trade-off over k = 1 .. N (greedy for the "
                                                              "mean, mip for worst or cvar)")
    sensors.add_argument("--csv", help="write the trade-off curve as CSV (with --curve)")
    sensors.add_argument("--plot", help="draw the network with the sensors and each injection node's harm (PNG)")
    design = command("design", "run (or resume) a design study: pymoo's GA or NSGA-II over pipe options, each "
                               "generation a round on the cluster; then its best design", cmd_design, True, False)
    design.add_argument("ensemble", metavar="NAME", help="the study's name (resumes it when it exists)")
    design.add_argument("--model", help="the EPANET model (.inp), to start a study")
    design.add_argument("--scenario", help="the scenario with study: {type: design, ...}, to start a study")
    design.add_argument("--every", type=int, default=10, help="print progress every N generations (default 10)")
    design.add_argument("--timeout", type=int, default=600, help="seconds a generation's round may take")
    design.add_argument("--csv", help="write the best design (one row per pipe) as CSV")
    design.add_argument("--plot", help="draw the convergence curve (and the Pareto front) as PNG")
    calibrate = command("calibrate", "run (or resume) a calibration study: scipy's differential evolution fits "
                                     "roughness and demand factors to observations, each generation a round on the "
                                     "cluster", cmd_calibrate, True, False)
    calibrate.add_argument("ensemble", metavar="NAME", help="the study's name (resumes it when it exists)")
    calibrate.add_argument("--model", help="the EPANET model (.inp), to start a study")
    calibrate.add_argument("--scenario", help="the scenario with study: {type: calibration, ...}, to start a study")
    calibrate.add_argument("--every", type=int, default=10, help="print progress every N generations (default 10)")
    calibrate.add_argument("--timeout", type=int, default=600, help="seconds a generation's round may take")
    calibrate.add_argument("--csv", help="write the residuals (one row per observation) as CSV")
    calibrate.add_argument("--plot", help="draw observed against simulated per element (PNG)")
    taskcli.add_commands(commands, cmd_delete)
    completion = command("completion", "print a shell completion script: eval \"$(cloudburst completion bash)\"",
                         None, ensemble=False)
    completion.add_argument("shell", choices=["bash"])
    return top


def configure_logging(args: argparse.Namespace) -> None:
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("cloudburst").setLevel(level)


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    if args.command == "completion":
        print(bash_completion(top))
        return 0
    configure_logging(args)
    try:
        from cloudburst.api.client import Client
        return args.run(args, Client(profile=args.profile))
    except InputError as error:
        for problem in error.problems:
            print(f"cloudburst: {problem}", file=sys.stderr)
        return EXIT_INPUT
    except ServiceError as error:
        print(f"cloudburst: {error}", file=sys.stderr)
        return EXIT_SERVICE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
