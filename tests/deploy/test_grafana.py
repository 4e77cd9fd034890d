"""Grafana, as far as it can be tested without Grafana: the provisioning files against their schema (pydantic
models of what Grafana reads), and every dashboard query run against a real InfluxDB holding a real ensemble's
statistics, as the cluster computes them from the ensemble's stored members."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from cloudburst.schema import resultformat as fmt
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

REPO = Path(__file__).resolve().parents[2]


GRAFANA = REPO / "files" / "grafana"


DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


STACK_TEMPLATE = (REPO / "roles" / "stack" / "templates" / "stack.yml.j2").read_text()


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class DatasourceJson(_Model):
    dbName: str
    httpMode: Literal["GET", "POST"]
    tlsAuthWithCACert: bool = False


class Datasource(_Model):
    name: str
    uid: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,40}$")
    type: Literal["influxdb"]
    access: Literal["proxy", "direct"]
    url: HttpUrl
    user: str
    jsonData: DatasourceJson
    secureJsonData: dict[Literal["password", "tlsCACert"], str]


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
    type: Literal["stat", "table", "timeseries", "histogram", "status-history"]
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
    assert str(source.url).rstrip("/") == "https://influxdb:8086"  # the stack's service name and port, over TLS
    # The password comes from the read-only user's secret, which the stack mounts into Grafana; InfluxDB's
    # certificate is verified against the cluster's CA, mounted there too.
    assert source.secureJsonData["password"] == "$__file{/run/secrets/influxdb_read_password}"
    assert source.jsonData.tlsAuthWithCACert and source.secureJsonData["tlsCACert"] == "$__file{/cloudburst/tls/ca.crt}"
    grafana = STACK_TEMPLATE.split("  grafana:", 1)[1].split("\n  worker:", 1)[0]
    assert "target: /cloudburst/tls/ca.crt" in grafana
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
def test_every_query_reads_the_statistics_format_the_cluster_writes(path):
    dashboard = json.loads(path.read_text())
    queries = [target["query"] for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [variable["query"] for variable in dashboard["templating"]["list"] if variable["type"] == "query"]
    measurements = {fmt.stats_measurement(fmt.NODE), fmt.stats_measurement(fmt.LINK), fmt.SUMMARY_STATS, fmt.PROGRESS}
    tags = {fmt.ENSEMBLE_TAG, fmt.ELEMENT_TAG, fmt.STATISTIC_TAG}
    for query in queries:
        assert "member" not in query.replace("members", ""), f"{path.stem}: {query!r} reads per-member data"
        for name in re.findall(r'FROM\s+"?([$\w]+)"?', query):
            assert name in measurements, f"{path.stem}: {query!r} reads measurement {name!r}"
        for name in re.findall(r'"?(\w+)"?\s*=~?\s*[\'/]', query):
            assert name in tags, f"{path.stem}: {query!r} filters on {name!r}"
        for name in re.findall(r'GROUP BY\s+"?(\w+)"?', query):
            assert name in tags | {"time"}, f"{path.stem}: {query!r} groups by {name!r}"


def test_the_four_dashboards_the_stack_provisions_exist():
    assert {path.stem for path in DASHBOARDS} == {"progress", "fan-chart", "risk", "summaries"}
