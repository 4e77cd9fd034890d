"""The results store: an ensemble's members' series, summaries and status as Parquet files, a file per batch.

Two backends speak the same five operations (``ResultsStore``: put a batch, list, read, size, delete): the
stack's own, Nginx's ``/results/`` on the master over WebDAV (``WebDavStore``), and any S3-compatible object store
(``S3Store``, ``s3://bucket/prefix`` URLs; needs ``cloudburst[s3]``). ``open_store`` picks one by the URL.

Layout, under the store's root::

    <ensemble>/series/<batch>.parquet    every series value of the batch's finished members (long format)
    <ensemble>/members/<batch>.parquet   one row per member of the batch: status, error, summary, provenance
    <study>/generations/<n>.parquet      a design study's generation n: every design and its scores
    <study>/design/<table>.parquet       a design study's answers: best, pressures, convergence, pareto

A batch's files are written series first, members last: a members file is the batch's commit, and a reader
reads series only of batches whose members file exists. Nginx writes a PUT body to a temporary file and renames
it into place, and an S3 object appears whole or not at all, so a writer killed mid-upload leaves no file a reader
sees. A batch's name is fixed when it is enqueued, so a batch that runs again (its worker died) replaces its files
instead of adding rows.

The tables' columns and their Parquet encoding are ``cloudburst.schema.resultformat``'s; this module owns the
paths and the service.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import quote

import requests

if TYPE_CHECKING:
    pass

from cloudburst.errors import ConfigError, ServiceError, refused
from cloudburst.state.https import cluster_session, session_errors

log = logging.getLogger(__name__)
SERIES_DIR, MEMBERS_DIR = "series", "members"
SUFFIX = ".parquet"
SERVICE = "the results store"
_T = TypeVar("_T")


class ResultsStore(Protocol):
    """What the engine, the statistics and the client need of a results store."""

    def put_batch(self, ensemble: str, batch: str, series: bytes | None, members: bytes) -> None:
        """Store a batch's files: its series (when it has any), then its members file, the batch's commit."""

    def put_file(self, ensemble: str, directory: str, batch: str, data: bytes) -> None:
        """Store one file of the ensemble (or study) under ``directory``, replacing any of that name."""

    def batches(self, ensemble: str, directory: str = MEMBERS_DIR) -> list[str]:
        """The committed batches (or, for SERIES_DIR, the batches with series) of the ensemble; [] for none."""

    def listing(self, ensemble: str, directory: str = MEMBERS_DIR) -> dict[str, int]:
        """``batches`` with each file's size in bytes."""

    def read(self, ensemble: str, directory: str, batch: str) -> bytes | None:
        """A batch's file, or None when it is not there."""

    def size(self, ensemble: str) -> int:
        """Bytes the ensemble's files take."""

    def delete(self, ensemble: str) -> bool:
        """Remove every file of the ensemble; returns whether there were any."""


def relative_path(ensemble: str, directory: str = "", batch: str | None = None, escape: bool = False) -> str:
    """Where an ensemble's folder, one of its directories, or a batch's file is below the store's root (the layout
    above); ``escape`` quotes names for a URL."""
    name = (lambda text: quote(text, safe="")) if escape else (lambda text: text)
    path = f"{name(ensemble)}/"
    if directory:
        path += f"{directory}/"
    if batch is not None:
        path += f"{name(batch)}{SUFFIX}"
    return path


def open_store(url: str, credentials: tuple[str, str] | None, endpoint: str = "",
               retry_for_s: float = 0.0, ca_file: str | None = None) -> ResultsStore:
    """The store at url: ``s3://bucket/prefix`` an S3-compatible object store (at ``endpoint``, e.g.
    ``https://minio.example:9000``; credentials: access key and secret), ``http(s)://`` the stack's WebDAV store
    (credentials: user and password; an https store verified against ``ca_file``, the cluster's CA)."""
    if url.startswith("s3://"):
        return S3Store(url, credentials, endpoint or None, retry_for_s)
    return WebDavStore(url, credentials, session=cluster_session(ca_file), retry_for_s=retry_for_s)


def _retrying(what: Callable[[], _T], retry_for_s: float, retry_if: Callable[[ServiceError], bool]) -> _T:
    """what(), retried with backoff for retry_for_s on the ServiceErrors retry_if accepts (an unreachable or
    failing store: its restart should not fail a batch)."""
    give_up_at, delay = time.monotonic() + retry_for_s, 0.5
    while True:
        try:
            return what()
        except ServiceError as error:
            if not retry_if(error) or time.monotonic() + delay > give_up_at:
                raise
            log.warning("%s; retrying in %.1f s", error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class _Retryable(ServiceError):
    """A store that does not answer or answers 5xx: worth another try."""


class WebDavStore:
    """The stack's results store over HTTP (Nginx WebDAV): write, list, read and delete an ensemble's files."""

    def __init__(self, url: str, auth: tuple[str, str] | None, session: requests.Session | None = None,
                 timeout_s: float = 300.0, retry_for_s: float = 0.0, connect_timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        if auth is not None:
            self.session.auth = auth
        # A short connect timeout: a connection attempt made while the master is out of reach (a partition) fails
        # and is retried, instead of waiting out the kernel's SYN retries (~2 min) after the network is back.
        self.timeouts = (connect_timeout_s, timeout_s)
        self.retry_for_s = retry_for_s  # writes keep retrying an unreachable or failing (5xx) store this long

    def _location(self, ensemble: str, directory: str = "", batch: str | None = None) -> str:
        return f"{self.url}/{relative_path(ensemble, directory, batch, escape=True)}"

    def put_batch(self, ensemble: str, batch: str, series: bytes | None, members: bytes) -> None:
        """Store a batch's files: its series (when it has any), then its members file, the batch's commit."""
        if series is not None:
            self.put_file(ensemble, SERIES_DIR, batch, series)
        self.put_file(ensemble, MEMBERS_DIR, batch, members)

    def put_file(self, ensemble: str, directory: str, batch: str, data: bytes) -> None:
        """Store one file, replacing any of that name (a design study's tables use their own directories)."""
        self._put(self._location(ensemble, directory, batch), data)

    def _put(self, location: str, data: bytes) -> None:
        def attempt() -> None:
            try:
                with session_errors(SERVICE, self.url, self.session):
                    response = self.session.put(location, data=data, timeout=self.timeouts)
            except ServiceError as unreachable:
                raise _Retryable(str(unreachable)) from None
            if response.status_code in (201, 204):
                return
            error = refused(SERVICE, self.url, response, "storing results", _user(self.session))
            raise _Retryable(str(error)) if response.status_code >= 500 else error
        _retrying(attempt, self.retry_for_s, lambda error: isinstance(error, _Retryable))

    def batches(self, ensemble: str, directory: str = MEMBERS_DIR) -> list[str]:
        """The committed batches (or, for SERIES_DIR, the batches with series) of the ensemble; [] for none."""
        return sorted(self.listing(ensemble, directory))

    def listing(self, ensemble: str, directory: str = MEMBERS_DIR) -> dict[str, int]:
        """``batches`` with each file's size in bytes (Nginx's JSON index)."""
        with session_errors(SERVICE, self.url, self.session):
            response = self.session.get(self._location(ensemble, directory), timeout=self.timeouts)
        if response.status_code == 404:
            return {}
        if response.status_code != 200:
            raise refused(SERVICE, self.url, response, f"listing {ensemble}'s results", _user(self.session))
        return {entry["name"].removesuffix(SUFFIX): int(entry.get("size", 0)) for entry in response.json()
                if entry.get("type") == "file" and entry["name"].endswith(SUFFIX)}

    def read(self, ensemble: str, directory: str, batch: str) -> bytes | None:
        """A batch's file, or None when it is not there (a batch without series, or deleted meanwhile)."""
        with session_errors(SERVICE, self.url, self.session):
            response = self.session.get(self._location(ensemble, directory, batch), timeout=self.timeouts)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise refused(SERVICE, self.url, response, f"reading {ensemble}'s results", _user(self.session))
        return response.content

    def size(self, ensemble: str) -> int:
        """Bytes the ensemble's files take."""
        total = 0
        for directory in (SERIES_DIR, MEMBERS_DIR):
            with session_errors(SERVICE, self.url, self.session):
                response = self.session.get(self._location(ensemble, directory), timeout=self.timeouts)
            if response.status_code == 200:
                total += sum(int(entry.get("size", 0)) for entry in response.json() if entry.get("type") == "file")
        return total

    def delete(self, ensemble: str) -> bool:
        """Remove every file of the ensemble; returns whether there were any."""
        with session_errors(SERVICE, self.url, self.session):
            response = self.session.delete(self._location(ensemble), timeout=self.timeouts)
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 204):
            raise refused(SERVICE, self.url, response, f"deleting {ensemble}'s results", _user(self.session))
        return True


class S3Store:
    """An S3-compatible object store as the results store: objects ``<prefix><ensemble>/<directory>/<batch>.parquet``
    in one bucket (``s3://bucket/prefix``). PutObject makes an object appear whole or not at all."""

    def __init__(self, url: str, credentials: tuple[str, str] | None, endpoint: str | None,
                 retry_for_s: float = 0.0):
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError("an s3:// results store needs boto3: pip install 'cloudburst[s3]'") from None
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.url, self.bucket, self.prefix = url, bucket, (prefix.rstrip("/") + "/") if prefix else ""
        self.endpoint = endpoint or "AWS"
        self.retry_for_s = retry_for_s
        key, secret = credentials if credentials else (None, None)
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                                   region_name="us-east-1",
                                   config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                                 connect_timeout=10, read_timeout=300))

    def _key(self, ensemble: str, directory: str = "", batch: str | None = None) -> str:
        return f"{self.prefix}{relative_path(ensemble, directory, batch)}"

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        """A boto3 call; its failures become ServiceErrors naming the store (AccessDenied: the key refused)."""
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            return call()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                raise ServiceError(f"{SERVICE} at {self.endpoint} refused the access key for {self.url}") from None
            if code in ("NoSuchBucket",):
                raise ServiceError(f"{SERVICE} at {self.endpoint} has no bucket {self.bucket!r}") from None
            raise ServiceError(f"{SERVICE} at {self.endpoint} answered {code or 'an error'} to {what}") from None
        except BotoCoreError as error:
            raise _Retryable(f"{SERVICE} at {self.endpoint} does not answer ({type(error).__name__})") from None

    def put_batch(self, ensemble: str, batch: str, series: bytes | None, members: bytes) -> None:
        for directory, data in ((SERIES_DIR, series), (MEMBERS_DIR, members)):
            if data is not None:
                self.put_file(ensemble, directory, batch, data)

    def put_file(self, ensemble: str, directory: str, batch: str, data: bytes) -> None:
        key = self._key(ensemble, directory, batch)
        _retrying(lambda: self._call("storing results", lambda: self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data)), self.retry_for_s, lambda error: isinstance(error, _Retryable))

    def _objects(self, prefix: str) -> list[dict]:
        def listing() -> list[dict]:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return [entry for page in pages for entry in page.get("Contents", [])]
        return self._call("listing results", listing)

    def batches(self, ensemble: str, directory: str = MEMBERS_DIR) -> list[str]:
        return sorted(self.listing(ensemble, directory))

    def listing(self, ensemble: str, directory: str = MEMBERS_DIR) -> dict[str, int]:
        prefix = self._key(ensemble, directory)
        return {entry["Key"][len(prefix):].removesuffix(SUFFIX): int(entry["Size"]) for entry in self._objects(prefix)
                if entry["Key"].endswith(SUFFIX) and "/" not in entry["Key"][len(prefix):]}

    def read(self, ensemble: str, directory: str, batch: str) -> bytes | None:
        from botocore.exceptions import ClientError
        key = self._key(ensemble, directory, batch)

        def get() -> bytes | None:
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise  # _call names the store and the refusal
        return self._call("reading results", get)

    def size(self, ensemble: str) -> int:
        return sum(int(entry["Size"]) for entry in self._objects(self._key(ensemble)))

    def delete(self, ensemble: str) -> bool:
        keys = [entry["Key"] for entry in self._objects(self._key(ensemble))]
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start:start + 1000]]
            self._call("deleting results", lambda: self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}))
        return bool(keys)


def _user(session: requests.Session) -> str:
    auth = session.auth
    return auth[0] if isinstance(auth, tuple) else "(none)"
