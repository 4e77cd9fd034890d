"""What an ensemble and a task set share once submitted: taking their queued jobs off the queue, counting
executions, and removing everything of theirs. Each owner keeps its keys and files (the queue, the store, the
ledger, the records); this module only calls them in the order removal needs."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from cloudburst.queue import cancel_queued, forget_jobs
from cloudburst.records import CANCELLED

if TYPE_CHECKING:
    from cloudburst.api import Client


def dequeue(client: "Client", name: str) -> int:
    """Remove the name's queued jobs; returns how many members (or tasks) they held."""
    plan = client.ledger.plan(name)
    return sum(len(plan.get(batch, [])) for batch in cancel_queued(client.queue, name))


def cancel(client: "Client", name: str) -> int:
    """Dequeue and mark the record cancelled; jobs already running finish."""
    removed = dequeue(client, name)
    client.records.set_state(name, CANCELLED)
    return removed


def executions(client: "Client", name: str, total: int, settled: int, column: str) -> pd.DataFrame:
    """Per member (or task, ``column``): how often its batch ran to the end; ``attrs``: ``lost`` (of ``total``, not
    ``settled``) and ``duplicated`` (executions beyond the first)."""
    plan = client.ledger.plan(name)
    counts = [0] * total
    for batch, runs in client.ledger.executions(name).items():
        for member in plan.get(batch, []):
            counts[member] += runs
    table = pd.DataFrame({column: range(total), "executions": counts})
    table.attrs["lost"] = total - settled
    table.attrs["duplicated"] = int((table["executions"] - 1).clip(lower=0).sum())
    return table


def remove(client: "Client", name: str) -> dict[str, int | bool]:
    """Remove the queued jobs, the stored files, RQ's records of the jobs, the ledger and the record."""
    removed = dequeue(client, name)
    had_files = client.store.delete(name)
    forget_jobs(client.queue, name)
    client.ledger.forget(name)
    client.records.delete(name)
    return {"dequeued": removed, "files": had_files}
