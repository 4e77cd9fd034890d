"""The client on a real Redis, Nginx, InfluxDB and runner processes: submit, follow and read an ensemble."""
from __future__ import annotations

import hashlib

import cloudburst
import numpy as np
import pandas as pd
import wntr
import yaml
from cloudburst.plan.scenarios import generate
from cloudburst.schema.queues import job_id
from cloudburst.state.ledger import Ledger
from local_cluster import REDIS_PASSWORDS, cli, client_settings, start_workers, stop
from test_scenarios import NET3, SOURCE, factors, scenario


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
    assert wrong_password.stderr.strip().startswith("cloudburst: Redis at redis://127.0.0.1:") and "refused the user name or password" in wrong_password.stderr
    unreachable = cli({**cluster, "env": {**cluster["env"], "CLOUDBURST_REDIS_URL": "redis://127.0.0.1:1/0"}},
                      "submit", str(NET3), scenario_file(cluster))
    assert unreachable.returncode == 3 and "does not answer" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1
    refused = cli({**cluster, "env": {**cluster["env"], "CLOUDBURST_INFLUX_PASSWORD": "wrong"}}, "list")
    user = cluster["env"]["CLOUDBURST_INFLUX_USER"]
    assert refused.returncode == 3 and refused.stderr == \
        f"cloudburst: InfluxDB at {cluster['influx'].url} refused user {user!r}\n"


def test_the_read_only_redis_user_lists_and_reads_and_is_refused_any_change_with_one_sentence(cluster):
    reader = {**cluster, "env": {**cluster["env"], "CLOUDBURST_REDIS_USER": "reader",
                                 "CLOUDBURST_REDIS_PASSWORD": REDIS_PASSWORDS["reader"]}}
    workers = start_workers(cluster, count=1)
    try:
        done = cli(cluster, "submit", str(NET3), scenario_file(cluster), "--name", "readable", "--wait")
        assert done.returncode == 0, done.stderr
    finally:
        stop(workers)
    listed = cli(reader, "list")
    assert listed.returncode == 0 and "readable" in listed.stdout, listed.stderr
    status = cli(reader, "status", "readable")
    assert status.returncode == 0 and "finished 12" in status.stdout, status.stderr
    refused = cli(reader, "submit", str(NET3), scenario_file(cluster), "--name", "by-the-reader")
    assert refused.returncode == 3, refused
    assert refused.stderr.startswith("cloudburst: Redis at redis://127.0.0.1:")
    assert "refused this user: this user has no permissions" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    for action in ("delete", "cancel"):  # the submitter's: refused before Redis would be asked
        refused = cli(reader, action, "readable", "--yes") if action == "delete" else cli(reader, action, "readable")
        assert refused.returncode == 2, refused
        assert refused.stderr == (f"cloudburst: readable belongs to submitter: reader may not {action} it (only its "
                                  "owner or an admin may; `cloudburst list` shows each one's owner)\n")
    assert cluster["redis"].llen("rq:queue:cloudburst") == 0
    assert cli(cluster, "status", "readable").returncode == 0 and "by-the-reader" not in cli(cluster, "list").stdout
