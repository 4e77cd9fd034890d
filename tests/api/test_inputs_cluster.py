"""Inputs at their edges, end to end on a real Redis, InfluxDB, Nginx and worker runners: element IDs with commas,
``=``, quotes and non-ASCII letters through the store's Parquet, InfluxDB's tags, DuckDB, the CLI's ``node:ID`` and a
plot; an ID with a space (EPANET reads it quoted, wntr's parser does not) refused in a sentence; and a job whose
model is inline (a wntr model dict) run by a worker on the warm engine."""
from __future__ import annotations

import re

import cloudburst
import pandas as pd
import pytest
import wntr
from cloudburst.api.queue import enqueue_batches
from cloudburst.errors import InputError
from cloudburst.schema.batch import make_batch
from local_cluster import cli, client_settings, start_workers, stop
from test_scenarios import NET3
from waiting import wait_until

# Net3's junctions renamed: each ID holds a character the store, InfluxDB's line protocol or a query must escape.
ODD = {"601": "J,1", "61": "J=1", "127": "J'q", "255": 'J"d', "139": "Jä1"}


def renamed(text: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        text = re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w.])", new, text)
    return text


@pytest.fixture
def client(cluster) -> cloudburst.Client:
    return cloudburst.Client(client_settings(cluster))


def test_element_ids_with_commas_equals_quotes_and_accents_go_end_to_end(cluster, client, tmp_path):
    model = tmp_path / "odd-ids.inp"
    model.write_text(renamed(NET3.read_text(), ODD))
    members = 6
    workers = start_workers(cluster, 2)
    try:
        ensemble = client.submit(model, {
            "ensemble": "odd", "members": members, "seed": 2, "run": {"duration_s": 21600}, "batch": {"members": 2},
            "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}],
            "output": {"series": [{"element": "node", "attributes": ["pressure"], "ids": list(ODD.values())}],
                       "statistics": {"percentiles": [50], "below": {"pressure": [40]}}}}, name="odd")
        final = ensemble.wait(progress=False, timeout_s=180)
    finally:
        stop(workers)
    assert (final.finished, final.failed) == (members, 0)
    for element in ODD.values():
        stored = ensemble.series(f"node:{element}")
        assert len(stored) == members * 7 and not stored.duplicated(["member", "elapsed_s"]).any(), element
        bands = ensemble.percentiles(f"node:{element}")
        assert bands["count"].tolist() == [members] * 7, element
        ordered = stored.groupby("elapsed_s")["value"].apply(lambda values: sorted(values)[int(members * 0.5 + 0.5) - 1])
        assert bands["p50"].tolist() == ordered.tolist(), element  # InfluxDB's nearest rank, from the stored values
    counted = ensemble.query("SELECT element, count(*) AS n FROM series GROUP BY element ORDER BY element")
    assert dict(zip(counted["element"], counted["n"])) == {element: members * 7 for element in ODD.values()}
    risk = ensemble.risk("pressure", below=40, types=["junction"])
    assert set(ODD.values()) <= set(risk["element"]), risk.head()
    table, plot = tmp_path / "j.csv", tmp_path / "j.png"
    shown = cli(cluster, "results", "odd", "--element", 'node:J"d', "--csv", str(table), "--plot", str(plot))
    assert shown.returncode == 0, shown.stderr
    assert len(pd.read_csv(table)) == 7 and plot.stat().st_size > 1000


def test_an_id_with_a_space_is_refused_in_a_sentence_naming_wntrs_parser(cluster, client, tmp_path):
    model = tmp_path / "space.inp"
    model.write_text(renamed(NET3.read_text(), {"123": '"J 1"'}))
    with pytest.raises(InputError, match=r"wntr"):
        client.check_submission(model, {"ensemble": "space", "members": 2, "run": {"duration_s": 3600}},
                                name="space")


def test_an_inline_model_job_runs_on_a_worker_on_the_warm_engine(cluster, client):
    """A batch whose member carries its model inline (a wntr model dict): run by a worker on EPANET 2.3.5's toolkit,
    its pressures equal a member of the same model given by URL, to float32 noise (wntr writes the .inp anew)."""
    import hashlib

    import pyarrow.parquet as pq
    wn = wntr.network.WaterNetworkModel(str(NET3))
    sha = hashlib.sha256(NET3.read_bytes()).hexdigest()
    client.models.upload(NET3.read_bytes(), sha)
    output = {"series": [{"element": "node", "attributes": ["pressure"], "ids": ["123", "15"]}]}
    base = {"schema": "cloudburst.job/1", "ensemble": "inline", "seed": 1,
            "run": {"duration_s": 21600, "alterations": [{"type": "demand_scale", "factor": 1.1}]}, "output": output}
    by_url = client.services.model_input(sha)
    documents = [{**base, "member": 0, "input": {"inline": wntr.network.to_dict(wn),
                                                  "start_time_utc": "2024-01-01T00:00:00Z"}},
                 {**base, "member": 1, "input": {**by_url, "start_time_utc": "2024-01-01T00:00:00Z"}}]
    enqueue_batches(client.queue, client.ledger, "inline", [make_batch("inline", documents)])
    workers = start_workers(cluster, 1)
    try:
        wait_until("the inline batch recorded", lambda: client.ledger.done("inline"), 120)
    finally:
        stop(workers)
    files = sorted((cluster["root"] / "results" / "inline" / "members").glob("*.parquet"))
    rows = pd.concat([pq.read_table(path).to_pandas() for path in files]).set_index("member")
    assert rows.loc[0, "status"] == rows.loc[1, "status"] == "finished", rows[["status", "error"]]
    assert rows.loc[0, "engine"] == rows.loc[1, "engine"] == "toolkit"
    assert rows.loc[0, "epanet_version"] == rows.loc[1, "epanet_version"] == "2.3.5"
    series = pd.concat([pq.read_table(path).to_pandas()
                        for path in sorted((cluster["root"] / "results" / "inline" / "series").glob("*.parquet"))])
    inline = series[series["member"] == 0].sort_values(["element", "elapsed_s"])["value"].to_numpy()
    url = series[series["member"] == 1].sort_values(["element", "elapsed_s"])["value"].to_numpy()
    assert len(inline) == len(url) == 14 and abs(inline - url).max() < 1e-3
