"""The results store: an ensemble's members' series, summaries and status as Parquet files, a file per batch.

Layout, under the store's root URL (Nginx's ``/results/`` on the master, WebDAV PUT and DELETE)::

    <ensemble>/series/<batch>.parquet    every series value of the batch's finished members (long format)
    <ensemble>/members/<batch>.parquet   one row per member of the batch: status, error, summary, provenance

A batch's files are written series first, members last: a members file is the batch's commit, and a reader
reads series only of batches whose members file exists. Nginx writes a PUT body to a temporary file and renames
it into place, so a writer killed mid-upload leaves no file a reader sees. A batch's name is fixed when it is
enqueued, so a batch that runs again (its worker died) replaces its files instead of adding rows.

The tables' columns are named in ``cloudburst.resultformat``; this module owns the paths and the bytes.
"""
from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterable
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import requests

from cloudburst.errors import ServiceError, refused, service_errors

log = logging.getLogger(__name__)
SERIES_DIR, MEMBERS_DIR = "series", "members"
SUFFIX = ".parquet"
SERVICE = "the results store"
# zstd with byte-stream-split floats: lossless, and measured smallest per value for float32 ensemble series.
_WRITE_OPTIONS = {"compression": "zstd", "compression_level": 9}


def encode(table: pa.Table, float_columns: Iterable[str] = ()) -> bytes:
    """A table as Parquet bytes: no dictionary pages for the float columns (they are nearly all distinct), whose
    bytes are split by position before compression; every other column dictionary-encoded."""
    floats = [name for name in float_columns if name in table.column_names]
    sink = io.BytesIO()
    pq.write_table(table, sink, use_dictionary=[name for name in table.column_names if name not in floats],
                   use_byte_stream_split=floats or False, **_WRITE_OPTIONS)
    return sink.getvalue()


def decode(data: bytes, columns: list[str] | None = None, filters: list | None = None) -> pa.Table:
    return pq.read_table(io.BytesIO(data), columns=columns, filters=filters)


class ResultsStore:
    """One cluster's results store over HTTP (Nginx WebDAV): write, list, read and delete an ensemble's files."""

    def __init__(self, url: str, auth: tuple[str, str] | None, session: requests.Session | None = None,
                 timeout_s: float = 300.0, retry_for_s: float = 0.0):
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        if auth is not None:
            self.session.auth = auth
        self.timeout_s = timeout_s
        self.retry_for_s = retry_for_s  # writes keep retrying an unreachable or failing (5xx) store this long

    def _location(self, ensemble: str, directory: str = "", batch: str | None = None) -> str:
        location = f"{self.url}/{quote(ensemble, safe='')}/"
        if directory:
            location += f"{directory}/"
        if batch is not None:
            location += f"{quote(batch, safe='')}{SUFFIX}"
        return location

    def put_batch(self, ensemble: str, batch: str, series: bytes | None, members: bytes) -> None:
        """Store a batch's files: its series (when it has any), then its members file, the batch's commit."""
        if series is not None:
            self._put(self._location(ensemble, SERIES_DIR, batch), series)
        self._put(self._location(ensemble, MEMBERS_DIR, batch), members)

    def _put(self, location: str, data: bytes) -> None:
        give_up_at, delay = time.monotonic() + self.retry_for_s, 0.5
        while True:
            try:
                with service_errors(SERVICE, self.url):
                    response = self.session.put(location, data=data, timeout=self.timeout_s)
                if response.status_code in (201, 204):
                    return
                error = refused(SERVICE, self.url, response, "storing results", _user(self.session))
                if response.status_code < 500:
                    raise error
            except ServiceError as failure:
                error = failure
            if time.monotonic() + delay > give_up_at:
                raise error
            log.warning("%s; retrying in %.1f s", error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def batches(self, ensemble: str, directory: str = MEMBERS_DIR) -> list[str]:
        """The committed batches (or, for SERIES_DIR, the batches with series) of the ensemble; [] for none."""
        with service_errors(SERVICE, self.url):
            response = self.session.get(self._location(ensemble, directory), timeout=self.timeout_s)
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise refused(SERVICE, self.url, response, f"listing {ensemble}'s results", _user(self.session))
        return sorted(entry["name"].removesuffix(SUFFIX) for entry in response.json()
                      if entry.get("type") == "file" and entry["name"].endswith(SUFFIX))

    def read(self, ensemble: str, directory: str, batch: str) -> bytes | None:
        """A batch's file, or None when it is not there (a batch without series, or deleted meanwhile)."""
        with service_errors(SERVICE, self.url):
            response = self.session.get(self._location(ensemble, directory, batch), timeout=self.timeout_s)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise refused(SERVICE, self.url, response, f"reading {ensemble}'s results", _user(self.session))
        return response.content

    def size(self, ensemble: str) -> int:
        """Bytes the ensemble's files take."""
        total = 0
        for directory in (SERIES_DIR, MEMBERS_DIR):
            with service_errors(SERVICE, self.url):
                response = self.session.get(self._location(ensemble, directory), timeout=self.timeout_s)
            if response.status_code == 200:
                total += sum(int(entry.get("size", 0)) for entry in response.json() if entry.get("type") == "file")
        return total

    def delete(self, ensemble: str) -> bool:
        """Remove every file of the ensemble; returns whether there were any."""
        with service_errors(SERVICE, self.url):
            response = self.session.delete(self._location(ensemble), timeout=self.timeout_s)
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 204):
            raise refused(SERVICE, self.url, response, f"deleting {ensemble}'s results", _user(self.session))
        return True


def _user(session: requests.Session) -> str:
    auth = session.auth
    return auth[0] if isinstance(auth, tuple) else "(none)"
