"""End to end as a user works: three bare hosts -> site.yml -> push-env.yml (the scenario's converge and side
effects), then a 300-member ensemble submitted with `cloudburst submit --wait`. Every member finishes on the
two worker hosts on the warm engine, the results store holds exactly the values the members asked for, InfluxDB holds statistics
without a member tag, and `cloudburst results` gives the cluster's nearest-rank percentiles of the stored series."""
import csv
import time
from pathlib import Path

import numpy as np
import pytest
import wntr
import yaml
from cloudburst import Client
from stack_view import CLIENT_CONFIG, MASTER, WORKERS, client_settings, cloudburst

testinfra_hosts = [MASTER]
REPO = Path(__file__).resolve().parents[4]
MODEL = REPO / "files" / "models" / "Net3.inp"
NAME = "e2e-300"
NODES = ["123", "247", "255", "15"]
MEMBERS = 300


@pytest.fixture(scope="module")
def cluster() -> Client:
    return Client(client_settings())


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory) -> Path:
    scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    scenario.update(members=MEMBERS, seed=7)
    scenario["output"]["series"] = [{"element": "node", "attributes": ["pressure", "head"], "ids": NODES}]
    path = tmp_path_factory.mktemp("scenario") / "e2e.yml"
    path.write_text(yaml.safe_dump(scenario))
    return path


@pytest.fixture(scope="module")
def submitted(scenario_file):
    return cloudburst("submit", str(MODEL), str(scenario_file), "--name", NAME, "--wait")


def test_submit_waits_until_every_member_finished(submitted, cluster):
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    assert submitted.stdout.strip() == NAME
    progress = cluster.ensemble(NAME).status()
    assert (progress.finished, progress.failed, progress.running, progress.queued) == (MEMBERS, 0, 0, 0)
    status = cloudburst("status", NAME)
    assert status.returncode == 0 and f"finished {MEMBERS}  failed 0" in status.stdout, status


def test_the_store_holds_exactly_the_expected_values(submitted, cluster):
    wn = wntr.network.WaterNetworkModel(str(MODEL))
    steps = 86400 // int(wn.options.time.report_timestep) + 1  # the scenario's 24 h at the model's report step
    ensemble = cluster.ensemble(NAME)
    members = ensemble.members()
    assert members["member"].tolist() == list(range(MEMBERS)) and set(members["status"]) == {"finished"}
    # What the workers say they stored, one value each, matches what is stored.
    assert members["series_points"].sum() == MEMBERS * len(NODES) * steps * 2
    for node in NODES:
        for attribute in ("pressure", "head"):
            assert len(ensemble.series(f"node:{node}", attribute)) == MEMBERS * steps
    assert set(members["worker"]) == set(WORKERS), f"members ran on {sorted(set(members['worker']))}"
    # The warm engine ran them: EPANET 2.3's toolkit, the model kept open in each worker process.
    assert set(members["engine"]) == {"toolkit"} and set(members["epanet_version"]) == {"2.3.5"}
    assert ensemble.executions().attrs == {"lost": 0, "duplicated": 0}


def epanet_own_run(demand_factor: float, roughness_factor: float, out: Path) -> dict[str, np.ndarray]:
    """Net3 for 24 h with every junction's demands and every pipe's roughness scaled, by plain calls of owa-epanet's
    own wrapper (no CloudBurst code); EPANET writes its output file (hydraulics and quality stepped together) and
    its pressure and head blocks are read here: {node ID: {attribute: float32 per report time, model units}}."""
    import epanet.toolkit as tk
    project = tk.createproject()
    tk.open(project, str(MODEL), "/dev/null", str(out))
    tk.settimeparam(project, tk.DURATION, 86400)
    for node in range(1, tk.getcount(project, tk.NODECOUNT) + 1):
        if tk.getnodetype(project, node) == tk.JUNCTION:
            for category in range(1, tk.getnumdemands(project, node) + 1):
                tk.setbasedemand(project, node, category, tk.getbasedemand(project, node, category) * demand_factor)
    for link in range(1, tk.getcount(project, tk.LINKCOUNT) + 1):
        if tk.getlinktype(project, link) in (tk.PIPE, tk.CVPIPE):
            tk.setlinkvalue(project, link, tk.ROUGHNESS, tk.getlinkvalue(project, link, tk.ROUGHNESS) * roughness_factor)
    tk.openH(project)
    tk.initH(project, tk.SAVE)
    tk.openQ(project)
    tk.initQ(project, tk.SAVE)
    while True:
        tk.runH(project)
        tk.runQ(project)
        tk.nextH(project)
        if tk.nextQ(project) <= 0:
            break
    tk.closeQ(project)
    tk.closeH(project)
    tk.close(project)
    tk.deleteproject(project)
    raw = np.fromfile(out, dtype=np.uint8)  # the toolkit manual's "Output File Format"
    nodes, links = int(raw[8:12].view(np.int32)[0]), int(raw[16:20].view(np.int32)[0])
    periods = int(raw[-12:-8].view(np.int32)[0])
    width = 4 * nodes + 8 * links
    data = raw[len(raw) - 28 - periods * width * 4:len(raw) - 28].view(np.float32).reshape(periods, width)
    ids = [bytes(raw[884 + 32 * i:884 + 32 * (i + 1)]).rstrip(b"\0").decode() for i in range(nodes)]
    return {node: {"head": data[:, nodes + i], "pressure": data[:, 2 * nodes + i]} for i, node in enumerate(ids)}


def test_stored_values_equal_epanets_own_run_for_a_sample_of_members(submitted, cluster, scenario_file, tmp_path):
    """Five members re-run here by owa-epanet's own wrapper with the factors drawn for them (the client's plan of
    the same scenario, checked against the run hash each worker stored): every stored value bit for bit."""
    import hashlib
    import json

    from wntr.epanet.util import FlowUnits, HydParam
    _, plan = cluster.plan(MODEL, scenario_file, name=f"{NAME}-reference")
    documents = {document["member"]: document for document in plan.drawn.documents}
    ensemble = cluster.ensemble(NAME)
    rows = ensemble.members().set_index("member")
    to_si = {"pressure": HydParam.Pressure, "head": HydParam.HydraulicHead}
    for member in (0, 1, 166, 250, MEMBERS - 1):
        run = documents[member]["run"]
        assert hashlib.sha256(json.dumps(run, sort_keys=True, default=str).encode()).hexdigest() \
            == rows.loc[member, "run_sha256"], f"member {member} was drawn differently"
        (demand,), (roughness,) = ([change["factor"] for change in run["alterations"] if change["type"] == kind]
                                   for kind in ("demand_scale", "pipe_property"))
        expected = epanet_own_run(demand, roughness, tmp_path / f"member-{member}.out")
        for attribute in ("pressure", "head"):
            for node in NODES:
                stored = ensemble.series(f"node:{node}", attribute, member=member).sort_values("elapsed_s")
                want = to_si[attribute]._to_si(FlowUnits.GPM, expected[node][attribute])
                assert len(stored) == len(want) == 25
                assert stored["value"].to_numpy(np.float64).tobytes() == np.asarray(want, np.float64).tobytes(), \
                    (member, node, attribute)


def test_influxdb_holds_statistics_without_a_member_tag(submitted, cluster):
    keys = cluster.influx.frame("SHOW TAG KEYS")
    assert "member" not in set(keys["tagKey"]) and {"ensemble", "element", "statistic"} <= set(keys["tagKey"])


def test_results_gives_the_clusters_percentiles_of_the_stored_series(submitted, cluster, tmp_path):
    deadline = time.monotonic() + 600  # submit --wait waits for them too, up to 300 s; on a loaded host, longer
    while not cluster.ensemble(NAME).statistics_current():
        assert time.monotonic() < deadline, "the cluster's statistics did not cover every member within 600 s"
        time.sleep(2)
    table = tmp_path / "node123.csv"
    result = cloudburst("results", NAME, "--element", "node:123", "--attribute", "pressure", "--csv", str(table))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(table.open()))
    stored = cluster.ensemble(NAME).series("node:123", "pressure")
    by_time = stored.groupby("elapsed_s")["value"]
    assert len(rows) == by_time.ngroups
    # pandas writes CSV floats with repr, so what is read back is the computed float exactly.
    for row, (elapsed, values) in zip(rows, by_time):
        ordered = np.sort(values.to_numpy(dtype=np.float64))
        assert int(row["elapsed_s"]) == elapsed and len(ordered) == MEMBERS == int(float(row["count"]))
        assert float(row["min"]) == ordered[0] and float(row["max"]) == ordered[-1]
        for percentile in (5, 50, 95):  # InfluxDB's nearest rank: index floor(n p / 100 + 0.5) - 1
            assert float(row[f"p{percentile}"]) == ordered[int(np.floor(MEMBERS * percentile / 100 + 0.5)) - 1]


def test_the_read_only_settings_read_results_and_statistics_and_change_nothing(submitted, cluster, tmp_path):
    """reader.toml (site.yml writes it beside client.toml: Redis's reader, Nginx's analyst, InfluxDB's read user)
    lists and reads an ensemble; submitting, deleting or uploading is refused with a sentence, and nothing changes."""
    reader = {"CLOUDBURST_CONFIG": str(CLIENT_CONFIG.with_name("reader.toml"))}
    listed = cloudburst("list", env=reader)
    assert listed.returncode == 0 and NAME in listed.stdout, listed.stderr
    table = tmp_path / "read.csv"
    read = cloudburst("results", NAME, "--element", "node:123", "--attribute", "pressure", "--csv", str(table),
                      env=reader)
    assert read.returncode == 0 and len(list(csv.DictReader(table.open()))) > 0, read.stderr
    submit = cloudburst("submit", str(MODEL), str(REPO / "files" / "scenarios" / "net3-demand-roughness.yml"),
                        "--name", "by-the-reader", env=reader)
    assert submit.returncode == 3 and "refused" in submit.stderr and len(submit.stderr.strip().splitlines()) == 1, submit
    deleted = cloudburst("delete", NAME, "--yes", env=reader)
    assert deleted.returncode != 0 and f"{NAME} belongs to submitter: reader may not delete it" in deleted.stderr, deleted
    assert cluster.ensemble(NAME).status().finished == MEMBERS and "by-the-reader" not in cluster.records.names()


TINY_MEMBERS = 100_000


def test_an_ensemble_of_100000_tiny_members_is_stored_once(cluster, tmp_path):
    """Scale in CI: 100,000 members of Net1 for 24 h (summaries only, about 0.2 ms of EPANET each) submitted with
    `cloudburst submit --wait`, every member stored once: the rows of the store's raw members files, read by pyarrow
    alone, are exactly the members; one recorded execution each."""
    import io

    import pyarrow.parquet as pq
    from cloudburst.state.store import MEMBERS_DIR
    scenario = {"ensemble": "tiny", "members": TINY_MEMBERS, "seed": 13, "run": {"duration_s": 86400},
                "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8,
                                                                    "high": 1.2}}]}
    path = tmp_path / "tiny.yml"
    path.write_text(yaml.safe_dump(scenario))
    started = time.monotonic()
    submitted = cloudburst("submit", str(Path(wntr.__file__).parent / "library" / "networks" / "Net1.inp"), str(path),
                           "--name", "tiny-100k", "--wait", timeout=1800)
    elapsed = time.monotonic() - started
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    store = cluster.store
    members = [member for batch in store.batches("tiny-100k")
               for member in pq.read_table(io.BytesIO(store.read("tiny-100k", MEMBERS_DIR, batch)),
                                           columns=["member", "status"]).to_pydict()["member"]]
    assert len(members) == TINY_MEMBERS and sorted(members) == list(range(TINY_MEMBERS))
    executions = cluster.ensemble("tiny-100k").executions()
    assert (executions["executions"] == 1).all() and executions.attrs == {"lost": 0, "duplicated": 0}
    print(f"100,000 tiny members submitted, run and stored in {elapsed:.0f} s ({TINY_MEMBERS / elapsed:,.0f} members/s)")
    cluster.ensemble("tiny-100k").delete()
