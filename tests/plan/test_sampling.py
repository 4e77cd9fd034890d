"""Samplers and designs (pure): each distribution's draws have its moments and stay in its support, Latin
hypercube and Sobol' designs stratify, shared draws move together, everything is reproducible from the seed and
written into the jobs; dated members start where the scenario says."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import wntr
from cloudburst.errors import InputError
from cloudburst.plan import sampling
from cloudburst.plan.scenarios import generate
from scipy import stats

NET3 = Path(__file__).resolve().parents[2] / "files" / "models" / "Net3.inp"
SOURCE = {"url": "http://nginx:8080/models/x.inp", "sha256": "0" * 64}


@pytest.fixture(scope="module")
def net3() -> wntr.network.WaterNetworkModel:
    return wntr.network.WaterNetworkModel(str(NET3))


def drawn(net3, specs: list[dict], members: int, **scenario) -> np.ndarray:
    """One column per spec (each a demand_scale factor), one row per member."""
    alterations = [{"type": "demand_scale", "factor": spec, "nodes": ["10"]} for spec in specs]
    ensemble = generate({"ensemble": "draws", "members": members, "seed": 3, "alterations": alterations, **scenario},
                        net3, SOURCE)
    return np.array([[change["factor"] for change in document["run"]["alterations"]]
                     for document in ensemble.documents])


@pytest.mark.parametrize("spec, frozen", [
    ({"distribution": "truncnorm", "mean": 1.0, "std": 0.3, "low": 0.0, "high": 2.0},
     stats.truncnorm((0.0 - 1.0) / 0.3, (2.0 - 1.0) / 0.3, loc=1.0, scale=0.3)),
    ({"distribution": "triangular", "low": 0.5, "mode": 0.8, "high": 1.5}, stats.triang(0.3, loc=0.5, scale=1.0)),
    ({"distribution": "beta", "a": 2.0, "b": 5.0, "low": 0.5, "high": 1.5}, stats.beta(2.0, 5.0, loc=0.5, scale=1.0)),
    ({"distribution": "normal", "mean": 1.0, "std": 0.05}, stats.norm(1.0, 0.05)),
])
def test_each_distribution_draws_its_moments_within_its_support(net3, spec, frozen):
    values = drawn(net3, [spec], 4000)[:, 0]
    low, high = frozen.support()
    assert values.min() >= low and values.max() <= high
    assert abs(values.mean() - frozen.mean()) < 4 * frozen.std() / np.sqrt(len(values))
    assert abs(values.std() - frozen.std()) < 0.05 * frozen.std()
    assert stats.kstest(values, frozen.cdf).pvalue > 0.001


def test_a_latin_hypercube_puts_one_member_in_each_stratum_of_every_value(net3):
    uniform = {"distribution": "uniform", "low": 0.0, "high": 1.0}
    values = drawn(net3, [uniform, uniform], 50, sampling="lhs")
    for column in values.T:
        assert sorted(np.floor(column * 50).astype(int).tolist()) == list(range(50))
    random = drawn(net3, [uniform], 50)[:, 0]
    assert len(set(np.floor(random * 50).astype(int))) < 50  # plain random sampling leaves strata empty


def test_sobol_points_are_balanced_for_a_power_of_two(net3):
    uniform = {"distribution": "uniform", "low": 0.0, "high": 1.0}
    values = drawn(net3, [uniform, uniform], 64, sampling="sobol")
    for column in values.T:
        assert np.bincount(np.floor(column * 8).astype(int), minlength=8).tolist() == [8] * 8


def test_specs_naming_one_draw_move_together_and_others_do_not(net3):
    specs = [{"distribution": "uniform", "low": 0.8, "high": 1.2, "draw": "weather"},
             {"distribution": "normal", "mean": 1.0, "std": 0.1, "draw": "weather"},
             {"distribution": "uniform", "low": 0.8, "high": 1.2}]
    values = drawn(net3, specs, 500)
    assert stats.spearmanr(values[:, 0], values[:, 1]).statistic == 1.0
    assert abs(stats.spearmanr(values[:, 0], values[:, 2]).statistic) < 0.2


@pytest.mark.parametrize("design", ["random", "lhs", "sobol"])
def test_every_design_is_reproducible_from_the_seed(net3, design):
    spec = [{"distribution": "beta", "a": 2, "b": 2}, {"distribution": "choice", "values": [0.9, 1.1]}]
    first = drawn(net3, spec, 32, sampling=design)
    assert np.array_equal(first, drawn(net3, spec, 32, sampling=design))
    assert not np.array_equal(first, drawn(net3, spec, 32, sampling=design, seed=4))


def test_a_normal_that_draws_negative_demand_is_refused_naming_the_distribution_and_the_fix(net3):
    normal = {"distribution": "normal", "mean": 1.0, "std": 0.3}
    with pytest.raises(InputError) as refused:
        drawn(net3, [normal], 10000)
    path = "$.alterations[0].factor"
    values = np.array(sampling.draw_all(sampling.columns([(path, normal)]), 10000, "random", 3)[path])
    negative = np.flatnonzero(values < 0)
    assert len(negative) > 1
    assert refused.value.problems == [
        f"member {negative[0]}: $.run.alterations[0].factor: Input should be greater than or equal to 0 (drawn from "
        "normal(mean=1.0, std=0.3); a bounded distribution such as truncnorm with low and high keeps every draw "
        "in range)", f"{len(negative) - 1} more of the 10000 members have problems"]
    bounded = drawn(net3, [{**normal, "distribution": "truncnorm", "low": 0.0, "high": 3.0}], 10000)
    assert bounded.min() >= 0 and len(bounded) == 10000


@pytest.mark.parametrize("spec, sentence", [
    ({"distribution": "triangular", "low": 1, "mode": 2, "high": 1.5}, "triangular needs low <= mode <= high"),
    ({"distribution": "beta", "a": 0, "b": 1}, "beta needs a > 0 and b > 0"),
    ({"distribution": "truncnorm", "mean": 1, "std": 0.1, "low": 2, "high": 1}, "truncnorm needs low < high"),
    ({"distribution": "normal", "mean": 1, "std": 0.1, "low": 0}, "distribution normal takes no low"),
])
def test_bad_distribution_parameters_are_refused_with_a_sentence(net3, spec, sentence):
    with pytest.raises(InputError) as refused:
        drawn(net3, [spec], 5)
    assert refused.value.problems == [f"$.alterations[0].factor: {sentence}"]


def test_members_dated_apart_start_where_the_scenario_says_and_start_overrides_it(net3):
    scenario = {"ensemble": "rolling", "members": 4, "start_time_utc": "2024-06-01T00:00:00Z", "start_every_s": 3600}
    starts = [document["input"]["start_time_utc"] for document in generate(scenario, net3, SOURCE).documents]
    assert starts == [f"2024-06-01T0{hour}:00:00+00:00" for hour in range(4)]
    moved = generate(scenario, net3, SOURCE, start=datetime(2025, 1, 1, tzinfo=timezone.utc)).documents
    assert moved[3]["input"]["start_time_utc"] == "2025-01-01T03:00:00+00:00"
    with pytest.raises(InputError) as refused:
        generate({**scenario, "start_time_utc": "2024-06-01 00:00"}, net3, SOURCE)
    assert refused.value.problems == ["$.start_time_utc: '2024-06-01 00:00' is not a date and time with a time "
                                      "zone, e.g. 2024-06-01T00:00:00Z"]
