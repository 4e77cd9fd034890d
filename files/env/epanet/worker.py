"""CloudBurst's example env: run batches of EPANET ensemble members, and their statistics, with the cloudburst engine.

A batch is enqueued as ``worker.run`` with the batch document (schema ``cloudburst.batch/1``) as its one
argument; statistics as ``worker.statistics`` with the ensemble's name; dropping a deleted ensemble's statistics
as ``worker.forget``. Connection settings come from the worker
container's environment; passwords from the files Docker mounts its secrets as.
"""
from __future__ import annotations

import os
import socket
from typing import Any

import requests
from rq import get_current_job

from cloudburst import statistics as cluster_statistics
from cloudburst.engine import run_batch
from cloudburst.errors import InputError
from cloudburst.influx import InfluxWriter
from cloudburst.ledger import Ledger
from cloudburst.models import ModelCache
from cloudburst.store import ResultsStore, open_store
from cloudburst.warm import WarmEngine


def _secret(variable: str) -> str | None:
    path = os.environ.get(variable)
    if not path:
        return None
    with open(path, encoding="utf-8") as secret:
        return secret.read().strip()


class _FilesAuth(requests.auth.HTTPBasicAuth):
    """Basic auth for CloudBurst's own file server only: never sent to other hosts a job may name."""

    def __init__(self, prefix: str, username: str, password: str):
        super().__init__(username, password)
        self.prefix = prefix

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return super().__call__(request) if (request.url or "").startswith(self.prefix) else request


def _files_credentials() -> tuple[str, str] | None:
    user = os.environ.get("CLOUDBURST_FILES_USER")
    return (user, _secret("CLOUDBURST_FILES_PASSWORD_FILE") or "") if user else None


def _model_session() -> requests.Session:
    session = requests.Session()
    files_url, credentials = os.environ.get("CLOUDBURST_FILES_URL"), _files_credentials()
    if files_url and credentials:
        session.auth = _FilesAuth(files_url, *credentials)
    return session


def _store() -> ResultsStore | None:
    url = os.environ.get("CLOUDBURST_RESULTS_URL")
    if not url:  # a dry run: nothing is stored
        return None
    user = os.environ.get("CLOUDBURST_RESULTS_USER")  # an S3 store's access key; default: the file service's user
    credentials = (user, _secret("CLOUDBURST_RESULTS_PASSWORD_FILE") or "") if user else _files_credentials()
    return open_store(url, credentials, os.environ.get("CLOUDBURST_RESULTS_ENDPOINT", ""),
                        # long enough to ride out a restart of the master's file service rather than fail a batch
                        retry_for_s=float(os.environ.get("CLOUDBURST_STORE_RETRY_S", "300")))


def _writer() -> InfluxWriter | None:
    url = os.environ.get("CLOUDBURST_INFLUX_URL")
    if not url:
        return None
    return InfluxWriter(url=url, db=os.environ.get("CLOUDBURST_INFLUX_DB", "cloudburst"),
                        username=os.environ.get("CLOUDBURST_INFLUX_USER"),
                        password=_secret("CLOUDBURST_INFLUX_PASSWORD_FILE"),
                        retry_for_s=float(os.environ.get("CLOUDBURST_INFLUX_RETRY_S", "300")))


_cache = ModelCache(os.environ.get("CLOUDBURST_MODEL_CACHE", "/tmp/cloudburst-models"), session=_model_session())
# Models stay open in this process's EPANET toolkit between jobs (CLOUDBURST_ENGINE=file: wntr's file path only).
_engine = WarmEngine(_cache) if os.environ.get("CLOUDBURST_ENGINE", "toolkit") == "toolkit" else None
_results = _store()
_statistics = _writer()


def run(batch: dict[str, Any]) -> dict[str, Any]:
    """Run a batch's members, store and record them, and queue the ensemble's statistics when they are due.

    A member that fails (bad job, model, hydraulics) is a failed row of the batch, not a failed job: a re-run
    would fail it the same way. A payload that is not a batch fails the job once. The job fails and is retried for
    what a re-run can fix: a worker or host that died mid-batch, or a store that stayed away through every retry.
    """
    current = get_current_job()
    ledger = Ledger(current.connection) if current is not None and _results is not None else None
    try:
        outcome = run_batch(batch, _cache, _results, ledger, _engine)
    except InputError:  # not a batch: the same every time, so not retried
        if current is not None:
            current.retries_left = 0
        raise
    if ledger is not None and _statistics is not None:
        cluster_statistics.after_batch(current.connection, batch["ensemble"], outcome.members_done)
    return {"finished": len(outcome.finished), "failed": len(outcome.failed), "unbalanced": len(outcome.unbalanced),
            "worker": socket.gethostname()}


def statistics(name: str) -> int:
    """Compute and write an ensemble's statistics; returns the points written."""
    current = get_current_job()
    if current is None or _results is None or _statistics is None:
        raise RuntimeError("statistics need the results store, InfluxDB and the queue's Redis")
    return cluster_statistics.run_statistics(current.connection, name, _results, _statistics)


def forget(name: str, db: str) -> int:
    """Drop a deleted ensemble's statistics from InfluxDB; returns the statements run."""
    if _statistics is None:
        raise RuntimeError("forgetting statistics needs InfluxDB")
    return cluster_statistics.forget_statistics(name, db, _statistics)
