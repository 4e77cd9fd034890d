"""Sobol' sensitivity (cloudburst.sensitivity): the estimators against the Ishigami function's known indices, and
a study on the cluster (real Redis, Nginx, runner processes, EPANET): its indices from the stored summaries, by
the test's own estimator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wntr
from cloudburst.errors import InputError
from cloudburst.plan.scenarios import generate
from cloudburst.plan.sensitivity import members_for, saltelli_design, sobol_indices

NET3 = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"


def ishigami(x: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def test_the_estimators_find_the_ishigami_functions_known_indices():
    n = 4096
    x = saltelli_design(n, 3, seed=1) * 2 * np.pi - np.pi
    found = sobol_indices(ishigami(x), ["x1", "x2", "x3"], n)
    # Analytic (a = 7, b = 0.1): V = a^2/8 + b pi^4/5 + b^2 pi^8/18 + 1/2.
    a, b = 7.0, 0.1
    variance = a ** 2 / 8 + b * np.pi ** 4 / 5 + b ** 2 * np.pi ** 8 / 18 + 0.5
    v1 = 0.5 * (1 + b * np.pi ** 4 / 5) ** 2
    v2 = a ** 2 / 8
    v13 = b ** 2 * np.pi ** 8 * (1 / 18 - 1 / 50)
    expected_first = np.array([v1, v2, 0.0]) / variance
    expected_total = np.array([v1 + v13, v2, v13]) / variance
    assert np.all(np.abs(found["S1"] - expected_first) <= np.maximum(found["S1_conf"], 0.02)), found
    assert np.all(np.abs(found["ST"] - expected_total) <= np.maximum(found["ST_conf"], 0.02)), found
    assert (found["S1_conf"] > 0).all() and (found["S1_conf"] < 0.1).all()


def salib_layout(values: np.ndarray, n: int, d: int) -> np.ndarray:
    """Our members (A, then B, then each A_B(i)) in SALib's order without second order: per row A, A_B(1..D), B."""
    a, b, mixed = values[:n], values[n:2 * n], values[2 * n:].reshape(d, n)
    return np.column_stack([a, *mixed, b]).ravel()


@pytest.mark.parametrize("offset", [0.0, 40.0], ids=["as is", "plus 40 (a pressure's size)"])
def test_intervals_are_as_narrow_as_salibs_on_the_same_runs_whatever_the_outputs_mean(offset):
    """Sobol' indices do not change when a constant is added to the output; neither may their intervals. SALib
    (maintained, independent code) analyses the same numbers: our intervals are within a factor 1.5 of its."""
    from SALib.analyze import sobol as salib_sobol
    n, d = 256, 3
    x = saltelli_design(n, d, seed=4) * 2 * np.pi - np.pi
    y = ishigami(x) + offset
    found = sobol_indices(y, ["x1", "x2", "x3"], n)
    problem = {"num_vars": d, "names": ["x1", "x2", "x3"], "bounds": [[-np.pi, np.pi]] * d}
    salib = salib_sobol.analyze(problem, salib_layout(y, n, d), calc_second_order=False, num_resamples=1000,
                                conf_level=0.95, seed=4)
    for ours, theirs in (("S1_conf", "S1_conf"), ("ST_conf", "ST_conf")):
        ratio = found[ours].to_numpy() / salib[theirs]
        assert ((ratio > 1 / 1.5) & (ratio < 1.5)).all(), (ours, found[ours].tolist(), list(salib[theirs]))
    assert np.abs(found["S1"].to_numpy() - salib["S1"]).max() < 0.05


def test_the_design_is_a_then_b_then_a_with_each_column_from_b():
    design = saltelli_design(8, 2, seed=3)
    a, b = design[:8], design[8:16]
    assert len(design) == members_for(8, 2) == 32
    assert np.array_equal(design[16:24][:, 0], b[:, 0]) and np.array_equal(design[16:24][:, 1], a[:, 1])
    assert np.array_equal(design[24:32][:, 1], b[:, 1]) and np.array_equal(design[24:32][:, 0], a[:, 0])


SCENARIO = {
    "ensemble": "net3-sobol", "seed": 9,
    "alterations": [
        {"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.6, "high": 1.4}},
        {"type": "pipe_property", "property": "roughness", "factor": {"distribution": "uniform", "low": 0.95,
                                                                         "high": 1.05}}],
    "sensitivity": {"base_samples": 32, "metric": "pressure_mean"},
}


def test_a_sensitivity_scenario_with_members_or_without_factors_is_refused():
    wn = wntr.network.WaterNetworkModel(str(NET3))
    with pytest.raises(InputError, match="a sensitivity study sets the member count"):
        generate({**SCENARIO, "members": 10}, wn, {"url": "http://m.invalid/x.inp", "sha256": "0" * 64})
    with pytest.raises(InputError, match="there is no factor"):
        generate({**SCENARIO, "alterations": [{"type": "demand_scale", "factor": 1.1}]}, wn,
                 {"url": "http://m.invalid/x.inp", "sha256": "0" * 64})
