"""Several people on the live scenario, as an operator adds them: playbooks/add-user.yml gives alice and bob their own
client.toml (and the CA); each submits with it, `list` shows whose work is whose, another person's delete is
refused, alice's quota refuses a submission with the numbers, a Redis restart keeps both users, and
playbooks/remove-user.yml takes alice away while her ensemble runs: it finishes, and she can no longer submit or
upload. bob stays, for the backup stage (tests/backup) to find him after a restore."""
import os
import time
from pathlib import Path

import pytest
import requests
import yaml
from cloudburst import Client
from stack_view import (
    CA,
    MASTER,
    client_settings,
    cloudburst,
    cluster_host,
    master_address,
    playbook,
)

testinfra_hosts = [MASTER]
REPO = Path(__file__).resolve().parents[4]
MODEL = REPO / "files" / "models" / "Net3.inp"
PEOPLE = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "users"  # where the scenario's add-user.yml writes


def as_person(name: str) -> dict[str, str]:
    return {"CLOUDBURST_CONFIG": str(PEOPLE / name / "client.toml")}


def changed_count(run) -> int:
    recap = run.stdout.split("PLAY RECAP", 1)[1]
    return sum(int(part.split("=", 1)[1]) for part in recap.split() if part.startswith("changed="))


def scenario_of(directory: Path, members: int) -> Path:
    scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    scenario.update(members=members, seed=11)
    path = directory / f"people-{members}.yml"
    path.write_text(yaml.safe_dump(scenario))
    return path


@pytest.fixture(scope="module")
def scenario_path(tmp_path_factory) -> Path:
    return scenario_of(tmp_path_factory.mktemp("people"), 40)


@pytest.fixture(scope="module")
def people():
    for name, extra in (("alice", ["-e", "quota=60"]), ("bob", [])):
        added = playbook("playbooks/add-user.yml", "-e", f"user={name}", *extra)
        assert added.returncode == 0, added.stdout[-3000:]
    again = playbook("playbooks/add-user.yml", "-e", "user=alice", "-e", "quota=60")
    assert again.returncode == 0 and changed_count(again) == 0, again.stdout[-3000:]
    return ["alice", "bob"]


def test_add_user_writes_each_person_a_client_toml_and_the_ca_that_reach_the_cluster(people):
    for name in people:
        settings = (PEOPLE / name / "client.toml").read_text()
        assert f'redis_user = "{name}"' in settings and f'files_user = "{name}"' in settings
        assert oct((PEOPLE / name / "client.toml").stat().st_mode & 0o777) == "0o600"
        assert (PEOPLE / name / "ca.crt").read_text() == Path(CA).read_text()
        listed = cloudburst("list", env=as_person(name))
        assert listed.returncode == 0, listed.stderr


def test_two_people_side_by_side_see_whose_work_is_whose_and_may_not_delete_each_others(people, scenario_path):
    for name in people:
        submitted = cloudburst("submit", str(MODEL), str(scenario_path), "--name", f"{name}-work", "--wait",
                               env=as_person(name))
        assert submitted.returncode == 0, submitted.stderr
    listed = cloudburst("list", env=as_person("bob")).stdout.splitlines()
    owners = {line.split()[0]: line.split()[1] for line in listed if line.split()[:1] in (["alice-work"], ["bob-work"])}
    assert owners == {"alice-work": "alice", "bob-work": "bob"}
    refused = cloudburst("delete", "alice-work", "--yes", env=as_person("bob"))
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "cloudburst: alice-work belongs to alice: bob may not delete it (only its owner or an admin may; "
        "`cloudburst list` shows each one's owner)")
    assert cloudburst("status", "alice-work").returncode == 0
    assert cloudburst("delete", "bob-work", "--yes", env=as_person("bob")).returncode == 0


def test_a_quota_refuses_a_submission_past_it_with_the_numbers(people, scenario_path):
    refused = cloudburst("submit", str(MODEL), str(scenario_of(scenario_path.parent, 61)), "--name", "too-many",
                         env=as_person("alice"))
    assert refused.returncode == 2, refused
    assert "alice's quota is 60 members (or tasks) queued or running at once: 0 are now and this submission adds 61" \
        in refused.stderr
    assert "too-many" not in cloudburst("list").stdout


def test_a_redis_restart_keeps_the_people(people):
    master = cluster_host(MASTER)
    before = master.check_output("docker ps -q --filter label=com.docker.swarm.service.name=cloudburst_redis")
    master.check_output(f"docker kill {before}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if cloudburst("list", env=as_person("bob")).returncode == 0:
            break
        time.sleep(2)
    for name in people:
        listed = cloudburst("list", env=as_person(name))
        assert listed.returncode == 0, listed.stderr


def test_a_person_removed_while_their_ensemble_runs_cannot_submit_or_upload_and_it_finishes(people, scenario_path):
    files_password = next(line.split('"')[1] for line in (PEOPLE / "alice" / "client.toml").read_text().splitlines()
                          if line.startswith("files_password"))
    started = cloudburst("submit", str(MODEL), str(scenario_path), "--name", "alice-leaving", env=as_person("alice"))
    assert started.returncode == 0, started.stderr
    kept_settings = (PEOPLE / "alice" / "client.toml").read_text()
    removed = playbook("playbooks/remove-user.yml", "-e", "user=alice")
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert not (PEOPLE / "alice").exists()
    stale = PEOPLE.parent / "alice-kept.toml"  # what alice still holds on her own machine
    stale.write_text(kept_settings.replace(f'ca_file = "{PEOPLE / "alice"}/ca.crt"', f'ca_file = "{CA}"'))
    refused = cloudburst("submit", str(MODEL), str(scenario_path), "--name", "after-leaving",
                         env={"CLOUDBURST_CONFIG": str(stale)})
    assert refused.returncode == 3 and "refused the user name or password (user 'alice')" in refused.stderr, refused
    upload = requests.put(f"https://{master_address()}:8080/models/probe-alice.txt", data=b"x",
                          auth=("alice", files_password), verify=CA, timeout=10)
    assert upload.status_code == 401
    progress = Client(client_settings()).ensemble("alice-leaving").wait(progress=False, timeout_s=600)
    assert (progress.finished, progress.failed) == (40, 0)
    assert "alice-leaving " in cloudburst("list").stdout
    again = playbook("playbooks/remove-user.yml", "-e", "user=alice")
    assert again.returncode == 0 and changed_count(again) == 0, again.stdout[-3000:]


def test_no_one_reads_the_people_s_password_lines_over_http(people):
    for auth in (("bob", next(line.split('"')[1] for line in (PEOPLE / "bob" / "client.toml").read_text().splitlines()
                               if line.startswith("files_password"))),):
        for path in (".people/htpasswd", ".people/auth/uploaders"):
            answer = requests.get(f"https://{master_address()}:8080/{path}", auth=auth, verify=CA, timeout=10)
            assert answer.status_code == 403, (path, answer.status_code)


def test_a_name_that_is_not_a_persons_is_refused_with_a_sentence_and_nothing_changes():
    for name in ("submitter", "Alice!"):
        refused = playbook("playbooks/add-user.yml", "-e", f"user={name}")
        assert refused.returncode != 0 and "a person's name is a-z, 0-9, _ and -" in refused.stdout, refused.stdout[-2000:]
        assert not (PEOPLE / name).exists()
