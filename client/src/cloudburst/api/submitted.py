"""What an ensemble and a task set share once submitted: their progress, waiting for it, the failed members (or
tasks), taking their queued jobs off the queue, counting executions, retrying and removing everything of theirs.
Each owner keeps its keys and files (the queue, the store, the ledger, the records); this module only calls them,
in the order each verb needs. ``Ensemble`` and ``TaskSet`` say what differs: their record, their unit's name, and
how a retry round is enqueued."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cloudburst.api.progress import Display, Progress, default_display, follow
from cloudburst.api.queue import cancel_queued, crashed_members, forget_jobs, tracked_progress, waiting_members
from cloudburst.errors import InputError, redis_errors
from cloudburst.lazy import lazy
from cloudburst.state.ledger import MemberStates, retry_round
from cloudburst.state.records import CANCELLED, CUT_OFF, RETRIED, SUBMITTING, EnsembleRecord, TaskSetRecord

if TYPE_CHECKING:
    import pandas as pd

    from cloudburst.api.services import Services
else:
    pd = lazy("pandas")


class Submitted:
    """One submitted ensemble or task set; every method reads the cluster's current state."""
    noun = ""        # how messages name it: "ensemble", "task set"
    unit = ""        # what it is made of, as tables name the column: "member", "task"
    poll_s = 1.0     # how often wait() reads the progress when no worker's signal comes first

    def __init__(self, services: Services, name: str):
        self.services = services
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def info(self) -> EnsembleRecord | TaskSetRecord:
        raise NotImplementedError

    def total(self) -> int:
        """Members (or tasks) submitted."""
        raise NotImplementedError

    @redis_errors
    def stamp(self, record: EnsembleRecord | TaskSetRecord | None = None) -> str:
        """The record's stamp, or CUT_OFF for one whose submit stopped before its jobs reached the queue (still
        "submitting", and no client staging its jobs): nothing of it runs until ``retry`` (or ``delete``). A
        caller holding the record passes it (it is not read again)."""
        stamp = (record or self.info()).state
        return CUT_OFF if stamp == SUBMITTING and not self.services.ledger.staging(self.name) else stamp

    def _checked_status(self) -> Progress:
        if self.stamp() == CUT_OFF:
            raise InputError(f"the submit of {self.noun} {self.name!r} was cut off before its jobs were queued: "
                             f"nothing of it runs; `cloudburst retry {self.name}` queues them (or `cloudburst delete "
                             f"{self.name}`)")
        return self.status()

    def _states(self) -> MemberStates:
        return MemberStates.of(self.services.ledger.done(self.name))

    @redis_errors
    def status(self) -> Progress:
        """Finished and failed members or tasks (the ledger, and RQ's failed jobs), running ones (RQ's registry)."""
        return tracked_progress(self.services.queue, self.services.ledger, self.name, self.total())

    def wait(self, progress: bool = True, display: Display | None = None, poll_s: float | None = None,
             timeout_s: float | None = None) -> Progress:
        """Until every member (or task) finished or failed; shows progress unless told not to. Ctrl-C stops waiting
        only: the work runs on. With ``timeout_s``, raises TimeoutError (naming the progress) when it passes. The
        workers signal each batch they record (``Ledger.signals``): wait() returns as soon as the last one is;
        ``poll_s`` (default: the display's redraw interval, else 1 s) is the fallback for what no signal announces,
        such as a job RQ failed after its worker died."""
        return self._follow(lambda current: current.done, progress, display, poll_s, timeout_s)

    def _follow(self, settled: Callable[[Progress], bool], progress: bool, display: Display | None,
                poll_s: float | None, timeout_s: float | None) -> Progress:
        display = display or (default_display() if progress else None)
        signals = self.services.ledger.signals(self.name)  # before the first read: no signal falls between
        try:
            return follow(self._checked_status, settled, f"{self.noun} {self.name!r}", display,
                          poll_s or (display.interval_s if display is not None else self.poll_s), timeout_s,
                          wake=signals.wait)
        finally:
            signals.close()

    def _failure_reasons(self, states: MemberStates) -> dict[int, str]:
        """Each failed unit's reason: its own, or, for a job that failed before it could be recorded (a timeout, a
        crash), RQ's."""
        return {**crashed_members(self.services.queue, self.services.ledger, self.name, states), **states.failed}

    @redis_errors
    def executions(self) -> pd.DataFrame:
        """Per member (or task): how often its job ran to the end (``executions``); ``attrs``: ``lost`` (neither
        finished nor failed) and ``duplicated`` (executions beyond the first)."""
        total = self.total()
        plan = self.services.ledger.plan(self.name)
        counts = [0] * total
        for batch, runs in self.services.ledger.executions(self.name).items():
            for member in plan.get(batch, []):
                counts[member] += runs
        table = pd.DataFrame({self.unit: range(total), "executions": counts})
        table.attrs["lost"] = total - self._settled_count(self._states())
        table.attrs["duplicated"] = int((table["executions"] - 1).clip(lower=0).sum())
        return table

    def _settled_count(self, states: MemberStates) -> int:
        return len(states.finished) + len(states.failed)

    def _dequeue(self) -> int:
        """Remove the queued jobs; returns how many members (or tasks) they held."""
        plan = self.services.ledger.plan(self.name)
        return sum(len(plan.get(batch, [])) for batch in cancel_queued(self.services.queue, self.name))

    def _refuse_unless_mine(self, action: str) -> None:
        """Refused unless the caller submitted it or is an admin (``cloudburst.state.people``)."""
        self.services.people.refuse_change(self.name, self.info().owner, action)

    @redis_errors
    def cancel(self) -> int:
        """Remove the queued members (or tasks); returns how many. Those already running finish. Only its owner or
        an admin may."""
        self._refuse_unless_mine("cancel")
        removed = self._dequeue()
        self.services.records.set_state(self.name, CANCELLED)
        return removed

    def _retry(self, **options: Any) -> dict[str, int]:
        """Re-enqueue the failed and missing members (or tasks): neither finished, queued nor running (nor, for an
        ensemble, unbalanced: it would stop the same way again), as jobs of a new retry round. Each kind's ``retry``
        names its own options. Only its owner or an admin may."""
        self._refuse_unless_mine("retry")
        # Waiting first: a batch that ends between the two reads is then counted twice (waiting and finished), never
        # missed by both and enqueued again.
        waiting = waiting_members(self.services.queue, self.services.ledger, self.name)
        states = self._states()
        settled = set(states.finished) | self._not_retried(states)
        round_ = max((retry_round(batch) for batch in self.services.ledger.plan(self.name)), default=0) + 1
        count = self._enqueue_again(lambda unit: unit not in settled and unit not in waiting, round_, **options)
        self.services.records.set_state(self.name, RETRIED)
        return {"enqueued": count, "finished": len(states.finished), "waiting": len(waiting)}

    def _not_retried(self, states: MemberStates) -> set[int]:
        return set()

    def _enqueue_again(self, wanted: Callable[[int], bool], round_: int, **options: Any) -> int:
        raise NotImplementedError

    @redis_errors
    def delete(self) -> dict[str, int | bool]:
        """Remove it: its queued jobs, stored results, ledger, RQ's records of its jobs and its record. Members (or
        tasks) running now store and record nothing of theirs (``cloudburst.state.ledger``'s tombstone check). Only its
        owner or an admin may."""
        return self._remove()

    def _remove(self) -> dict[str, int | bool]:
        self._refuse_unless_mine("delete")
        # The tombstone first: from then on a batch (or pack) still running keeps, stores and records nothing, and
        # removes what it stored when the deletion overtook its upload; a statistics job drops what it wrote.
        self.services.records.mark_deleted(self.name)
        removed = self._dequeue()
        forget_jobs(self.services.queue, self.name)
        self.services.ledger.forget(self.name)
        had_files = self.services.store.delete(self.name)
        self.services.records.delete(self.name)
        return {"dequeued": removed, "files": had_files}
