"""Every Grafana panel query against a real InfluxDB holding real statistics, and Grafana's decision on a real Docker engine."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wntr
import yaml
from cloudburst.engine.batch import run_batch
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.batch import make_batch
from cloudburst.state.influx import InfluxWriter
from cloudburst.state.models import ModelCache
from cloudburst.state.reader import ResultsReader
from cloudburst.worker import aggregate
from test_grafana import (
    DASHBOARDS,
    GRAFANA,
)

DB, ENSEMBLE, MEMBERS = "grafana_tests", "fan-test", 6


PROBE_NODE = "123"


TIME_RANGE = "time >= '2000-01-01T00:00:00Z'"


START_S = 946684800  # 2000-01-01T00:00:00Z, the members' start


@pytest.fixture(scope="module")
def ensemble_results(influx, results_store, model_dir, model_server, model_session, tmp_path_factory) -> dict:
    """Six Net3 members (demand x 0.8 ... 1.3) with node series, one bad member and one whose hydraulics stop
    balancing, run in two batches into the
    results store; their statistics computed from the store and written to InfluxDB as the cluster does.
    Returns each member's factor and the stored series of the probe node."""
    data = (Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(data)
    influx.query(f"CREATE DATABASE {DB}")
    cache = ModelCache(tmp_path_factory.mktemp("grafana-cache"), session=model_session)
    factors = {member: 0.8 + 0.1 * member for member in range(MEMBERS)}
    documents = [{"schema": "cloudburst.job/1", "ensemble": ENSEMBLE, "member": member, "seed": 1,
                  "input": {"url": f"{model_server}/{sha}.inp", "sha256": sha},
                  "run": {"duration_s": 86400, "alterations": [{"type": "demand_scale", "factor": factor}]},
                  "output": {"db": DB, "series": [{"element": "node", "attributes": ["pressure", "head", "demand"],
                                                   "ids": [PROBE_NODE, "10", "60"]}],
                             "statistics": {"below": {"pressure": [50]}}}} for member, factor in factors.items()]
    documents.append({**documents[0], "member": MEMBERS,
                      "run": {"alterations": [{"type": "pump_outage", "pump": "no-such-pump"}]}})
    # Net3 allowed 4 trials per step, stopping when a step does not balance: an unbalanced member
    stiff = data.decode().replace(" Trials             \t40", " Trials             \t4").replace(
        " Unbalanced         \tContinue 10", " Unbalanced         \tSTOP").encode()
    stiff_sha = hashlib.sha256(stiff).hexdigest()
    (model_dir / f"{stiff_sha}.inp").write_bytes(stiff)
    documents.append({**documents[0], "member": MEMBERS + 1,
                      "input": {"url": f"{model_server}/{stiff_sha}.inp", "sha256": stiff_sha}})
    for part in (documents[:4], documents[4:]):
        run_batch(make_batch(ENSEMBLE, part), cache, results_store, None)
    request = aggregate.StatisticsRequest.from_output(documents[0]["output"])
    lines = aggregate.compute(results_store, ENSEMBLE, START_S, MEMBERS + 2, request)
    InfluxWriter(influx.url, DB, **influx.credentials).write(lines)
    series = ResultsReader(results_store, None).series(ENSEMBLE, fmt.NODE, PROBE_NODE, "pressure")
    return {"factors": factors, "series": series}


def variable_values(influx, dashboard: dict, chosen: dict[str, str]) -> dict[str, str]:
    """Each variable's value: a query variable runs its query (with the variables before it) and takes the first."""
    values = dict(chosen)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            rows = influx.query(substitute(variable["query"], values), db=DB)
            options = [value for series in rows for _, value in series["values"]]
            assert options, f"variable {variable['name']} has no options"
            values.setdefault(variable["name"], options[0])
            assert values[variable["name"]] in options
        else:
            values.setdefault(variable["name"], variable["current"]["value"])
    return values


def substitute(query: str, values: dict[str, str]) -> str:
    query = query.replace("$timeFilter", TIME_RANGE)
    for name in sorted(values, key=len, reverse=True):
        query = query.replace(f"${name}", values[name])
    assert not re.search(r"\$\w", query), query  # no variable left ("$/" ends a regular expression)
    return query


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_query_returns_data_from_real_statistics(influx, ensemble_results, path):
    dashboard = json.loads(path.read_text())
    values = variable_values(influx, dashboard, {"ensemble": ENSEMBLE, "element": PROBE_NODE})
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            series = influx.query(substitute(target["query"], values), db=DB)
            assert series and series[0]["values"], f"{path.stem}: panel {panel['title']!r} returned nothing"


def query_rows(influx, query: str) -> list[dict]:
    return influx.rows(substitute(query, {"ensemble": ENSEMBLE, "element": PROBE_NODE, "attribute": "pressure",
                                          "risk": "below_50"}), DB)


def panel_query(name: str, title_start: str) -> str:
    dashboard = json.loads((GRAFANA / "dashboards" / f"{name}.json").read_text())
    return next(p for p in dashboard["panels"] if p["title"].startswith(title_start))["targets"][0]["query"]


def by_time(series) -> dict[int, list[float]]:
    values: dict[int, list[float]] = {}
    for elapsed, value in zip(series["elapsed_s"], series["value"]):
        values.setdefault(START_S + int(elapsed), []).append(float(value))
    return values


def test_the_fan_chart_spans_the_members_stored_values_at_each_time_step(influx, ensemble_results):
    rows = query_rows(influx, panel_query("fan-chart", "$attribute at node"))
    members_at = by_time(ensemble_results["series"])
    assert len(members_at) == 25 and all(len(values) == MEMBERS for values in members_at.values())
    fan: dict[int, dict[str, float]] = {}
    for row in rows:
        fan.setdefault(row["time"], {})[row["statistic"]] = row["pressure"]
    assert set(fan) == set(members_at)
    spread = 0.0
    for at, statistics in fan.items():
        members = sorted(members_at[at])
        assert statistics["min"] == members[0] and statistics["max"] == members[-1]
        # InfluxDB 1.x's percentile: the value at index floor(n * p / 100 + 0.5) - 1; below index 0 (p5 of 6
        # members) the cluster gives the lowest value, where InfluxDB gives none.
        for p in (5, 50, 95):
            index = int(np.floor(len(members) * p / 100 + 0.5)) - 1
            assert statistics[f"p{p}"] == members[max(index, 0)]
        spread = max(spread, statistics["max"] - statistics["min"])
    assert spread > 1.0  # demand x0.8 vs x1.3 moves pressure at node 123 by metres, not rounding


def test_the_risk_map_gives_the_fraction_of_members_below_the_threshold(influx, ensemble_results):
    rows = [row for row in query_rows(influx, panel_query("risk", "P($attribute")) if row["element"] == PROBE_NODE]
    members_at = by_time(ensemble_results["series"])
    assert {row["time"]: row["pressure"] for row in rows} == {
        at: sum(value < 50 for value in values) / MEMBERS for at, values in members_at.items()}
    assert any(0 < row["pressure"] < 1 for row in rows)  # the threshold splits the members somewhere
    worst = query_rows(influx, panel_query("risk", "Worst nodes"))
    assert {row["element"] for row in worst} == {PROBE_NODE, "10", "60"}


def test_progress_counts_finished_failed_and_unbalanced_members(influx, ensemble_results):
    finished = query_rows(influx, panel_query("progress", "Members finished"))
    failed = query_rows(influx, panel_query("progress", "Members failed"))
    unbalanced = query_rows(influx, panel_query("progress", "Members unbalanced (not in the statistics)"))
    total = query_rows(influx, panel_query("progress", "Members in the ensemble"))
    assert (finished[0]["last"], failed[0]["last"], unbalanced[0]["last"]) == (MEMBERS, 1, 1)
    assert total[0]["last"] == MEMBERS + 2
    over_time = query_rows(influx, panel_query("progress", "Members done over time"))
    assert (over_time[-1]["finished"], over_time[-1]["failed"], over_time[-1]["unbalanced"]) == (MEMBERS, 1, 1)


def test_the_summary_statistics_span_the_members_lowest_pressures(influx, ensemble_results, results_store):
    rows = {row["statistic"]: row["last"] for row in query_rows(influx, panel_query("summaries", "Lowest junction"))}
    lowest = sorted(ResultsReader(results_store, None).summaries(ENSEMBLE)["pressure_min"])
    assert len(lowest) == MEMBERS and rows["min"] == lowest[0] and rows["max"] == lowest[-1]
    assert rows["p50"] == lowest[int(np.floor(MEMBERS * 0.5 + 0.5)) - 1]


DECIDE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.import_role:
        name: images
        tasks_from: grafana
    - ansible.builtin.copy:
        content: "{{ images_grafana_decision | to_json }}"
        dest: "{{ decision_file }}"
        mode: "0644"
"""


def grafana_decision(repo: Path, ansible_env: dict, tmp_path: Path, docker_host: str | None = None,
                     **extra: object) -> dict:
    playbook = tmp_path / "decide.yml"
    playbook.write_text(DECIDE)
    decision = tmp_path / f"decision-{len(list(tmp_path.glob('decision-*')))}.json"
    result = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook),
                             "-e", json.dumps({"decision_file": str(decision),
                                               "ansible_python_interpreter": sys.executable, **extra})],
                            cwd=repo, env={**ansible_env, **({"DOCKER_HOST": docker_host} if docker_host else {})},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    return json.loads(decision.read_text())


@pytest.mark.services  # starts its own service (or Docker) inside the test
def test_auto_runs_grafana_only_when_its_image_is_on_the_controller_and_says_why_not(repo, ansible_env, tmp_path):
    """The image lookup and pull are real Docker calls on this machine (no registry answers here)."""
    defaults = yaml.safe_load((repo / "roles" / "images" / "defaults" / "main.yml").read_text())
    here = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "cloudburst/debian"],
                          capture_output=True, text=True, check=True).stdout.split()[0]
    present = grafana_decision(repo, ansible_env, tmp_path, images_pull={**defaults["images_pull"], "grafana": here})
    assert present == {"enabled": True, "shipped": True, "why": f"its image {here} is on the controller"}
    absent = grafana_decision(repo, ansible_env, tmp_path,
                              images_pull={**defaults["images_pull"], "grafana": "registry.invalid/grafana:13"})
    assert absent["enabled"] is False and absent["shipped"] is False
    assert absent["why"].startswith("its image registry.invalid/grafana:13 is not on the controller and cannot be "
                                    "pulled (") and absent["why"].endswith("load it there (docker load) and run "
                                                                            "site.yml again")
    # A controller without a Docker engine (pull mode needs none; a bare host before its engine layer): an answer.
    no_engine = grafana_decision(repo, ansible_env, tmp_path, docker_host=f"unix://{tmp_path}/no-docker.sock")
    assert no_engine["enabled"] is False and no_engine["shipped"] is False
    assert "cannot be pulled (no Docker engine answers on the controller: " in no_engine["why"]
    off = grafana_decision(repo, ansible_env, tmp_path, cloudburst_grafana_enabled=False)
    assert off == {"enabled": False, "shipped": False, "why": "cloudburst_grafana_enabled is false"}
    assert defaults["images_pull"]["grafana"] == "grafana/grafana:13.2.3"  # Grafana's current release line
