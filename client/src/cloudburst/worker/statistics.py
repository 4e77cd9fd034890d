"""An ensemble's statistics on the cluster: when to compute them, and the job that computes and writes them.

Workers take jobs from the statistics queue before the members' queue, so the final statistics follow the last
batch within a statistics run's time. The numbers themselves are ``cloudburst.worker.aggregate``'s.
"""
from __future__ import annotations

import time

from redis import Redis

from cloudburst.errors import InputError
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.queues import STATS_QUEUE
from cloudburst.state.influx import InfluxWriter, run_statement
from cloudburst.state.ledger import Ledger
from cloudburst.state.records import Records
from cloudburst.state.statistics_jobs import request_statistics
from cloudburst.state.store import ResultsStore
from cloudburst.worker import aggregate


def after_batch(connection: Redis, name: str, members_done: int, queue_name: str = STATS_QUEUE) -> bool:
    """Queue a statistics job when one is due and none is waiting (``cloudburst.state.statistics_jobs``); returns
    whether one was queued."""
    ledger = Ledger(connection)
    try:
        total = Records(connection).get(name).members
    except InputError:
        return False  # batches enqueued without an ensemble record (a script's): nothing to compute statistics for
    if not aggregate.due(time.time(), ledger.stats_state(name), members_done, total):
        return False
    return request_statistics(connection, name, queue_name)


def run_statistics(connection: Redis, name: str, store: ResultsStore, writer: InfluxWriter) -> int:
    """Compute the ensemble's statistics from every committed batch and write them; returns the points written.

    One statistics job runs at a time per ensemble (it holds the claim its queueing took): batches recorded while
    it runs queue none, so when it ends it queues the next itself if members were recorded since it started."""
    from rq import get_current_job

    ledger = Ledger(connection)
    current = get_current_job()
    started = time.time()
    try:
        covered = ledger.stats_state(name).get("done", 0.0)
        record = Records(connection).get(name)
        output = record.scenario.get("output") or {}
        request = aggregate.StatisticsRequest.from_output(output)
        lines = aggregate.compute(store, name, record.member_start(0), record.members, request)
        done = ledger.stats_state(name).get("done", 0.0)
        if covered < record.members <= done:
            # The ensemble's last batches were recorded while this ran: take them in now (only they are read)
            # and write the final statistics once, rather than these and then the next job's.
            covered = done
            lines = aggregate.compute(store, name, record.member_start(0), record.members, request)
        written = writer.write(lines, db=output.get("db"), precision="s")
        if ledger.deleted(name):  # deleted while this computed: what it wrote goes, nothing is kept of it
            forget_statistics(name, output.get("db") or writer.db, writer)
            return 0
        ledger.set_stats_state(name, at=started, members=covered)
    finally:
        ledger.release_statistics(name, None if current is None else current.id)
    after_batch(connection, name, int(ledger.stats_state(name).get("done", 0.0)))
    return written


def forget_statistics(name: str, db: str, writer: InfluxWriter) -> int:
    """Drop every statistics point of the ensemble; returns how many statements ran."""
    aggregate.forget_read(name)
    statements = fmt.drop_statements(name)
    for statement in statements:
        run_statement(writer, statement, db)
    return len(statements)
