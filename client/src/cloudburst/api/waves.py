"""Adaptive ensembles on the cluster (``cloudburst.plan.adaptive``): members enqueued in waves, one wave kept queued
ahead of the workers; the targets' intervals from the stored series of every batch that has settled; and the stop,
once every interval is as narrow as asked (the queued batches removed) or at the member cap.

The ensemble record's ``members`` is the members enqueued so far, and after a stop the members that ran; its
``adaptive`` field holds the latest intervals, which ``cloudburst status`` shows.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from cloudburst.api.queue import cancel_queued, enqueue_batches
from cloudburst.plan.adaptive import AdaptivePlan, Interval, interval, member_numbers, state_text
from cloudburst.schema import batch as batching
from cloudburst.schema.queues import JobPolicy
from cloudburst.state.ledger import MemberStates

if TYPE_CHECKING:
    from cloudburst.api.services import Services

log = logging.getLogger(__name__)
PRECISE, CAP = "precise", "cap"


def enqueue_wave(services: Services, name: str, documents: list[dict[str, Any]], first: int, last: int, size: int,
                 policy: JobPolicy) -> None:
    """Members first..last-1 as batches; the record counts them before they are queued."""
    services.records.set_members(name, last)
    jobs = (batching.make_batch(name, part) for part in batching.split(documents[first:last], size))
    enqueue_batches(services.queue, services.ledger, name, jobs, policy)


class Waves:
    """Drives one adaptive ensemble from this process until it stops."""

    def __init__(self, services: Services, name: str, documents: list[dict[str, Any]], plan: AdaptivePlan, size: int,
                 policy: JobPolicy):
        self.services, self.name = services, name
        self.documents, self.plan, self.size, self.policy = documents, plan, size, policy
        self.numbers: list[dict[int, float]] = [{} for _ in plan.targets]
        self.read: set[str] = set()

    def intervals(self, settled: set[int]) -> list[Interval]:
        """Every target's interval from the members of the batches settled so far (read once each)."""
        services, name = self.services, self.name
        fresh = [batch for batch, members in services.ledger.plan(name).items()
                 if batch not in self.read and all(member in settled for member in members)]
        if fresh:
            for numbers, target in zip(self.numbers, self.plan.targets):
                kind, element_id = target.element.split(":", 1)
                frame = services.results.series(name, kind, element_id, target.attribute, fresh)
                for member, values in frame.groupby("member")["value"]:
                    numbers[int(cast(int, member))] = member_numbers(values.to_numpy(), target.of)
            self.read.update(fresh)
        return [interval(np.fromiter(numbers.values(), float, len(numbers)), target, self.plan.confidence)
                for numbers, target in zip(self.numbers, self.plan.targets)]

    def run(self, poll_s: float = 1.0, report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Enqueue waves until every interval is narrow enough (then remove what is queued) or the cap has been
        enqueued; then wait for what runs, so the last intervals cover every member that ran."""
        services, name, plan = self.services, self.name, self.plan
        shown, reason, decided_at = None, None, None
        while True:
            enqueued = services.records.get(name).members
            states = MemberStates.of(services.ledger.done(name))
            settled = set(states.finished) | set(states.failed) | set(states.unbalanced)
            intervals = self.intervals(settled)
            done = len(settled)
            if reason is None and intervals and all(item.precise for item in intervals):
                reason, decided_at = PRECISE, done
                enqueued = self.stop()
            elif reason is None and enqueued >= plan.cap:
                reason = CAP
            drained = reason is not None and done >= enqueued
            state = {**state_text(intervals, enqueued, plan.cap, reason if drained else None), "decided_at": decided_at}
            services.records.set_adaptive(name, state)
            if report is not None and (done, drained) != shown:
                report({**state, "settled": done})
                shown = (done, drained)
            if drained:
                return state
            if reason is None and enqueued - done <= plan.wave:
                following = min(plan.cap, enqueued + plan.wave)
                enqueue_wave(services, name, self.documents, enqueued, following, self.size, self.policy)
            time.sleep(poll_s)

    def stop(self) -> int:
        """Remove the queued batches, forget them, and count only the members before them; returns that count.
        Batches run in member order, so what was still queued is the highest members."""
        services, name = self.services, self.name
        plan = services.ledger.plan(name)
        removed = cancel_queued(services.queue, name)
        services.ledger.drop_batches(name, removed)
        removed_members = {member for batch in removed for member in plan.get(batch, [])}
        total = services.records.get(name).members
        if removed_members:
            lowest = min(removed_members)
            kept = {member for batch, members in plan.items() if batch not in removed for member in members}
            if all(member < lowest for member in kept):
                total = lowest
            else:
                log.warning("%s: queued batches were not the last members; keeping the count %d", name, total)
        services.records.set_members(name, total)
        return total
