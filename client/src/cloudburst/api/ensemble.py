"""An ensemble once submitted, and several to compare: its progress, failures and results as DataFrames.

    ensemble = client.submit("Net3.inp", "scenario.yml", name="study-1")
    ensemble.wait()                                   # a progress bar, in a terminal or a notebook
    ensemble.summaries().head()                       # worst members first
    ensemble.percentiles("node:123")                  # the cluster's p5 / p50 / p95 ... per time step
"""
from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudburst.api.progress import Display, Progress
from cloudburst.api.queue import enqueue_batches, queue_forget
from cloudburst.api.submitted import Submitted
from cloudburst.errors import InputError, redis_errors
from cloudburst.lazy import lazy
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.queues import JobPolicy
from cloudburst.state.ledger import MemberStates
from cloudburst.state.records import EnsembleRecord
from cloudburst.state.statistics_jobs import request_statistics
from cloudburst.state.store import MEMBERS_DIR, SERIES_DIR

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import wntr

    from cloudburst.api import waves
    from cloudburst.api.services import Services
    from cloudburst.engine import models
    from cloudburst.plan import adaptive, alternatives, batching, scenarios
    from cloudburst.plan import sensitivity as sobol
    from cloudburst.schema import batch as batch_format
else:
    np, pd, wntr = lazy("numpy"), lazy("pandas"), lazy("wntr")
    models, adaptive = lazy("cloudburst.engine.models"), lazy("cloudburst.plan.adaptive")
    alternatives, batching = lazy("cloudburst.plan.alternatives"), lazy("cloudburst.plan.batching")
    scenarios, sobol = lazy("cloudburst.plan.scenarios"), lazy("cloudburst.plan.sensitivity")
    batch_format = lazy("cloudburst.schema.batch")
    waves = lazy("cloudburst.api.waves")  # numpy and the batch schema: only for an adaptive ensemble's waves

log = logging.getLogger(__name__)
# How often a client waiting for the final statistics looks whether anything will compute them.
STATISTICS_ASK_S = 10.0


def parse_element(element: str) -> tuple[str, str]:
    """``node:ID`` or ``link:ID`` -> (kind, ID)."""
    kind, _, name = element.partition(":")
    if kind not in fmt.SERIES_KINDS or not name:
        raise InputError(f"an element is node:ID or link:ID, not {element!r}")
    return kind, name



class Ensemble(Submitted):
    """One submitted ensemble; every method reads the cluster's current state."""
    noun, unit = "ensemble", "member"

    def __init__(self, services: Services, name: str, *, uploaded: bool | None = None,
                 enqueue_s: float | None = None):
        super().__init__(services, name)
        self.uploaded = uploaded    # set by submit: whether the model was uploaded (False: the cluster had it)
        self.enqueue_s = enqueue_s  # set by submit: seconds spent enqueueing
        self.waves: waves.Waves | None = None  # set by submit for an adaptive scenario: what adapt() drives

    @redis_errors
    def info(self) -> EnsembleRecord:
        return self.services.records.get(self.name)

    def total(self) -> int:
        return self.info().members

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
        return self.services.records.adaptive(self.name)

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
            drawn = self._drawn(record, wn)
            size = batching.batch_members(record.scenario.get("batch"), data, wn, len(drawn.documents),
                                          drawn.documents[0])
            self.waves = waves.Waves(self.services, self.name, drawn.documents, plan, size, JobPolicy())
        return self.waves.run(poll_s, report)

    @redis_errors
    def statistics_current(self) -> bool:
        """Whether the cluster's statistics cover every batch recorded so far (a statistics run started after the
        last one was recorded has finished)."""
        state = self.services.ledger.stats_state(self.name)
        return state.get("members", 0.0) >= state.get("done", 0.0)

    def wait(self, progress: bool = True, display: Display | None = None, poll_s: float | None = None,
             timeout_s: float | None = None, statistics_s: float = 300.0) -> Progress:
        """Until every member finished or failed, then until the cluster's statistics cover them all (at most
        ``statistics_s`` more seconds: statistics that do not come, a statistics job that failed, are logged, not
        waited for); shows progress unless told not to. Ctrl-C stops waiting only: the ensemble runs on. With
        ``timeout_s``, raises TimeoutError (naming the progress) when it passes."""
        return self._follow(self._settled_with_statistics(statistics_s), progress, display, poll_s, timeout_s)

    def _settled_with_statistics(self, statistics_s: float) -> Callable[[Progress], bool]:
        statistics_deadline: list[float] = []
        asked = {"at": -float("inf"), "queued": False}

        def settled(current: Progress) -> bool:
            if not current.done:
                return False
            if self.statistics_current():
                return True
            if not asked["queued"] and time.monotonic() - asked["at"] >= STATISTICS_ASK_S:
                asked["at"], asked["queued"] = time.monotonic(), self._ask_for_statistics()
            if not statistics_deadline:
                statistics_deadline.append(time.monotonic() + statistics_s)
            if time.monotonic() > statistics_deadline[0]:
                log.warning("ensemble %s is done but its statistics do not cover every member after %g s; "
                            "`cloudburst results` may show fewer members", self.name, statistics_s)
                return True
            return False

        return settled

    def _ask_for_statistics(self) -> bool:
        """Every member is recorded but the statistics lag: no worker will queue them now (they do after a batch),
        so queue them unless a statistics job is queued or running (one lost to a Redis restart, or to its worker's
        death, is not: ``cloudburst.state.statistics_jobs``); returns whether it queued one (a waiting client queues
        at most one). Only for an ensemble whose workers compute statistics (a claim is held, or a run was
        written): an env without them is not sent a job it cannot run. A reader, who may not queue jobs, waits as
        before."""
        from redis.exceptions import NoPermissionError

        if self.services.ledger.statistics_claim(self.name) is None and \
                "members" not in self.services.ledger.stats_state(self.name):
            return False
        try:
            queued = request_statistics(self.services.redis, self.name)
        except NoPermissionError:
            return False
        if queued:
            log.info("ensemble %s: every member is recorded and no statistics job was queued or running: queued one",
                     self.name)
        return queued

    @redis_errors
    def failures(self) -> pd.DataFrame:
        """Each failed member's reason: the engine's (a member that could not run), or, for a batch that failed
        before the engine could record it (a timeout, a payload that is not a batch), RQ's."""
        return pd.DataFrame(sorted(self._failure_reasons(self._states()).items()), columns=["member", "error"])

    @redis_errors
    def unbalanced(self) -> pd.DataFrame:
        """Members whose hydraulics stopped balancing (the model's UNBALANCED STOP), with where EPANET stopped:
        results of their own, left out of the statistics; ``unbalanced: continue`` in the scenario keeps them."""
        return pd.DataFrame(sorted(self._states().unbalanced.items()), columns=["member", "error"])

    def _settled_count(self, states: MemberStates) -> int:
        return len(states.finished)  # a member that failed never reaches the statistics: lost to the ensemble

    def members(self) -> pd.DataFrame:
        """Every member's stored row: status, error, provenance and summary fields."""
        return self.services.results.members(self.name)

    def summaries(self) -> pd.DataFrame:
        """Per-member summary metrics of the finished members, worst (lowest minimum pressure) first."""
        return self.services.results.summaries(self.name)

    def series(self, element: str, attribute: str = "pressure", member: int | None = None) -> pd.DataFrame:
        """Stored values of one element (``node:ID``/``link:ID``) from the store: columns member, elapsed_s,
        time (Unix seconds), value. With ``member``, only that member's batch files are read."""
        record = self.info()
        batches = None
        if member is not None:
            if not 0 <= member < record.members:
                raise InputError(f"member {member} is not in ensemble {self.name!r} (members 0-{record.members - 1})")
            batches = [batch for batch, members in self.services.ledger.plan(self.name).items() if member in members]
        frame = self.services.results.series(self.name, *parse_element(element), attribute, batches, member)
        frame.insert(2, "time", frame[fmt.MEMBER].map(record.member_start) + frame[fmt.ELAPSED])
        return frame

    def percentiles(self, element: str, attribute: str = "pressure") -> pd.DataFrame:
        """The cluster's statistics of one element per time step (nearest-rank percentiles, as InfluxDB's):
        ``elapsed_s``, ``time`` (member 0's clock), ``count``, ``min``, the percentiles, ``max``, ``mean`` and any
        threshold fractions the scenario asked for."""
        record = self.info()
        table = self.services.results.element_stats(self.name, *parse_element(element), attribute)
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
        if below is not None and above is None:
            statistic = fmt.below_name(below)
        elif above is not None and below is None:
            statistic = fmt.above_name(above)
        else:
            raise InputError("give one threshold: below or above")
        record = self.info()
        frame = self.services.results.statistic(self.name, kind, attribute, statistic)
        if frame.empty:
            side, value = ("below", below) if below is not None else ("above", above)
            raise InputError(f"ensemble {self.name!r} has no statistic {statistic} of {kind} {attribute} (yet): its "
                             f"scenario asks for it with output.statistics.{side}: {{{attribute}: [{value:g}]}}")
        frame["elapsed_s"] = frame["time"].astype(int) - record.member_start(0)
        worst = frame.sort_values([attribute, "elapsed_s"], ascending=[False, True]).drop_duplicates(fmt.ELEMENT)
        table = worst.rename(columns={attribute: "probability"})[[fmt.ELEMENT, "probability", "elapsed_s"]]
        described = f"every {kind}"
        if kind == fmt.NODE and (types is not None or attribute == "pressure"):
            kept, described = risk_nodes(self.model(), types)
            table = table[table[fmt.ELEMENT].isin(kept)]
        table = table.sort_values(["probability", fmt.ELEMENT], ascending=[False, True]).reset_index(drop=True)
        table.attrs["elements"] = described
        return table

    def download(self, directory: str | Path) -> Path:
        """Copy the ensemble's files from the store into directory/<name>/{series,members}/; returns that folder."""
        target = Path(directory) / self.name
        for part in (SERIES_DIR, MEMBERS_DIR):
            (target / part).mkdir(parents=True, exist_ok=True)
            for batch in self.services.store.batches(self.name, part):
                data = self.services.store.read(self.name, part, batch)
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
        assert isinstance(tables, list)  # two statements: two tables
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
        data = self.services.models.fetch(sha256)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            path.write_bytes(data)
            return data, models.parse_inp(path, f"model {sha256[:12]}")

    @redis_errors
    def retry(self, timeout_s: int = 3600) -> dict[str, int]:
        """Re-enqueue the failed and missing members (neither finished, unbalanced, queued nor running), as batches
        of a new retry round."""
        return self._retry(timeout_s=timeout_s)

    def _not_retried(self, states: MemberStates) -> set[int]:
        return set(states.unbalanced)  # an unbalanced member would stop the same way again

    def _enqueue_again(self, wanted: Callable[[int], bool], round_: int, **options: Any) -> int:
        record = self.info()
        data, wn = self._model()
        drawn = self._drawn(record, wn)
        again = [document for document in drawn.documents if wanted(document["member"])]
        size = batching.batch_members(record.scenario.get("batch"), data, wn, max(len(again), 1), drawn.documents[0])
        jobs = (batch_format.make_batch(self.name, part, round_) for part in batch_format.split(again, size))
        return enqueue_batches(self.services.queue, self.services.ledger, self.name, jobs,
                               JobPolicy(timeout_s=options["timeout_s"]))

    def _drawn(self, record: EnsembleRecord, wn: wntr.network.WaterNetworkModel) -> scenarios.Ensemble:
        """The members drawn again from the stored scenario (the same numbers: they are drawn from its seed)."""
        return scenarios.generate(record.scenario, wn, self.services.model_input(record.model_sha256), self.name,
                                  record.start_time_utc)

    @redis_errors
    def delete(self) -> dict[str, int | bool]:
        """Remove the ensemble: its queued batches, files, ledger, RQ's records of its jobs and its record; a
        worker drops its statistics from InfluxDB (the client only reads InfluxDB). Batches running now stop at
        their next checkpoint and keep, store and record nothing (what one stored as the deletion came goes too);
        a statistics job computing now drops what it writes. Only its owner or an admin may."""
        record = self.info()
        removed = self._remove()
        queue_forget(self.services.redis, self.name, (record.scenario.get("output") or {}).get(
            "db", self.services.settings.influx_db))
        return removed


NODE_TYPES = ("junction", "tank", "reservoir")


def risk_nodes(wn: wntr.network.WaterNetworkModel, types: Iterable[str] | None) -> tuple[set[str], str]:
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


class Alternatives:
    """Ensembles submitted together (a scenario's alternatives) or chosen to compare."""

    def __init__(self, ensembles: list[Ensemble]):
        self.ensembles = ensembles

    def __repr__(self) -> str:
        return f"<Alternatives {[ensemble.name for ensemble in self.ensembles]}>"

    def __iter__(self) -> Iterator[Ensemble]:
        return iter(self.ensembles)

    def summaries(self) -> pd.DataFrame:
        """Per ensemble: finished members and p5/p50/p95 of the member summaries (pressure_min, pressure_mean,
        nodes_below_threshold)."""
        return alternatives.summary_table({ensemble.name: ensemble.summaries() for ensemble in self.ensembles})

    def bands(self, element: str, attribute: str = "pressure") -> pd.DataFrame:
        """Per ensemble and report time: p5/p50/p95 of one element's stored values over the members."""
        return alternatives.bands({ensemble.name: ensemble.series(element, attribute) for ensemble in self.ensembles})
