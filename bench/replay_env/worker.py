"""The master's side of a batch, without EPANET or the results store (bench/master_load.py's replay): the worker
entry point ``worker.run`` takes the batch job from RQ and does what a real batch does in Redis
(``cloudburst.engine.batch.run_batch``): the fencing token with what earlier attempts kept, the check before the
files would go up and the record, then returns."""
from __future__ import annotations

from typing import Any

from rq import get_current_job

from cloudburst.schema.batch import parse_batch
from cloudburst.state.ledger import BatchOutcome, Ledger


def run(document: dict[str, Any]) -> dict[str, Any]:
    current = get_current_job()
    assert current is not None, "run by an RQ worker"
    batch = parse_batch(document)
    members = [member["member"] for member in batch.member_documents()]
    ledger = Ledger(current.connection)
    token, _ = ledger.resume(batch.ensemble, batch.batch)
    if token and ledger.is_latest(batch.ensemble, batch.batch, token):
        ledger.record_batch(batch.ensemble, batch.batch, BatchOutcome(finished=members), token)
    return {"finished": len(members), "failed": 0, "unbalanced": 0}
