"""Running one ensemble member: validate, load, alter, simulate, write results and a status record.

``run_member`` is what a worker calls for each job. Every failure is recorded in InfluxDB's ``status``
measurement with its reason (when the job says which ensemble and member it is) and raised as
``MemberFailed``, so the queue marks the job failed while the worker process carries on.
"""
from __future__ import annotations

import hashlib
import json
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import wntr
from pydantic import ValidationError

from cloudburst import __version__
from cloudburst.alterations import apply_run
from cloudburst.checks import check_job
from cloudburst.epanet_output import reader_for
from cloudburst.errors import InputError, MemberFailed
from cloudburst.influx import InfluxWriter
from cloudburst.job import DEFAULT_START, MemberId, Run, parse_job, parse_start
from cloudburst.models import ModelCache, load_model
from cloudburst.results import results_needed, series_lines, summary_fields
from cloudburst.resultformat import FAILED, FINISHED, PRECISION, STATUS, SUMMARY, execution_line, member_line

EPANET_VERSION = 2.2


def simulate(run: Run, wn: wntr.network.WaterNetworkModel,
             needed: tuple[set[str], set[str]] | None = None) -> Any:
    """Run the model in a directory of its own: EPANET runs sharing a file prefix corrupt each other silently.

    With ``needed`` (node and link result types), EPANET's output is read by the lean reader when it
    covers them all: the same values as wntr's reader for a fraction of the time.
    """
    try:
        if run.simulator == "wntr":
            return wntr.sim.WNTRSimulator(wn).run_sim(convergence_error=True)
        with tempfile.TemporaryDirectory(prefix="cloudburst-") as workdir:
            simulator = wntr.sim.EpanetSimulator(wn, reader=reader_for(*needed) if needed else None)
            return simulator.run_sim(file_prefix=str(Path(workdir) / "run"), version=EPANET_VERSION,
                                     convergence_error=True)
    except Exception as error:  # EPANET and wntr report non-convergence and model errors in several types
        raise MemberFailed(f"the simulation failed: {error}") from None


def _sha256_of_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def status_fields(document: dict[str, Any], *, status: str, error: str = "", runtime_s: float,
                  points: int = 0) -> dict[str, Any]:
    source = document.get("input") if isinstance(document.get("input"), dict) else {}
    return {
        "status": status,
        "error": error,
        "model_sha256": source.get("sha256") or _sha256_of_json(source.get("inline")),
        "run_sha256": _sha256_of_json(document.get("run")),
        "seed": document.get("seed") if isinstance(document.get("seed"), int) else None,
        "schema": str(document.get("schema")),
        "cloudburst_version": __version__,
        "wntr_version": wntr.__version__,
        "epanet_version": str(EPANET_VERSION),
        "simulator": str((document.get("run") or {}).get("simulator", "epanet")),
        "runtime_s": round(runtime_s, 4),
        "series_points": points,
        "worker": socket.gethostname(),
    }


def _identity(document: dict[str, Any]) -> tuple[str, int, int] | None:
    """Ensemble, member and timestamp for a failure record, when the job names them validly."""
    try:
        member = MemberId.model_validate(document)
    except ValidationError:
        return None
    source = document.get("input")
    try:
        start = parse_start(source.get("start_time_utc") if isinstance(source, dict) else None)
    except InputError:
        start = DEFAULT_START
    return member.ensemble, member.member, int(start.timestamp())


def run_member(document: dict[str, Any], cache: ModelCache, writer: InfluxWriter | None) -> dict[str, Any]:
    """Run one member and write its results; returns its status fields. Raises MemberFailed on any failure."""
    started = time.perf_counter()
    try:
        job = parse_job(document)
        wn = load_model(job.input, cache)
        check_job(job, wn)
        apply_run(job.run, wn)
        results = simulate(job.run, wn, results_needed(job))
        lines = list(series_lines(job, wn, results))
        points = sum(line.rsplit(" ", 2)[1].count("=") for line in lines)
        identity = job.ensemble, job.member, job.start_timestamp
        lines.append(member_line(SUMMARY, *identity, summary_fields(job, wn, results)))
        record = status_fields(document, status=FINISHED, runtime_s=time.perf_counter() - started, points=points)
        lines.append(member_line(STATUS, *identity, record))
        lines.append(_execution(identity[:2], record))  # in the last batch, after the results
        if writer is not None:
            writer.write(lines, db=job.output.db, precision=PRECISION)
        return record
    except (InputError, MemberFailed) as failure:
        reason = str(failure)
        identity = _identity(document) if isinstance(document, dict) else None
        if identity is not None and writer is not None:
            record = status_fields(document, status=FAILED, error=reason, runtime_s=time.perf_counter() - started)
            output = document.get("output")
            db = output.get("db") if isinstance(output, dict) and isinstance(output.get("db"), str) else None
            writer.write([member_line(STATUS, *identity, record), _execution(identity[:2], record)], db=db,
                         precision=PRECISION)
        raise MemberFailed(reason) from None


def _execution(member: tuple[str, int], record: dict[str, Any]) -> str:
    """This run's execution point: the count per member is how often the member ran to the end."""
    return execution_line(*member, {key: record[key] for key in ("status", "runtime_s", "worker")})
