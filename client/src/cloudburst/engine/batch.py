"""Running an ensemble's members: a batch job runs its members one after another and stores them as one batch.

``run_batch`` is what a worker calls for each job: every member is checked, loaded, altered and simulated
(``run_member``); a member that cannot run becomes a ``failed`` row with its reason, never a crashed job. The
batch's rows go to the results store as one series file and one members file, then the ledger records the batch
(which members finished, which failed and why) and counts the execution. While a batch runs its finished members
are kept in Redis (``Ledger.checkpoint``, about every second): a worker killed mid-batch stores and records
nothing, and when the job runs again (RQ's retry) it takes the kept members as they were and runs only the rest,
then writes the same files, so no member is run twice for it or stored twice.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import wntr
from pydantic import ValidationError
from rq.timeouts import JobTimeoutException

from cloudburst.engine import toolkit, warm
from cloudburst.engine.alterations import apply_run
from cloudburst.engine.checks import check_job
from cloudburst.engine.epanet_output import reader_for
from cloudburst.engine.models import file_path_refusal, load_model
from cloudburst.engine.results import Frames, SeriesBlock, results_needed, series_blocks, summary_fields, water_service
from cloudburst.engine.warm import OTHER_EPANET, WarmEngine, file_path_reason
from cloudburst.errors import InputError, MemberFailed, MemberUnbalanced
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.batch import BatchJob, parse_batch
from cloudburst.schema.defaults import DEFAULT_START
from cloudburst.schema.job import EPANET_FILE, EPANET_WARM, MemberId, Run, parse_job, parse_start
from cloudburst.schema.resultformat import encode
from cloudburst.state.ledger import DELETED, OVERTAKEN, RECORDED_ALREADY, BatchOutcome, Ledger
from cloudburst.state.models import ModelCache
from cloudburst.state.store import ResultsStore
from cloudburst.version import __version__

EPANET_VERSION = float(EPANET_FILE)  # the library wntr's file path runs (wntr's ``run_sim`` takes a number)
# How often a running batch keeps its finished members in Redis (one command each time).
CHECKPOINT_EVERY_S = 1.0
# How wntr's readers and simulator say a run stopped balancing (UNBALANCED STOP): "... did not converge at time 5:00:00"
_NOT_CONVERGED = re.compile(r"did not converge at time (\d+):(\d\d):(\d\d)")
FILE_ENGINE = "file"
WNTR_VERSION = wntr.__version__
_HOST = socket.gethostname()  # every member row names the worker host it ran on


def simulate(run: Run, wn: wntr.network.WaterNetworkModel,
             needed: tuple[set[str], set[str]] | None = None) -> Any:
    """Run the model in a directory of its own: EPANET runs sharing a file prefix corrupt each other silently.

    With ``needed`` (node and link result types), EPANET's output is read by the lean reader when it
    covers them all: the same values as wntr's reader for a fraction of the time.
    """
    try:
        if run.simulator == "wntr":
            return wntr.sim.WNTRSimulator(wn).run_sim(convergence_error=True)
        # EPANET 2.2 names its scratch files in the working directory and leaves them when a run fails: the run's
        # own directory takes them too.
        with tempfile.TemporaryDirectory(prefix="cloudburst-") as workdir, contextlib.chdir(workdir):
            simulator = wntr.sim.EpanetSimulator(wn, reader=reader_for(*needed) if needed else None)
            return simulator.run_sim(file_prefix=str(Path(workdir) / "run"), version=EPANET_VERSION,
                                     convergence_error=True)
    except JobTimeoutException:
        raise  # the batch's time is up: the whole job fails, as RQ's timeout means
    except Exception as error:  # EPANET and wntr report non-convergence and model errors in several types
        stopped = _NOT_CONVERGED.search(str(error))
        if stopped:
            hours, minutes, seconds = (int(part) for part in stopped.groups())
            at = stopped.group(0).split()[-1]
            raise MemberUnbalanced(hours * 3600 + minutes * 60 + seconds,
                                   f"the hydraulics did not balance at {at}: {error}") from None
        other = f". {OTHER_EPANET[EPANET_FILE]}" if run.simulator == "epanet" else ""
        raise MemberFailed(f"the simulation failed: {error}{other}") from None


def _sha256_of_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _epanet_version(document: dict[str, Any], engine: str) -> str:
    """The EPANET a member ran on (or was to run on): the scenario's choice; none for wntr's own simulator."""
    run = document.get("run")
    run = run if isinstance(run, dict) else {}
    if run.get("simulator", "epanet") != "epanet":
        return ""
    return toolkit.VERSION if engine == warm.ENGINE else EPANET_FILE


def _engine_chosen(document: dict[str, Any]) -> dict[str, str]:
    """The engine a member's scenario chose, read from the raw document (also for a job that is not valid)."""
    run = document.get("run")
    run = run if isinstance(run, dict) else {}
    if run.get("simulator", "epanet") != "epanet":
        return {"engine": FILE_ENGINE, "engine_reason": warm.WNTR_SOLVER_CHOSEN}
    if run.get("epanet", EPANET_WARM) == EPANET_FILE:
        return {"engine": FILE_ENGINE, "engine_reason": warm.EPANET_FILE_CHOSEN}
    return {"engine": warm.ENGINE, "engine_reason": ""}


def status_fields(document: dict[str, Any], *, status: str, error: str = "", runtime_s: float,
                  points: int = 0, engine: str = FILE_ENGINE, engine_reason: str = "",
                  warnings: str = "") -> dict[str, Any]:
    """A member's status row: outcome and provenance. ``engine``: "toolkit" (the warm engine, EPANET 2.3.5) or
    "file" (wntr's file path: EPANET 2.2 or wntr's own simulator, as the scenario chose), with ``engine_reason``
    the choice."""
    source: dict[str, Any] = document["input"] if isinstance(document.get("input"), dict) else {}
    return {
        "status": status,
        "error": error,
        "model_sha256": source.get("sha256") or _sha256_of_json(source.get("inline")),
        "run_sha256": _sha256_of_json(document.get("run")),
        "seed": document.get("seed") if isinstance(document.get("seed"), int) else None,
        "schema": str(document.get("schema")),
        "cloudburst_version": __version__,
        "wntr_version": WNTR_VERSION,
        "epanet_version": _epanet_version(document, engine),
        "simulator": str((document.get("run") or {}).get("simulator", "epanet")),
        "engine": engine,
        "engine_reason": engine_reason,
        "warnings": warnings,
        "runtime_s": round(runtime_s, 4),
        "series_points": points,
        "worker": _HOST,
    }


@dataclass
class MemberResult:
    """One member's outcome: its status fields, summary (finished members) and series blocks."""
    member: int
    start_s: int
    status: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    series: list[SeriesBlock] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return bool(self.status["status"] == fmt.FINISHED)

    def to_bytes(self) -> bytes:
        """The whole result, values bit for bit, for a batch's checkpoint (``Ledger.checkpoint``)."""
        blocks = [{"kind": block.kind, "attribute": block.attribute, "elements": block.elements,
                   "elapsed_s": block.elapsed_s.tolist(), "dtype": block.values.dtype.str,
                   "values": base64.b64encode(np.ascontiguousarray(block.values).tobytes()).decode()}
                  for block in self.series]
        return zlib.compress(json.dumps({"member": self.member, "start_s": self.start_s, "status": self.status,
                                         "summary": self.summary, "series": blocks}).encode(), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> "MemberResult":
        kept = json.loads(zlib.decompress(data))
        blocks = [SeriesBlock(block["kind"], block["attribute"], block["elements"],
                              np.asarray(block["elapsed_s"], dtype=np.int32),
                              np.frombuffer(base64.b64decode(block["values"]), dtype=np.dtype(block["dtype"]))
                              .reshape(len(block["elapsed_s"]), len(block["elements"])))
                  for block in kept["series"]]
        return cls(kept["member"], kept["start_s"], kept["status"], kept["summary"], blocks)


def _identity(document: Any) -> tuple[int, int]:
    """Member number and start for a failure row, as far as the job names them validly."""
    try:
        member = MemberId.model_validate(document).member
    except ValidationError:
        member = -1
    source = document.get("input") if isinstance(document, dict) else None
    try:
        start = parse_start(source.get("start_time_utc") if isinstance(source, dict) else None)
    except InputError:
        start = DEFAULT_START
    return member, int(start.timestamp())


def run_member(document: dict[str, Any], cache: ModelCache, engine: WarmEngine | None = None) -> MemberResult:
    """Run one member on the engine its scenario chose (``run.epanet``): the warm ``engine`` (one is opened for
    this member when none is given) or wntr's file path; a member that cannot run comes back ``failed`` with its
    reason (never raises for it)."""
    started = time.perf_counter()
    provenance: dict[str, Any] = _engine_chosen(document if isinstance(document, dict) else {})
    try:
        job = parse_job(document)
        reason = file_path_reason(job)
        if reason is None:
            own_engine = engine is None
            engine = engine if engine is not None else WarmEngine(cache)
            try:
                blocks, summary, capture = engine.run(job)
            finally:
                if own_engine:
                    engine.close()
            record = status_fields(document, status=fmt.FINISHED, runtime_s=time.perf_counter() - started,
                                   points=sum(block.size for block in blocks), warnings=capture.warning_text(),
                                   **provenance)
            return MemberResult(job.member, job.start_timestamp, record, summary, blocks)
        wn = load_model(job.input, cache)
        refusal = file_path_refusal(wn, reason)
        if refusal is not None:
            raise InputError(refusal)
        check_job(job, wn)
        apply_run(job.run, wn)
        results = simulate(job.run, wn, results_needed(job))
        frames = {fmt.NODE: Frames.of(results.node), fmt.LINK: Frames.of(results.link)}
        blocks = series_blocks(job, wn, frames, int(wn.options.time.duration), int(wn.options.time.report_timestep))
        summary = summary_fields(job, wn.junction_name_list, frames[fmt.NODE], water_service(wn, frames[fmt.NODE]))
        record = status_fields(document, status=fmt.FINISHED, runtime_s=time.perf_counter() - started,
                               points=sum(block.size for block in blocks), **provenance)
        return MemberResult(job.member, job.start_timestamp, record, summary, blocks)
    except (InputError, MemberFailed) as failure:
        member, start = _identity(document)
        status = fmt.UNBALANCED if isinstance(failure, MemberUnbalanced) else fmt.FAILED
        record = status_fields(document if isinstance(document, dict) else {}, status=status,
                               error=str(failure), runtime_s=time.perf_counter() - started, **provenance)
        return MemberResult(member, start, record)


def series_table(results: list[MemberResult]) -> pa.Table | None:
    """The batch's series in one long table sorted kind, attribute, element, time, member (the order that
    compresses best: neighbouring values are the same element and time in the next member); None without any."""
    keys: dict[tuple[str, str, str], int] = {}
    codes, elapsed, members, values = [], [], [], []
    for result in results:
        for block in result.series:
            block_codes = np.array([keys.setdefault((block.kind, block.attribute, element), len(keys))
                                    for element in block.elements], dtype=np.int32)
            times = len(block.elapsed_s)
            codes.append(np.tile(block_codes, times))
            elapsed.append(np.repeat(block.elapsed_s, len(block.elements)))
            members.append(np.full(block.values.size, result.member, dtype=np.int32))
            values.append(block.values.reshape(-1))
    if not keys:
        return None
    code, seconds, member = np.concatenate(codes), np.concatenate(elapsed), np.concatenate(members)
    value = np.concatenate(values)  # float64 when any member's simulator gave float64
    order = np.lexsort((member, seconds, code))
    code, seconds, member, value = code[order], seconds[order], member[order], value[order]
    names = list(keys)
    columns = {fmt.MEMBER: pa.array(member, pa.int32())}
    for position, column in enumerate((fmt.KIND, fmt.ATTRIBUTE, fmt.ELEMENT)):
        labels, per_code = np.unique(np.array([key[position] for key in names], dtype=object).astype(str),
                                     return_inverse=True)
        columns[column] = pa.DictionaryArray.from_arrays(pa.array(per_code[code].astype(np.int32)),
                                                         pa.array(labels.tolist(), pa.string()))
    columns[fmt.ELAPSED] = pa.array(seconds, pa.int32())
    columns[fmt.VALUE] = pa.array(value)
    return pa.table(columns)


def members_table(batch: str, results: list[MemberResult]) -> pa.Table:
    """One row per member; the columns are every key any member has (a failed or unbalanced member has no summary:
    its cells are null), each column's type read from all its values, never from the first row alone."""
    rows = [{fmt.MEMBER: result.member, fmt.BATCH: batch, fmt.START: result.start_s, **result.status,
             **result.summary} for result in results]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return pa.table({column: [row.get(column) for row in rows] for column in columns})


def run_batch(document: dict[str, Any], cache: ModelCache, store: ResultsStore | None,
              ledger: Ledger | None, engine: WarmEngine | None = None,
              checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> BatchOutcome:
    """Run a batch job's members, store them as one batch and record it; returns the batch's outcome.

    With a ledger, the run is an attempt holding a fencing token (``Ledger.begin``): a batch recorded already is
    not run again, and an attempt a newer one overtook stops keeping, storing and recording (its outcome says
    ``superseded``). Finished members are kept in Redis as the batch goes (at most every ``checkpoint_every_s``,
    in one command): a batch whose worker died runs again only for the members not kept, and stores each member
    once. Raises InputError for a payload that is not a batch (the queue marks the job failed); every
    member-level problem is a failed member instead.
    """
    batch: BatchJob = parse_batch(document)
    token, checkpointed = ledger.resume(batch.ensemble, batch.batch) if ledger is not None else (None, {})
    if token is not None and token <= 0:
        return BatchOutcome(superseded=RECORDED_ALREADY if token == 0 else DELETED)
    kept = {member: MemberResult.from_bytes(data) for member, data in checkpointed.items()}
    results: list[MemberResult] = []
    pending: dict[int, MemberResult] = {}  # finished since the last checkpoint: serialized only when one is due
    flushed_at = time.monotonic()
    documents = list(batch.member_documents())
    for position, member in enumerate(documents):
        number = member.get("member")
        if isinstance(number, int) and number in kept:
            results.append(kept[number])
            continue
        result = run_member(member, cache, engine)
        results.append(result)
        if ledger is not None and position < len(documents) - 1:  # the last one is stored with the batch
            pending[result.member] = result
            if time.monotonic() - flushed_at >= checkpoint_every_s:
                kept_now = {member: done.to_bytes() for member, done in pending.items()}
                if not ledger.checkpoint(batch.ensemble, batch.batch, kept_now, token):
                    return BatchOutcome(superseded=DELETED if ledger.deleted(batch.ensemble) else OVERTAKEN)
                pending, flushed_at = {}, time.monotonic()
    outcome = BatchOutcome(
        finished=[result.member for result in results if result.finished],
        failed={result.member: result.status["error"] for result in results if result.status["status"] == fmt.FAILED},
        unbalanced={result.member: result.status["error"] for result in results
                    if result.status["status"] == fmt.UNBALANCED},
        resumed=sorted(kept))
    if store is not None:
        if ledger is not None and token is not None and not ledger.is_latest(batch.ensemble, batch.batch, token):
            return BatchOutcome(superseded=DELETED if ledger.deleted(batch.ensemble) else OVERTAKEN)
        series = series_table(results)
        store.put_batch(batch.ensemble, batch.batch, None if series is None else encode(series, [fmt.VALUE]),
                        encode(members_table(batch.batch, results), ["runtime_s"]))
    if ledger is not None:
        recorded = ledger.record_batch(batch.ensemble, batch.batch, outcome, token)
        if recorded is None and ledger.deleted(batch.ensemble):
            if store is not None:  # deleted while the files went up: they go too
                store.delete(batch.ensemble)
            return BatchOutcome(superseded=DELETED)
        if recorded is None:  # overtaken while its files went up: the newer attempt's record stands
            return BatchOutcome(superseded=OVERTAKEN)
        outcome.members_done = recorded
    return outcome
