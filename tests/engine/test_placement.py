"""Sensor placement (cloudburst.api.placement) on real impacts (Net3, contamination runs on EPANET): the MIP's
placement is the best of every k-subset found by brute force here, and the greedy's expected harm is within the
bound it reports of the MIP's, which that bound never exceeds."""
from __future__ import annotations

import itertools
from pathlib import Path

import epanet.toolkit as en
import numpy as np
import pytest
from cloudburst.api.placement import ImpactMatrix, greedy, mip, risk, trade_off
from cloudburst.engine import toolkit
from cloudburst.engine.contamination import HARMS, ContaminationSettings, Injection, SharedHydraulics, task_impacts
from cloudburst.schema import impacts as impact_format
from cloudburst.errors import InputError

NET3 = Path(__file__).resolve().parents[2] / "files" / "models" / "Net3.inp"
CANDIDATES = ["10", "15", "20", "35", "101", "123", "149", "189", "199", "211", "253", "275"]


@pytest.fixture(scope="module")
def stored_tasks() -> list:
    """Net3's impacts for every ninth junction at 0, 6 and 12 h, as two tasks store them."""
    project = toolkit.Project(NET3)
    try:
        junctions = [name for index, name in enumerate(project.node_ids, 1) if project.node_type(index) == en.JUNCTION]
        shared = SharedHydraulics(project, ContaminationSettings(duration_s=86400), CANDIDATES)
        injections = [Injection(node, start) for node in junctions[::9] for start in (0, 21600, 43200)]
        return [impact_format.decode(impact_format.encode(task_impacts(shared, 0, part)))  # as stored
                for part in (injections[:20], injections[20:])]
    finally:
        project.close()


@pytest.fixture(scope="module")
def matrix(stored_tasks) -> ImpactMatrix:
    return ImpactMatrix.of(stored_tasks)


def injection_harms(matrix: ImpactMatrix, chosen: tuple[str, ...], column: int) -> list[float]:
    """The reference: per injection, the harm at the earliest detection by a chosen sensor, read entry by entry."""
    harms = []
    for injection in range(len(matrix.undetected)):
        best_time, harm = None, matrix.undetected[injection, column]
        for entry in range(len(matrix.row)):
            if matrix.row[entry] == injection and matrix.sensors[matrix.column[entry]] in chosen:
                if best_time is None or matrix.detected_s[entry] < best_time:
                    best_time, harm = matrix.detected_s[entry], matrix.harm[entry, column]
        harms.append(float(harm))
    return harms


def expected_harm(matrix: ImpactMatrix, chosen: tuple[str, ...], column: int) -> float:
    harms = injection_harms(matrix, chosen, column)
    return sum(harms) / len(harms)


def conditional_value_at_risk(harms: list[float], alpha: float) -> float:
    """Rockafellar and Uryasev's definition, min over v of v + E[max(0, harm - v)] / (1 - alpha), taken over every
    harm as v (a minimum of this piecewise-linear convex function lies at one of them)."""
    return min(v + sum(max(0.0, harm - v) for harm in harms) / ((1 - alpha) * len(harms)) for v in harms)


@pytest.mark.parametrize("objective", ["z1_s", "z3_m3", "z2_people"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_mips_placement_is_the_best_k_subset_and_the_greedy_is_within_its_bound(matrix, objective, k):
    column = HARMS.index(objective)
    best = min(expected_harm(matrix, subset, column) for subset in itertools.combinations(CANDIDATES, k))
    exact = mip(matrix, k, objective)
    assert len(exact.sensors) <= k
    assert exact.value == pytest.approx(best, rel=1e-9)
    assert expected_harm(matrix, tuple(exact.sensors), column) == pytest.approx(exact.value, rel=1e-9)
    fast = greedy(matrix, k, objective)
    assert len(fast.sensors) == k
    assert expected_harm(matrix, tuple(fast.sensors), column) == pytest.approx(fast.value, rel=1e-9)
    assert fast.bound <= exact.value + 1e-9 <= fast.value + 2e-9
    assert fast.values[objective] == pytest.approx(fast.value)


def test_a_placements_values_report_every_objective_and_the_share_detected(matrix):
    placement = greedy(matrix, 4, "z1_s")
    assert set(placement.values) >= {*HARMS, "z4_detected", "worst_z1_s", "cvar_z3_m3"}
    assert 0 < placement.values["z4_detected"] <= 1
    curve = trade_off(matrix, [1, 2, 3, 4], "z1_s")
    assert list(curve["k"]) == [1, 2, 3, 4] and (np.diff(curve["z1_s"]) <= 1e-9).all()


def test_bad_placement_requests_get_a_sentence(matrix):
    with pytest.raises(InputError, match="k: a whole number of sensors from 1 to the 12 candidates, not 0"):
        greedy(matrix, 0)
    with pytest.raises(InputError, match="objective 'z9': one of z1_s, z2_people, z3_m3, mass_kg, extent_m"):
        mip(matrix, 2, "z9")


def test_impacts_read_to_memory_mapped_files_a_task_at_a_time_place_alike(stored_tasks, matrix, tmp_path):
    reads = []

    def tasks():
        reads.append(1)
        return iter(stored_tasks)
    mapped = ImpactMatrix.on_disk(tasks, tmp_path / "impacts")
    assert len(reads) == 2 and sorted(path.name for path in (tmp_path / "impacts").iterdir()) == [
        "column.npy", "detected_s.npy", "harm.npy", "row.npy"]
    assert isinstance(mapped.harm, np.memmap)
    entries = lambda m: sorted(zip(m.row.tolist(), m.column.tolist(), m.detected_s.tolist(),  # noqa: E731
                                   map(tuple, m.harm.tolist())))
    assert entries(mapped) == entries(matrix)
    assert np.array_equal(mapped.undetected, matrix.undetected)
    assert (np.diff(mapped.column) >= 0).all()  # ordered by sensor
    for k in (2, 4):
        assert greedy(mapped, k, "z3_m3").sensors == greedy(matrix, k, "z3_m3").sensors
        assert mip(mapped, k, "z1_s").value == pytest.approx(mip(matrix, k, "z1_s").value)


def test_a_mip_stopped_by_its_time_limit_says_so_and_keeps_the_better_of_its_best_and_the_greedys(matrix):
    exact = mip(matrix, 3, "z1_s")
    assert exact.proven and exact.method == "mip" and exact.bound == exact.value
    stopped = mip(matrix, 3, "z1_s", time_limit_s=1e-6)
    assert not stopped.proven and "greedy" in stopped.method
    assert stopped.value <= greedy(matrix, 3, "z1_s").value + 1e-9
    assert stopped.bound <= exact.value + 1e-9 <= stopped.value + 1e-9


@pytest.mark.parametrize("statistic", ["worst", "cvar"])
@pytest.mark.parametrize("objective", ["z1_s", "z3_m3"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_mip_minimising_the_worst_or_the_cvar_finds_the_best_k_subset(matrix, statistic, objective, k):
    """33 injections: the CVaR at 0.95 takes the worst 1.65 of them, the boundary one counted in part."""
    column = HARMS.index(objective)
    summary = max if statistic == "worst" else (lambda harms: conditional_value_at_risk(harms, 0.95))
    values = {subset: summary(injection_harms(matrix, subset, column))
              for subset in itertools.combinations(CANDIDATES, k)}
    placement = mip(matrix, k, objective, statistic=statistic)
    assert placement.proven and placement.statistic == statistic
    assert placement.value == pytest.approx(min(values.values()), rel=1e-9, abs=1e-9)
    assert summary(injection_harms(matrix, tuple(placement.sensors), column)) == pytest.approx(placement.value,
                                                                                              rel=1e-9)
    assert placement.values[f"{statistic}_{objective}"] == pytest.approx(placement.value, rel=1e-9)
    mean_placement = mip(matrix, k, objective)
    assert placement.value <= summary(injection_harms(matrix, tuple(mean_placement.sensors), column)) + 1e-9


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9, 0.95, 0.99])
def test_the_reported_cvar_is_rockafellar_and_uryasevs(alpha):
    generator = np.random.default_rng(11)
    for size in (1, 7, 33, 100):
        harms = generator.exponential(100.0, size).round(1)
        assert risk(harms, "cvar", alpha) == pytest.approx(conditional_value_at_risk(harms.tolist(), alpha),
                                                           rel=1e-12)
        assert risk(harms, "worst") == max(harms) and risk(harms, "mean") == pytest.approx(harms.mean())


def test_a_risk_statistic_asked_of_the_greedy_or_a_bad_alpha_gets_a_sentence(matrix):
    with pytest.raises(InputError, match="the greedy minimises the expected \\(mean\\) harm only, not the worst"):
        greedy(matrix, 2, "z1_s", "worst")
    with pytest.raises(InputError, match="statistic 'median': one of mean, worst, cvar"):
        mip(matrix, 2, "z1_s", statistic="median")
    with pytest.raises(InputError, match="cvar_alpha: a share from 0 up to \\(not including\\) 1, such as 0.95, "
                                         "not 1.5"):
        mip(matrix, 2, "z1_s", statistic="cvar", cvar_alpha=1.5)
