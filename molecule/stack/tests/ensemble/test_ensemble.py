"""End to end as a user works: three bare hosts -> site.yml -> push-env.yml (the scenario's converge and side
effects), then a 300-member ensemble submitted with `cloudburst submit --wait`. Every member finishes on the
two worker hosts on the warm engine, the results store holds exactly the values the members asked for, InfluxDB holds statistics
without a member tag, and `cloudburst results` gives the cluster's nearest-rank percentiles of the stored series."""
import csv
import time
from pathlib import Path

import numpy as np
import pytest
import wntr
import yaml
from cloudburst import Client
from stack_view import MASTER, WORKERS, client_settings, cloudburst

testinfra_hosts = [MASTER]
REPO = Path(__file__).resolve().parents[4]
MODEL = REPO / "files" / "models" / "Net3.inp"
NAME = "e2e-300"
NODES = ["123", "247", "255", "15"]
MEMBERS = 300


@pytest.fixture(scope="module")
def cluster() -> Client:
    return Client(client_settings())


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    scenario.update(members=MEMBERS, seed=7)
    scenario["output"]["series"] = [{"element": "node", "attributes": ["pressure", "head"], "ids": NODES}]
    path = tmp_path_factory.mktemp("scenario") / "e2e.yml"
    path.write_text(yaml.safe_dump(scenario))
    return cloudburst("submit", str(MODEL), str(path), "--name", NAME, "--wait")


def test_submit_waits_until_every_member_finished(submitted, cluster):
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    assert submitted.stdout.strip() == NAME
    progress = cluster.ensemble(NAME).status()
    assert (progress.finished, progress.failed, progress.running, progress.queued) == (MEMBERS, 0, 0, 0)
    status = cloudburst("status", NAME)
    assert status.returncode == 0 and f"finished {MEMBERS}  failed 0" in status.stdout, status


def test_the_store_holds_exactly_the_expected_values(submitted, cluster):
    wn = wntr.network.WaterNetworkModel(str(MODEL))
    steps = 86400 // int(wn.options.time.report_timestep) + 1  # the scenario's 24 h at the model's report step
    ensemble = cluster.ensemble(NAME)
    members = ensemble.members()
    assert members["member"].tolist() == list(range(MEMBERS)) and set(members["status"]) == {"finished"}
    # What the workers say they stored, one value each, matches what is stored.
    assert members["series_points"].sum() == MEMBERS * len(NODES) * steps * 2
    for node in NODES:
        for attribute in ("pressure", "head"):
            assert len(ensemble.series(f"node:{node}", attribute)) == MEMBERS * steps
    assert set(members["worker"]) == set(WORKERS), f"members ran on {sorted(set(members['worker']))}"
    # The warm engine ran them: EPANET 2.3's toolkit, the model kept open in each worker process.
    assert set(members["engine"]) == {"toolkit"} and set(members["epanet_version"]) == {"2.3.5"}
    assert ensemble.executions().attrs == {"lost": 0, "duplicated": 0}


def test_influxdb_holds_statistics_without_a_member_tag(submitted, cluster):
    keys = cluster.influx.frame("SHOW TAG KEYS")
    assert "member" not in set(keys["tagKey"]) and {"ensemble", "element", "statistic"} <= set(keys["tagKey"])


def test_results_gives_the_clusters_percentiles_of_the_stored_series(submitted, cluster, tmp_path):
    deadline = time.monotonic() + 600  # submit --wait waits for them too, up to 300 s; on a loaded host, longer
    while not cluster.ensemble(NAME).statistics_current():
        assert time.monotonic() < deadline, "the cluster's statistics did not cover every member within 600 s"
        time.sleep(2)
    table = tmp_path / "node123.csv"
    result = cloudburst("results", NAME, "--element", "node:123", "--attribute", "pressure", "--csv", str(table))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(table.open()))
    stored = cluster.ensemble(NAME).series("node:123", "pressure")
    by_time = stored.groupby("elapsed_s")["value"]
    assert len(rows) == by_time.ngroups
    # pandas writes CSV floats with repr, so what is read back is the computed float exactly.
    for row, (elapsed, values) in zip(rows, by_time):
        ordered = np.sort(values.to_numpy(dtype=np.float64))
        assert int(row["elapsed_s"]) == elapsed and len(ordered) == MEMBERS == int(float(row["count"]))
        assert float(row["min"]) == ordered[0] and float(row["max"]) == ordered[-1]
        for percentile in (5, 50, 95):  # InfluxDB's nearest rank: index floor(n p / 100 + 0.5) - 1
            assert float(row[f"p{percentile}"]) == ordered[int(np.floor(MEMBERS * percentile / 100 + 0.5)) - 1]
