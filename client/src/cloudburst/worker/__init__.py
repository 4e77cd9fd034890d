"""The env author's face: what an env's ``worker.py`` calls on a worker, and nothing of the client's.

    from cloudburst import worker as cloudburst_worker

    cache = cloudburst_worker.model_cache()               # models fetched once, sha256-checked
    outcome = cloudburst_worker.run_batch(batch, cache, cloudburst_worker.results_store(), ledger, engine)
    path = cloudburst_worker.model_file(sha256)           # a file uploaded with `cloudburst upload`
    cloudburst_worker.answer_chunk(chunk, engine, redis)  # an evaluation round's chunk, answered on its list

Inside: ``environment`` (the cluster's services from the worker's environment), ``statistics`` and ``aggregate``
(an ensemble's statistics, computed on the workers), ``rounds`` (an evaluation round's chunk), ``taskrun`` (a
task pack's job), ``studies`` (the studies' tasks). It may import ``schema``, ``state`` and ``engine``; never
``plan``, ``api`` or ``cli``.
"""
import typing as _typing

from cloudburst.lazy import lazy_face as _lazy_face

if _typing.TYPE_CHECKING:
    from cloudburst.engine.batch import run_batch
    from cloudburst.engine.warm import WarmEngine
    from cloudburst.errors import InputError
    from cloudburst.state.ledger import BatchOutcome, Ledger
    from cloudburst.worker.environment import (
        influx_writer,
        model_cache,
        model_file,
        point_line,
        results_store,
        secret,
        write_points,
    )
    from cloudburst.worker.rounds import answer_chunk
    from cloudburst.worker.statistics import after_batch, forget_statistics, run_statistics

# Imported when first asked for: a task pack's runner (``taskrun``) imports this package and needs none of them.
_LAZY = {
    "model_cache": "cloudburst.worker.environment", "results_store": "cloudburst.worker.environment",
    "influx_writer": "cloudburst.worker.environment", "model_file": "cloudburst.worker.environment",
    "write_points": "cloudburst.worker.environment", "point_line": "cloudburst.worker.environment",
    "secret": "cloudburst.worker.environment",
    "run_batch": "cloudburst.engine.batch", "BatchOutcome": "cloudburst.state.ledger",
    "WarmEngine": "cloudburst.engine.warm",
    "Ledger": "cloudburst.state.ledger",
    "after_batch": "cloudburst.worker.statistics", "run_statistics": "cloudburst.worker.statistics",
    "forget_statistics": "cloudburst.worker.statistics",
    "InputError": "cloudburst.errors",
    "answer_chunk": "cloudburst.worker.rounds",
}

__all__ = ["model_cache", "results_store", "influx_writer", "model_file", "write_points", "point_line", "secret",
           "run_batch", "BatchOutcome", "WarmEngine", "Ledger", "after_batch", "run_statistics",
           "forget_statistics", "InputError", "answer_chunk"]


__getattr__, __dir__ = _lazy_face(__name__, _LAZY, globals())
