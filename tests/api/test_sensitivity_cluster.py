"""Sobol' sensitivity ensembles on a real Redis, Nginx, InfluxDB and runner processes."""
from __future__ import annotations

import cloudburst
import pytest
from local_cluster import cli, client_settings, start_workers, stop
from test_sensitivity import NET3, SCENARIO, salib_layout
from waiting import wait_until


def test_a_sensitivity_study_on_the_cluster_ranks_the_factors_from_the_members_summaries(cluster):
    client = cloudburst.Client(client_settings(cluster))
    workers = start_workers(cluster, 2)
    try:
        ensemble = client.submit(NET3, SCENARIO, name="net3-sobol")
        wait_until("the design's members to finish", ensemble.status, timeout_s=300,
                   done=lambda progress: progress.finished + progress.failed == progress.members)
    finally:
        stop(workers)
    assert ensemble.info().members == 32 * 4
    found = ensemble.sensitivity()
    assert list(found.index) == ["alterations[0].factor", "alterations[1].factor"]
    # SALib's estimators over the stored summaries (its variance divides by 2N, ours by 2N - 1: 1.6 % at N = 32).
    from SALib.analyze import sobol as salib_sobol
    members = ensemble.members().sort_values("member")
    y = members["pressure_mean"].to_numpy(dtype=float)
    problem = {"num_vars": 2, "names": ["demand", "roughness"], "bounds": [[0, 1]] * 2}
    salib = salib_sobol.analyze(problem, salib_layout(y, 32, 2), calc_second_order=False, seed=1)
    assert found["S1"].tolist() == pytest.approx(list(salib["S1"]), rel=0.02, abs=1e-3)
    assert found["ST"].tolist() == pytest.approx(list(salib["ST"]), rel=0.02, abs=1e-3)
    # Demand drives the mean pressure far more than a +/-5 % roughness does.
    assert found.loc["alterations[0].factor", "ST"] > 0.8 > found.loc["alterations[1].factor", "ST"]
    shown = cli(cluster, "sensitivity", "net3-sobol")
    assert shown.returncode == 0 and "alterations[0].factor" in shown.stdout, shown.stderr


def test_a_metric_on_a_nodes_series_stores_that_series_though_the_output_did_not_ask_for_it(cluster):
    client = cloudburst.Client(client_settings(cluster))
    scenario = {**SCENARIO, "run": {"duration_s": 86400},
                "sensitivity": {"base_samples": 8, "metric": {"element": "node:10", "attribute": "pressure"}}}
    plan = client.check_submission(NET3, scenario, name="by-node")
    assert plan["members"] == 8 * 4 and plan["series_values"] == 8 * 4 * 25  # node 10's 25 hourly pressures
