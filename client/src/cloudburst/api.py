"""CloudBurst's Python API: submit an ensemble, follow it, and read its results as DataFrames.

    import cloudburst
    client = cloudburst.Client()                      # the settings the CLI reads (or Client(settings))
    ensemble = client.submit("Net3.inp", "scenario.yml", name="study-1")
    ensemble.wait()                                   # a progress bar, in a terminal or a notebook
    ensemble.summaries().head()                       # worst members first
    ensemble.percentiles("node:123")                  # p5 / p50 / p95 per time step

The library never prints (the progress display aside, which ``wait(progress=False)`` turns off) and raises
only ``cloudburst.errors`` exceptions for bad input and services.
"""
from __future__ import annotations

import functools
import hashlib
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pandas as pd
import wntr
from redis import Redis

from cloudburst import stats
from cloudburst.config import Settings
from cloudburst.errors import InputError, service_errors
from cloudburst.files import ModelStore, model_input
from cloudburst.influx import InfluxQuery
from cloudburst.models import parse_inp, read_model_file
from cloudburst.progress import Display, Progress, default_display
from cloudburst.queue import (JobPolicy, cancel_queued, enqueue_members, failed_jobs, failure_reasons, open_queue,
                              queued_members, running_members)
from cloudburst.reader import ResultsReader
from cloudburst.records import CANCELLED, RETRIED, EnsembleRecord, Records
from cloudburst.resultformat import FAILED, FINISHED, SERIES_MEASUREMENTS
from cloudburst.scenarios import generate, read_scenario_file

_P = ParamSpec("_P")
_R = TypeVar("_R")
ModelSource = str | Path | wntr.network.WaterNetworkModel
ScenarioSource = str | Path | dict[str, Any]


def _redis_errors(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Redis failures inside an API call become a ServiceError naming Redis (HTTP services name themselves)."""
    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        client = args[0] if isinstance(args[0], Client) else args[0].client  # type: ignore[attr-defined]
        with service_errors("Redis", client.settings.redis_url):
            return method(*args, **kwargs)
    return wrapper


def parse_element(element: str) -> tuple[str, str]:
    """``node:ID`` or ``link:ID`` -> (kind, ID)."""
    kind, _, name = element.partition(":")
    if kind not in SERIES_MEASUREMENTS or not name:
        raise InputError(f"an element is node:ID or link:ID, not {element!r}")
    return kind, name


class Client:
    """One CloudBurst cluster: its queue (Redis), results (InfluxDB) and model files (Nginx)."""

    def __init__(self, settings: Settings | None = None, *, profile: str | None = None, check: bool = True):
        self.settings = settings or Settings.load(profile=profile)
        self.redis = Redis.from_url(self.settings.redis_url, password=self.settings.redis_password or None,
                                    socket_connect_timeout=5)
        self.queue = open_queue(self.redis, self.settings.queue)
        self.records = Records(self.redis)
        self.models = ModelStore(self.settings)
        self.influx = InfluxQuery(self.settings.influx_url, self.settings.influx_db, self.settings.influx_user,
                                  self.settings.influx_password)
        self.results = ResultsReader(self.influx)
        if check:
            self.check()

    @_redis_errors
    def check(self) -> None:
        """Raise ServiceError unless Redis and InfluxDB answer and take the credentials."""
        self.redis.ping()
        self.influx.series("SHOW MEASUREMENTS LIMIT 1")

    @_redis_errors
    def submit(self, model: ModelSource, scenario: ScenarioSource, *, name: str | None = None,
               start: datetime | str | None = None, timeout_s: int = 3600) -> "Ensemble":
        """Draw every member, check each against the model, then upload the model and enqueue the members.

        model: an .inp path or a wntr model; scenario: a scenario file's path or its content as a dict;
        name: the ensemble's ID (default: the scenario's ``ensemble`` and the time); start: member 0's start time
        (default: the scenario's ``start_time_utc``). Nothing is uploaded or enqueued when anything is wrong.
        """
        data, wn = _model(model)
        content = read_scenario_file(Path(scenario)) if isinstance(scenario, (str, Path)) else scenario
        if not isinstance(content, dict):
            raise InputError("$: a scenario holds a mapping (ensemble, members, seed, alterations ...)")
        content = {**content, "output": {"db": self.settings.influx_db, **(content.get("output") or {})}}
        name = name or f"{content.get('ensemble', 'ensemble')}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
        sha256 = hashlib.sha256(data).hexdigest()
        drawn = generate(content, wn, model_input(self.settings, sha256), name, start)
        self.records.refuse_taken(drawn.name)
        # The model first: a record is only made for an ensemble whose model the workers (and retry) can fetch.
        uploaded = self.models.upload(data, sha256)
        record = self.records.create(EnsembleRecord(
            name=drawn.name, members=len(drawn.documents), seed=drawn.seed, model_sha256=sha256, scenario=content,
            start_time_utc=drawn.documents[0]["input"]["start_time_utc"],
            start_every_s=int(content.get("start_every_s", 0))))
        started = time.monotonic()
        enqueue_members(self.queue, drawn.documents, JobPolicy(timeout_s=timeout_s))
        return Ensemble(self, record.name, uploaded=uploaded, enqueue_s=time.monotonic() - started)

    @_redis_errors
    def ensemble(self, name: str) -> "Ensemble":
        """An ensemble submitted earlier; raises InputError when there is none of that name."""
        self.records.get(name)
        return Ensemble(self, name)

    @_redis_errors
    def ensembles(self) -> pd.DataFrame:
        """Every ensemble with its progress, oldest first."""
        rows = []
        for name in self.records.names():
            ensemble = Ensemble(self, name)
            record, progress = ensemble.info(), ensemble.status()
            rows.append({"ensemble": name, "created_at": record.created_at, "members": record.members,
                         "finished": progress.finished, "failed": progress.failed, "running": progress.running,
                         "state": record.state})
        columns = ["ensemble", "created_at", "members", "finished", "failed", "running", "state"]
        return pd.DataFrame(rows, columns=columns).sort_values(["created_at", "ensemble"]).reset_index(drop=True)


class Ensemble:
    """One submitted ensemble; every method reads the cluster's current state."""

    def __init__(self, client: Client, name: str, *, uploaded: bool | None = None, enqueue_s: float | None = None):
        self.client = client
        self.name = name
        self.uploaded = uploaded    # set by submit: whether the model was uploaded (False: the cluster had it)
        self.enqueue_s = enqueue_s  # set by submit: seconds spent enqueueing

    def __repr__(self) -> str:
        return f"<Ensemble {self.name!r}>"

    @_redis_errors
    def info(self) -> EnsembleRecord:
        return self.client.records.get(self.name)

    @_redis_errors
    def status(self) -> Progress:
        """Finished and failed members (status records, and RQ's failures), running members (RQ's registry)."""
        members = self.info().members
        finished = self.client.results.members_with_status(self.name, FINISHED)
        failed = (self.client.results.members_with_status(self.name, FAILED)
                  | set(failed_jobs(self.client.queue, self.name))) - finished  # a retried success counts once
        running = running_members(self.client.queue, self.name) - finished - failed
        return Progress(members, len(finished), len(failed), len(running))

    def wait(self, progress: bool = True, display: Display | None = None, poll_s: float | None = None) -> Progress:
        """Until every member finished or failed; shows progress unless told not to. Ctrl-C stops waiting only:
        the ensemble runs on."""
        display = display or (default_display() if progress else None)
        try:
            while True:
                current = self.status()
                if display is not None:
                    display.show(current)
                if current.done:
                    return current
                time.sleep(poll_s or (display.interval_s if display is not None else 1.0))
        finally:
            if display is not None:
                display.close()

    @_redis_errors
    def failures(self) -> pd.DataFrame:
        """Each failed member's reason: its status record's, or, for a job that failed before the engine could
        record one (a payload that is not a job, a timeout), RQ's."""
        reasons = failure_reasons(self.client.queue, self.name)
        reasons.update(self.client.results.recorded_failures(self.name))
        return pd.DataFrame(sorted(reasons.items()), columns=["member", "error"])

    @_redis_errors
    def executions(self) -> pd.DataFrame:
        """Per member: how often it ran to the end (``executions``), and the ensemble's accounting in ``attrs``:
        ``lost`` (members that never finished) and ``duplicated`` (executions beyond the first)."""
        members = self.info().members
        counts = self.client.results.executions(self.name)
        finished = self.client.results.members_with_status(self.name, FINISHED)
        table = pd.DataFrame({"member": range(members), "executions": [counts.get(m, 0) for m in range(members)]})
        table.attrs["lost"] = members - len(finished)
        table.attrs["duplicated"] = int((table["executions"] - 1).clip(lower=0).sum())
        return table

    def summaries(self) -> pd.DataFrame:
        """Per-member summary metrics, worst (lowest minimum pressure) first."""
        return self.client.results.summaries(self.name)

    def series(self, element: str, attribute: str = "pressure", member: int | None = None) -> pd.DataFrame:
        """Stored values of one element (``node:ID``/``link:ID``): columns member, time (Unix seconds), value."""
        return self.client.results.series(self.name, *parse_element(element), attribute, member)

    def percentiles(self, element: str, attribute: str = "pressure",
                    percentiles: tuple[int, ...] = stats.PERCENTILES) -> pd.DataFrame:
        """Across members per time step: members, min, p5/p50/p95 (numpy's linear rule), max."""
        record = self.info()
        return stats.bands(self.series(element, attribute), record.member_start, record.start_every_s == 0,
                           percentiles)

    @_redis_errors
    def cancel(self) -> int:
        """Remove the queued members; returns how many. Members already running finish."""
        self.info()
        removed = cancel_queued(self.client.queue, self.name)
        self.client.records.set_state(self.name, CANCELLED)
        return removed

    @_redis_errors
    def retry(self, timeout_s: int = 3600) -> dict[str, int]:
        """Re-enqueue the failed and missing members (neither finished, queued nor running)."""
        record = self.info()
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            path.write_bytes(self.client.models.fetch(record.model_sha256))
            wn = parse_inp(path, f"model {record.model_sha256[:12]}")
        drawn = generate(record.scenario, wn, model_input(self.client.settings, record.model_sha256), self.name,
                         record.start_time_utc)
        waiting = queued_members(self.client.queue, self.name) | running_members(self.client.queue, self.name)
        finished = self.client.results.members_with_status(self.name, FINISHED)
        again = [document for document in drawn.documents
                 if document["member"] not in finished and document["member"] not in waiting]
        count = enqueue_members(self.client.queue, again, JobPolicy(timeout_s=timeout_s))
        self.client.records.set_state(self.name, RETRIED)
        return {"enqueued": count, "finished": len(finished), "waiting": len(waiting)}


def _model(model: ModelSource) -> tuple[bytes, wntr.network.WaterNetworkModel]:
    """The model's bytes (what is uploaded) and its parsed form (what members are checked against)."""
    if isinstance(model, wntr.network.WaterNetworkModel):
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            wntr.network.write_inpfile(model, str(path))
            return read_model_file(path)
    return read_model_file(Path(model))
