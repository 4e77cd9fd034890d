"""Several people on one cluster, each a Redis user of their own with the submitter's rules (as playbooks/add-user.yml
gives them): their work records them as its owner, `list` shows it, another person's cancel, retry and delete are
refused (an admin's are not), a quota refuses a submission with the numbers, and a person removed while their
ensemble runs cannot submit again while the ensemble finishes."""
from __future__ import annotations

import dataclasses

import cloudburst
import pytest
from cloudburst.errors import Refused, ServiceError
from local_cluster import REPO, cli, client_settings, start_workers, stop
from test_scenarios import NET3, scenario

pytestmark = pytest.mark.services
ADMINS_KEY, QUOTAS_KEY = "cloudburst-admin:admins", "cloudburst-admin:quotas"  # read by the reference, not imported
REDIS_USERS = REPO / "roles" / "stack" / "files" / "redis-users.conf"


def add_person(cluster: dict, name: str) -> None:
    """The Redis user playbooks/add-user.yml gives a person: the submitter's rules from the stack's users file."""
    rules = next(line.split()[1:] for line in REDIS_USERS.read_text().splitlines() if line.startswith("submitter "))
    cluster["redis"].acl_setuser(name, reset=True, enabled=True, passwords=[f"+{name}-secret"])
    cluster["redis"].execute_command("ACL", "SETUSER", name, *rules)


def person(cluster: dict, name: str) -> cloudburst.Client:
    settings = dataclasses.replace(client_settings(cluster), redis_user=name, redis_password=f"{name}-secret")
    return cloudburst.Client(settings)


def person_env(cluster: dict, name: str) -> dict:
    return {"env": {**cluster["env"], "CLOUDBURST_REDIS_USER": name, "CLOUDBURST_REDIS_PASSWORD": f"{name}-secret"}}


@pytest.fixture
def people(cluster) -> dict[str, cloudburst.Client]:
    for name in ("alice", "bob", "carol"):
        add_person(cluster, name)
    cluster["redis"].sadd(ADMINS_KEY, "carol")
    return {name: person(cluster, name) for name in ("alice", "bob", "carol")}


def submit(client: cloudburst.Client, name: str, members: int = 4):
    return client.submit(NET3, scenario(members=members, run={"duration_s": 3600}, output={"series": [
        {"element": "node", "attributes": ["pressure"], "ids": ["123"]}]}), name=name)


def test_each_persons_work_records_its_owner_and_another_persons_changes_are_refused(cluster, people):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    submit(alice, "alice-run")
    listed = cli(person_env(cluster, "bob"), "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("alice-run "))
    assert row.split()[1] == "alice"
    assert {row["ensemble"]: row["owner"] for row in bob.ensemble_rows()} == {"alice-run": "alice"}

    for action, call in (("cancel", lambda: bob.ensemble("alice-run").cancel()),
                         ("retry", lambda: bob.ensemble("alice-run").retry()),
                         ("delete", lambda: bob.ensemble("alice-run").delete())):
        with pytest.raises(Refused) as refused:
            call()
        assert str(refused.value) == (
            f"alice-run belongs to alice: bob may not {action} it (only its owner or an admin may; `cloudburst list` "
            "shows each one's owner)")
    refused_cli = cli(person_env(cluster, "bob"), "delete", "alice-run", "--yes")
    assert refused_cli.returncode != 0 and "alice-run belongs to alice: bob may not delete it" in refused_cli.stderr
    # nothing of it was touched: its record, and its members still queued (no worker runs)
    assert cluster["redis"].hget("cloudburst:ensemble:alice-run", "owner") == b"alice"
    assert alice.ensemble("alice-run").cancel() == 4  # its owner may: the four members were still queued

    submit(bob, "bob-run")
    assert carol.ensemble("bob-run").delete()["dequeued"] == 4  # an admin may change anyone's
    assert "bob-run" not in cluster["redis"].smembers("cloudburst:ensembles")
    alice.ensemble("alice-run").delete()


def test_a_task_set_records_its_owner_and_another_persons_delete_is_refused(cluster, people):
    alice, bob = people["alice"], people["bob"]
    alice.map("probe_tasks:square", [[1], [2]], name="alice-tasks")  # no worker runs: they stay queued
    assert {row["taskset"]: row["owner"] for row in bob.taskset_rows()} == {"alice-tasks": "alice"}
    with pytest.raises(Refused, match="alice-tasks belongs to alice: bob may not delete it"):
        bob.taskset("alice-tasks").delete()
    assert cluster["redis"].exists("cloudburst:ensemble:alice-tasks")
    alice.taskset("alice-tasks").delete()


def test_a_quota_refuses_a_submission_that_would_pass_it_with_the_numbers_and_enqueues_nothing(cluster, people):
    alice = people["alice"]
    cluster["redis"].hset(QUOTAS_KEY, "alice", 6)
    with pytest.raises(Refused) as refused:
        submit(alice, "too-big", members=7)
    assert str(refused.value) == (
        "alice's quota is 6 members (or tasks) queued or running at once: 0 are now and this submission adds 7; wait "
        "for some to finish, cancel some, or submit fewer (an admin sets quotas: playbooks/add-user.yml -e quota=N)")
    assert not cluster["redis"].exists("cloudburst:ensemble:too-big")
    assert cluster["redis"].llen("rq:queue:cloudburst") == 0

    submit(alice, "first", members=4)  # no worker runs: its 4 members stay queued
    with pytest.raises(Refused, match="4 are now and this submission adds 3"):
        submit(alice, "second", members=3)
    submit(people["bob"], "bobs", members=7)  # bob has no quota; alice's own are what count against hers
    submit(alice, "second", members=2)
    checked = cli(person_env(cluster, "alice"), "list")
    assert checked.returncode == 0


def test_a_person_removed_while_their_ensemble_runs_cannot_submit_and_the_ensemble_finishes(cluster, people):
    alice, bob = people["alice"], people["bob"]
    submit(alice, "leaving", members=8)
    cluster["redis"].execute_command("ACL", "DELUSER", "alice")
    with pytest.raises(ServiceError) as refused:
        person(cluster, "alice")
    assert str(refused.value).endswith("refused the user name or password (user 'alice'): a wrong password, or a "
                                      "user the cluster no longer has (playbooks/remove-user.yml)")
    workers = start_workers(cluster)
    try:
        ensemble = bob.ensemble("leaving")
        ensemble.wait(timeout_s=300, progress=False)
        status = ensemble.status()
        assert (status.finished, status.failed) == (8, 0)
    finally:
        stop(workers)
    assert {row["ensemble"]: row["owner"] for row in bob.ensemble_rows()} == {"leaving": "alice"}
