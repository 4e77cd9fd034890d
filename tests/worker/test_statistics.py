"""An ensemble's statistics computed on the cluster and written to a real InfluxDB (with lowered limits)."""
from __future__ import annotations

import cloudburst
import numpy as np
import pytest
from cloudburst.worker import aggregate
from local_cluster import client_settings, local_cluster, start_workers, stop
from services import influxdb
from test_aggregate import PERCENTILES
from test_scenarios import NET3
from waiting import wait_until


def test_percentiles_are_influxdbs_nearest_rank_for_every_count_and_percentile(influx):
    generator = np.random.default_rng(2026)
    rows = 40
    counts = np.arange(1, rows + 1)  # row i holds i + 1 members' values, the rest missing (NaN)
    matrix = np.full((rows, rows), np.nan, dtype=np.float32)
    for row, count in enumerate(counts):
        matrix[row, :count] = generator.normal(50, 10, count).astype(np.float32)
        generator.shuffle(matrix[row])
    request = aggregate.StatisticsRequest(percentiles=PERCENTILES, below={"v": (50.0,)})
    ours = aggregate.row_statistics(matrix, request, "v")
    influx.query("CREATE DATABASE percentile_rule")
    influx.write([f"values,row={row} v={float(value)!r} {member}" for row in range(rows) for member in range(rows)
                  if not np.isnan(value := matrix[row, member])], "percentile_rule")
    for percentile in PERCENTILES:
        for row in range(rows):
            # One query per row: InfluxDB 1.6 drops every group of a GROUP BY after one that has no rank.
            found = influx.rows(f"SELECT percentile(v, {percentile}) FROM \"values\" WHERE \"row\" = '{row}'",
                                "percentile_rule")
            theirs = found[0]["percentile"] if found else None  # None: no rank; the cluster gives the lowest value
            expected = theirs if theirs is not None else float(np.nanmin(matrix[row]))
            assert ours[f"p{percentile:g}"][row] == expected, (percentile, row)
    assert ours["count"].tolist() == counts.tolist()
    assert ours["min"].tolist() == np.nanmin(matrix, axis=1).astype(np.float64).tolist()
    assert ours["below_50"].tolist() == [np.sum(matrix[row] < 50) / counts[row] for row in range(rows)]


@pytest.fixture
def limited_influx(tmp_path_factory):
    """InfluxDB with its limits lowered to 1,000 series per database and 1,000 values per tag; the ``inmem`` index,
    the only one with which InfluxDB 1.6 enforces them."""
    with influxdb(tmp_path_factory.mktemp("limited"), auth=True, max_series=1000, max_values_per_tag=1000,
                  index="inmem") as server:
        yield server


def test_the_lowered_limits_bind_a_series_per_member_is_a_partial_write(limited_influx):
    """The negative control: what the store did before (a series per member) is refused past the limit."""
    import requests
    limited_influx.query("CREATE DATABASE per_member")
    lines = "\n".join(f"pressure,member={member} v=1.0 1" for member in range(1500))
    response = requests.post(f"{limited_influx.url}/write", params={"db": "per_member"}, data=lines,
                             auth=("admin", "admin-secret"), timeout=30)
    assert response.status_code == 400 and "partial write" in response.text, response.text
    assert "max-values-per-tag limit exceeded" in response.text or "max-series-per-database" in response.text


def test_an_ensemble_past_influxdbs_lowered_limits_is_stored_whole(tmp_path, limited_influx):
    members = 1500  # above both limits, were each member its own series or tag value as before
    with local_cluster(tmp_path, limited_influx) as cluster:
        client = cloudburst.Client(client_settings(cluster))
        workers = start_workers(cluster)
        try:
            ensemble = client.submit(NET3, {
                "ensemble": "wall", "members": members, "seed": 3, "run": {"duration_s": 3600},
                "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8,
                                                                    "high": 1.2}}],
                "output": {"series": [{"element": "node", "attributes": ["pressure"], "ids": ["123", "15"]}]},
                "batch": {"members": 100}}, name="wall")
            final = ensemble.wait(progress=False, timeout_s=600)
            bands = wait_until("statistics over every member", lambda: ensemble.percentiles("node:123"), 120,
                               done=lambda table: (table["count"] == members).all(),
                               tolerate=(cloudburst.errors.InputError,))
        finally:
            stop(workers)
        assert (final.finished, final.failed) == (members, 0)
        assert len(ensemble.members()) == members and len(ensemble.series("node:15")) == members * 2
        assert len(bands) == 2
        series = limited_influx.rows("SHOW SERIES", cluster["db"])
        assert 0 < len(series) < 100  # statistics only: elements x statistics, whatever the member count
        assert "partial write" not in (tmp_path / "workers.log").read_text()


def test_a_process_reading_only_new_batches_computes_what_reading_every_batch_computes(results_store):
    from cloudburst.engine.batch import MemberResult, members_table, series_table
    from cloudburst.engine.results import SeriesBlock
    from cloudburst.schema import resultformat as fmt
    from cloudburst.schema.batch import batch_name
    from cloudburst.schema.resultformat import encode

    generator = np.random.default_rng(7)
    elements, elapsed = ["J1", "J2", "J3"], np.array([0, 3600, 7200], dtype=np.int32)

    def put(first: int, count: int, skip: int | None = None) -> None:
        results = [MemberResult(member, 0, {"status": fmt.FINISHED, "error": ""}, {"pressure_min": float(member)},
                                [SeriesBlock("node", "pressure", elements, elapsed,
                                             generator.normal(40, 5, (3, 3)).astype(np.float32))])
                   for member in range(first, first + count) if member != skip]
        batch = batch_name(first, first + count - 1)
        results_store.put_batch("incremental", batch, encode(series_table(results), [fmt.VALUE]),
                                encode(members_table(batch, results)))

    def statistics() -> list[str]:
        lines = aggregate.compute(results_store, "incremental", 0, 20, aggregate.StatisticsRequest())
        return sorted(line for line in lines if not line.startswith(fmt.PROGRESS))

    def afresh() -> list[str]:
        aggregate.forget_read("incremental")
        return statistics()

    for first in (0, 4, 8):
        put(first, 4)
    assert statistics() == afresh()
    for first in (12, 16):
        put(first, 4)
    incremental = statistics()
    assert incremental == afresh() and any("statistic=count pressure=20.0" in line for line in incremental)
    put(4, 4, skip=5)  # member 5 missing from its batch (it failed) ...
    assert any("statistic=count pressure=19.0" in line for line in statistics())
    put(4, 4)  # ... then the batch ran again and stored it: a changed file is read again, with everything
    incremental = statistics()
    assert incremental == afresh() and any("statistic=count pressure=20.0" in line for line in incremental)


STATS_SCENARIO = {"members": 40, "seed": 5, "run": {"duration_s": 3600},
                  "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8,
                                                                      "high": 1.2}}],
                  "output": {"series": [{"element": "node", "attributes": ["pressure"], "ids": ["123"]}]},
                  "batch": {"members": 10}}


def plant_a_claim_whose_job_is_gone(cluster: dict, name: str) -> None:
    """What a Redis restarted from an append-only file that lost its last second leaves (or a statistics job whose
    worker died with it): the statistics claim, taken a minute ago, naming a job Redis does not have."""
    from cloudburst.state.ledger import STATS_CLAIM_S, STATS_PENDING, key_for
    cluster["redis"].set(key_for(name, STATS_PENDING), "statistics-lost-in-a-restart", ex=STATS_CLAIM_S - 60)


def test_a_claim_whose_statistics_job_is_gone_does_not_hold_back_the_ensembles_statistics(cluster, client):
    """The batches recorded after it take the claim over: the final statistics come with the last batch."""
    ensemble = client.submit(NET3, {**STATS_SCENARIO, "ensemble": "claim-lost"}, name="claim-lost")
    plant_a_claim_whose_job_is_gone(cluster, "claim-lost")
    workers = start_workers(cluster)
    try:
        final = ensemble.wait(progress=False, timeout_s=300, statistics_s=60)
    finally:
        stop(workers)
    assert (final.finished, final.failed) == (40, 0)
    assert ensemble.statistics_current()
    assert (ensemble.percentiles("node:123")["count"] == 40).all()
    assert "is gone" in (cluster["tmp"] / "workers.log").read_text()


def test_a_client_waiting_for_the_final_statistics_queues_them_when_nothing_else_will(cluster, client):
    """Every batch recorded, the last statistics job gone before it covered them (its claim left behind): no worker
    will queue statistics again, so the waiting client does."""
    from cloudburst.state.ledger import STATS, key_for
    workers = start_workers(cluster)
    try:
        ensemble = client.submit(NET3, {**STATS_SCENARIO, "ensemble": "last-lost"}, name="last-lost")
        ensemble.wait(progress=False, timeout_s=300)
        assert ensemble.statistics_current()
        cluster["redis"].hset(key_for("last-lost", STATS), mapping={"members": 30, "at": 0})
        plant_a_claim_whose_job_is_gone(cluster, "last-lost")
        assert not ensemble.statistics_current()
        ensemble.wait(progress=False, timeout_s=300, statistics_s=60)
        state = cluster["redis"].hgetall(key_for("last-lost", STATS))
    finally:
        stop(workers)
    assert ensemble.statistics_current()
    assert float(state[b"members"]) == 40 and float(state[b"at"]) > 0
