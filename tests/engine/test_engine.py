"""The ensemble engine against real EPANET (through wntr) and a real results store (Nginx WebDAV) on loopback: each
member runs in a batch of one, stored as the workers store it, and is read back from the store's files."""
from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wntr
from cloudburst.engine.batch import run_batch, run_member
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.batch import make_batch
from cloudburst.schema.resultformat import decode
from cloudburst.state.models import ModelCache
from cloudburst.state.reader import member_rows
from cloudburst.state.store import SERIES_DIR, ResultsStore
from test_engine_reference import reference, scale_demands, set_pipes

NETWORKS = Path(wntr.__file__).parent / "library" / "networks"
START_S = 1704067200
_members = itertools.count()


@pytest.fixture(scope="module")
def net3(model_dir, model_server) -> dict:
    data = (NETWORKS / "Net3.inp").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(data)
    return {"url": f"{model_server}/{sha}.inp", "sha256": sha}


@pytest.fixture
def store(results_store) -> ResultsStore:
    return results_store


@pytest.fixture
def cache(tmp_path, model_session) -> ModelCache:
    return ModelCache(tmp_path / "cache", session=model_session)


def job_for(source: dict, run: dict | None = None, output: dict | None = None, ensemble: str = "tests") -> dict:
    return {"schema": "cloudburst.job/1", "ensemble": ensemble, "member": next(_members), "seed": 7,
            "input": {**source, "start_time_utc": "2024-01-01T00:00:00Z"},
            "run": {"duration_s": 24 * 3600, "epanet": "2.2", **(run or {})},  # the file path, as wntr runs it
            "output": {"db": "engine_tests", **(output or {"series": [{"element": "node", "attributes": ["pressure"]}]})}}


def direct_run(alter) -> wntr.sim.results.SimulationResults:
    """Net3 for 24 h altered by plain wntr calls (no CloudBurst code), run as a user would in a notebook."""
    return reference(alter)[1]


def stored(document: dict, cache: ModelCache, store: ResultsStore) -> tuple[dict, pd.DataFrame]:
    """Run the member as a batch of one and read back its members row and its series (one row per value)."""
    batch = make_batch(document["ensemble"], [document])
    run_batch(batch, cache, store, None)
    return stored_batch(store, document["ensemble"], batch["batch"])


def stored_batch(store: ResultsStore, ensemble: str, batch: str) -> tuple[dict, pd.DataFrame]:
    """A batch of one's members row and series, read back from the store's files."""
    row = member_rows(store, ensemble, [batch]).iloc[0].to_dict()
    data = store.read(ensemble, SERIES_DIR, batch)
    series = decode(data).to_pandas() if data is not None else pd.DataFrame(columns=list(fmt.SERIES_COLUMNS))
    for column in (fmt.KIND, fmt.ATTRIBUTE, fmt.ELEMENT):
        series[column] = series[column].astype(str)
    return row, series


def values(series: pd.DataFrame, attribute: str) -> pd.DataFrame:
    """One attribute's values: a row per elapsed time, a column per element."""
    chosen = series[series[fmt.ATTRIBUTE] == attribute]
    return chosen.pivot(index=fmt.ELAPSED, columns=fmt.ELEMENT, values=fmt.VALUE)


def run_and_read(document: dict, cache: ModelCache, store: ResultsStore, attribute: str) -> pd.DataFrame:
    return values(stored(document, cache, store)[1], attribute)


def test_stored_values_equal_a_direct_wntr_run_bit_for_bit(cache, store, net3):
    document = job_for(net3, run={"alterations": [{"type": "demand_scale", "factor": 1.13}]},
                       output={"series": [{"element": "node", "attributes": ["pressure", "head"]},
                                          {"element": "link", "attributes": ["flowrate"], "types": ["pump"]}]})
    _, series = stored(document, cache, store)
    expected = direct_run(lambda wn: scale_demands(wn, 1.13))
    assert series[fmt.VALUE].dtype == np.float32  # EPANET's own float32 values, not widened or rounded
    for kind, attribute, frame in [("node", "pressure", expected.node["pressure"]),
                                   ("node", "head", expected.node["head"]),
                                   ("link", "flowrate", expected.link["flowrate"][["10", "335"]])]:
        got = series[(series[fmt.KIND] == kind) & (series[fmt.ATTRIBUTE] == attribute)]
        assert len(got) == frame.size
        want = frame.stack().rename("want").rename_axis([fmt.ELAPSED, fmt.ELEMENT]).reset_index()
        merged = got.merge(want, on=[fmt.ELAPSED, fmt.ELEMENT], validate="one_to_one")
        assert len(merged) == frame.size
        assert merged[fmt.VALUE].to_numpy().tobytes() == merged["want"].to_numpy(dtype=np.float32).tobytes()


def test_rerunning_a_batch_replaces_its_files(cache, store, net3):
    """The batch's files after a second run hold what one run stores (read raw: pyarrow on the served bytes)."""
    import io

    import pyarrow.parquet as pq
    import requests
    document = job_for(net3, ensemble="rerun")
    batch = make_batch("rerun", [document])["batch"]
    stored(document, cache, store)
    stored(document, cache, store)
    series = pq.read_table(io.BytesIO(requests.get(f"{store.url}/rerun/series/{batch}.parquet",
                                                   auth=store.session.auth, timeout=30).content)).to_pandas()
    members = pq.read_table(io.BytesIO(requests.get(f"{store.url}/rerun/members/{batch}.parquet",
                                                    auth=store.session.auth, timeout=30).content)).to_pandas()
    assert len(series) == 25 * 97 and not series.duplicated(["member", "element", "elapsed_s"]).any()
    assert members["member"].tolist() == [document["member"]]


def test_members_row_carries_provenance(cache, store, net3):
    document = job_for(net3)
    status, _ = stored(document, cache, store)
    assert status["status"] == "finished" and status["start_s"] == START_S
    assert status["model_sha256"] == net3["sha256"]
    assert status["seed"] == 7
    assert status["wntr_version"] == wntr.__version__
    assert status["schema"] == "cloudburst.job/1"
    assert status["series_points"] == 25 * 97


def test_a_closed_pipe_carries_zero_flow(cache, store, net3):
    output = {"series": [{"element": "link", "attributes": ["flowrate"], "ids": ["101", "105"]}]}
    base = run_and_read(job_for(net3, output=output), cache, store, "flowrate")
    closed = run_and_read(job_for(net3, run={"alterations": [{"type": "link_status", "link": "105"}]},
                                  output=output), cache, store, "flowrate")
    assert base["105"].abs().max() > 0.01
    assert (closed["105"] == 0.0).all()


def test_a_pipe_closed_later_flows_until_its_closing_time(cache, store, net3):
    output = {"series": [{"element": "link", "attributes": ["flowrate"], "ids": ["105"]}]}
    flow = run_and_read(job_for(net3, run={"alterations": [{"type": "link_status", "link": "105",
                                                            "start_s": 6 * 3600}]}, output=output),
                        cache, store, "flowrate")["105"]
    by_hour = {int(elapsed) // 3600: value for elapsed, value in flow.items()}
    assert abs(by_hour[5]) > 0.01
    assert all(by_hour[h] == 0.0 for h in range(6, 25))


def test_more_demand_means_lower_pressure(cache, store, net3):
    # At the first time step tank levels are still equal, so the comparison is like for like.
    base = run_and_read(job_for(net3), cache, store, "pressure").iloc[0]
    more = run_and_read(job_for(net3, run={"alterations": [{"type": "demand_scale", "factor": 1.5}]}),
                        cache, store, "pressure").iloc[0]
    junctions = wntr.network.WaterNetworkModel(str(NETWORKS / "Net3.inp")).junction_name_list
    assert all(more[j] <= base[j] + 1e-6 for j in junctions)
    assert sum(more[j] < base[j] - 0.5 for j in junctions) > len(junctions) / 2


def test_a_fire_flow_lowers_pressure_most_at_and_near_the_hydrant(cache, store, net3):
    base = run_and_read(job_for(net3), cache, store, "pressure").min()
    fire = run_and_read(job_for(net3, run={"alterations": [
        {"type": "fire_flow", "node": "255", "flow_m3s": 0.1, "start_s": 10 * 3600, "end_s": 14 * 3600}]}),
        cache, store, "pressure").min()
    drop = base - fire
    assert drop["255"] > 3.0
    assert drop["255"] == drop.max()
    assert drop["247"] > 1.0  # 255's neighbour through pipe 329


def test_a_pump_outage_stops_the_pump(cache, store, net3):
    output = {"series": [{"element": "link", "attributes": ["flowrate"], "types": ["pump"]}]}
    out = run_and_read(job_for(net3, run={"alterations": [{"type": "pump_outage", "pump": "335"}]}, output=output),
                       cache, store, "flowrate")
    assert (out["335"] == 0.0).all()
    assert out["10"].max() > 0.01


def test_a_pump_outage_holds_against_the_pumps_own_speed_control_on_both_engines(cache, store, model_dir,
                                                                                   model_server):
    """Net1 with its pump's OPEN control written as a speed setting (wntr reads `LINK 9 1.0 IF ...` as a speed
    action, not a status one): out of service 06-18 h, the pump carries no flow then, on the file path (a link
    series) and on the warm engine (node series only) alike."""
    text = (NETWORKS / "Net1.inp").read_text().replace(" LINK 9 OPEN IF NODE 2 BELOW 110", " LINK 9 1.0 IF NODE 2 BELOW 110")
    assert " LINK 9 1.0 IF NODE 2 BELOW 110" in text
    sha = hashlib.sha256(text.encode()).hexdigest()
    (model_dir / f"{sha}.inp").write_text(text)
    source = {"url": f"{model_server}/{sha}.inp", "sha256": sha}
    outage = {"alterations": [{"type": "pump_outage", "pump": "9", "start_s": 6 * 3600, "end_s": 18 * 3600}]}
    file_path = run_and_read(job_for(source, run=outage, output={"series": [
        {"element": "link", "attributes": ["flowrate"], "ids": ["9"]}]}), cache, store, "flowrate")["9"]
    window = (file_path.index >= 6 * 3600) & (file_path.index < 18 * 3600)
    assert (file_path[window] == 0.0).all(), file_path[window].tolist()
    assert file_path[~window].max() > 0.01
    warm = run_and_read(job_for(source, run=outage, output={"series": [
        {"element": "node", "attributes": ["demand"], "ids": ["9"]}]}), cache, store, "demand")["9"]
    # The pump's downstream junction 10 is fed only through it: the tank alone supplies the network meanwhile, so
    # the pump's suction node 9 (a reservoir) delivers nothing in the window.
    assert (warm[window] == 0.0).all(), warm[window].tolist()


def test_pipe_and_tank_alterations_change_the_model_as_asked(cache, store, net3):
    document = job_for(net3, run={"alterations": [
        {"type": "pipe_property", "property": "roughness", "factor": 0.5},
        {"type": "pipe_property", "property": "diameter", "pipes": ["105"], "value": 0.1},
        {"type": "tank_level", "tank": "1", "init_level_m": 5.0},
    ]}, output={"series": [{"element": "node", "attributes": ["head", "pressure"], "ids": ["1"]}]})
    first = run_and_read(document, cache, store, "pressure").loc[0, "1"]
    assert first == pytest.approx(5.0, abs=1e-4)  # a tank's pressure is its level
    expected = direct_run(lambda wn: (set_pipes(wn, {"105": ("diameter", 0.1)}, 0.5),
                                      setattr(wn.get_node("1"), "init_level", 5.0))).node["pressure"].loc[0, "1"]
    assert first == expected


def test_pattern_alterations_scale_only_their_pattern(cache, store, net3):
    base = run_and_read(job_for(net3), cache, store, "pressure").iloc[0]
    flat = run_and_read(job_for(net3, run={"alterations": [
        {"type": "pattern_replace", "pattern": "1", "multipliers": [0.0]},
        {"type": "demand_scale", "factor": 0.0, "pattern": "2"}]}), cache, store, "pressure").iloc[0]
    assert flat["123"] > base["123"]


# --- bad members: a clear recorded reason, nothing stored but their row, and the batch goes on -------

def unbalanced_model(model_dir: Path, model_server: str) -> dict:
    """Net1 allowed one trial per step at an accuracy no step reaches, stopping when a step does not balance."""
    unbalanced = (NETWORKS / "Net1.inp").read_text().replace(" Trials             \t40", " Trials 1") \
        .replace(" Accuracy           \t0.001", " Accuracy 1e-12").replace(" Unbalanced         \tContinue 10",
                                                                       " Unbalanced STOP")
    (model_dir / "unbalanced.inp").write_text(unbalanced)
    return {"url": f"{model_server}/unbalanced.inp", "sha256": hashlib.sha256(unbalanced.encode()).hexdigest()}


def bad_jobs(net3: dict, model_dir: Path, model_server: str) -> list[tuple[str, dict, str]]:
    (model_dir / "broken.inp").write_text("[JUNCTIONS]\n J1 10 oops\n[PIPES]\n P1 J1 J9 100 300 100\n[END]\n")
    broken_sha = hashlib.sha256((model_dir / "broken.inp").read_bytes()).hexdigest()
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
        ("above the point budget", job_for(net3, output={
            "series": [{"element": "node", "attributes": ["pressure", "head"]}], "max_points": 1000}),
         "$.output.max_points: the series asked for come to 4850 points, above the budget of 1000"),
        ("unknown schema version", {**job_for(net3), "schema": "cloudburst.job/9"},
         "$.schema: unknown schema version 'cloudburst.job/9'; this worker understands 'cloudburst.job/1'"),
    ]


def test_bad_members_fail_with_a_recorded_reason_and_the_batch_goes_on(cache, store, net3, model_dir, model_server):
    cases = bad_jobs(net3, model_dir, model_server)
    good = job_for(net3)
    stopping = job_for(unbalanced_model(model_dir, model_server), output={"series": []})
    documents = [document for _, document, _ in cases] + [stopping, good]
    batch = make_batch("bad-members", documents)
    outcome = run_batch(batch, cache, store, None)
    assert outcome.finished == [good["member"]]
    # Hydraulics that stop balancing (UNBALANCED STOP) are a result of their own, not a failure.
    assert list(outcome.unbalanced) == [stopping["member"]] and stopping["member"] not in outcome.failed
    assert "did not balance at 0:00:00" in outcome.unbalanced[stopping["member"]]
    rows = member_rows(store, "bad-members", [batch["batch"]]).set_index("member")
    for (name, document, reason), member in zip(cases, (document["member"] for document in documents)):
        assert reason in outcome.failed[member], name
        assert rows.loc[member, "status"] == "failed" and reason in rows.loc[member, "error"], name
    series = decode(store.read("bad-members", SERIES_DIR, batch["batch"])).to_pandas()
    assert set(series[fmt.MEMBER]) == {good["member"]}  # only the finished member has series
    # The batch's first rows are failures without summaries: the file still has the finished member's summary.
    model = wntr.network.WaterNetworkModel(str(NETWORKS / "Net3.inp"))
    lowest = direct_run(lambda wn: None).node["pressure"][model.junction_name_list].min()
    assert rows.loc[good["member"], "pressure_min"] == float(np.float32(lowest.min()))
    assert rows.loc[good["member"], "pressure_min_node"] == lowest.idxmin()


# --- a batch whose worker dies: only the members it had not kept run again ---------------------------------

_KILLED_RUN = """
import json, sys, requests
from redis import Redis
from cloudburst.engine.batch import run_batch
from cloudburst.state.ledger import Ledger
from cloudburst.state.models import ModelCache
from cloudburst.state.store import WebDavStore
batch, redis_url, store_url, cache_dir = json.loads(sys.argv[1])
session = requests.Session()
session.auth = ("cloudburst", "reader-secret")
outcome = run_batch(batch, ModelCache(cache_dir, session=session),
                    WebDavStore(store_url, ("worker", "worker-secret")),
                    Ledger(Redis.from_url(redis_url)))  # the production checkpoint window (CHECKPOINT_EVERY_S)
print(json.dumps({"superseded": outcome.superseded, "finished": outcome.finished}))
"""


def slow_batch(net3: dict, ensemble: str) -> tuple[list[dict], dict]:
    """Six members of four days at a one-minute step with water age: long enough that the test acts mid-batch."""
    slow = {"duration_s": 4 * 86400, "hydraulic_timestep_s": 60, "quality": {"mode": "age"}}
    documents = [job_for(net3, run=slow, ensemble=ensemble) for _ in range(6)]
    return documents, make_batch(ensemble, documents)


def wait_until_kept(ledger, attempt: subprocess.Popen, partial: str, members: int) -> None:
    """Until the running attempt has kept ``members`` members in its checkpoint (it must still be running)."""
    deadline = time.monotonic() + 120
    while ledger.redis.hlen(partial) < members:
        assert attempt.poll() is None, "the batch ended before the test could act: make its members slower"
        assert time.monotonic() < deadline, "no member kept within 120 s"
        time.sleep(0.05)


def test_an_attempt_a_newer_one_overtook_neither_stores_nor_records(cache, store, net3, tmp_path):
    """The first attempt (a host cut off, its job given up by RQ) still runs when a second attempt takes the batch
    over and records it; the first then stores nothing and records nothing: one execution, the second's files."""
    from cloudburst.state.ledger import OVERTAKEN, RECORDED_ALREADY, Ledger
    from redis import Redis
    from services import redis_server

    documents, batch = slow_batch(net3, "overtaken")
    with redis_server(tmp_path) as redis_url:
        ledger = Ledger(Redis.from_url(redis_url))
        first = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, json.dumps(
            [batch, redis_url, store.url, str(tmp_path / "first-cache")])], stdout=subprocess.PIPE, text=True)
        partial = f"cloudburst:ensemble:overtaken:partial:{batch['batch']}"
        wait_until_kept(ledger, first, partial, 1)
        second = run_batch(batch, cache, store, ledger)
        assert not second.superseded and sorted(second.finished) == [d["member"] for d in documents]
        files = (store.read("overtaken", SERIES_DIR, batch["batch"]), store.read("overtaken", "members", batch["batch"]))
        said, _ = first.communicate(timeout=600)
        assert json.loads(said) == {"superseded": OVERTAKEN, "finished": []}
        assert ledger.executions("overtaken") == {batch["batch"]: 1}
        assert (store.read("overtaken", SERIES_DIR, batch["batch"]),
                store.read("overtaken", "members", batch["batch"])) == files  # the second attempt's, untouched
        assert ledger.redis.exists(partial) == 0
        third = run_batch(batch, cache, store, ledger)  # the job queued once more: recorded already, not run
        assert third.superseded == RECORDED_ALREADY and ledger.executions("overtaken") == {batch["batch"]: 1}


def test_a_batch_whose_worker_died_runs_only_the_members_it_had_not_kept(cache, store, net3, tmp_path):
    from cloudburst.engine.batch import MemberResult
    from cloudburst.state.ledger import Ledger
    from redis import Redis
    from services import redis_server

    documents, batch = slow_batch(net3, "killed")
    with redis_server(tmp_path) as redis_url:
        ledger = Ledger(Redis.from_url(redis_url))
        worker = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, json.dumps(
            [batch, redis_url, store.url, str(tmp_path / "killed-cache")])])
        partial = f"cloudburst:ensemble:killed:partial:{batch['batch']}"
        wait_until_kept(ledger, worker, partial, 2)
        worker.kill()
        worker.wait()
        kept = {member: MemberResult.from_bytes(data)
                for member, data in ledger.checkpointed("killed", batch["batch"]).items()}
        assert 2 <= len(kept) < len(documents) and store.batches("killed") == []  # killed mid-batch, nothing stored

        outcome = run_batch(batch, cache, store, ledger)  # RQ's retry of the job
        assert ledger.redis.exists(partial) == 0 and ledger.executions("killed") == {batch["batch"]: 1}
    members = [document["member"] for document in documents]
    assert outcome.resumed == sorted(kept) and sorted(outcome.finished) == members
    rows = member_rows(store, "killed", [batch["batch"]]).set_index("member")
    assert sorted(rows.index) == members  # each member stored once
    for member, result in kept.items():  # the kept members were not run again: their rows are the first run's
        assert rows.loc[member, "runtime_s"] == result.status["runtime_s"]
    series = decode(store.read("killed", SERIES_DIR, batch["batch"])).to_pandas()
    assert not series.duplicated([fmt.MEMBER, fmt.KIND, fmt.ATTRIBUTE, fmt.ELEMENT, fmt.ELAPSED]).any()
    assert sorted(series[fmt.MEMBER].unique()) == members
    # A kept member's values come back from Redis bit for bit: as a fresh run of it computes them.
    first_kept = min(kept)
    fresh = run_member(next(d for d in documents if d["member"] == first_kept), cache).series[0]
    stored_values = series[series[fmt.MEMBER] == first_kept].pivot(index=fmt.ELAPSED, columns=fmt.ELEMENT,
                                                                      values=fmt.VALUE)[fresh.elements]
    assert stored_values.to_numpy().tobytes() == fresh.values.tobytes()
