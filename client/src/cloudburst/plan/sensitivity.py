"""Sensitivity: Sobol' indices (first order and total) of one number per member with respect to the scenario's
drawn factors, from a Saltelli design, with bootstrap confidence intervals.

    alterations:                   # every value drawn from a distribution is a factor
      - {type: demand_scale, factor: {distribution: uniform, low: 0.7, high: 1.3}}
      - {type: pipe_property, property: roughness, factor: {distribution: uniform, low: 0.8, high: 1.2}}
    sensitivity:
      base_samples: 256            # N: the ensemble has N (D + 2) members for D factors (members is not given)
      metric: pressure_min         # a member summary field, or {element: node:123, attribute: pressure, of: min}
      confidence: 0.95             # of the bootstrap intervals (default 0.95)

The design (Saltelli 2010): a scrambled Sobol' sequence of N points in 2D dimensions gives the matrices A and B
(N x D each, uniform, then each column through its factor's inverse CDF); A_B(i) is A with column i from B.
Members 0..N-1 run A, N..2N-1 run B, then N members per factor its A_B(i). The estimators: first order
S1_i = mean(f(B) (f(A_B(i)) - f(A))) / Var (Saltelli 2010), total ST_i = mean((f(A) - f(A_B(i)))^2) / (2 Var)
(Jansen 1999), Var the variance of f over A and B together; their intervals from resampling the N rows. f is
centred first (its mean over the whole design subtracted, as SALib does): the indices do not change, but without it
the first-order estimator's spread grows with the output's mean (a pressure of 40 m gave intervals ten times
SALib's on the same runs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import qmc

from cloudburst.errors import InputError

DESIGN = "saltelli"
RESAMPLES = 1000


@dataclass(frozen=True)
class SensitivityPlan:
    base_samples: int
    metric: str | dict[str, str]
    confidence: float = 0.95


def parse_sensitivity(section: Any) -> SensitivityPlan:
    problems = []
    if not isinstance(section, dict):
        raise InputError("$.sensitivity: give base_samples and metric")
    problems += [f"$.sensitivity: unknown key {key}" for key in sorted(set(section) - {"base_samples", "metric",
                                                                                         "confidence"})]
    samples, metric = section.get("base_samples"), section.get("metric", "pressure_min")
    confidence = section.get("confidence", 0.95)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 8:
        problems.append("$.sensitivity.base_samples: a whole number >= 8 (a power of 2 balances the design best)")
    if isinstance(metric, dict):
        if not str(metric.get("element", "")).startswith(("node:", "link:")) or metric.get("of", "min") not in (
                "min", "max", "mean") or set(metric) - {"element", "attribute", "of"}:
            problems.append("$.sensitivity.metric: {element: node:ID, attribute: pressure, of: min|max|mean}")
        metric = {"element": str(metric.get("element")), "attribute": str(metric.get("attribute", "pressure")),
                  "of": str(metric.get("of", "min"))}
    elif not isinstance(metric, str):
        problems.append("$.sensitivity.metric: a member summary field (e.g. pressure_min) or an element's series")
    if not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
        problems.append("$.sensitivity.confidence: a share in [0.5, 1)")
    if problems:
        raise InputError(problems)
    return SensitivityPlan(int(samples or 0), metric, float(confidence))  # samples: checked above


def output_requests(section: Any) -> list[dict[str, Any]]:
    """The series a metric on an element's result needs (``{element: node:123, attribute: pressure}``), added to the
    scenario's output so the metric can be read once the members have run; none for a summary field."""
    metric = section.get("metric") if isinstance(section, dict) else None
    if not isinstance(metric, dict) or not str(metric.get("element", "")).startswith(("node:", "link:")):
        return []
    kind, element = str(metric["element"]).split(":", 1)
    return [{"element": kind, "attributes": [str(metric.get("attribute", "pressure"))], "ids": [element]}]


def members_for(base_samples: int, factors: int) -> int:
    return base_samples * (factors + 2)


def saltelli_design(base_samples: int, factors: int, seed: int) -> np.ndarray:
    """Uniform numbers, one row per member in the layout A, B, A_B(1) ... A_B(D); one column per factor."""
    if factors == 0:
        raise InputError("$.sensitivity: the scenario draws no value from a distribution: there is no factor")
    points = qmc.Sobol(d=2 * factors, scramble=True, rng=np.random.default_rng(seed)).random(base_samples)
    a, b = points[:, :factors], points[:, factors:]
    mixed = []
    for factor in range(factors):
        ab = a.copy()
        ab[:, factor] = b[:, factor]
        mixed.append(ab)
    return np.vstack([a, b, *mixed])


def _estimates(f_a: np.ndarray, f_b: np.ndarray, f_ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    variance = np.var(np.concatenate([f_a, f_b]), ddof=1)
    if variance == 0:
        return np.full(f_ab.shape[0], np.nan), np.full(f_ab.shape[0], np.nan)
    first = np.mean(f_b * (f_ab - f_a), axis=1) / variance
    total = 0.5 * np.mean((f_a - f_ab) ** 2, axis=1) / variance
    return first, total


def sobol_indices(values: np.ndarray, factors: list[str], base_samples: int, confidence: float = 0.95,
                  seed: int = 0) -> pd.DataFrame:
    """S1, ST and their interval half-widths per factor, from one number per member of a Saltelli design (members in
    its layout; NaN for a member that did not run: its row is left out of every matrix)."""
    d, n = len(factors), base_samples
    values = np.asarray(values, dtype=np.float64)
    if len(values) != members_for(n, d):
        raise InputError(f"sensitivity: {len(values)} numbers for a design of {members_for(n, d)} members")
    f_a, f_b = values[:n], values[n:2 * n]
    f_ab = values[2 * n:].reshape(d, n)
    usable = ~(np.isnan(f_a) | np.isnan(f_b) | np.isnan(f_ab).any(axis=0))
    f_a, f_b, f_ab = f_a[usable], f_b[usable], f_ab[:, usable]
    if usable.sum() < 4:
        raise InputError(f"sensitivity: only {int(usable.sum())} of {n} design rows ran completely")
    centre = np.mean(np.concatenate([f_a, f_b, f_ab.ravel()]))
    f_a, f_b, f_ab = f_a - centre, f_b - centre, f_ab - centre
    first, total = _estimates(f_a, f_b, f_ab)
    rng = np.random.default_rng(seed)
    rows = len(f_a)
    draws = [_estimates(f_a[pick], f_b[pick], f_ab[:, pick])
             for pick in (rng.integers(0, rows, rows) for _ in range(RESAMPLES))]
    first_draws = np.array([draw[0] for draw in draws])
    total_draws = np.array([draw[1] for draw in draws])
    tail = (1 - confidence) / 2 * 100

    def half_width(samples: np.ndarray) -> np.ndarray:
        low, high = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
        half: np.ndarray = (high - low) / 2
        return half

    frame = pd.DataFrame({"S1": first, "S1_conf": half_width(first_draws), "ST": total,
                          "ST_conf": half_width(total_draws)}, index=pd.Index(factors, name="factor"))
    frame.attrs["rows_used"] = rows
    frame.attrs["rows_dropped"] = n - rows
    return frame
