"""Evaluation rounds for optimizers: lists of alteration sets run on the warm engine, answered in order as one numpy
array per metric, with no scenario file, name or results store.

    session = client.session("Net3.inp", run={"duration_s": 3600}, metrics=["pressure_min"])
    result = session.evaluate([[{"type": "demand_scale", "factor": f}] for f in (0.9, 1.0, 1.1)])
    result["pressure_min"]        # array([...]) one per set, NaN where a set failed
    result.status, result.reasons # "finished" / "failed" / "unbalanced", and why

A session keeps the model checked and uploaded once, and its name space (its rounds' numbers); the workers keep the
model open between rounds. The workers push each chunk's answer to the round's reply list, where ``evaluate``
blocks: a round returns as soon as its last chunk is answered.
"""
from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudburst.api.queue import chunk_failures, drop_round_jobs, enqueue_round
from cloudburst.errors import redis_errors
from cloudburst.schema import evaluation as rounds
from cloudburst.schema.queues import JobPolicy
from cloudburst.state.rounds import Replies, reply_key

if TYPE_CHECKING:
    from cloudburst.api.services import Services
    from cloudburst.plan.rounds import RoundSettings

CHECK_EVERY_S = 1.0      # with no answer for this long, the round's unanswered jobs are checked for failures
QUEUED_TTL_S = 600       # a round's job not taken by a worker in this long is dropped (a client that died)
CHUNKS_PER_WORKER = 2    # a round is split in about this many chunks per worker listening on the queue ...
SMALL_ROUND_SETS = 500   # ... and a round of fewer sets per worker in one chunk per worker (a job costs milliseconds)


class Evaluations(Mapping[str, np.ndarray]):
    """A round's answers, in the order of its sets: per metric a float64 array (one entry per set; for a per-node
    metric one row per set, a column per node of ``nodes``), each set's ``status`` and ``reasons`` ("" for a
    finished one)."""

    def __init__(self, values: dict[str, np.ndarray], status: np.ndarray, reasons: list[str], nodes: list[str],
                 seconds: float, workers: set[str]):
        self.arrays = values
        self.status = status
        self.reasons = reasons
        self.nodes = nodes
        self.seconds = seconds      # submit to answers in hand
        self.workers = workers      # the hosts that answered

    def __repr__(self) -> str:
        return (f"<Evaluations of {len(self.status)} sets: {int(self.finished.sum())} finished, "
                f"{', '.join(self.arrays)}, {self.seconds * 1000:.1f} ms>")

    def __getitem__(self, metric: str) -> np.ndarray:
        return self.arrays[metric]

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)

    def __len__(self) -> int:
        return len(self.arrays)

    @property
    def finished(self) -> np.ndarray:
        return self.status == rounds.FINISHED


class Session:
    """Rounds on one model with one run's settings (``Client.session``)."""

    def __init__(self, services: Services, settings: RoundSettings, metrics: list[str] | str, timeout_s: int):
        self.services = services
        self.settings = settings
        self.metrics = rounds.check_metrics(metrics)
        self.timeout_s = timeout_s
        self.name = secrets.token_hex(6)   # the session's name space: its rounds' job IDs and reply lists
        self.rounds = 0
        self._uploaded = False
        self._replies = Replies(services.redis)

    def __repr__(self) -> str:
        return f"<Session {self.name} model {self.settings.model.sha256[:12]} rounds {self.rounds}>"

    @property
    def nodes(self) -> list[str]:
        return self.settings.nodes

    @redis_errors
    def evaluate(self, sets: list[list[dict[str, Any]]], metrics: list[str] | str | None = None, *,
                 prechecked: bool = False) -> Evaluations:
        """Run every alteration set (a list of alterations as a scenario's ``alterations`` holds them, with plain
        values) and return the metrics in the sets' order. InputError, nothing enqueued, when a set does not fit
        the model; TimeoutError when the round is not answered within the session's ``timeout_s`` (its unanswered
        jobs are taken off the queue; those of a client that died expire after ``QUEUED_TTL_S``). ``prechecked``: the
        caller built every set from parts it had checked in a round before (a design study's pipes and loadings), so
        the sets are not checked one by one again."""
        from cloudburst.plan.rounds import plan_chunks

        started = time.perf_counter()
        asked = rounds.check_metrics(metrics) if metrics is not None else self.metrics
        chunks = plan_chunks(self.settings, sets, asked, self.name, self.rounds, self._chunk_count(len(sets)),
                             check_sets=not prechecked)
        if not self._uploaded:
            self.services.models.upload(self.settings.model.data, self.settings.model.sha256)
            self._uploaded = True
        round_ = self.rounds
        self.rounds += 1
        policy = JobPolicy(timeout_s=self.timeout_s)
        ids = enqueue_round(self.services.queue, chunks, policy, QUEUED_TTL_S)
        replies = self._collect(reply_key(self.name, round_), dict(enumerate(ids)), started)
        return self._assemble(chunks, replies, asked, time.perf_counter() - started)

    def _chunk_count(self, sets: int) -> int:
        workers = max(int(self.services.redis.scard(f"rq:workers:{self.services.queue.name}") or 1), 1)
        return workers if sets < SMALL_ROUND_SETS * workers else CHUNKS_PER_WORKER * workers

    def _collect(self, key: str, unanswered: dict[int, str], started: float) -> dict[int, rounds.ChunkReply | str]:
        """Each chunk's first answer, or why it has none."""
        answers: dict[int, rounds.ChunkReply | str] = {}
        deadline = started + self.timeout_s
        checked_at = time.monotonic()
        while unanswered:
            now = time.perf_counter()
            if now > deadline:
                self._replies.forget(key)
                drop_round_jobs(self.services.queue, unanswered.values())
                raise TimeoutError(f"round {key} not answered within {self.timeout_s} s: chunks "
                                   f"{sorted(unanswered)} of {len(unanswered) + len(answers)} missing")
            taken = self._replies.take(key, min(CHECK_EVERY_S, deadline - now))
            for data in taken:
                reply = rounds.ChunkReply.from_bytes(data)
                if reply.chunk in unanswered:  # a chunk whose job ran twice answers twice: the first counts
                    answers[reply.chunk] = reply
                    unanswered.pop(reply.chunk)
            if unanswered and (not taken or time.monotonic() - checked_at >= CHECK_EVERY_S):
                checked_at = time.monotonic()
                for chunk, reason in chunk_failures(self.services.queue, unanswered).items():
                    answers[chunk] = reason
                    unanswered.pop(chunk)
        return answers

    def _assemble(self, chunks: list[dict[str, Any]], answers: dict[int, rounds.ChunkReply | str],
                  metrics: list[str], seconds: float) -> Evaluations:
        count = sum(len(chunk["sets"]) for chunk in chunks)
        widths = {metric: len(self.settings.nodes) for metric in rounds.NODE_METRICS}
        widths[rounds.OBSERVED] = len(self.settings.observe)
        values = {metric: np.full((count, widths[metric]) if metric in widths else count, np.nan)
                  for metric in metrics}
        status = np.full(count, rounds.FAILED, dtype=object)
        reasons = [""] * count
        workers: set[str] = set()
        for chunk in chunks:
            first, size = chunk["first"], len(chunk["sets"])
            answer = answers[chunk["chunk"]]
            if isinstance(answer, str):
                reasons[first:first + size] = [answer] * size
                continue
            workers.add(answer.worker)
            status[first:first + size] = answer.status
            reasons[first:first + size] = answer.reasons
            for metric, array in answer.values.items():
                values[metric][first:first + size] = array
        return Evaluations(values, status.astype(str), reasons, self.settings.nodes, seconds, workers)

    def close(self) -> None:
        self._replies.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def model_key(model: Any) -> tuple[Any, ...]:
    """What tells a client's cached session's model apart: a path by its name, size and modification time (an
    edited file is read again); a wntr model by identity."""
    if isinstance(model, (str, os.PathLike)):
        stat = os.stat(model)
        return (os.fspath(model), stat.st_size, stat.st_mtime_ns)
    return ("object", id(model))

