"""The cluster's services as the client reaches them, built once from the settings: Redis and the queue, the
records and the ledger, the model files, the results store, InfluxDB, and the results reader over the last two.
``Client`` builds one; every handle (``Ensemble``, ``TaskSet``, ``Waves``, a study) holds it, never the client."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis import Redis

from cloudburst.config import Settings
from cloudburst.lazy import lazy
from cloudburst.schema.queues import open_queue
from cloudburst.state.connection import connect
from cloudburst.state.files import ModelStore, model_input, results_credentials, results_url
from cloudburst.state.https import cluster_session
from cloudburst.state.influx import InfluxQuery
from cloudburst.state.ledger import Ledger
from cloudburst.state.people import People
from cloudburst.state.records import Records
from cloudburst.state.store import ResultsStore, open_store

if TYPE_CHECKING:
    from rq import Queue

    from cloudburst.state import reader
else:
    reader = lazy("cloudburst.state.reader")  # pandas and pyarrow: `cloudburst list` and `status` never need them


@dataclass(eq=False)
class Services:
    settings: Settings
    redis: Redis
    queue: Queue
    records: Records
    ledger: Ledger
    people: People           # the caller: admin or not, their quota
    models: ModelStore       # model files on the cluster's file service
    store: ResultsStore      # the members' results
    influx: InfluxQuery      # the cluster's statistics, read-only

    @classmethod
    def connect(cls, settings: Settings) -> Services:
        """Every service's client (no connection is opened until first used)."""
        redis = connect(settings.redis_url, settings.redis_user, settings.redis_password, settings.ca_file,
                        socket_connect_timeout=5)
        people = People(redis, settings.redis_user)
        return cls(settings=settings, redis=redis, queue=open_queue(redis, settings.queue),
                   records=Records(redis, people.user), ledger=Ledger(redis), people=people,
                   models=ModelStore(settings),
                   store=open_store(results_url(settings), results_credentials(settings), settings.results_endpoint,
                                    ca_file=settings.ca_file or None),
                   influx=InfluxQuery(settings.influx_url, settings.influx_db, settings.influx_user,
                                      settings.influx_password, session=cluster_session(settings.ca_file or None)))

    @functools.cached_property
    def results(self) -> reader.ResultsReader:
        """The results store's and InfluxDB's reader (made when first asked for)."""
        return reader.ResultsReader(self.store, self.influx)

    def refuse_over_quota(self, adding: int) -> None:
        """Refused when ``adding`` members (or tasks) would pass the caller's quota on those they have queued or
        running (``cloudburst.state.people``); nothing is read for a caller without one."""
        quota = self.people.quota()
        if quota is None:
            return
        from cloudburst.api.queue import waiting_count
        mine = [name for name, owner in self.records.owners(self.records.names()).items() if owner == self.people.user]
        self.people.refuse_over_quota(adding, waiting_count(self.queue, self.ledger, mine), quota)

    def model_input(self, sha256: str) -> dict[str, str]:
        """Where a member's job tells the workers to fetch the model of that sha256."""
        return model_input(self.settings, sha256)
