"""CloudBurst's example env: run batches of EPANET ensemble members, and their statistics, with the cloudburst engine.

A batch is enqueued as ``worker.run`` with the batch document (schema ``cloudburst.batch/1``) as its one
argument; statistics as ``worker.statistics`` with the ensemble's name; dropping a deleted ensemble's statistics
as ``worker.forget``; a chunk of an evaluation round as ``worker.evaluate``; ``worker.lowest_pressure`` is an
example of your own function, run as a task set. Connection settings come from the worker container's environment
(``cloudburst.worker``).
"""
from __future__ import annotations

import socket
import tempfile
from typing import Any

import wntr
from rq import get_current_job

from cloudburst import worker as cloudburst_worker

_cache = cloudburst_worker.model_cache()
# Models stay open in this process's EPANET toolkit between jobs (members whose scenario chose EPANET 2.2 run on
# wntr's file path instead).
_engine = cloudburst_worker.WarmEngine(_cache)
_results = cloudburst_worker.results_store()
_statistics = cloudburst_worker.influx_writer()


def run(batch: dict[str, Any]) -> dict[str, Any]:
    """Run a batch's members, store and record them, and queue the ensemble's statistics when they are due.

    A member that fails (bad job, model, hydraulics) is a failed row of the batch, not a failed job: a re-run
    would fail it the same way. A payload that is not a batch fails the job once. The job fails and is retried for
    what a re-run can fix: a worker or host that died mid-batch, or a store that stayed away through every retry.
    """
    current = get_current_job()
    ledger = cloudburst_worker.Ledger(current.connection) if current is not None and _results is not None else None
    try:
        outcome = cloudburst_worker.run_batch(batch, _cache, _results, ledger, _engine)
    except cloudburst_worker.InputError:  # not a batch: the same every time, so not retried
        if current is not None:
            current.retries_left = 0
        raise
    if outcome.superseded:
        return {"superseded": outcome.superseded, "worker": socket.gethostname()}
    if ledger is not None and _statistics is not None:
        cloudburst_worker.after_batch(current.connection, batch["ensemble"], outcome.members_done)
    return {"finished": len(outcome.finished), "failed": len(outcome.failed), "unbalanced": len(outcome.unbalanced),
            "worker": socket.gethostname()}


def evaluate(chunk: dict[str, Any]) -> dict[str, int]:
    """Run one chunk of an evaluation round (``Client.evaluate``) on the open models and push its metrics to the
    waiting client; returns how many sets finished, failed or stopped unbalanced."""
    current = get_current_job()
    if current is None:
        raise RuntimeError("an evaluation round's chunk answers on the queue's Redis: run it as a queue job")
    try:
        return cloudburst_worker.answer_chunk(chunk, _engine, current.connection)
    except cloudburst_worker.InputError:  # not a chunk: the same every time, so not retried
        current.retries_left = 0
        raise


def statistics(name: str) -> int:
    """Compute and write an ensemble's statistics; returns the points written."""
    current = get_current_job()
    if current is None or _results is None or _statistics is None:
        raise RuntimeError("statistics need the results store, InfluxDB and the queue's Redis")
    return cloudburst_worker.run_statistics(current.connection, name, _results, _statistics)


def forget(name: str, db: str) -> int:
    """Drop a deleted ensemble's statistics from InfluxDB; returns the statements run."""
    if _statistics is None:
        raise RuntimeError("forgetting statistics needs InfluxDB")
    return cloudburst_worker.forget_statistics(name, db, _statistics)


def lowest_pressure(model: str, demand_factor: float = 1.0, node: str | None = None) -> dict[str, Any]:
    """Your own function on the cluster, as a task set runs it (``cloudburst tasks submit worker:lowest_pressure
    ARGS.jsonl``): the model uploaded with ``cloudburst upload`` (its sha256), every demand times ``demand_factor``,
    run with wntr as a modeller would; the lowest junction pressure in metres, where and when (or ``node``'s)."""
    wn = wntr.network.WaterNetworkModel(str(cloudburst_worker.model_file(model)))
    for _, junction in wn.junctions():
        for demand in junction.demand_timeseries_list:
            demand.base_value *= demand_factor
    with tempfile.TemporaryDirectory(prefix="lowest-pressure-") as scratch:  # EPANET's files: one run per folder
        pressure = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=f"{scratch}/run").node["pressure"]
    pressure = pressure[[node] if node is not None else wn.junction_name_list]
    where = pressure.min().idxmin()
    return {"demand_factor": demand_factor, "node": where, "pressure_m": float(pressure[where].min()),
            "at_s": int(pressure[where].idxmin())}
