"""InfluxDB 1.x over HTTP: writing line protocol (batched, retried on timeouts and 5xx, failing loudly on 4xx)
and running InfluxQL queries into DataFrames."""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    import pandas as pd

from cloudburst.errors import InfluxWriteError, ServiceError, refused
from cloudburst.state.https import session_errors

log = logging.getLogger(__name__)


@dataclass
class InfluxWriter:
    url: str
    db: str
    username: str | None = None
    password: str | None = None
    batch_lines: int = 20_000
    retry_for_s: float = 30.0       # keep retrying an unreachable or failing InfluxDB this long
    backoff_s: float = 0.5
    timeout_s: float = 30.0
    concurrent_posts: int = 3  # requests in flight at once
    session: requests.Session = field(default_factory=requests.Session)

    def write(self, lines: Iterable[str], db: str | None = None, precision: str = "s") -> int:
        """Write every line to db (default: the writer's), timestamps in ``precision`` (InfluxDB's s, ms, u or
        ns); returns the number of lines written.

        Batches are built while earlier ones are in flight, up to ``concurrent_posts`` requests at once, so
        producing line protocol and InfluxDB's ingest (which parses requests on several cores) overlap. Order
        between batches does not matter: each point is keyed by its series and timestamp.
        """
        from cloudburst.schema.batch import split
        pending = split(lines, self.batch_lines)
        first, second = next(pending, None), next(pending, None)
        if first is None:
            return 0
        if second is None:  # one request (a member's summary and status): no thread to start
            self._post("\n".join(first).encode(), db or self.db, precision)
            return len(first)
        written = 0
        with ThreadPoolExecutor(max_workers=self.concurrent_posts, thread_name_prefix="influx-post") as poster:
            in_flight: deque[Future[None]] = deque()
            for batch in chain((first, second), pending):
                body = "\n".join(batch).encode()
                if len(in_flight) == self.concurrent_posts:
                    in_flight.popleft().result()
                in_flight.append(poster.submit(self._post, body, db or self.db, precision))
                written += len(batch)
            for future in in_flight:
                future.result()
        return written

    def _post(self, body: bytes, db: str, precision: str) -> None:
        params = {"db": db, "precision": precision}
        auth = (self.username, self.password or "") if self.username else None
        delay = self.backoff_s
        give_up_at = time.monotonic() + self.retry_for_s
        attempts = 0
        while True:
            attempts += 1
            try:
                response = self.session.post(f"{self.url}/write", params=params, data=body, auth=auth,
                                             timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as error:
                problem = f"{type(error).__name__} talking to {self.url}"
            else:
                if response.status_code == 204:
                    return
                if response.status_code < 500:
                    raise InfluxWriteError(f"InfluxDB at {self.url} refused the write to {db!r}: HTTP "
                                           f"{response.status_code} {response.text.strip()[:300]}")
                problem = f"HTTP {response.status_code} from {self.url}"
            if time.monotonic() + delay > give_up_at:
                raise InfluxWriteError(f"InfluxDB write to {db!r} failed after {attempts} attempts in "
                                       f"{self.retry_for_s:g} s: {problem}")
            log.warning("InfluxDB write to %r failed (%s); retrying in %.1f s", db, problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def run_statement(writer: InfluxWriter, statement: str, db: str | None = None) -> None:
    """A statement that changes data (``DROP SERIES``), as the writer's user; InfluxDB refusing it is an error."""
    auth = (writer.username, writer.password or "") if writer.username else None
    with session_errors("InfluxDB", writer.url, writer.session):
        response = writer.session.post(f"{writer.url}/query", params={"db": db or writer.db, "q": statement},
                                       auth=auth, timeout=writer.timeout_s)
    if response.status_code != 200 or "error" in response.json()["results"][0]:
        raise InfluxWriteError(f"InfluxDB at {writer.url} refused {statement!r}: {response.text.strip()[:300]}")


@dataclass
class InfluxQuery:
    """Read-only InfluxQL against one database; every failure is a ServiceError naming InfluxDB."""
    url: str
    db: str
    username: str
    password: str
    timeout_s: float = 60.0
    session: requests.Session = field(default_factory=requests.Session)

    def series(self, query: str) -> list[dict[str, Any]]:
        """The query's series as InfluxDB returns them (name, tags, columns, values); times in seconds."""
        with session_errors("InfluxDB", self.url, self.session):
            response = self.session.post(f"{self.url}/query", timeout=self.timeout_s,
                                         params={"db": self.db, "q": query, "epoch": "s"},
                                         auth=(self.username, self.password))
        if response.status_code != 200:
            raise refused("InfluxDB", self.url, response, "a query", self.username)
        result = response.json()["results"][0]
        if "error" in result:
            raise ServiceError(f"InfluxDB refused the query: {result['error']}")
        return result.get("series", [])

    def frame(self, query: str) -> "pd.DataFrame":
        """The query's points, one row each, tags as columns."""
        import pandas as pd
        rows: list[dict[str, Any]] = []
        for series in self.series(query):
            tags = series.get("tags", {})
            rows.extend({**dict(zip(series["columns"], values)), **tags} for values in series["values"])
        return pd.DataFrame(rows)
