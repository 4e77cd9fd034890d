"""Alternatives on a real Redis, Nginx and runner processes: each variant an ensemble, compared."""
from __future__ import annotations

from pathlib import Path

import cloudburst
import numpy as np
import pandas as pd
import pytest
import wntr
import yaml
from local_cluster import cli, client_settings, start_workers, stop
from test_alternatives import SCENARIO

NET3 = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"


def test_alternatives_run_as_ensembles_and_compare_side_by_side(cluster, tmp_path):
    scenario = tmp_path / "options.yml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    workers = start_workers(cluster, 2)
    try:
        submitted = cli(cluster, "submit", str(NET3), str(scenario), "--name", "options", "--wait", timeout=300)
    finally:
        stop(workers)
    assert submitted.returncode == 0, submitted.stderr
    assert "2 alternatives enqueued: options.base, options.more-demand" in submitted.stderr
    compared = cli(cluster, "compare", "options", "--element", "node:123", "--plot", str(tmp_path / "bands.png"),
                   "--csv", str(tmp_path / "summaries.csv"), "--bands-csv", str(tmp_path / "bands.csv"))
    assert compared.returncode == 0, compared.stderr
    assert (tmp_path / "bands.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(tmp_path / "summaries.csv", index_col="ensemble")
    client = cloudburst.Client(client_settings(cluster))
    for name in ("options.base", "options.more-demand"):
        lowest = client.ensemble(name).summaries()["pressure_min"].to_numpy(dtype=float)
        assert table.loc[name, "members"] == 12
        assert table.loc[name, "pressure_min_p50"] == pytest.approx(np.percentile(lowest, 50))
    # The same draws with 30 % more demand: every member's lowest pressure falls, so the median does.
    assert table.loc["options.more-demand", "pressure_min_p50"] < table.loc["options.base", "pressure_min_p50"]
    banded = pd.read_csv(tmp_path / "bands.csv")
    base = client.ensemble("options.base").series("node:123")
    at_noon = base[base["elapsed_s"] == 12 * 3600]["value"]
    row = banded[(banded["ensemble"] == "options.base") & (banded["elapsed_s"] == 12 * 3600)].iloc[0]
    assert row["p95"] == pytest.approx(np.percentile(at_noon, 95)) and row["members"] == 12
