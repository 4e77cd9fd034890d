"""Adaptive ensembles on a real Redis, Nginx and runner processes: waves enqueued until the intervals are narrow enough, and the stop."""
from __future__ import annotations

import re
from pathlib import Path

import cloudburst
import numpy as np
import pytest
import wntr
from local_cluster import cli, client_settings, start_workers, stop
from scipy import stats

NET3 = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"


def scenario(cap: int, wave: int, half_width: float) -> dict:
    return {"ensemble": "net3-adaptive", "members": cap, "seed": 4,
            "alterations": [{"type": "demand_scale",
                             "factor": {"distribution": "truncnorm", "mean": 1.0, "std": 0.25, "low": 0.3, "high": 2}}],
            "batch": {"members": 10},
            "adaptive": {"wave": wave, "targets": [
                {"element": "node:123", "statistic": "p50", "of": "min", "half_width": half_width}]}}


def own_interval(values: np.ndarray, q: float, confidence: float) -> tuple[float, float]:
    """The test's own order-statistic interval: the smallest symmetric rank window whose binomial probability
    reaches the confidence."""
    values, n = np.sort(values), len(values)
    tail = (1 - confidence) / 2
    cdf = stats.binom.cdf(np.arange(n + 1), n, q)
    lower = int(np.argmax(cdf >= tail))        # first k with P(B <= k) >= tail: rank k (1-based) below
    upper = int(np.argmax(cdf >= 1 - tail)) + 1
    return values[lower - 1], values[upper - 1]


def test_an_adaptive_ensemble_stops_once_precise_and_removes_what_was_queued(cluster):
    client = cloudburst.Client(client_settings(cluster))
    workers = start_workers(cluster, 2)
    try:
        ensemble = client.submit(NET3, scenario(cap=2000, wave=40, half_width=0.6), name="adaptive-precise")
        state = ensemble.adapt(poll_s=0.3)
    finally:
        stop(workers)
    assert state["stopped"] == "precise"
    members = ensemble.info().members
    assert members < 2000 and members == state["enqueued"]
    progress = ensemble.status()
    assert (progress.finished, progress.failed, progress.running, progress.queued) == (members, 0, 0, 0)
    assert client.queue.count == 0  # the queued wave was removed
    # Decided on the members settled then; batches running at that moment (none, when the workers had not taken the
    # next wave yet: timing decides) finished and count, what was queued went.
    assert state["decided_at"] <= members
    # The last interval covers every member that ran: what the stored series give, by the test's own order
    # statistics.
    reported = state["intervals"][0]
    lowest = ensemble.series("node:123").groupby("member")["value"].min()
    assert reported["members"] == len(lowest) == members
    low, high = own_interval(lowest.to_numpy(), 0.5, 0.95)
    assert (reported["low"], reported["high"]) == pytest.approx((low, high))
    assert reported["estimate"] == pytest.approx(np.percentile(lowest, 50))
    shown = cli(cluster, "status", "adaptive-precise")
    assert "p50 of min pressure at node:123" in shown.stdout and "stopped: precise" in shown.stdout, shown.stdout
    # Both ends of the (asymmetric) interval, each as far as it reaches from the estimate.
    found = re.search(r": (\S+) \[(\S+), (\S+)\] -(\S+)/\+(\S+) \(half width (\S+)\)", shown.stdout)
    estimate, low, high, below, above, half = map(float, found.groups())
    # (the printed ends are rounded to 3 decimals: their differences agree to within rounding)
    assert (below, above, half) == pytest.approx((estimate - low, high - estimate, (high - low) / 2), abs=0.0015)


def test_an_adaptive_ensemble_that_never_gets_precise_enough_stops_at_its_cap(cluster):
    client = cloudburst.Client(client_settings(cluster))
    workers = start_workers(cluster, 2)
    try:
        ensemble = client.submit(NET3, scenario(cap=90, wave=30, half_width=1e-6), name="adaptive-cap")
        state = ensemble.adapt(poll_s=0.3)
    finally:
        stop(workers)
    assert state["stopped"] == "cap" and state["enqueued"] == 90 and ensemble.info().members == 90
    assert state["intervals"][0]["members"] == 90 and not state["intervals"][0]["precise"]
