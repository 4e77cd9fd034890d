"""The ensemble engine against real EPANET (through wntr) and a real InfluxDB on loopback."""
from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
import pytest
import wntr

from cloudburst.engine import run_member
from cloudburst.errors import MemberFailed
from cloudburst.influx import InfluxWriter
from cloudburst.models import ModelCache
from test_engine_reference import reference, scale_demands, set_pipes

NETWORKS = Path(wntr.__file__).parent / "library" / "networks"
_members = itertools.count()


@pytest.fixture(scope="module")
def net3(model_dir, model_server) -> dict:
    data = (NETWORKS / "Net3.inp").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(data)
    return {"url": f"{model_server}/{sha}.inp", "sha256": sha}


@pytest.fixture(scope="module")
def db(influx) -> str:
    influx.query("CREATE DATABASE engine_tests")
    return "engine_tests"


@pytest.fixture(scope="module")
def writer(influx, db) -> InfluxWriter:
    return InfluxWriter(influx.url, "default_db_unused", **influx.credentials)  # each job names its database


@pytest.fixture
def cache(tmp_path, model_session) -> ModelCache:
    return ModelCache(tmp_path / "cache", session=model_session)


def job_for(source: dict, run: dict | None = None, output: dict | None = None, ensemble: str = "tests") -> dict:
    return {"schema": "cloudburst.job/1", "ensemble": ensemble, "member": next(_members), "seed": 7,
            "input": {**source, "start_time_utc": "2024-01-01T00:00:00Z"},
            "run": {"duration_s": 24 * 3600, **(run or {})},
            "output": {"db": "engine_tests", **(output or {"series": [{"element": "node", "attributes": ["pressure"]}]})}}


def direct_run(alter) -> wntr.sim.results.SimulationResults:
    """Net3 for 24 h altered by plain wntr calls (no CloudBurst code), run as a user would in a notebook."""
    return reference(alter)[1]


def status_of(influx, db: str, document: dict) -> dict:
    rows = influx.rows(f"SELECT * FROM status WHERE ensemble = '{document['ensemble']}' "
                       f"AND member = '{document['member']}'", db)
    assert len(rows) == 1
    return rows[0]


def test_written_values_equal_a_direct_wntr_run_bit_for_bit(influx, db, writer, cache, net3):
    document = job_for(net3, run={"alterations": [{"type": "demand_scale", "factor": 1.13}]},
                       output={"series": [{"element": "node", "attributes": ["pressure", "head"]},
                                          {"element": "link", "attributes": ["flowrate"], "types": ["pump"]}]})
    run_member(document, cache, writer)
    expected = direct_run(lambda wn: scale_demands(wn, 1.13))
    start = 1704067200
    for measurement, attribute, frame in [("node", "pressure", expected.node["pressure"]),
                                          ("node", "head", expected.node["head"]),
                                          ("link", "flowrate", expected.link["flowrate"][["10", "335"]])]:
        rows = influx.rows(f"SELECT {attribute} FROM {measurement} WHERE ensemble = 'tests' "
                           f"AND member = '{document['member']}' GROUP BY element", db)
        assert len(rows) == frame.size
        for row in rows:
            value = frame.loc[row["time"] - start, row["element"]]
            assert np.float64(value).tobytes() == np.float64(row[attribute]).tobytes()


def test_rerunning_a_member_overwrites_its_points(influx, db, writer, cache, net3):
    document = job_for(net3)
    query = f"SELECT count(pressure) FROM node WHERE member = '{document['member']}'"
    run_member(document, cache, writer)
    first = influx.rows(query, db)[0]["count"]
    run_member(document, cache, writer)
    assert influx.rows(query, db)[0]["count"] == first == 25 * 97


def test_status_record_carries_provenance(influx, db, writer, cache, net3):
    document = job_for(net3)
    run_member(document, cache, writer)
    status = status_of(influx, db, document)
    assert status["status"] == "finished"
    assert status["model_sha256"] == net3["sha256"]
    assert status["seed"] == 7
    assert status["wntr_version"] == wntr.__version__
    assert status["schema"] == "cloudburst.job/1"
    assert status["series_points"] == 25 * 97


def run_and_read(document: dict, cache: ModelCache, writer: InfluxWriter, influx, db: str, query: str) -> dict:
    run_member(document, cache, writer)
    return {row["element"]: row for row in influx.rows(query.format(member=document["member"]), db)}


def test_a_closed_pipe_carries_zero_flow(influx, db, writer, cache, net3):
    output = {"series": [{"element": "link", "attributes": ["flowrate"], "ids": ["101", "105"]}]}
    query = "SELECT max(flowrate) AS hi, min(flowrate) AS lo FROM link WHERE member = '{member}' GROUP BY element"
    base = run_and_read(job_for(net3, output=output), cache, writer, influx, db, query)
    closed = run_and_read(job_for(net3, run={"alterations": [{"type": "link_status", "link": "105"}]},
                                  output=output), cache, writer, influx, db, query)
    assert max(abs(base["105"]["hi"]), abs(base["105"]["lo"])) > 0.01
    assert closed["105"]["hi"] == closed["105"]["lo"] == 0.0


def test_a_pipe_closed_later_flows_until_its_closing_time(influx, db, writer, cache, net3):
    output = {"series": [{"element": "link", "attributes": ["flowrate"], "ids": ["105"]}]}
    document = job_for(net3, run={"alterations": [{"type": "link_status", "link": "105", "start_s": 6 * 3600}]},
                       output=output)
    run_member(document, cache, writer)
    rows = influx.rows(f"SELECT flowrate FROM link WHERE member = '{document['member']}'", db)
    by_hour = {(row["time"] - 1704067200) // 3600: row["flowrate"] for row in rows}
    assert abs(by_hour[5]) > 0.01
    assert all(by_hour[h] == 0.0 for h in range(6, 25))


def test_more_demand_means_lower_pressure(influx, db, writer, cache, net3):
    # At the first time step tank levels are still equal, so the comparison is like for like.
    query = "SELECT first(pressure) AS low FROM node WHERE member = '{member}' GROUP BY element"
    base = run_and_read(job_for(net3), cache, writer, influx, db, query)
    more = run_and_read(job_for(net3, run={"alterations": [{"type": "demand_scale", "factor": 1.5}]}),
                        cache, writer, influx, db, query)
    junctions = wntr.network.WaterNetworkModel(str(NETWORKS / "Net3.inp")).junction_name_list
    assert all(more[j]["low"] <= base[j]["low"] + 1e-6 for j in junctions)
    assert sum(more[j]["low"] < base[j]["low"] - 0.5 for j in junctions) > len(junctions) / 2


def test_a_fire_flow_lowers_pressure_most_at_and_near_the_hydrant(influx, db, writer, cache, net3):
    query = "SELECT min(pressure) AS low FROM node WHERE member = '{member}' GROUP BY element"
    base = run_and_read(job_for(net3), cache, writer, influx, db, query)
    fire = run_and_read(job_for(net3, run={"alterations": [
        {"type": "fire_flow", "node": "255", "flow_m3s": 0.1, "start_s": 10 * 3600, "end_s": 14 * 3600}]}),
        cache, writer, influx, db, query)
    drop = {node: base[node]["low"] - fire[node]["low"] for node in base}
    assert drop["255"] > 3.0
    assert drop["255"] == max(drop.values())
    assert drop["247"] > 1.0  # 255's neighbour through pipe 329


def test_a_pump_outage_stops_the_pump(influx, db, writer, cache, net3):
    output = {"series": [{"element": "link", "attributes": ["flowrate"], "types": ["pump"]}]}
    query = "SELECT max(flowrate) AS hi, min(flowrate) AS lo FROM link WHERE member = '{member}' GROUP BY element"
    out = run_and_read(job_for(net3, run={"alterations": [{"type": "pump_outage", "pump": "335"}]}, output=output),
                       cache, writer, influx, db, query)
    assert out["335"]["hi"] == out["335"]["lo"] == 0.0
    assert out["10"]["hi"] > 0.01


def test_pipe_and_tank_alterations_change_the_model_as_asked(influx, db, writer, cache, net3):
    document = job_for(net3, run={"alterations": [
        {"type": "pipe_property", "property": "roughness", "factor": 0.5},
        {"type": "pipe_property", "property": "diameter", "pipes": ["105"], "value": 0.1},
        {"type": "tank_level", "tank": "1", "init_level_m": 5.0},
    ]}, output={"series": [{"element": "node", "attributes": ["head", "pressure"], "ids": ["1"]}]})
    run_member(document, cache, writer)
    rows = influx.rows(f"SELECT pressure FROM node WHERE member = '{document['member']}' AND time = 1704067200s",
                       db)
    assert rows[0]["pressure"] == pytest.approx(5.0, abs=1e-4)  # a tank's pressure is its level
    expected = direct_run(lambda wn: (set_pipes(wn, {"105": ("diameter", 0.1)}, 0.5),
                                      setattr(wn.get_node("1"), "init_level", 5.0))).node["pressure"].loc[0, "1"]
    assert rows[0]["pressure"] == float(expected)


def test_pattern_alterations_scale_only_their_pattern(influx, db, writer, cache, net3):
    query = "SELECT first(pressure) AS p FROM node WHERE member = '{member}' GROUP BY element"
    base = run_and_read(job_for(net3), cache, writer, influx, db, query)
    flat = run_and_read(job_for(net3, run={"alterations": [
        {"type": "pattern_replace", "pattern": "1", "multipliers": [0.0]},
        {"type": "demand_scale", "factor": 0.0, "pattern": "2"}]}), cache, writer, influx, db, query)
    assert flat["123"]["p"] > base["123"]["p"]


# --- bad jobs: a clear recorded reason, nothing written but the status, and the worker goes on -------

def bad_jobs(net3: dict, model_dir: Path, model_server: str) -> list[tuple[str, dict, str]]:
    (model_dir / "broken.inp").write_text("[JUNCTIONS]\n J1 10 oops\n[PIPES]\n P1 J1 J9 100 300 100\n[END]\n")
    broken_sha = hashlib.sha256((model_dir / "broken.inp").read_bytes()).hexdigest()
    unbalanced = (NETWORKS / "Net1.inp").read_text().replace(" Trials             \t40", " Trials 1") \
        .replace(" Accuracy           \t0.001", " Accuracy 1e-12").replace(" Unbalanced         \tContinue 10",
                                                                       " Unbalanced STOP")
    (model_dir / "unbalanced.inp").write_text(unbalanced)
    unbalanced_sha = hashlib.sha256(unbalanced.encode()).hexdigest()
    return [
        ("unknown element", job_for(net3, run={"alterations": [{"type": "link_status", "link": "NOPE"}]}),
         "$.run.alterations[0].link: the model has no link 'NOPE'"),
        ("leak with EPANET", job_for(net3, run={"alterations": [{"type": "leak", "node": "123", "area_m2": 0.01}]}),
         "$.run.alterations[0]: leaks need simulator 'wntr'; EPANET ignores them without a word"),
        ("unreachable URL", job_for({"url": f"{model_server}/missing.inp", "sha256": net3["sha256"]}),
         f"$.input.url: fetching {model_server}/missing.inp answered HTTP 404"),
        ("sha256 mismatch", job_for({"url": net3["url"], "sha256": "0" * 64}),
         f"$.input.sha256: the model at {net3['url']} has sha256 {net3['sha256']}, the job expects {'0' * 64}"),
        ("invalid .inp", job_for({"url": f"{model_server}/broken.inp", "sha256": broken_sha}),
         f"$.input.url: {model_server}/broken.inp is not a valid EPANET .inp file"),
        ("non-converging hydraulics", job_for({"url": f"{model_server}/unbalanced.inp", "sha256": unbalanced_sha},
                                              output={"series": []}),
         "the simulation failed"),
        ("above the point budget", job_for(net3, output={
            "series": [{"element": "node", "attributes": ["pressure", "head"]}], "max_points": 1000}),
         "$.output.max_points: the series asked for come to 4850 points, above the budget of 1000"),
        ("unknown schema version", {**job_for(net3), "schema": "cloudburst.job/9"},
         "$.schema: unknown schema version 'cloudburst.job/9'; this worker understands 'cloudburst.job/1'"),
    ]


def test_bad_jobs_fail_with_a_recorded_reason_and_the_worker_goes_on(influx, db, writer, cache, net3,
                                                                     model_dir, model_server):
    for name, document, reason in bad_jobs(net3, model_dir, model_server):
        with pytest.raises(MemberFailed, match=".") as failure:
            run_member(document, cache, writer)
        assert reason in str(failure.value), name
        status = status_of(influx, db, document)
        assert status["status"] == "failed" and reason in status["error"], name
        assert influx.rows(f"SELECT count(pressure) FROM node WHERE member = '{document['member']}'", db) == []
        good = job_for(net3)
        assert run_member(good, cache, writer)["status"] == "finished", f"worker stuck after {name}"
