"""End to end as a user works: three bare hosts -> site.yml -> push-env.yml (the scenario's converge and side
effects), then a 300-member ensemble submitted with `cloudburst submit --wait`. Every member finishes on the
two worker hosts, InfluxDB holds exactly the points the jobs asked for, and `cloudburst results` gives the
percentiles of the stored series."""
import csv
from pathlib import Path

import numpy as np
import pytest
import wntr
import yaml

from cloudburst.api import Client
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


def test_influxdb_holds_exactly_the_expected_points(submitted, cluster):
    wn = wntr.network.WaterNetworkModel(str(MODEL))
    steps = 86400 // int(wn.options.time.report_timestep) + 1  # the scenario's 24 h at the model's report step

    def value(query: str, column: str = "count") -> int:
        frame = cluster.influx.frame(query)
        return 0 if frame.empty else int(frame[column].iloc[0])

    where = f"WHERE ensemble = '{NAME}'"
    assert value(f"SELECT count(runtime_s) FROM status {where}") == MEMBERS
    assert value(f"SELECT count(runtime_s) FROM status {where} AND status = 'finished'") == MEMBERS
    assert value(f"SELECT count(pressure_min) FROM summary {where}") == MEMBERS
    for attribute in ("pressure", "head"):
        assert value(f"SELECT count({attribute}) FROM node {where}") == MEMBERS * len(NODES) * steps
    # What the workers say they wrote, one point per value, matches what is stored.
    assert value(f"SELECT sum(series_points) FROM status {where}", "sum") == MEMBERS * len(NODES) * steps * 2
    workers = cluster.influx.frame(f"SELECT worker, runtime_s FROM status {where}")["worker"]
    assert set(workers) == set(WORKERS), f"members ran on {sorted(set(workers))}, not on exactly the worker hosts"


def test_results_gives_percentiles_of_the_stored_series(submitted, cluster, tmp_path):
    table = tmp_path / "node123.csv"
    result = cloudburst("results", NAME, "--element", "node:123", "--attribute", "pressure", "--csv", str(table))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(table.open()))
    raw = cluster.influx.frame(f"SELECT pressure FROM node WHERE ensemble = '{NAME}' AND element = '123'")
    by_time = raw.groupby("time")["pressure"]
    assert len(rows) == by_time.ngroups
    # pandas writes CSV floats with repr, so what is read back is the computed float exactly.
    for row, (_, values) in zip(rows, by_time):
        assert len(values) == MEMBERS
        assert float(row["min"]) == values.min() and float(row["max"]) == values.max()
        for percentile in (5, 50, 95):
            assert float(row[f"p{percentile}"]) == np.percentile(values.to_numpy(), percentile)
