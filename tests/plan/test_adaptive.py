"""Adaptive Monte Carlo (cloudburst.adaptive, cloudburst.waves): the intervals' coverage, and adaptive ensembles
on a real Redis, Nginx (the results store) and runner processes: stopped once precise (queued members removed),
or at the cap; `status` shows the interval."""

from __future__ import annotations

import numpy as np
import pytest
from cloudburst.errors import InputError
from cloudburst.plan.adaptive import Target, interval, parse_adaptive
from scipy import stats


def test_a_percentiles_interval_covers_the_true_percentile_at_least_as_often_as_asked():
    rng = np.random.default_rng(11)
    target = Target("node:1", "pressure", "min", "p95", 0.1)
    truth = stats.norm.ppf(0.95)
    covered = [(found.low <= truth <= found.high)
               for found in (interval(rng.normal(size=300), target, 0.95) for _ in range(2000))]
    assert 0.95 <= np.mean(covered) <= 0.985  # order statistics: at least the level, a little above it


def test_the_means_interval_is_students_t():
    values = np.random.default_rng(3).normal(10, 2, size=50)
    found = interval(values, Target("node:1", "pressure", "min", "mean", 0.1), 0.9)
    low, high = stats.t.interval(0.9, 49, loc=values.mean(), scale=stats.sem(values))
    assert (found.low, found.high) == pytest.approx((low, high))


def test_too_few_members_give_an_unbounded_interval():
    found = interval(np.arange(10.0), Target("node:1", "pressure", "min", "p99", 0.1), 0.95)
    assert found.half_width == np.inf and not found.precise


def test_bad_adaptive_sections_are_refused_naming_each_problem():
    with pytest.raises(InputError) as refused:
        parse_adaptive({"wave": 1, "targets": [{"element": "123", "statistic": "p150", "half_width": -1, "of": "sum"}]},
                       100)
    text = str(refused.value)
    for problem in ("$.adaptive.wave", "targets[0].element", "targets[0].statistic", "targets[0].of",
                    "targets[0].half_width"):
        assert problem in text
