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

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudburst.api.ensemble import Alternatives, Ensemble
from cloudburst.api.progress import shown_state
from cloudburst.api.queue import enqueue_batches, other_jobs, tracked_progress
from cloudburst.api.services import Services
from cloudburst.config import Settings
from cloudburst.errors import InputError, redis_errors
from cloudburst.lazy import lazy
from cloudburst.schema.queues import JobPolicy, job_prefix
from cloudburst.state.records import CALIBRATION, DELETED, DESIGN, ENSEMBLE, FINISHED, SEARCHES, TASKS, EnsembleRecord

# What only submitting, reading results or studies need is imported when first used (cloudburst.lazy): `cloudburst
# list` and `status` start in a fraction of a second.
if TYPE_CHECKING:
    import pandas as pd

    from cloudburst.api import calibration as calibrations
    from cloudburst.api import design as design_studies
    from cloudburst.api import evaluation, studies, waves
    from cloudburst.api import taskset as task_sets
    from cloudburst.plan import submission
    from cloudburst.plan.submission import ModelSource, ScenarioSource
    from cloudburst.schema import batch as batching
    from cloudburst.state import reader
else:
    pd = lazy("pandas")
    studies, waves, task_sets = lazy("cloudburst.api.studies"), lazy("cloudburst.api.waves"), \
        lazy("cloudburst.api.taskset")
    submission, batching = lazy("cloudburst.plan.submission"), lazy("cloudburst.schema.batch")
    evaluation, design_studies = lazy("cloudburst.api.evaluation"), lazy("cloudburst.api.design")
    calibrations = lazy("cloudburst.api.calibration")

log = logging.getLogger(__name__)


class Client:
    """One CloudBurst cluster: its queue (Redis), results store and model files (Nginx), statistics (InfluxDB)."""

    def __init__(self, settings: Settings | None = None, *, profile: str | None = None, check: bool = True):
        self.services = Services.connect(settings or Settings.load(profile=profile))
        services = self.services
        # The services by name, as scripts and notebooks reach them (the handles hold ``services``).
        self.settings, self.redis, self.queue = services.settings, services.redis, services.queue
        self.records, self.ledger, self.models = services.records, services.ledger, services.models
        self.store, self.influx = services.store, services.influx
        self._sessions: dict[tuple[Any, ...], evaluation.Session] = {}  # evaluate()'s, by model and settings
        if check:
            self.check()

    @property
    def results(self) -> reader.ResultsReader:
        """The results store's and InfluxDB's reader (pandas and pyarrow: made when first asked for)."""
        return self.services.results

    @redis_errors
    def check(self) -> None:
        """Raise ServiceError unless Redis and InfluxDB answer and take the credentials."""
        self.redis.ping()
        self.influx.series("SHOW MEASUREMENTS LIMIT 1")

    @redis_errors
    def submit(self, model: ModelSource, scenario: ScenarioSource, *, name: str | None = None,
               start: datetime | str | None = None,
               timeout_s: int = 3600) -> Ensemble | studies.StudyRun | Alternatives:
        """Draw every member, check each against the model, then upload the model and enqueue the members.
        A scenario with a ``study`` section submits that study instead (``cloudburst.plan.studies``: a FireFlow or
        Segments); one with ``alternatives`` each variant as its own ensemble (``cloudburst.plan.alternatives``).

        model: an .inp path or a wntr model; scenario: a scenario file's path or its content as a dict;
        name: the ensemble's ID (default: the scenario's ``ensemble`` and the time); start: member 0's start time
        (default: the scenario's ``start_time_utc``). Nothing is uploaded or enqueued when anything is wrong.
        Members go to the queue in batches sized by the scenario's ``batch`` (default: about 3 s of work each,
        timed on the unaltered model here).
        """
        model_file, plan = self.plan(model, scenario, name=name, start=start)
        if isinstance(plan, submission.AlternativesPlan):
            return Alternatives([self._submit_ensemble(model_file, variant, timeout_s) for variant in plan.variants])
        if isinstance(plan, submission.StudyPlan):
            self.models.upload(model_file.data, model_file.sha256)
            taskset = task_sets.submit_map(self.services, plan.function, plan.tasks, plan.name, timeout_s,
                                           per_job=None)
            found = studies.study_run(plan.function, taskset)
            assert found is not None  # a study's function is always one of the studies'
            return found
        return self._submit_ensemble(model_file, plan, timeout_s)

    def plan(self, model: ModelSource, scenario: ScenarioSource, *, name: str | None = None,
             start: datetime | str | None = None) -> tuple[submission.ModelFile, submission.Plan]:
        """What ``submit`` would do, computed once (the model read and hashed once, every member drawn once) and
        checked, including that its names are free: nothing is uploaded or enqueued. Raises InputError."""
        model_file = submission.read_model(model)
        content, base_dir = submission.read_scenario(scenario)
        name = name or f"{content.get('ensemble', 'ensemble')}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        plan = submission.plan_submission(model_file, content, name, start,
                                          self.services.model_input(model_file.sha256),
                                          self.settings.influx_db, base_dir)
        for taken in submission.names(plan):
            self.records.refuse_taken(taken)
        self.services.refuse_over_quota(submission.queued_at_submit(plan))
        return model_file, plan

    @redis_errors
    def check_submission(self, model: ModelSource, scenario: ScenarioSource, *, name: str | None = None,
                         start: datetime | str | None = None) -> dict[str, Any]:
        """Everything ``submit`` checks, without uploading or enqueueing anything: every member drawn and checked
        against the model, the name, the ensemble budget; returns what it would submit: ensemble, members (and
        those queued first, for an adaptive one), batches and members per batch, series values, the store's
        estimated bytes, the budget's limits, and whether the cluster has the model already (a study: its type,
        members and tasks; alternatives: each variant's). Raises InputError as ``submit`` would."""
        model_file, plan = self.plan(model, scenario, name=name, start=start)
        return {**submission.describe(plan, model_file), "model_on_cluster": self.models.has(model_file.sha256)}

    def _submit_ensemble(self, model_file: submission.ModelFile, plan: submission.EnsemblePlan,
                         timeout_s: int) -> Ensemble:
        # The model first: a record is only made for an ensemble whose model the workers (and retry) can fetch.
        uploaded = self.models.upload(model_file.data, model_file.sha256)
        documents = plan.drawn.documents
        record = self.records.create(EnsembleRecord(
            name=plan.name, members=plan.first_members, seed=plan.drawn.seed, model_sha256=model_file.sha256,
            scenario=plan.content, start_time_utc=documents[0]["input"]["start_time_utc"],
            start_every_s=int(plan.content.get("start_every_s", 0))))
        started = time.monotonic()
        policy = JobPolicy(timeout_s=timeout_s)
        jobs = (batching.make_batch(record.name, part)
                for part in batching.split(documents[:plan.first_members], plan.batch_members))
        enqueue_batches(self.queue, self.ledger, record.name, jobs, policy)
        ensemble = Ensemble(self.services, record.name, uploaded=uploaded, enqueue_s=time.monotonic() - started)
        if plan.adaptive is not None:
            ensemble.waves = waves.Waves(self.services, record.name, documents, plan.adaptive, plan.batch_members,
                                         policy)
        return ensemble

    @redis_errors
    def compare(self, names: Iterable[str]) -> Alternatives:
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

    @redis_errors
    def study(self, name: str) -> studies.StudyRun:
        """A study submitted earlier (FireFlow or Segments); raises InputError when there is none of that name."""
        record = self.records.get_taskset(name)
        found = studies.study_run(record.function, task_sets.TaskSet(self.services, name))
        if found is None:
            raise InputError(f"{name} is a task set of {record.function}, not a study")
        return found

    @redis_errors
    def ensemble(self, name: str) -> Ensemble:
        """An ensemble submitted earlier; raises InputError when there is none of that name."""
        self.records.get(name)
        return Ensemble(self.services, name)

    @redis_errors
    def expired(self, older_than_days: float | None = None) -> list[str]:
        """Ensembles created more than ``older_than_days`` ago (default: the ``retention_days`` setting; 0 keeps
        every ensemble), oldest first."""
        days = float(self.settings.retention_days) if older_than_days is None else older_than_days
        if days <= 0:
            return []
        cutoff = datetime.now(UTC) - timedelta(days=days)
        records = [self.records.get_any(name) for name in self.records.names()]
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
        return task_sets.submit_map(self.services, function, iterable, name, timeout_s, per_job)

    def session(self, model: ModelSource, *, run: dict[str, Any] | None = None,
                metrics: list[str] | str = "pressure_min", nodes: str | list[str] = "*",
                pressure_threshold_m: float = 20.0, timeout_s: int = 600) -> evaluation.Session:
        """Evaluation rounds on one model (an .inp path or a wntr model) with one run's settings (``run`` as a
        scenario's, e.g. ``{"duration_s": 0}`` for a steady state): ``session.evaluate(sets)`` runs each alteration
        set on the workers' warm engine and returns the ``metrics`` (``cloudburst.schema.evaluation.METRICS``) in
        order; per-node metrics have a column per ``nodes`` (default: every junction). The model is checked here
        and uploaded once. Raises InputError as ``submit`` would."""
        from cloudburst.plan.rounds import RoundSettings
        model_file = submission.read_model(model)
        settings = RoundSettings.of(model_file, self.services.model_input(model_file.sha256), run, nodes,
                                    pressure_threshold_m)
        return evaluation.Session(self.services, settings, metrics, timeout_s)

    def evaluate(self, model: ModelSource, sets: list[list[dict[str, Any]]], *,
                 metrics: list[str] | str = "pressure_min", run: dict[str, Any] | None = None,
                 nodes: str | list[str] = "*", pressure_threshold_m: float = 20.0,
                 timeout_s: int = 600) -> evaluation.Evaluations:
        """One evaluation round (see ``session``): the session of the same model and settings is kept and reused
        by the next call, so an optimizer's loop pays the model's check and upload once."""
        key = (evaluation.model_key(model), json.dumps(run or {}, sort_keys=True), json.dumps(nodes),
               pressure_threshold_m, timeout_s)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = self.session(model, run=run, metrics=metrics, nodes=nodes,
                                                         pressure_threshold_m=pressure_threshold_m,
                                                         timeout_s=timeout_s)
        return session.evaluate(sets, metrics)

    @redis_errors
    def design(self, model: ModelSource | None = None, scenario: ScenarioSource | None = None, *,
               name: str | None = None, timeout_s: int = 600,
               on_generation: Callable[[dict[str, Any]], None] | None = None) -> design_studies.Design:
        """Run a design study (a scenario with ``study: {type: design}``, ``cloudburst.plan.design``) to the end of
        its evaluation budget and store its answers; returns it (``best()``, ``convergence()``, ``pareto()``,
        ``pressures()``, ``plot()``). A study of that name that stopped before its end resumes (with no model or
        scenario given: those it was started with); one that finished is returned as it is. Raises InputError,
        nothing run, when the study does not fit the model or no design can meet its pressure limits.
        ``on_generation`` is called after each generation with its progress."""
        return self._search(design_studies.open_design, model, scenario, name, timeout_s, on_generation)

    @redis_errors
    def calibrate(self, model: ModelSource | None = None, scenario: ScenarioSource | None = None, *,
                  name: str | None = None, timeout_s: int = 600,
                  on_generation: Callable[[dict[str, Any]], None] | None = None) -> calibrations.Calibration:
        """Run a calibration study (``study: {type: calibration}``, ``cloudburst.plan.calibration``) to the end of
        its evaluation budget and store its answers; returns it (``fitted()``, ``residuals()``, ``convergence()``,
        ``plot()``). Resumes and refuses as ``design`` does; the scenario's CSV files are read now and kept with
        the study."""
        return self._search(calibrations.open_calibration, model, scenario, name, timeout_s, on_generation)

    def _search(self, opener: Callable[..., Any], model: ModelSource | None, scenario: ScenarioSource | None,
                name: str | None, timeout_s: int, on_generation: Callable[[dict[str, Any]], None] | None) -> Any:
        content = None
        if scenario is not None:
            from cloudburst.plan.calibration import inline_files
            content, base_dir = submission.read_scenario(scenario)
            if isinstance(content.get("study"), dict):
                content = {**content, "study": inline_files(content["study"], base_dir)}
        model_file = submission.read_model(model) if model is not None else None
        if name is None:
            if content is None:
                raise InputError("give the study's name, or its model and scenario to start one")
            name = f"{content.get('ensemble', 'study')}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        found = opener(self.services, name, model_file, content, timeout_s)
        try:
            if found.state() != FINISHED:
                found.run(on_generation)
        finally:
            found.close()
        return found

    @redis_errors
    def design_study(self, name: str) -> design_studies.Design:
        """A design study started earlier, to read its answers or status (``design`` runs or resumes it)."""
        return design_studies.open_design(self.services, name)

    @redis_errors
    def calibration(self, name: str) -> calibrations.Calibration:
        """A calibration study started earlier, to read its answers or status (``calibrate`` runs or resumes it)."""
        return calibrations.open_calibration(self.services, name)

    @redis_errors
    def taskset(self, name: str) -> task_sets.TaskSet:
        """A task set submitted earlier; raises InputError when there is none of that name."""
        self.records.get_taskset(name)
        return task_sets.TaskSet(self.services, name)

    @redis_errors
    def taskset_rows(self) -> list[dict[str, Any]]:
        """Every task set with its progress, oldest first, as plain rows (``tasksets`` without pandas)."""
        rows = []
        for name in self.records.names():
            if self.records.kind(name) != TASKS:
                continue
            record = self.records.get_taskset(name)
            progress = tracked_progress(self.queue, self.ledger, name, record.tasks)
            rows.append({"taskset": name, "owner": record.owner, "created_at": record.created_at,
                         "function": record.function,
                         "tasks": record.tasks, "finished": progress.finished, "failed": progress.failed,
                         "running": progress.running,
                         "state": shown_state(task_sets.TaskSet(self.services, name).stamp(record), progress),
                         "bytes": self.store.size(name)})
        rows += [{"taskset": name, "owner": gone.get("owner", ""), "created_at": gone["created_at"],
                  "function": gone["function"],
                  "tasks": gone["members"], "finished": 0, "failed": 0, "running": 0, "state": DELETED, "bytes": 0}
                 for name, gone in self.records.deleted().items() if gone["kind"] == TASKS]
        return sorted(rows, key=lambda row: (row["created_at"], row["taskset"]))

    def tasksets(self) -> pd.DataFrame:
        """Every task set with its progress, oldest first."""
        columns = ["taskset", "owner", "created_at", "function", "tasks", "finished", "failed", "running", "state",
                   "bytes"]
        return pd.DataFrame(self.taskset_rows(), columns=columns)

    @redis_errors
    def submitted(self, name: str) -> Ensemble | task_sets.TaskSet | design_studies.Design | calibrations.Calibration:
        """The ensemble, task set, design or calibration study of that name; InputError when there is none."""
        kind = self.records.kind(name)
        if kind == ENSEMBLE:
            return Ensemble(self.services, name)
        if kind == DESIGN:
            return design_studies.open_design(self.services, name)
        if kind == CALIBRATION:
            return calibrations.open_calibration(self.services, name)
        return task_sets.TaskSet(self.services, name)

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
        sha256, which an env's task passes to ``cloudburst.worker.model_file`` to read it on a worker."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise InputError(f"{path}: cannot read it ({error.strerror})") from None
        sha256 = hashlib.sha256(data).hexdigest()
        self.models.upload(data, sha256)
        return sha256

    @redis_errors
    def study_rows(self) -> list[dict[str, Any]]:
        """Every design and calibration study, oldest first, as plain rows: study, kind, created_at, state, the
        generations stored."""
        from cloudburst.schema.search import GENERATIONS_DIR
        rows = []
        for name in self.records.names():
            kind = self.records.kind(name)
            if kind not in SEARCHES:
                continue
            record = self.records.get_search(name, kind)
            rows.append({"study": name, "owner": record.owner, "kind": kind, "created_at": record.created_at,
                         "state": record.state,
                         "generations": len(self.store.listing(name, GENERATIONS_DIR))})
        return sorted(rows, key=lambda row: (row["created_at"], row["study"]))

    @redis_errors
    def ensemble_rows(self) -> list[dict[str, Any]]:
        """Every ensemble with its owner and progress, oldest first, as plain rows (``ensembles`` without pandas)."""
        rows = []
        for name in self.records.names():
            if self.records.kind(name) != ENSEMBLE:
                continue
            ensemble = Ensemble(self.services, name)
            record, progress = ensemble.info(), ensemble.status()
            rows.append({"ensemble": name, "owner": record.owner, "created_at": record.created_at,
                         "members": record.members,
                         "finished": progress.finished, "failed": progress.failed, "running": progress.running,
                         "state": shown_state(ensemble.stamp(record), progress), "bytes": self.store.size(name)})
        rows += [{"ensemble": name, "owner": gone.get("owner", ""), "created_at": gone["created_at"],
                  "members": gone["members"], "finished": 0,
                  "failed": 0, "running": 0, "state": DELETED, "bytes": 0}
                 for name, gone in self.records.deleted().items() if gone["kind"] == ENSEMBLE]
        return sorted(rows, key=lambda row: (row["created_at"], row["ensemble"]))

    def ensembles(self) -> pd.DataFrame:
        """Every ensemble with its progress, oldest first."""
        columns = ["ensemble", "owner", "created_at", "members", "finished", "failed", "running", "state", "bytes"]
        return pd.DataFrame(self.ensemble_rows(), columns=columns)
