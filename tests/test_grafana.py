"""Grafana, as far as it can be tested without Grafana: the provisioning files against their schema (pydantic
models of what Grafana reads), and every dashboard query run against a real InfluxDB holding a real ensemble."""
from __future__ import annotations

import hashlib
import json
import re
import socket
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import wntr
import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from cloudburst import resultformat as fmt
from cloudburst.engine import run_member
from cloudburst.errors import MemberFailed
from cloudburst.influx import InfluxWriter
from cloudburst.models import ModelCache

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "files" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
STACK_TEMPLATE = (REPO / "roles" / "stack" / "templates" / "stack.yml.j2").read_text()
DB, ENSEMBLE, MEMBERS = "grafana_tests", "fan-test", 6
PROBE_NODE = "123"
TIME_RANGE = "time >= '2000-01-01T00:00:00Z' AND time <= '2000-01-02T00:00:00Z'"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class DatasourceJson(_Model):
    dbName: str
    httpMode: Literal["GET", "POST"]


class Datasource(_Model):
    name: str
    uid: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,40}$")
    type: Literal["influxdb"]
    access: Literal["proxy", "direct"]
    url: HttpUrl
    user: str
    jsonData: DatasourceJson
    secureJsonData: dict[Literal["password"], str]


class DatasourceFile(_Model):
    apiVersion: Literal[1]
    datasources: list[Datasource] = Field(min_length=1)


class ProviderOptions(_Model):
    path: str


class Provider(_Model):
    name: str
    type: Literal["file"]
    options: ProviderOptions


class ProviderFile(_Model):
    apiVersion: Literal[1]
    providers: list[Provider] = Field(min_length=1)


class DatasourceRef(_Model):
    type: Literal["influxdb"]
    uid: str


class Target(_Model):
    refId: str
    datasource: DatasourceRef
    rawQuery: Literal[True]
    query: str = Field(min_length=1)
    resultFormat: Literal["time_series", "table"]


class GridPos(_Model):
    x: int = Field(ge=0, lt=24)
    y: int = Field(ge=0)
    w: int = Field(gt=0, le=24)
    h: int = Field(gt=0)


class Panel(_Model):
    id: int
    title: str
    type: Literal["stat", "table", "timeseries", "histogram"]
    datasource: DatasourceRef
    gridPos: GridPos
    targets: list[Target] = Field(min_length=1)


class Variable(_Model):
    name: str
    type: Literal["query", "custom"]
    query: str


class Dashboard(_Model):
    uid: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,40}$")
    title: str
    schemaVersion: int = Field(ge=36)
    editable: bool
    panels: list[Panel] = Field(min_length=1)
    templating: dict[Literal["list"], list[Variable]]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_the_datasource_file_matches_grafanas_schema_and_the_stack():
    provisioned = DatasourceFile.model_validate(load_yaml(GRAFANA / "provisioning" / "datasources" / "cloudburst.yml"))
    source = provisioned.datasources[0]
    assert str(source.url).rstrip("/") == "http://influxdb:8086"  # the stack's service name and port
    # The password comes from the read-only user's secret, which the stack mounts into Grafana.
    assert source.secureJsonData["password"] == "$__file{/run/secrets/influxdb_read_password}"
    grafana_service = STACK_TEMPLATE.split("  grafana:", 1)[1].split("\n  worker:", 1)[0]
    assert "influxdb_read_password" in grafana_service
    assert source.user == "$CLOUDBURST_INFLUXDB_READ_USER" and "CLOUDBURST_INFLUXDB_READ_USER:" in grafana_service


def test_the_dashboard_provider_reads_where_the_stack_mounts_the_dashboards():
    provider = ProviderFile.model_validate(load_yaml(GRAFANA / "provisioning" / "dashboards" / "cloudburst.yml"))
    assert f"target: {provider.providers[0].options.path}/" in STACK_TEMPLATE


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_each_dashboard_matches_the_schema_and_uses_only_defined_variables(path):
    dashboard = Dashboard.model_validate(json.loads(path.read_text()))
    uid = DatasourceFile.model_validate(
        load_yaml(GRAFANA / "provisioning" / "datasources" / "cloudburst.yml")).datasources[0].uid
    assert len({panel.id for panel in dashboard.panels}) == len(dashboard.panels)
    defined = {variable.name for variable in dashboard.templating["list"]} | {"timeFilter", "__interval"}
    for panel in dashboard.panels:
        assert panel.gridPos.x + panel.gridPos.w <= 24
        texts = [panel.title] + [target.query for target in panel.targets]
        for target in panel.targets:
            assert panel.datasource.uid == target.datasource.uid == uid
        used = {name for text in texts for name in re.findall(r"\$(\w+)", text)}
        assert used <= defined, f"{path.name} panel {panel.id} uses undefined {used - defined}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_reads_the_result_format_the_writer_writes(path):
    dashboard = json.loads(path.read_text())
    queries = [target["query"] for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [variable["query"] for variable in dashboard["templating"]["list"] if variable["type"] == "query"]
    measurements = {fmt.NODE, fmt.LINK, fmt.SUMMARY, fmt.STATUS, "$kind"}
    tags = {fmt.ENSEMBLE_TAG, fmt.MEMBER_TAG, fmt.ELEMENT_TAG}
    for query in queries:
        for name in re.findall(r'FROM\s+"?([$\w]+)"?', query):
            assert name in measurements, f"{path.stem}: {query!r} reads measurement {name!r}"
        for name in re.findall(r'"?(\w+)"?\s*=~?\s*[\'/]', query):
            assert name in tags | {fmt.STATUS_FIELD}, f"{path.stem}: {query!r} filters on {name!r}"
        for name in re.findall(r'GROUP BY\s+"?(\w+)"?', query):
            assert name in tags | {"time"}, f"{path.stem}: {query!r} groups by {name!r}"


def test_the_three_dashboards_the_stack_provisions_exist():
    assert {path.stem for path in DASHBOARDS} == {"progress", "fan-chart", "summaries"}


# --- every query against real results --------------------------------------------------------------------

@pytest.fixture(scope="module")
def ensemble_results(influx, model_dir, model_server, model_session, tmp_path_factory) -> dict[int, float]:
    """Six Net3 members (demand x 0.8 ... 1.3) with node series, one bad member; returns each member's factor."""
    data = (Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(data)
    influx.query(f"CREATE DATABASE {DB}")
    cache, writer = ModelCache(tmp_path_factory.mktemp("grafana-cache"), session=model_session), InfluxWriter(influx.url, DB, **influx.credentials)
    factors = {member: 0.8 + 0.1 * member for member in range(MEMBERS)}
    for member, factor in factors.items():
        run_member({"schema": "cloudburst.job/1", "ensemble": ENSEMBLE, "member": member, "seed": 1,
                    "input": {"url": f"{model_server}/{sha}.inp", "sha256": sha},
                    "run": {"duration_s": 86400, "alterations": [{"type": "demand_scale", "factor": factor}]},
                    "output": {"db": DB, "series": [{"element": "node", "attributes": ["pressure", "head", "demand"],
                                                     "ids": [PROBE_NODE, "10", "60"]}]}}, cache, writer)
    with pytest.raises(MemberFailed):
        run_member({"schema": "cloudburst.job/1", "ensemble": ENSEMBLE, "member": MEMBERS, "seed": 1,
                    "input": {"url": f"{model_server}/{sha}.inp", "sha256": sha},
                    "run": {"alterations": [{"type": "pump_outage", "pump": "no-such-pump"}]},
                    "output": {"db": DB}}, cache, writer)
    return factors


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
    assert "$" not in query, query
    return query


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_query_returns_data_from_real_results(influx, ensemble_results, path):
    dashboard = json.loads(path.read_text())
    values = variable_values(influx, dashboard, {"ensemble": ENSEMBLE, "element": PROBE_NODE})
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            series = influx.query(substitute(target["query"], values), db=DB)
            assert series and series[0]["values"], f"{path.stem}: panel {panel['title']!r} returned nothing"


def query_rows(influx, query: str) -> list[dict]:
    return influx.rows(substitute(query, {"ensemble": ENSEMBLE, "element": PROBE_NODE, "attribute": "pressure",
                                          "step": "1h"}), DB)


def panel_query(name: str, title_start: str) -> str:
    dashboard = json.loads((GRAFANA / "dashboards" / f"{name}.json").read_text())
    return next(p for p in dashboard["panels"] if p["title"].startswith(title_start))["targets"][0]["query"]


def test_the_fan_chart_spans_the_members_values_at_each_time_step(influx, ensemble_results):
    fan = query_rows(influx, panel_query("fan-chart", "$attribute at node"))
    raw = influx.rows(fmt.series_query(ENSEMBLE, fmt.NODE, PROBE_NODE, "pressure"), DB)
    by_time: dict[int, list[float]] = {}
    for row in raw:
        by_time.setdefault(row["time"], []).append(row["pressure"])
    assert len(fan) == 25 and all(len(values) == MEMBERS for values in by_time.values())
    spread = 0.0
    for row in fan:
        members = sorted(by_time[row["time"]])
        assert row["min"] == members[0] and row["max"] == members[-1]
        # InfluxDB 1.x's percentile: the value at index floor(n * p / 100 + 0.5) - 1, none below index 0
        # (with 6 members there is no p5: a fan chart wants 10 members or more).
        for p in (5, 50, 95):
            index = int(np.floor(len(members) * p / 100 + 0.5)) - 1
            assert row[f"p{p}"] == (members[index] if index >= 0 else None)
        spread = max(spread, row["max"] - row["min"])
    assert spread > 1.0  # demand x0.8 vs x1.3 moves pressure at node 123 by metres, not rounding


def test_progress_counts_finished_and_failed_members_with_the_reason(influx, ensemble_results):
    finished = query_rows(influx, panel_query("progress", "Members finished"))
    failed = query_rows(influx, panel_query("progress", "Members failed"))
    reasons = query_rows(influx, panel_query("progress", "Failures"))
    assert finished[0]["count"] == MEMBERS and failed[0]["count"] == 1
    assert len(reasons) == 1 and "no-such-pump" in reasons[0]["error"] and reasons[0]["member"] == str(MEMBERS)


def test_members_per_worker_counts_every_status_record_once(influx, ensemble_results):
    # worker is a field (InfluxQL groups by tags only): the panel lists each record's worker and Grafana's groupBy
    # transformation counts them per worker, as done here.
    rows = query_rows(influx, panel_query("progress", "Members per worker"))
    dashboard = json.loads((GRAFANA / "dashboards" / "progress.json").read_text())
    panel = next(p for p in dashboard["panels"] if p["title"] == "Members per worker")
    fields = panel["transformations"][0]["options"]["fields"]
    assert fields["worker"]["operation"] == "groupby" and fields["runtime_s"]["aggregations"] == ["count"]
    per_worker: dict[str, int] = {}
    for row in rows:
        per_worker[row["worker"]] = per_worker.get(row["worker"], 0) + 1
    assert sum(per_worker.values()) == MEMBERS + 1 and set(per_worker) == {socket.gethostname()}


def test_the_worst_members_table_puts_the_highest_demand_first(influx, ensemble_results):
    worst = query_rows(influx, panel_query("summaries", "Worst members"))
    ordered = [row["member"] for row in sorted(worst, key=lambda row: row["pressure_min"])]
    assert ordered[0] == str(max(ensemble_results, key=ensemble_results.get))
