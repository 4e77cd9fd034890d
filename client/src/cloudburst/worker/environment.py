"""The cluster's services as code running on a worker sees them: the results store, InfluxDB and the file service,
with the worker container's credentials.

Everything is read from the worker's environment (``CLOUDBURST_*`` variables the stack sets; passwords from the
files Docker mounts its secrets as), once per process. An env's own functions use the helpers at the bottom:

    from cloudburst.worker import environment as cluster
    path = cluster.model_file(sha256)              # a file uploaded with `cloudburst upload`, fetched and verified
    cluster.write_points("peaks", [{"fields": {"flow": 1.2}, "tags": {"outfall": "O1"}}])
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests

from cloudburst.errors import ConfigError, InputError
from cloudburst.schema.queues import MANIFEST_CALLABLES
from cloudburst.state.files import model_path
from cloudburst.state.https import cluster_session
from cloudburst.state.influx import InfluxWriter
from cloudburst.state.models import ModelCache
from cloudburst.state.store import ResultsStore, open_store


def secret(variable: str) -> str | None:
    """The content of the secret file the variable names (None when it names none)."""
    path = os.environ.get(variable)
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


@functools.cache
def declared_callables() -> dict[str, list[str]] | None:
    """Per env module, the functions the running env declares callable: from the manifest the worker's entrypoint
    names in ``CLOUDBURST_ENV_MANIFEST`` (None without one: only CloudBurst's own functions run)."""
    path = os.environ.get("CLOUDBURST_ENV_MANIFEST")
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get(MANIFEST_CALLABLES, {})


class _FilesAuth(requests.auth.HTTPBasicAuth):
    """Basic auth for CloudBurst's own file server only: never sent to other hosts a job may name."""

    def __init__(self, prefix: str, username: str, password: str):
        super().__init__(username, password)
        self.prefix = prefix

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return super().__call__(request) if (request.url or "").startswith(self.prefix) else request


def files_url() -> str | None:
    return os.environ.get("CLOUDBURST_FILES_URL")


def _files_credentials() -> tuple[str, str] | None:
    user = os.environ.get("CLOUDBURST_FILES_USER")
    return (user, secret("CLOUDBURST_FILES_PASSWORD_FILE") or "") if user else None


def ca_file() -> str | None:
    """The cluster's CA the stack mounts (``CLOUDBURST_CA_FILE``): its https and rediss servers are verified
    against it."""
    return os.environ.get("CLOUDBURST_CA_FILE") or None


def model_session() -> requests.Session:
    session = cluster_session(ca_file())
    url, credentials = files_url(), _files_credentials()
    if url and credentials:
        session.auth = _FilesAuth(url, *credentials)
    return session


@functools.cache
def model_cache() -> ModelCache:
    return ModelCache(os.environ.get("CLOUDBURST_MODEL_CACHE", "/tmp/cloudburst-models"), session=model_session())


@functools.cache
def results_store() -> ResultsStore | None:
    """The results store, or None on a dry run (no ``CLOUDBURST_RESULTS_URL``: nothing is stored)."""
    url = os.environ.get("CLOUDBURST_RESULTS_URL")
    if not url:
        return None
    user = os.environ.get("CLOUDBURST_RESULTS_USER")  # an S3 store's access key; default: the file service's user
    credentials = (user, secret("CLOUDBURST_RESULTS_PASSWORD_FILE") or "") if user else _files_credentials()
    return open_store(url, credentials, os.environ.get("CLOUDBURST_RESULTS_ENDPOINT", ""),
                      # long enough to ride out a restart of the master's file service rather than fail a batch
                      retry_for_s=float(os.environ.get("CLOUDBURST_STORE_RETRY_S", "300")), ca_file=ca_file())


@functools.cache
def influx_writer() -> InfluxWriter | None:
    """InfluxDB as the workers' writing user, or None when the worker has no InfluxDB."""
    url = os.environ.get("CLOUDBURST_INFLUX_URL")
    if not url:
        return None
    return InfluxWriter(url=url, db=os.environ.get("CLOUDBURST_INFLUX_DB", "cloudburst"),
                        username=os.environ.get("CLOUDBURST_INFLUX_USER"),
                        password=secret("CLOUDBURST_INFLUX_PASSWORD_FILE"),
                        retry_for_s=float(os.environ.get("CLOUDBURST_INFLUX_RETRY_S", "300")),
                        session=cluster_session(ca_file()))


def model_file(sha256: str) -> Path:
    """A file uploaded to the cluster (``cloudburst upload``, ``Client.upload``), fetched once per worker and
    verified against its sha256; raises InputError when it is not on the cluster or differs."""
    url = files_url()
    if not url:
        raise ConfigError("this process has no CLOUDBURST_FILES_URL: it is not running on a CloudBurst worker")
    return model_cache().path_for(f"{url}/{model_path(sha256)}", sha256)


def _escape(text: str, specials: str) -> str:
    for character in "\\" + specials:
        text = text.replace(character, "\\" + character)
    return text


def _field_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"InfluxDB cannot store the field value {value!r}")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise InputError(f"a field value is a number, a bool or a string, not {type(value).__name__}")


def point_line(measurement: str, fields: Mapping[str, Any], tags: Mapping[str, str] | None = None,
               time_s: float | None = None) -> str:
    """One point in InfluxDB's line protocol, timestamped in seconds (now when not given)."""
    if not fields:
        raise InputError(f"a point of {measurement!r} needs at least one field")
    key = _escape(measurement, ", ")
    for tag, value in sorted((tags or {}).items()):
        key += f",{_escape(str(tag), ',= ')}={_escape(str(value), ',= ')}"
    values = ",".join(f"{_escape(str(name), ',= ')}={_field_value(value)}" for name, value in fields.items())
    return f"{key} {values} {int(time.time() if time_s is None else time_s)}"


def write_points(measurement: str, points: Iterable[Mapping[str, Any]], db: str | None = None) -> int:
    """Write points (each ``{"fields": {...}, "tags": {...}, "time": unix_seconds}``, tags and time optional) to
    the cluster's InfluxDB with the worker's credentials; returns how many were written."""
    writer = influx_writer()
    if writer is None:
        raise ConfigError("this process has no CLOUDBURST_INFLUX_URL: it is not running on a CloudBurst worker")
    return writer.write((point_line(measurement, point["fields"], point.get("tags"), point.get("time"))
                         for point in points), db=db)
