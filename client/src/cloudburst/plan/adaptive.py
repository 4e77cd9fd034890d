"""Adaptive Monte Carlo: an ensemble enqueued in waves that stops once every named statistic is known to the
precision asked for, or at its member cap (``members``).

    members: 10000                   # the cap
    adaptive:
      wave: 200                      # members enqueued at a time (default 200); one wave is kept queued ahead
      confidence: 0.95               # of every interval (default 0.95)
      targets:                       # each: a statistic over the members of one number per member
        - element: node:123
          attribute: pressure        # default pressure
          of: min                    # the member's number: min (default), max or mean of its series
          statistic: p95             # pNN (a percentile) or mean
          half_width: 0.1            # stop once the interval is no wider than +/- this (the attribute's SI unit)

Intervals: for a percentile, the distribution-free one from order statistics (the ranks a binomial(n, q) puts
around the quantile: exact coverage of at least ``confidence`` whatever the distribution); for the mean,
Student's t. The estimate is numpy's linearly interpolated percentile, or the mean.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cloudburst.errors import InputError
from cloudburst.lazy import lazy

# scipy.stats (0.4 s to import) only once an interval is computed: `cloudburst status` and `list` import this module.
stats = lazy("scipy.stats")

DEFAULT_WAVE = 200
MEMBER_NUMBERS = ("min", "max", "mean")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True)
class Target:
    element: str
    attribute: str
    of: str
    statistic: str
    half_width: float

    @property
    def label(self) -> str:
        return f"{self.statistic} of {self.of} {self.attribute} at {self.element}"


@dataclass(frozen=True)
class AdaptivePlan:
    targets: list[Target]
    cap: int
    wave: int = DEFAULT_WAVE
    confidence: float = 0.95


@dataclass(frozen=True)
class Interval:
    target: str
    members: int
    estimate: float
    low: float
    high: float
    half_width: float
    wanted: float

    @property
    def precise(self) -> bool:
        return self.half_width <= self.wanted


def parse_adaptive(section: Any, cap: int) -> AdaptivePlan:
    """The scenario's ``adaptive`` section; raises InputError naming every problem."""
    if not isinstance(section, dict):
        raise InputError("$.adaptive: give targets (and optionally wave, confidence)")
    problems = [f"$.adaptive: unknown key {key}" for key in sorted(set(section) - {"targets", "wave", "confidence"})]
    wave, confidence = section.get("wave", min(DEFAULT_WAVE, cap)), section.get("confidence", 0.95)
    if not isinstance(wave, int) or isinstance(wave, bool) or wave < 2:
        problems.append("$.adaptive.wave: a whole number of members >= 2")
    if not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
        problems.append("$.adaptive.confidence: a share in [0.5, 1), e.g. 0.95")
    targets = []
    raw_targets = section.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        problems.append("$.adaptive.targets: a list of {element, statistic, half_width, ...}")
        raw_targets = []
    for position, raw in enumerate(raw_targets):
        path = f"$.adaptive.targets[{position}]"
        if not isinstance(raw, dict):
            problems.append(f"{path}: a mapping")
            continue
        unknown = sorted(set(raw) - {"element", "attribute", "of", "statistic", "half_width"})
        problems += [f"{path}: unknown key {key}" for key in unknown]
        element, statistic = str(raw.get("element", "")), str(raw.get("statistic", ""))
        of, half_width = raw.get("of", "min"), raw.get("half_width")
        if not re.fullmatch(r"(node|link):.+", element):
            problems.append(f"{path}.element: node:ID or link:ID")
        if statistic != "mean" and not (_PERCENTILE.match(statistic) and 0 < float(statistic[1:]) < 100):
            problems.append(f"{path}.statistic: pNN (a percentile, e.g. p95) or mean")
        if of not in MEMBER_NUMBERS:
            problems.append(f"{path}.of: one of {', '.join(MEMBER_NUMBERS)}")
        if not isinstance(half_width, (int, float)) or isinstance(half_width, bool) or half_width <= 0:
            problems.append(f"{path}.half_width: a number > 0")
        targets.append(Target(element, str(raw.get("attribute", "pressure")), str(of), statistic,
                              float(half_width) if isinstance(half_width, (int, float)) else 0.0))
    if problems:
        raise InputError(problems)
    return AdaptivePlan(targets, cap, int(wave), float(confidence))


def member_numbers(values: np.ndarray, of: str) -> float:
    """One member's number from its series."""
    reductions: dict[str, Callable[[np.ndarray], Any]] = {"min": np.min, "max": np.max, "mean": np.mean}
    return float(reductions[of](values))


def interval(values: np.ndarray, target: Target, confidence: float) -> Interval:
    """The target's estimate and its ``confidence`` interval from the members' numbers so far; an infinite
    half-width while there are too few members to bound it."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    n = len(values)
    if target.statistic == "mean":
        estimate = float(values.mean()) if n else math.nan
        if n < 2:
            return Interval(target.label, n, estimate, -math.inf, math.inf, math.inf, target.half_width)
        spread = float(stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
        return Interval(target.label, n, estimate, estimate - spread, estimate + spread, spread, target.half_width)
    q = float(target.statistic[1:]) / 100
    estimate = float(np.percentile(values, q * 100)) if n else math.nan
    tail = (1 - confidence) / 2
    # Ranks (1-based) l and u with P(X_(l) <= x_q <= X_(u)) >= confidence: l = binom.ppf(tail), u = binom.ppf(1-tail)+1.
    lower_rank = int(stats.binom.ppf(tail, n, q)) if n else 0
    upper_rank = int(stats.binom.ppf(1 - tail, n, q)) + 1 if n else 0
    if lower_rank < 1 or upper_rank > n:
        return Interval(target.label, n, estimate, -math.inf, math.inf, math.inf, target.half_width)
    low, high = float(values[lower_rank - 1]), float(values[upper_rank - 1])
    return Interval(target.label, n, estimate, low, high, (high - low) / 2, target.half_width)


def state_text(intervals: list[Interval], enqueued: int, cap: int, stopped: str | None) -> dict[str, Any]:
    """What the ensemble record keeps for ``status``: the latest intervals, members enqueued, why it stopped."""
    return {"enqueued": enqueued, "cap": cap, "stopped": stopped,
            "intervals": [{**asdict(item), "precise": item.precise} for item in intervals]}


def output_requests(plan: AdaptivePlan) -> list[dict[str, Any]]:
    """The series requests the members must store for the targets: one per element and attribute."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for target in plan.targets:
        kind, element_id = target.element.split(":", 1)
        wanted.setdefault((kind, target.attribute), set()).add(element_id)
    return [{"element": kind, "attributes": [attribute], "ids": sorted(ids)}
            for (kind, attribute), ids in wanted.items()]
