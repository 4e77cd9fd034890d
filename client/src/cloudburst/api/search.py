"""What a design and a calibration study share: a search the client drives a generation at a time, each generation
one evaluation round (``cloudburst.api.evaluation``), its record and its stored generations.

A study's state is its generations, stored in the results store as each ends (``cloudburst.schema.search``). A
study that stopped (the client was interrupted, a service went away) resumes from its name: the optimizer runs
again from the same seed, each stored generation's candidates are checked to be the ones asked for again and
answered from the store, so a resumed study gives the answers an uninterrupted one gives and runs no candidate
twice. A candidate asked for again in a later generation is answered from the study's earlier answer, not run
again. Generations are written while the next one runs; one lost with the client is run again on resume.
"""
from __future__ import annotations

import json
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from cloudburst.errors import InputError
from cloudburst.schema import search as fmt
from cloudburst.state.records import FINISHED, RUNNING, SearchRecord

if TYPE_CHECKING:
    from cloudburst.api.evaluation import Session
    from cloudburst.api.services import Services
    from cloudburst.plan.rounds import RoundSettings
    from cloudburst.plan.submission import ModelFile

Generation = dict[str, np.ndarray]   # a generation's table (``cloudburst.schema.search``)
SearchT = TypeVar("SearchT", bound="Search")


def study_section(content: dict[str, Any], kind: str) -> dict[str, Any]:
    """The scenario's study section of that type; InputError when the scenario is another or has members."""
    study = content.get("study")
    if not isinstance(study, dict) or study.get("type") != kind:
        raise InputError(f"$.study: a {kind} study's scenario has study: {{type: {kind}, ...}} (see docs/studies.md)")
    extra = sorted(set(content) - {"ensemble", "run", "study"})
    if extra:
        raise InputError(f"$: a {kind} study takes ensemble, run and study; its candidates are its members, not "
                         f"{', '.join(extra)}")
    return study


class Search:
    """A study searched a generation at a time; subclasses say what a candidate is and how it scores."""
    kind: ClassVar[str] = ""

    def __init__(self, services: Services, name: str, model: ModelFile, content: dict[str, Any], timeout_s: int):
        self.services = services
        self.name = name
        self.model = model
        self.content = content
        self.timeout_s = timeout_s
        self._answers: dict[bytes, tuple[float, ...]] = {}  # candidate -> its scores, in ``score_columns`` order
        self._session: Session | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"{self.kind}-{name}")
        self._writes: list[Future[None]] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # What a study says ---------------------------------------------------------------------------------------------

    score_columns: ClassVar[tuple[str, ...]] = ()

    def _round_settings(self) -> tuple[RoundSettings, list[str]]:
        """The rounds' settings and metrics."""
        raise NotImplementedError

    def _score(self, candidates: np.ndarray) -> dict[str, np.ndarray]:
        """Each candidate's scores (``score_columns``), its runs one round on the cluster."""
        raise NotImplementedError

    def check_first(self) -> None:
        """Checks on the cluster before the study is recorded (InputError: nothing is stored)."""

    # The search's machinery ---------------------------------------------------------------------------------------

    def session(self) -> Session:
        if self._session is None:
            from cloudburst.api.evaluation import Session
            settings, metrics = self._round_settings()
            self._session = Session(self.services, settings, metrics, self.timeout_s)
        return self._session

    def generations(self) -> list[Generation]:
        """The stored generations, in order (up to the first missing one)."""
        store = self.services.store
        stored = []
        for index, name in enumerate(store.batches(self.name, fmt.GENERATIONS_DIR)):
            data = store.read(self.name, fmt.GENERATIONS_DIR, name)
            if name != fmt.generation_name(index) or data is None:
                break
            stored.append(fmt.decode_generation(data))
        return stored

    def _answered(self, candidates: np.ndarray, generation: int, stored: list[Generation]) -> Generation:
        """The generation's scores: replayed from the store when it holds this generation (its candidates must be the
        ones asked for again), else each candidate not answered before run on the cluster, and the generation
        written."""
        if generation < len(stored):
            return self._replay(stored[generation], candidates, generation)
        keys = [candidate.tobytes() for candidate in candidates]
        new: dict[bytes, int] = {}
        for position, key in enumerate(keys):
            if key not in self._answers and key not in new:
                new[key] = position
        if new:
            scores = self._score(candidates[np.array(list(new.values()))])
            for row, key in enumerate(new):
                self._answers[key] = tuple(float(scores[column][row]) for column in self.score_columns)
        answers = np.array([self._answers[key] for key in keys], dtype=np.float64).reshape(len(keys), -1)
        evaluated = np.zeros(len(keys), dtype=bool)
        evaluated[list(new.values())] = True
        table = {fmt.DESIGN: candidates, fmt.EVALUATED: evaluated,
                 **{column: answers[:, index] for index, column in enumerate(self.score_columns)}}
        failed = [write for write in self._writes if write.done() and write.exception() is not None]
        if failed:
            failed[0].result()
        self._writes.append(self._writer.submit(self._write_generation, generation, table))
        return table

    def _replay(self, stored: Generation, candidates: np.ndarray, generation: int) -> Generation:
        if stored[fmt.DESIGN].shape != candidates.shape or (stored[fmt.DESIGN] != candidates).any():
            raise InputError(f"{self.name}: generation {generation} as stored is not what the search asks for again "
                             "(another optimizer version, or the study changed): start a study of another name")
        for position, candidate in enumerate(candidates):
            self._answers.setdefault(candidate.tobytes(), tuple(float(stored[column][position])
                                                                for column in self.score_columns))
        return stored

    def _write_generation(self, generation: int, table: Generation) -> None:
        self.services.store.put_file(self.name, fmt.GENERATIONS_DIR, fmt.generation_name(generation),
                                     fmt.encode_generation(table))

    def flush(self) -> None:
        """Wait for the generations being written; raise the first write's error."""
        writes, self._writes = self._writes, []
        for write in writes:
            write.result()

    def started(self) -> None:
        self.services.records.set_state(self.name, RUNNING)

    def finished(self, tables: dict[str, pd.DataFrame]) -> None:
        """Store the answers and mark the study finished."""
        for table, frame in tables.items():
            self.services.store.put_file(self.name, fmt.ANSWERS_DIR, table, fmt.encode_frame(frame))
        self.services.records.set_state(self.name, FINISHED)

    def answer(self, table: str) -> pd.DataFrame:
        data = self.services.store.read(self.name, fmt.ANSWERS_DIR, table)
        if data is None:
            raise InputError(f"{self.name}: the study has no {table} table yet (it has not finished, or found no "
                             f"answer): run `cloudburst {'design' if self.kind == 'design' else 'calibrate'} "
                             f"{self.name}` to resume it")
        return fmt.decode_frame(data)

    def state(self) -> str:
        return self.services.records.get_search(self.name, self.kind).state

    @staticmethod
    def _convergence_of(stored: list[Generation]) -> pd.DataFrame:
        """Per generation of ``stored``: evaluations so far and the best so far (the ``convergence`` table)."""
        raise NotImplementedError

    def progress(self) -> tuple[str, pd.DataFrame]:
        """The study's state and its convergence so far: a finished study's stored table (one read), a running or
        stopped one's computed from its stored generations (a read each)."""
        state = self.state()
        stored = self.services.store.read(self.name, fmt.ANSWERS_DIR, fmt.CONVERGENCE) if state == FINISHED else None
        if stored is not None:
            return state, fmt.decode_frame(stored)
        return state, self._convergence_of(self.generations())

    def delete(self) -> dict[str, Any]:
        """Remove the study's stored generations and answers, and its record. Only its owner or an admin may."""
        records = self.services.records
        self.services.people.refuse_change(self.name, records.get_search(self.name, self.kind).owner, "delete")
        records.mark_deleted(self.name)
        files = self.services.store.delete(self.name)
        records.delete(self.name)
        return {"dequeued": 0, "files": files}

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        if self._session is not None:
            self._session.close()


def evaluations(stored: list[Generation]) -> np.ndarray:
    """Per generation, the candidates run on the cluster so far."""
    return np.cumsum([int(generation[fmt.EVALUATED].sum()) for generation in stored], dtype=np.int64)


def open_search(kind: type[SearchT], services: Services, name: str, model: ModelFile | None = None,
                content: dict[str, Any] | None = None, timeout_s: int = 600) -> SearchT:
    """A study: a new one (model and content given, name free: checked, then recorded), or the stored one of that
    name (with the model and scenario it was started with; given ones must be the same)."""
    from cloudburst.plan.submission import read_model
    records = services.records
    try:
        records.kind(name)
    except InputError:
        if model is None or content is None:
            raise InputError(f"no {kind.kind} study {name!r}: give the model and the scenario to start one") from None
        study = kind(services, name, model, content, timeout_s)  # checks the study against the model
        records.refuse_taken(name)
        study.check_first()
        records.create(SearchRecord(name=name, model_sha256=model.sha256, scenario=content, kind=kind.kind))
        return study
    record = records.get_search(name, kind.kind)
    if model is not None and model.sha256 != record.model_sha256:
        raise InputError(f"{name}: the study was started on model {record.model_sha256[:12]}, not "
                         f"{model.sha256[:12]}: give another name for a new study")
    if content is not None and json.dumps(content, sort_keys=True) != json.dumps(record.scenario, sort_keys=True):
        raise InputError(f"{name}: the study was started with another scenario: give another name for a new study")
    if model is None:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            path.write_bytes(services.models.fetch(record.model_sha256))
            model = read_model(path)
    return kind(services, name, model, record.scenario, timeout_s)
