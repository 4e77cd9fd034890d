"""The study notebook in docs/ runs end to end against a real Redis, InfluxDB and Nginx with worker runners:
it submits, waits (its progress line reaches every member), ranks the worst members and draws a fan chart, then
runs the SWMM example as a task set and summarises its members, then a fire-flow study's availability table, then
a small design study of Hanoi's pipes."""
from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
from local_cluster import REPO, SWMM_ENV, start_workers, stop

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "study.ipynb"


def outputs(cell) -> str:
    texts = []
    for output in cell.get("outputs", []):
        texts.append(output.get("text", ""))
        texts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_the_study_notebook_runs_against_the_cluster(cluster, monkeypatch):
    for key, value in cluster["env"].items():
        monkeypatch.setenv(key, value)  # the kernel reads the settings as the CLI does
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The EPANET example env's worker.py, and the SWMM env's stormwater.py for the notebook's task set.
    workers = start_workers(cluster, 2, (REPO / "files" / "env" / "epanet", SWMM_ENV), ("worker", "stormwater"))
    try:
        nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:
        stop(workers)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "<Ensemble 'net3-study-" in outputs(code[1])
    waited = outputs(code[2])
    assert "40/40  finished 40  failed 0  running 0" in waited
    assert "Progress(members=40, finished=40, failed=0, running=0, unbalanced=0)" in waited
    table = "".join(output.get("data", {}).get("text/html", "") for output in code[3].outputs)
    assert "pressure_min_node" in table and table.count("<tr") == 6  # the header and the 5 worst members
    assert any("image/png" in output.get("data", {}) for output in code[4].outputs)
    storm = outputs(code[5])
    assert "60/60  finished 60  failed 0" in storm and "Progress(members=60, finished=60, failed=0" in storm
    quantiles = "".join(output.get("data", {}).get("text/html", "") for output in code[6].outputs)
    assert "peak_outfall_flow_cms" in quantiles and "flooding_m3" in quantiles and quantiles.count("<tr") == 4
    assert any("image/png" in output.get("data", {}) for output in code[7].outputs)
    fire = outputs(code[8]) + "".join(output.get("data", {}).get("text/html", "") for output in code[8].outputs)
    assert "p50_lps" in fire and "share_residual" in fire and "8/8  finished 8  failed 0" in fire
    assert fire.count("<tr") == 7  # two header rows (the columns, the index name) and the five hydrants
    assert "'state': 'finished'" in outputs(code[9]) and "'algorithm': 'ga'" in outputs(code[9])
    best = outputs(code[10]) + "".join(output.get("data", {}).get("text/html", "") for output in code[10].outputs)
    assert "diameter_mm" in best and "least pressure 3" in best  # 30 m or more at every junction
    assert any("image/png" in output.get("data", {}) for output in code[11].outputs)
