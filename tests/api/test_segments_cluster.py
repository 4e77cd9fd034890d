"""Segment criticality studies on a real Redis, Nginx and runner processes."""
from __future__ import annotations

import hashlib

import cloudburst
import pytest
import yaml
from cloudburst.engine.models import parse_inp
from cloudburst.plan.scenarios import generate
from local_cluster import cli, client_settings, start_workers, stop
from test_segments import (
    DEMAND_M3S,
    HOURS,
    VALVES,
    small_model,
)


def test_a_segments_study_runs_on_the_workers_from_a_scenario_file_with_a_csv_valve_layer(cluster, tmp_path):
    model = small_model(tmp_path / "small.inp")
    (tmp_path / "valves.csv").write_text("link,node\n" + "".join(f"{link},{node}\n" for link, node in VALVES))
    scenario = tmp_path / "segments.yml"
    scenario.write_text(yaml.safe_dump({
        "ensemble": "small-segments", "members": 3, "seed": 2,
        "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.5, "high": 1.5}}],
        "study": {"type": "segments", "valves": "valves.csv"}}))
    workers = start_workers(cluster, 2)
    try:
        submitted = cli(cluster, "submit", str(model), str(scenario), "--name", "small-segments", "--wait", timeout=300)
    finally:
        stop(workers)
    assert submitted.returncode == 0, submitted.stderr
    study = cloudburst.Client(client_settings(cluster)).study("small-segments")
    table = study.table()
    assert len(table) == 3 * 4 and table["balanced"].all()
    # Each member's unserved volume is its own drawn demand times the junctions cut off, for the whole run.
    drawn = generate({"members": 3, "seed": 2, "alterations": [
        {"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.5, "high": 1.5}}]},
        parse_inp(model, str(model)), {"url": "http://models.invalid/m.inp",
                                       "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}, "small-segments")
    for row in table.itertuples():
        factor = drawn.documents[row.member]["run"]["alterations"][0]["factor"]
        cut_off = {("J1", "R"): 4, ("J2",): 3, ("J3",): 1, ("J4",): 1}[tuple(row.nodes)]
        assert row.unserved_m3 == pytest.approx(cut_off * factor * DEMAND_M3S * HOURS * 3600, rel=1e-4)
    shown = cli(cluster, "segments", "small-segments")
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.splitlines()[1].split()
    mean_factor = sum(document["run"]["alterations"][0]["factor"] for document in drawn.documents) / 3
    assert first[-2:] == ["J1", "R"]  # the segment at the source: the most demand unserved
    assert float(first[1]) == pytest.approx(4 * DEMAND_M3S * HOURS * 3600 * mean_factor, abs=0.05)  # printed to 0.1
