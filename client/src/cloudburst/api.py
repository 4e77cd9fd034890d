"""CloudBurst's Python API: submit an ensemble, follow it, and read its results as DataFrames.

    import cloudburst
    client = cloudburst.Client()                      # the settings the CLI reads (or Client(settings))
    ensemble = client.submit("Net3.inp", "scenario.yml", name="study-1")
    ensemble.wait()                                   # a progress bar, in a terminal or a notebook
    ensemble.summaries().head()                       # worst members first
    ensemble.percentiles("node:123")                  # the cluster's p5 / p50 / p95 ... per time step

The library never prints (the progress display aside, which ``wait(progress=False)`` turns off) and raises
only ``cloudburst.errors`` exceptions for bad input and services.
"""
from __future__ import annotations

import copy
import functools
import dataclasses
import hashlib
import logging
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from redis import Redis

from cloudburst import resultformat as fmt
from cloudburst.config import Settings
from cloudburst.errors import EpanetError, InputError, MemberFailed, redis_errors
from cloudburst.files import ModelStore, model_input, results_credentials, results_url
from cloudburst.influx import InfluxQuery
from cloudburst.lazy import lazy
from cloudburst.ledger import Ledger, MemberStates, retry_round
from cloudburst.progress import Display, Progress, default_display, follow
from cloudburst.queue import (JobPolicy, crashed_members, enqueue_batches, job_prefix, open_queue, other_jobs,
                              tracked_progress, waiting_members)
from cloudburst.records import DELETED, ENSEMBLE, RETRIED, TASKS, EnsembleRecord, Records, shown_state
from cloudburst.store import MEMBERS_DIR, SERIES_DIR, open_store

# What only submitting, reading results or studies need is imported when first used (cloudburst.lazy): `cloudburst
# list` and `status` start in a fraction of a second.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import wntr

    from cloudburst import adaptive, alterations, alternatives, checks, engine, lifecycle, models, reader, scenarios
    from cloudburst import batches as batching
    from cloudburst import job as jobschema
    from cloudburst import sensitivity as sobol
    from cloudburst import statistics, studies, waves, warm
    from cloudburst import taskset as task_sets
else:
    np, pd, wntr = lazy("numpy"), lazy("pandas"), lazy("wntr")
    adaptive, alterations, alternatives = lazy("cloudburst.adaptive"), lazy("cloudburst.alterations"), \
        lazy("cloudburst.alternatives")
    checks, engine, lifecycle, models = lazy("cloudburst.checks"), lazy("cloudburst.engine"), \
        lazy("cloudburst.lifecycle"), lazy("cloudburst.models")
    reader, scenarios, statistics = lazy("cloudburst.reader"), lazy("cloudburst.scenarios"), \
        lazy("cloudburst.statistics")
    studies, waves, warm = lazy("cloudburst.studies"), lazy("cloudburst.waves"), lazy("cloudburst.warm")
    batching, jobschema, sobol = lazy("cloudburst.batches"), lazy("cloudburst.job"), lazy("cloudburst.sensitivity")
    task_sets = lazy("cloudburst.taskset")

log = logging.getLogger(__name__)
ModelSource: TypeAlias = "str | Path | wntr.network.WaterNetworkModel"
ScenarioSource: TypeAlias = "str | Path | dict[str, Any]"


def parse_element(element: str) -> tuple[str, str]:
    """``node:ID`` or ``link:ID`` -> (kind, ID)."""
    kind, _, name = element.partition(":")
    if kind not in fmt.SERIES_KINDS or not name:
        raise InputError(f"an element is node:ID or link:ID, not {element!r}")
    return kind, name


class Client:
    """One CloudBurst cluster: its queue (Redis), results store and model files (Nginx), statistics (InfluxDB)."""

    def __init__(self, settings: Settings | None = None, *, profile: str | None = None, check: bool = True):
        self.settings = settings or Settings.load(profile=profile)
        self.redis = Redis.from_url(self.settings.redis_url, password=self.settings.redis_password or None,
                                    socket_connect_timeout=5)
        self.queue = open_queue(self.redis, self.settings.queue)
        self.records = Records(self.redis)
        self.ledger = Ledger(self.redis)
        self.models = ModelStore(self.settings)
        self.store = open_store(results_url(self.settings), results_credentials(self.settings),
                                self.settings.results_endpoint)
        self.influx = InfluxQuery(self.settings.influx_url, self.settings.influx_db, self.settings.influx_user,
                                  self.settings.influx_password)
        if check:
            self.check()

    @functools.cached_property
    def results(self) -> "reader.ResultsReader":
        """The results store's and InfluxDB's reader (pandas and pyarrow: made when first asked for)."""
        return reader.ResultsReader(self.store, self.influx)

    @redis_errors
    def check(self) -> None:
        """Raise ServiceError unless Redis and InfluxDB answer and take the credentials."""
        self.redis.ping()
        self.influx.series("SHOW MEASUREMENTS LIMIT 1")

    @redis_errors
    def submit(self, model: ModelSource, scenario: ScenarioSource, *, name: str | None = None,
               start: datetime | str | None = None, timeout_s: int = 3600) -> "Ensemble | studies.StudyRun | Alternatives":
        """Draw every member, check each against the model, then upload the model and enqueue the members.
        A scenario with a ``study`` section submits that study instead (``cloudburst.studies``: a FireFlow or
        Segments); one with ``alternatives`` each variant as its own ensemble (``cloudburst.alternatives``).

        model: an .inp path or a wntr model; scenario: a scenario file's path or its content as a dict;
        name: the ensemble's ID (default: the scenario's ``ensemble`` and the time); start: member 0's start time
        (default: the scenario's ``start_time_utc``). Nothing is uploaded or enqueued when anything is wrong.
        Members go to the queue in batches sized by the scenario's ``batch`` (default: about 3 s of work each,
        timed on the unaltered model here).
        """
        prepared = self._prepare(model, scenario, name, start)
        if prepared.delegated is not None:
            kind, content, name = prepared.delegated
            if kind == "alternatives":
                return self._submit_alternatives(model, content, name, start, timeout_s)
            base_dir = Path(scenario).parent if isinstance(scenario, (str, Path)) else None
            return self._submit_study(prepared.data, prepared.wn, content, name, start, timeout_s, base_dir)
        drawn, plan, size, sha256 = prepared.drawn, prepared.plan, prepared.batch_members, prepared.sha256
        # The model first: a record is only made for an ensemble whose model the workers (and retry) can fetch.
        uploaded = self.models.upload(prepared.data, sha256)
        first = prepared.first_members
        record = self.records.create(EnsembleRecord(
            name=drawn.name, members=first, seed=drawn.seed, model_sha256=sha256, scenario=prepared.content,
            start_time_utc=drawn.documents[0]["input"]["start_time_utc"],
            start_every_s=int(prepared.content.get("start_every_s", 0))))
        started = time.monotonic()
        policy = JobPolicy(timeout_s=timeout_s)
        jobs = (batching.make_batch(record.name, part) for part in batching.split(drawn.documents[:first], size))
        enqueue_batches(self.queue, self.ledger, record.name, jobs, policy)
        if plan is not None:
            ensemble = Ensemble(self, record.name, uploaded=uploaded, enqueue_s=time.monotonic() - started)
            ensemble.waves = waves.Waves(ensemble, drawn.documents, plan, size, policy)
            return ensemble
        return Ensemble(self, record.name, uploaded=uploaded, enqueue_s=time.monotonic() - started)

    @redis_errors
    def check_submission(self, model: ModelSource, scenario: ScenarioSource, *, name: str | None = None,
                         start: datetime | str | None = None) -> dict[str, Any]:
        """Everything ``submit`` checks, without uploading or enqueueing anything: every member drawn and checked
        against the model, the name, the ensemble budget; returns what it would submit: ensemble, members (and
        those queued first, for an adaptive one), batches and members per batch, series values, the store's
        estimated bytes, the budget's limits, and whether the cluster has the model already. Raises InputError as
        ``submit`` would. Scenarios with alternatives or a study are not covered yet (InputError says so)."""
        prepared = self._prepare(model, scenario, name, start)
        if prepared.delegated is not None:
            raise InputError(f"$.{prepared.delegated[0]}: a check without submitting covers ensembles; "
                             f"a scenario with {prepared.delegated[0]} is checked when submitted")
        drawn, members = prepared.drawn, len(prepared.drawn.documents)
        batches = -(-prepared.first_members // prepared.batch_members)
        return {"ensemble": drawn.name, "members": members, "members_enqueued_first": prepared.first_members,
                "batches": batches, "members_per_batch": prepared.batch_members, "series_values": drawn.series_values,
                "store_bytes_estimate": checks.store_bytes(drawn.series_values, members,
                                                    -(-members // prepared.batch_members)),
                "budget": checks.budget_limits(prepared.content.get("budget")), "model_sha256": prepared.sha256,
                "model_on_cluster": self.models.has(prepared.sha256)}

    def _prepare(self, model: ModelSource, scenario: ScenarioSource, name: str | None,
                 start: datetime | str | None) -> "_Prepared":
        """submit's checks, in submit's order, with nothing written: the members drawn and checked, the batch size,
        the name free. Alternatives and studies are handed back (``delegated``) for their own paths."""
        data, wn = _model(model)
        content = scenarios.read_scenario_file(Path(scenario)) if isinstance(scenario, (str, Path)) else scenario
        if not isinstance(content, dict):
            raise InputError("$: a scenario holds a mapping (ensemble, members, seed, alterations ...)")
        content = {**content, "output": {"db": self.settings.influx_db, **(content.get("output") or {})}}
        name = name or f"{content.get('ensemble', 'ensemble')}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
        sha256 = hashlib.sha256(data).hexdigest()
        for kind in ("alternatives", "study"):
            if content.get(kind) is not None:
                return _Prepared(data, wn, content, sha256, delegated=(kind, content, name))
        plan = None
        if content.get("sensitivity") is not None:  # a metric on an element's series: that series is stored
            output = content["output"]
            content = {**content, "output": {**output, "series": list(output.get("series") or [])
                                              + sobol.output_requests(content["sensitivity"])}}
        if content.get("adaptive") is not None:
            plan = adaptive.parse_adaptive(content["adaptive"], int(content.get("members") or 0))
            output = content["output"]
            content = {**content, "output": {**output, "series": list(output.get("series") or [])
                                              + adaptive.output_requests(plan)}}
        drawn = scenarios.generate(content, wn, model_input(self.settings, sha256), name, start)
        refusal = models.file_path_refusal(wn, warm.file_path_reason(jobschema.parse_job(drawn.documents[0])))
        if refusal is not None:
            raise InputError(f"$.output: {refusal}")
        size = _batch_size(content.get("batch"), data, wn, len(drawn.documents), drawn.documents[0])
        self.records.refuse_taken(drawn.name)
        first = len(drawn.documents) if plan is None else min(plan.cap, 2 * plan.wave)  # adaptive: a wave queued ahead
        return _Prepared(data, wn, content, sha256, drawn=drawn, plan=plan, batch_members=size, first_members=first)

    def _submit_alternatives(self, model: ModelSource, content: dict[str, Any], name: str,
                             start: datetime | str | None, timeout_s: int) -> "Alternatives":
        """Every variant drawn and checked first, then each submitted as its own ensemble."""
        found = alternatives.variants(content, name)
        data, wn = _model(model)
        sha256 = hashlib.sha256(data).hexdigest()
        for ensemble, scenario in found.items():
            self.records.refuse_taken(ensemble)
            scenarios.generate({key: value for key, value in scenario.items() if key != "adaptive"}, wn,
                     model_input(self.settings, sha256), ensemble, start)
        return Alternatives([self.submit(model, scenario, name=ensemble, start=start, timeout_s=timeout_s)
                             for ensemble, scenario in found.items()])

    @redis_errors
    def compare(self, names: Iterable[str]) -> "Alternatives":
        """Ensembles to compare: each name an ensemble, or the name alternatives were submitted under (its
        variants, ``<name>.<variant>``)."""
        known = set(self.records.names())
        chosen: list[str] = []
        for name in names:
            if name in known:
                chosen.append(name)
                continue
            family = sorted(other for other in known if other.startswith(f"{name}."))
            if not family:
                raise InputError(f"no ensemble {name!r}, nor variants {name}.*")
            chosen += family
        return Alternatives([self.ensemble(name) for name in chosen])

    def _submit_study(self, data: bytes, wn: wntr.network.WaterNetworkModel, content: dict[str, Any], name: str,
                      start: datetime | str | None, timeout_s: int, base_dir: Path | None) -> studies.StudyRun:
        """The study's tasks: each member's job document with a group of its elements, as a task set of the name."""
        study = studies.parse_study(content["study"], wn, base_dir, (content.get("run") or {}).get("duration_s"))
        sha256 = hashlib.sha256(data).hexdigest()
        drawn = scenarios.generate({key: value for key, value in content.items() if key != "study"}, wn,
                         model_input(self.settings, sha256), name, start)
        per_task = studies.elements_per_task(data, wn, drawn.documents[0], study)
        self.records.refuse_taken(drawn.name)
        self.models.upload(data, sha256)
        tasks = studies.study_tasks(drawn.documents, study, per_task)
        function = studies.TASK_FUNCTIONS[study.kind]
        taskset = task_sets.submit_map(self, function, tasks, drawn.name, timeout_s, per_job=None)
        return studies.study_run(function, taskset)

    @redis_errors
    def study(self, name: str) -> studies.StudyRun:
        """A study submitted earlier (FireFlow or Segments); raises InputError when there is none of that name."""
        record = self.records.get_taskset(name)
        found = studies.study_run(record.function, task_sets.TaskSet(self, name))
        if found is None:
            raise InputError(f"{name} is a task set of {record.function}, not a study")
        return found

    @redis_errors
    def ensemble(self, name: str) -> "Ensemble":
        """An ensemble submitted earlier; raises InputError when there is none of that name."""
        self.records.get(name)
        return Ensemble(self, name)

    @redis_errors
    def expired(self, older_than_days: float | None = None) -> list[str]:
        """Ensembles created more than ``older_than_days`` ago (default: the ``retention_days`` setting; 0 keeps
        every ensemble), oldest first."""
        days = float(self.settings.retention_days) if older_than_days is None else older_than_days
        if days <= 0:
            return []
        cutoff = datetime.now(timezone.utc) - timedelta(days=days)
        records = [self.records.get(name) if self.records.kind(name) == ENSEMBLE else self.records.get_taskset(name)
                   for name in self.records.names()]
        return [record.name for record in sorted(records, key=lambda record: record.created_at)
                if datetime.fromisoformat(record.created_at) < cutoff]

    @redis_errors
    def map(self, function: str, iterable: Iterable[Any], *, name: str | None = None, timeout_s: int = 3600,
            per_job: int | None = None) -> task_sets.TaskSet:
        """Call ``function`` (``module:function`` of the pushed env) once per item of ``iterable`` on the cluster's
        workers, first in first out; returns the task set to follow and collect.

        An item is a task's arguments: a list or tuple (positional), a dict (keyword), or any other JSON value (the
        one positional argument). ``timeout_s``: each task's limit; ``per_job``: tasks per queue job (default: the
        tasks spread over about four jobs per listening worker process, at most 500 per job). Every argument is
        checked first, and the function against the pushed env's manifest: nothing is enqueued when anything is
        wrong."""
        return task_sets.submit_map(self, function, iterable, name, timeout_s, per_job)

    @redis_errors
    def taskset(self, name: str) -> task_sets.TaskSet:
        """A task set submitted earlier; raises InputError when there is none of that name."""
        self.records.get_taskset(name)
        return task_sets.TaskSet(self, name)

    @redis_errors
    def taskset_rows(self) -> list[dict[str, Any]]:
        """Every task set with its progress, oldest first, as plain rows (``tasksets`` without pandas)."""
        rows = []
        for name in self.records.names():
            if self.records.kind(name) != TASKS:
                continue
            record = self.records.get_taskset(name)
            progress = tracked_progress(self.queue, self.ledger, name, record.tasks)
            rows.append({"taskset": name, "created_at": record.created_at, "function": record.function,
                         "tasks": record.tasks, "finished": progress.finished, "failed": progress.failed,
                         "running": progress.running, "state": shown_state(record.state, progress),
                         "bytes": self.store.size(name)})
        rows += [{"taskset": name, "created_at": gone["created_at"], "function": gone["function"],
                  "tasks": gone["members"], "finished": 0, "failed": 0, "running": 0, "state": DELETED, "bytes": 0}
                 for name, gone in self.records.deleted().items() if gone["kind"] == TASKS]
        return sorted(rows, key=lambda row: (row["created_at"], row["taskset"]))

    def tasksets(self) -> pd.DataFrame:
        """Every task set with its progress, oldest first."""
        columns = ["taskset", "created_at", "function", "tasks", "finished", "failed", "running", "state", "bytes"]
        return pd.DataFrame(self.taskset_rows(), columns=columns)

    @redis_errors
    def submitted(self, name: str) -> "Ensemble | task_sets.TaskSet":
        """The ensemble or task set of that name; InputError when there is neither."""
        return Ensemble(self, name) if self.records.kind(name) == ENSEMBLE else task_sets.TaskSet(self, name)

    @redis_errors
    def other_jobs(self, limit: int = 100) -> pd.DataFrame:
        """Jobs on the queue that belong to no ensemble or task set (enqueued with RQ directly, as
        ``Queue("cloudburst", serializer=JSONSerializer).enqueue("worker.fn", ...)``): job, function, status
        (queued, running, finished, failed), enqueued_at, ended_at, result, error."""
        prefixes = [job_prefix(name) for name in self.records.names()]
        columns = ["job", "function", "status", "enqueued_at", "ended_at", "result", "error"]
        return pd.DataFrame(other_jobs(self.queue, prefixes, limit), columns=columns)

    def upload(self, path: str | Path) -> str:
        """Put a file (a model for your own tasks, e.g. a SWMM .inp) on the cluster's file service; returns its
        sha256, which an env's task passes to ``cloudburst.cluster.model_file`` to read it on a worker."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise InputError(f"{path}: cannot read it ({error.strerror})") from None
        sha256 = hashlib.sha256(data).hexdigest()
        self.models.upload(data, sha256)
        return sha256

    @redis_errors
    def ensemble_rows(self) -> list[dict[str, Any]]:
        """Every ensemble with its progress, oldest first, as plain rows (``ensembles`` without pandas)."""
        rows = []
        for name in self.records.names():
            if self.records.kind(name) != ENSEMBLE:
                continue
            ensemble = Ensemble(self, name)
            record, progress = ensemble.info(), ensemble.status()
            rows.append({"ensemble": name, "created_at": record.created_at, "members": record.members,
                         "finished": progress.finished, "failed": progress.failed, "running": progress.running,
                         "state": shown_state(record.state, progress), "bytes": self.store.size(name)})
        rows += [{"ensemble": name, "created_at": gone["created_at"], "members": gone["members"], "finished": 0,
                  "failed": 0, "running": 0, "state": DELETED, "bytes": 0}
                 for name, gone in self.records.deleted().items() if gone["kind"] == ENSEMBLE]
        return sorted(rows, key=lambda row: (row["created_at"], row["ensemble"]))

    def ensembles(self) -> pd.DataFrame:
        """Every ensemble with its progress, oldest first."""
        columns = ["ensemble", "created_at", "members", "finished", "failed", "running", "state", "bytes"]
        return pd.DataFrame(self.ensemble_rows(), columns=columns)


class Ensemble:
    """One submitted ensemble; every method reads the cluster's current state."""

    def __init__(self, client: Client, name: str, *, uploaded: bool | None = None, enqueue_s: float | None = None):
        self.client = client
        self.name = name
        self.uploaded = uploaded    # set by submit: whether the model was uploaded (False: the cluster had it)
        self.enqueue_s = enqueue_s  # set by submit: seconds spent enqueueing
        self.waves: waves.Waves | None = None  # set by submit for an adaptive scenario: what adapt() drives

    def __repr__(self) -> str:
        return f"<Ensemble {self.name!r}>"

    @redis_errors
    def info(self) -> EnsembleRecord:
        return self.client.records.get(self.name)

    @redis_errors
    def sensitivity(self) -> pd.DataFrame:
        """Sobol' indices (S1, ST, with bootstrap half-widths) of the scenario's sensitivity metric per factor, from
        the finished members (a member that did not finish drops its design row)."""
        record = self.info()
        if record.scenario.get("sensitivity") is None:
            raise InputError(f"{self.name} has no sensitivity section in its scenario")
        plan = sobol.parse_sensitivity(record.scenario["sensitivity"])
        factors = scenarios.factor_names(record.scenario)
        numbers = np.full(record.members, np.nan)
        if isinstance(plan.metric, str):
            members = self.members()
            if plan.metric not in members.columns:
                raise InputError(f"sensitivity: the members have no summary field {plan.metric} (they have: "
                                 f"{', '.join(column for column in members.columns if column != 'member')})")
            finished = members[members["status"] == "finished"]
            numbers[finished["member"].to_numpy()] = finished[plan.metric].to_numpy(dtype=float)
        else:
            series = self.series(plan.metric["element"], plan.metric["attribute"])
            reduced = series.groupby("member")["value"].agg(plan.metric["of"])
            numbers[reduced.index.to_numpy()] = reduced.to_numpy()
        return sobol.sobol_indices(numbers, factors, plan.base_samples, plan.confidence, seed=record.seed)

    @redis_errors
    def adaptive(self) -> dict[str, Any] | None:
        """An adaptive ensemble's latest intervals, members enqueued and why it stopped (None when not adaptive)."""
        return self.client.records.adaptive(self.name)

    @redis_errors
    def adapt(self, poll_s: float = 1.0, report: Any = None) -> dict[str, Any]:
        """Drive an adaptive ensemble (``adaptive`` in its scenario) until every target's interval is as narrow as
        asked or its member cap has run: waves enqueued, intervals recorded for ``status``; returns the last state.
        Resumes an ensemble submitted by another process (its members are drawn again from the same scenario)."""
        if self.waves is None:
            record = self.info()
            if record.scenario.get("adaptive") is None:
                raise InputError(f"{self.name} is not adaptive: its scenario has no adaptive section")
            plan = adaptive.parse_adaptive(record.scenario["adaptive"], int(record.scenario.get("members") or 0))
            data, wn = self._model()
            drawn = scenarios.generate(record.scenario, wn, model_input(self.client.settings, record.model_sha256), self.name,
                             record.start_time_utc)
            size = _batch_size(record.scenario.get("batch"), data, wn, len(drawn.documents), drawn.documents[0])
            self.waves = waves.Waves(self, drawn.documents, plan, size, JobPolicy())
        return self.waves.run(poll_s, report)

    def _states(self) -> MemberStates:
        return MemberStates.of(self.client.ledger.done(self.name))

    @redis_errors
    def status(self) -> Progress:
        """Finished, failed and unbalanced members (the ledger, and RQ's failed batches), running members (RQ's
        registry)."""
        return tracked_progress(self.client.queue, self.client.ledger, self.name, self.info().members)

    @redis_errors
    def statistics_current(self) -> bool:
        """Whether the cluster's statistics cover every batch recorded so far (a statistics run started after the
        last one was recorded has finished)."""
        state = self.client.ledger.stats_state(self.name)
        return state.get("members", 0.0) >= state.get("done", 0.0)

    def wait(self, progress: bool = True, display: Display | None = None, poll_s: float | None = None,
             timeout_s: float | None = None, statistics_s: float = 300.0) -> Progress:
        """Until every member finished or failed, then until the cluster's statistics cover them all (at most
        ``statistics_s`` more seconds: statistics that do not come, a statistics job that failed, are logged, not
        waited for); shows progress unless told not to. Ctrl-C stops waiting only: the ensemble runs on. With
        ``timeout_s``, raises TimeoutError (naming the progress) when it passes."""
        display = display or (default_display() if progress else None)
        statistics_deadline: list[float] = []

        def settled(current: Progress) -> bool:
            if not current.done:
                return False
            if self.statistics_current():
                return True
            if not statistics_deadline:
                statistics_deadline.append(time.monotonic() + statistics_s)
            if time.monotonic() > statistics_deadline[0]:
                log.warning("ensemble %s is done but its statistics do not cover every member after %g s; "
                            "`cloudburst results` may show fewer members", self.name, statistics_s)
                return True
            return False

        return follow(self.status, settled, f"ensemble {self.name!r}", display,
                      poll_s or (display.interval_s if display is not None else 1.0), timeout_s)

    @redis_errors
    def failures(self) -> pd.DataFrame:
        """Each failed member's reason: the engine's (a member that could not run), or, for a batch that failed
        before the engine could record it (a timeout, a payload that is not a batch), RQ's."""
        states = self._states()
        reasons = {**crashed_members(self.client.queue, self.client.ledger, self.name, states), **states.failed}
        return pd.DataFrame(sorted(reasons.items()), columns=["member", "error"])

    @redis_errors
    def unbalanced(self) -> pd.DataFrame:
        """Members whose hydraulics stopped balancing (the model's UNBALANCED STOP), with where EPANET stopped:
        results of their own, left out of the statistics; ``unbalanced: continue`` in the scenario keeps them."""
        return pd.DataFrame(sorted(self._states().unbalanced.items()), columns=["member", "error"])

    @redis_errors
    def executions(self) -> pd.DataFrame:
        """Per member: how often its batch ran to the end (``executions``), and the ensemble's accounting in
        ``attrs``: ``lost`` (members that never finished) and ``duplicated`` (executions beyond the first)."""
        return lifecycle.executions(self.client, self.name, self.info().members, len(self._states().finished),
                                    "member")

    def members(self) -> pd.DataFrame:
        """Every member's stored row: status, error, provenance and summary fields."""
        return self.client.results.members(self.name)

    def summaries(self) -> pd.DataFrame:
        """Per-member summary metrics of the finished members, worst (lowest minimum pressure) first."""
        return self.client.results.summaries(self.name)

    def series(self, element: str, attribute: str = "pressure", member: int | None = None) -> pd.DataFrame:
        """Stored values of one element (``node:ID``/``link:ID``) from the store: columns member, elapsed_s,
        time (Unix seconds), value. With ``member``, only that member's batch files are read."""
        record = self.info()
        batches = None
        if member is not None:
            if not 0 <= member < record.members:
                raise InputError(f"member {member} is not in ensemble {self.name!r} (members 0-{record.members - 1})")
            batches = [batch for batch, members in self.client.ledger.plan(self.name).items() if member in members]
        frame = self.client.results.series(self.name, *parse_element(element), attribute, batches, member)
        frame.insert(2, "time", frame[fmt.MEMBER].map(record.member_start) + frame[fmt.ELAPSED])
        return frame

    def percentiles(self, element: str, attribute: str = "pressure") -> pd.DataFrame:
        """The cluster's statistics of one element per time step (nearest-rank percentiles, as InfluxDB's):
        ``elapsed_s``, ``time`` (member 0's clock), ``count``, ``min``, the percentiles, ``max``, ``mean`` and any
        threshold fractions the scenario asked for."""
        record = self.info()
        table = self.client.results.element_stats(self.name, *parse_element(element), attribute)
        start = record.member_start(0)
        table.insert(0, fmt.ELAPSED, table["time"].astype(int) - start)
        table["time"] = pd.to_datetime(table["time"], unit="s", utc=True)
        ordered = [fmt.ELAPSED, "time", fmt.COUNT, fmt.MINIMUM]
        ordered += sorted((c for c in table.columns if c.startswith("p") and c[1:].replace(".", "").isdigit()),
                          key=lambda c: float(c[1:]))
        ordered += [fmt.MAXIMUM, fmt.MEAN]
        rest = [c for c in table.columns if c not in ordered]
        return table[[c for c in ordered if c in table.columns] + rest]

    def risk(self, attribute: str = "pressure", *, below: float | None = None, above: float | None = None,
             kind: str = fmt.NODE, types: Iterable[str] | None = None) -> pd.DataFrame:
        """Per element, the highest fraction of members below (or above) the threshold at any time, and when:
        columns element, probability, elapsed_s; worst first. The threshold must be one the scenario's
        ``output.statistics`` named (the cluster computes it for every element and time).

        Nodes: ``types`` (junction, tank, reservoir) chooses which; by default pressure is asked of the junctions
        customers draw from (those with demand, where the model has any: a tank's "pressure" is its water depth),
        any other attribute of every node. ``table.attrs["elements"]`` says which were kept."""
        if (below is None) == (above is None):
            raise InputError("give one threshold: below or above")
        statistic = fmt.below_name(below) if below is not None else fmt.above_name(above)
        record = self.info()
        frame = self.client.results.statistic(self.name, kind, attribute, statistic)
        if frame.empty:
            side, value = ("below", below) if below is not None else ("above", above)
            raise InputError(f"ensemble {self.name!r} has no statistic {statistic} of {kind} {attribute} (yet): its "
                             f"scenario asks for it with output.statistics.{side}: {{{attribute}: [{value:g}]}}")
        frame["elapsed_s"] = frame["time"].astype(int) - record.member_start(0)
        worst = frame.sort_values([attribute, "elapsed_s"], ascending=[False, True]).drop_duplicates(fmt.ELEMENT)
        table = worst.rename(columns={attribute: "probability"})[[fmt.ELEMENT, "probability", "elapsed_s"]]
        described = f"every {kind}"
        if kind == fmt.NODE and (types is not None or attribute == "pressure"):
            kept, described = _risk_nodes(self.model(), types)
            table = table[table[fmt.ELEMENT].isin(kept)]
        table = table.sort_values(["probability", fmt.ELEMENT], ascending=[False, True]).reset_index(drop=True)
        table.attrs["elements"] = described
        return table

    def download(self, directory: str | Path) -> Path:
        """Copy the ensemble's files from the store into directory/<name>/{series,members}/; returns that folder."""
        target = Path(directory) / self.name
        for part in (SERIES_DIR, MEMBERS_DIR):
            (target / part).mkdir(parents=True, exist_ok=True)
            for batch in self.client.store.batches(self.name, part):
                data = self.client.store.read(self.name, part, batch)
                if data is not None:
                    (target / part / f"{batch}.parquet").write_bytes(data)
        return target

    def query(self, *sql: str) -> pd.DataFrame | list[pd.DataFrame]:
        """Run DuckDB SQL over the ensemble's files, seen as two views: ``series`` (member, kind, attribute,
        element, elapsed_s, value) and ``members`` (a row per member and run: status, error, summary, provenance).
        Several statements read the files once and give a list of tables."""
        import duckdb
        with tempfile.TemporaryDirectory(prefix="cloudburst-query-") as scratch:
            folder = self.download(scratch)
            connection = duckdb.connect()
            for view, part in (("series", SERIES_DIR), ("members", MEMBERS_DIR)):
                files = sorted((folder / part).glob("*.parquet"))
                if files:
                    listed = ", ".join(f"'{path}'" for path in files)
                    connection.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet([{listed}], "
                                       "union_by_name = true)")
            try:
                tables = [connection.execute(statement).df() for statement in sql]
            except duckdb.Error as error:
                raise InputError(f"the query failed: {str(error).splitlines()[0]}") from None
        return tables[0] if len(tables) == 1 else tables

    def export(self, directory: str | Path, file_format: str = "parquet") -> list[Path]:
        """The whole ensemble as files: Parquet (the store's own files, a pair per batch) or CSV (series.csv and
        members.csv, one row per value and per member)."""
        if file_format == "parquet":
            folder = self.download(directory)
            return sorted(folder.rglob("*.parquet"))
        if file_format != "csv":
            raise InputError(f"export formats are parquet and csv, not {file_format!r}")
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        tables = self.query("SELECT * FROM series ORDER BY kind, attribute, element, member, elapsed_s",
                            "SELECT * FROM members ORDER BY member")
        written = []
        for view, frame in zip(("series", "members"), tables):
            path = target / f"{self.name}-{view}.csv"
            frame.to_csv(path, index=False)
            written.append(path)
        return written

    def model(self) -> wntr.network.WaterNetworkModel:
        """The ensemble's model as uploaded, fetched from the cluster and parsed."""
        return self._model()[1]

    def _model(self) -> tuple[bytes, wntr.network.WaterNetworkModel]:
        sha256 = self.info().model_sha256
        data = self.client.models.fetch(sha256)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            path.write_bytes(data)
            return data, models.parse_inp(path, f"model {sha256[:12]}")

    @redis_errors
    def cancel(self) -> int:
        """Remove the queued members; returns how many. Members already running finish."""
        self.info()
        return lifecycle.cancel(self.client, self.name)

    @redis_errors
    def retry(self, timeout_s: int = 3600) -> dict[str, int]:
        """Re-enqueue the failed and missing members (neither finished, unbalanced, queued nor running), as batches
        of a new retry round."""
        record = self.info()
        data, wn = self._model()
        drawn = scenarios.generate(record.scenario, wn, model_input(self.client.settings, record.model_sha256), self.name,
                         record.start_time_utc)
        plan = self.client.ledger.plan(self.name)
        waiting = waiting_members(self.client.queue, self.client.ledger, self.name)
        states = self._states()
        finished = states.finished
        settled = finished | set(states.unbalanced)  # an unbalanced member would stop the same way again
        again = [document for document in drawn.documents
                 if document["member"] not in settled and document["member"] not in waiting]
        round_ = max((retry_round(batch) for batch in plan), default=0) + 1
        size = _batch_size(record.scenario.get("batch"), data, wn, max(len(again), 1), drawn.documents[0])
        jobs = (batching.make_batch(self.name, part, round_) for part in batching.split(again, size))
        count = enqueue_batches(self.client.queue, self.client.ledger, self.name, jobs, JobPolicy(timeout_s=timeout_s))
        self.client.records.set_state(self.name, RETRIED)
        return {"enqueued": count, "finished": len(finished), "waiting": len(waiting)}

    @redis_errors
    def delete(self) -> dict[str, int | bool]:
        """Remove the ensemble: its queued batches, files, ledger, RQ's records of its jobs and its record; a
        worker drops its statistics from InfluxDB (the client only reads InfluxDB). Members running now still
        finish and store their batch: delete again once they are done."""
        record = self.info()
        removed = lifecycle.remove(self.client, self.name)
        statistics.queue_forget(self.client.redis, self.name, (record.scenario.get("output") or {}).get(
            "db", self.client.settings.influx_db))
        return removed


def _batch_size(setting: Any, data: bytes, wn: wntr.network.WaterNetworkModel, members: int,
                member: dict[str, Any]) -> int:
    """Members per batch: the scenario's ``batch: {members: N}``, or enough for ``batch: {seconds: S}`` (default
    3 s) going by one run here of the model with the scenario's run settings (its duration, steps, quality) on the
    engine the members will run on (``member``: one of them), without their alterations."""
    setting = setting if setting is not None else {}
    if not isinstance(setting, dict) or set(setting) - {"members", "seconds"} or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in setting.values()):
        raise InputError("$.batch: give members (a whole number > 0) or seconds (> 0), e.g. {seconds: 3}")
    if "members" in setting:
        return min(int(setting["members"]), batching.MAX_BATCH_MEMBERS)
    job = jobschema.parse_job(member)
    settings = job.run.model_copy(update={"alterations": []})
    seconds = None
    if warm.file_path_reason(job) is None:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            path.write_bytes(data)
            try:
                seconds = warm.solve_seconds(path, wn, settings)
            except EpanetError:
                pass  # EPANET 2.3 does not open it: the members run on the file path, timed below
    if seconds is None:
        timed = copy.deepcopy(wn)
        alterations.apply_run(settings, timed)
        started = time.perf_counter()
        try:
            engine.simulate(settings, timed)
        except MemberFailed:
            pass  # the unaltered model does not run; its members' failures will say why, and timing it still tells
        seconds = time.perf_counter() - started
    return batching.batch_size(seconds, float(setting.get("seconds", batching.DEFAULT_BATCH_S)), members,
                               workers=batching.SPREAD_OVER)


@dataclasses.dataclass
class _Prepared:
    """What submit's checks produced (``Client._prepare``)."""
    data: bytes
    wn: wntr.network.WaterNetworkModel
    content: dict[str, Any]
    sha256: str
    drawn: Any = None                # scenarios.Ensemble: the members' job documents
    plan: Any = None                 # an adaptive scenario's plan
    batch_members: int = 0
    first_members: int = 0           # members enqueued at once (an adaptive ensemble's first waves)
    delegated: tuple[str, dict[str, Any], str] | None = None  # ("alternatives" or "study", scenario, name)


NODE_TYPES = ("junction", "tank", "reservoir")


def _risk_nodes(wn: wntr.network.WaterNetworkModel, types: Iterable[str] | None) -> tuple[set[str], str]:
    """The nodes a risk table keeps and how to say which: the types asked for, or junctions with demand."""
    if types is not None:
        wanted = [kind.lower() for kind in types]
        unknown = sorted(set(wanted) - set(NODE_TYPES))
        if unknown:
            raise InputError(f"unknown node type {', '.join(unknown)}; known: {', '.join(NODE_TYPES)}")
        return ({name for name, node in wn.nodes() if node.node_type.lower() in wanted},
                " and ".join(f"{kind}s" for kind in wanted))
    junctions = {name: node for name, node in wn.junctions()}
    with_demand = {name for name, junction in junctions.items()
                   if any(demand.base_value > 0 for demand in junction.demand_timeseries_list)}
    return (with_demand, "junctions with demand") if with_demand else (set(junctions), "junctions")


def _model(model: ModelSource) -> tuple[bytes, wntr.network.WaterNetworkModel]:
    """The model's bytes (what is uploaded) and its parsed form (what members are checked against)."""
    if isinstance(model, wntr.network.WaterNetworkModel):
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            wntr.network.write_inpfile(model, str(path))
            return models.read_model_file(path)
    return models.read_model_file(Path(model))


class Alternatives:
    """Ensembles submitted together (a scenario's alternatives) or chosen to compare."""

    def __init__(self, ensembles: list[Ensemble]):
        self.ensembles = ensembles

    def __repr__(self) -> str:
        return f"<Alternatives {[ensemble.name for ensemble in self.ensembles]}>"

    def __iter__(self):
        return iter(self.ensembles)

    def summaries(self) -> pd.DataFrame:
        """Per ensemble: finished members and p5/p50/p95 of the member summaries (pressure_min, pressure_mean,
        nodes_below_threshold)."""
        return alternatives.summary_table({ensemble.name: ensemble.summaries() for ensemble in self.ensembles})

    def bands(self, element: str, attribute: str = "pressure") -> pd.DataFrame:
        """Per ensemble and report time: p5/p50/p95 of one element's stored values over the members."""
        return alternatives.bands({ensemble.name: ensemble.series(element, attribute) for ensemble in self.ensembles})
