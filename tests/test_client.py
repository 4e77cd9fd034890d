"""The cloudburst client: scenario generation (pure), and the CLI against a real Redis, InfluxDB and Nginx with
worker runners running the example env."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cloudburst
import numpy as np
import pandas as pd
import pytest
import wntr
import yaml
from cloudburst.errors import InputError
from cloudburst.plan.scenarios import generate
from cloudburst.schema.queues import job_id
from cloudburst.state.ledger import Ledger
from local_cluster import cli, client_settings, start_workers, stop

REPO = Path(__file__).resolve().parents[1]
NET3 = REPO / "files" / "models" / "Net3.inp"
SOURCE = {"url": "http://nginx:8080/models/x.inp", "sha256": "0" * 64}


@pytest.fixture(scope="module")
def net3() -> wntr.network.WaterNetworkModel:
    return wntr.network.WaterNetworkModel(str(NET3))


def scenario(**changes) -> dict:
    base = {"ensemble": "tests", "members": 50, "seed": 7,
            "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}]}
    return {**base, **changes}


def factors(ensemble) -> list[float]:
    return [document["run"]["alterations"][0]["factor"] for document in ensemble.documents]


# --- scenario generation ----------------------------------------------------------------------------------

def test_the_same_seed_draws_the_same_values_and_another_seed_others(net3):
    first, again = generate(scenario(), net3, SOURCE), generate(scenario(), net3, SOURCE)
    assert factors(first) == factors(again)
    assert factors(generate(scenario(seed=8), net3, SOURCE)) != factors(first)
    assert [d["member"] for d in first.documents] == list(range(50)) and {d["seed"] for d in first.documents} == {7}


@pytest.mark.parametrize("spec, mean, std", [
    ({"distribution": "uniform", "low": 0.8, "high": 1.2}, 1.0, 0.4 / np.sqrt(12)),
    ({"distribution": "normal", "mean": 1.0, "std": 0.05}, 1.0, 0.05),
    ({"distribution": "lognormal", "mean": 0.0, "sigma": 0.1}, np.exp(0.005), np.sqrt((np.exp(0.01) - 1) * np.exp(0.01))),
])
def test_draws_have_their_distributions_moments(net3, spec, mean, std):
    values = np.array(factors(generate(scenario(members=4000, alterations=[{"type": "demand_scale", "factor": spec}]),
                                       net3, SOURCE)))
    assert abs(values.mean() - mean) < 4 * std / np.sqrt(len(values))
    assert abs(values.std() - std) < 0.05 * std


def test_choice_draws_its_values_by_their_weights(net3):
    spec = {"distribution": "choice", "values": [0.5, 1.0, 1.5], "weights": [1, 2, 1]}
    values = factors(generate(scenario(members=4000, alterations=[{"type": "demand_scale", "factor": spec}]), net3, SOURCE))
    shares = {value: values.count(value) / len(values) for value in (0.5, 1.0, 1.5)}
    assert abs(shares[1.0] - 0.5) < 0.03 and abs(shares[0.5] - 0.25) < 0.03 and abs(shares[1.5] - 0.25) < 0.03


def test_a_pipe_sweep_makes_one_member_per_pipe_and_a_fire_flow_sweep_one_per_hydrant(net3):
    pipes = generate(scenario(alterations=[], sweep={"over": "pipes", "alteration": {"type": "link_status"}}), net3, SOURCE)
    assert len(pipes.documents) == len(net3.pipe_name_list) == 117
    assert [d["run"]["alterations"][-1]["link"] for d in pipes.documents] == net3.pipe_name_list
    hydrants = ["10", "15", "20"]
    fire = generate(scenario(sweep={"over": "junctions", "ids": hydrants,
                                    "alteration": {"type": "fire_flow", "flow_m3s": 0.06}}), net3, SOURCE)
    assert [d["run"]["alterations"][-1]["node"] for d in fire.documents] == hydrants
    assert all(len(d["run"]["alterations"]) == 2 for d in fire.documents)  # the template's draw plus the sweep


@pytest.mark.parametrize("changes, sentence", [
    ({"alterations": [{"type": "demand_scale", "factor": {"distribution": "gamma", "a": 1}}]},
     "$.alterations[0].factor: unknown distribution 'gamma'"),
    ({"members": -5}, "$.members: must be a whole number >= 1 (got -5)"),
    ({"alterations": [{"type": "pump_outage", "pump": "P-99"}]}, "member 0: $.run.alterations[0].pump: the model has no pump 'P-99'"),
    ({"alterations": [{"type": "leak", "node": "10", "area_m2": 0.01}]}, "member 0: $.run.alterations[0]"),
    ({"sweep": {"over": "hydrants", "alteration": {"type": "fire_flow", "flow_m3s": 1}}}, "$.sweep.over: unknown element kind"),
])
def test_bad_scenarios_are_refused_with_a_sentence(net3, changes, sentence):
    with pytest.raises(InputError) as refused:
        generate(scenario(**changes), net3, SOURCE)
    assert any(sentence in problem for problem in refused.value.problems), refused.value.problems
    if "leak" in str(changes):
        assert "WNTRSimulator" in str(refused.value) or "wntr" in str(refused.value)


# --- the CLI against real services --------------------------------------------------------------------------

def scenario_file(cluster: dict, **changes) -> str:
    path = cluster["tmp"] / "scenario.yml"
    path.write_text(yaml.safe_dump(scenario(members=12, run={"duration_s": 86400}, output={"series": [
        {"element": "node", "attributes": ["pressure"], "ids": ["123", "10"]}]}, **changes)))
    return str(path)


def test_submit_wait_then_results_summary_and_status_from_real_runs(cluster):
    workers = start_workers(cluster)
    try:
        submitted = cli(cluster, "submit", str(NET3), scenario_file(cluster), "--wait", "--name", "fan")
    finally:
        stop(workers)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == "fan"
    assert "12/12" in submitted.stderr and "12 members enqueued" in submitted.stderr
    sha = hashlib.sha256(NET3.read_bytes()).hexdigest()
    assert (cluster["root"] / "models" / f"{sha}.inp").read_bytes() == NET3.read_bytes()

    status = cli(cluster, "status", "fan")
    assert status.returncode == 0 and "finished 12  failed 0  unbalanced 0  running 0  queued 0" in status.stdout

    out = cluster["tmp"]
    results = cli(cluster, "results", "fan", "--element", "node:123", "--csv", str(out / "p.csv"),
                  "--parquet", str(out / "p.parquet"), "--plot", str(out / "fan.png"))
    assert results.returncode == 0, results.stderr
    table = pd.read_csv(out / "p.csv")
    parquet = pd.read_parquet(out / "p.parquet")
    assert (out / "fan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = cloudburst.Client(client_settings(cluster)).ensemble("fan").series("node:123")
    by_time = np.sort(stored.pivot(index="elapsed_s", columns="member", values="value").to_numpy(np.float64), axis=1)
    assert len(table) == len(by_time) == 25 and (table["count"] == 12).all()
    # Both files hold the cluster's statistics as soon as submit --wait returns: InfluxDB's nearest-rank
    # percentiles (index floor(n p / 100 + 0.5) - 1) and the extremes of the stored values.
    for written in (table, parquet):
        for percentile in (5, 50, 95):
            assert written[f"p{percentile}"].tolist() == by_time[:, int(np.floor(12 * percentile / 100 + 0.5)) - 1].tolist()
        assert written["max"].tolist() == by_time[:, -1].tolist()
        assert written["min"].tolist() == by_time[:, 0].tolist()

    summary = cli(cluster, "summary", "fan", "--csv", str(out / "s.csv"))
    worst = pd.read_csv(out / "s.csv")
    assert summary.returncode == 0 and len(worst) == 12
    assert worst["pressure_min"].is_monotonic_increasing
    drawn = dict(enumerate(factors(generate(scenario(members=12), wntr.network.WaterNetworkModel(str(NET3)), SOURCE))))
    assert worst["member"].iloc[0] == max(drawn, key=drawn.get)  # most demand, lowest pressure

    listed = cli(cluster, "list")
    assert "fan" in listed.stdout and " 12 " in listed.stdout


def test_retry_runs_only_the_missing_members_and_cancel_empties_the_queue(cluster):
    submitted = cli(cluster, "submit", str(NET3), scenario_file(cluster), "--name", "later")
    assert submitted.returncode == 0, submitted.stderr
    queue_key = "rq:queue:cloudburst"
    plan = Ledger(cluster["redis"]).plan("later")
    assert cluster["redis"].llen(queue_key) == len(plan) > 1 and sorted(sum(plan.values(), [])) == list(range(12))
    cancelled = cli(cluster, "cancel", "later")
    assert cancelled.returncode == 0 and "12 queued members removed" in cancelled.stdout
    assert cluster["redis"].llen(queue_key) == 0
    assert not any(cluster["redis"].exists(f"rq:job:{job_id('later', batch)}") for batch in plan)
    workers = start_workers(cluster)
    try:
        retried = cli(cluster, "retry", "later", "--wait")
    finally:
        stop(workers)
    assert retried.returncode == 0, retried.stderr
    assert "12 members re-enqueued" in retried.stdout
    again = cli(cluster, "retry", "later")
    assert "0 members re-enqueued" in again.stdout and "12 finished" in again.stdout


def test_a_bad_scenario_is_refused_before_anything_is_uploaded_or_enqueued(cluster):
    bad = scenario_file(cluster, alterations=[{"type": "demand_scale", "factor": {"distribution": "gamma"}}])
    refused = cli(cluster, "submit", str(NET3), bad)
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("cloudburst: $.alterations[0].factor: unknown distribution 'gamma'; "
                                      "known: uniform, normal, lognormal, truncnorm, triangular, beta, choice")
    assert list((cluster["root"] / "models").iterdir()) == [] and cluster["redis"].llen("rq:queue:cloudburst") == 0


def test_unreachable_or_refusing_services_give_one_sentence_and_exit_3(cluster):
    wrong_password = cli({**cluster, "env": {**cluster["env"], "CLOUDBURST_REDIS_PASSWORD": "wrong"}}, "list")
    assert wrong_password.returncode == 3
    assert wrong_password.stderr.strip().startswith("cloudburst: Redis at redis://127.0.0.1:") and "refused the password" in wrong_password.stderr
    unreachable = cli({**cluster, "env": {**cluster["env"], "CLOUDBURST_REDIS_URL": "redis://127.0.0.1:1/0"}},
                      "submit", str(NET3), scenario_file(cluster))
    assert unreachable.returncode == 3 and "does not answer" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1
    refused = cli({**cluster, "env": {**cluster["env"], "CLOUDBURST_INFLUX_PASSWORD": "wrong"}}, "list")
    user = cluster["env"]["CLOUDBURST_INFLUX_USER"]
    assert refused.returncode == 3 and refused.stderr == \
        f"cloudburst: InfluxDB at {cluster['influx'].url} refused user {user!r}\n"
