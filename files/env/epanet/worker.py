"""CloudBurst's example env: run one EPANET ensemble member per job with the cloudburst engine.

A job is enqueued as ``worker.run`` with the job document (schema ``cloudburst.job/1``) as its one
argument. Connection settings come from the worker container's environment; passwords from the
files Docker mounts its secrets as.
"""
from __future__ import annotations

import os
from typing import Any

import requests
from rq import get_current_job

from cloudburst.engine import run_member
from cloudburst.errors import MemberFailed
from cloudburst.influx import InfluxWriter
from cloudburst.models import ModelCache


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


def _model_session() -> requests.Session:
    session = requests.Session()
    files_url, user = os.environ.get("CLOUDBURST_FILES_URL"), os.environ.get("CLOUDBURST_FILES_USER")
    if files_url and user:
        session.auth = _FilesAuth(files_url, user, _secret("CLOUDBURST_FILES_PASSWORD_FILE") or "")
    return session


def _writer() -> InfluxWriter | None:
    url = os.environ.get("CLOUDBURST_INFLUX_URL")
    if not url:  # a dry run: results stay in the job's return value
        return None
    return InfluxWriter(url=url, db=os.environ.get("CLOUDBURST_INFLUX_DB", "cloudburst"),
                        username=os.environ.get("CLOUDBURST_INFLUX_USER"),
                        password=_secret("CLOUDBURST_INFLUX_PASSWORD_FILE"),
                        # long enough to ride out an InfluxDB or master restart rather than fail the member
                        retry_for_s=float(os.environ.get("CLOUDBURST_INFLUX_RETRY_S", "300")))


_cache = ModelCache(os.environ.get("CLOUDBURST_MODEL_CACHE", "/tmp/cloudburst-models"), session=_model_session())
_results = _writer()


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run one member and write its results; the status record is the job's return value.

    A member that fails (bad job, model, hydraulics) fails the same way every time: its RQ job is not
    retried. Retries stay for what a re-run can fix: a worker or host that died mid-job.
    """
    try:
        return run_member(job, _cache, _results)
    except MemberFailed:
        current = get_current_job()
        if current is not None:
            current.retries_left = 0
        raise
