"""Backup and restore (playbooks/backup.yml, playbooks/restore.yml) on the live scenario: with the workers drained
and an ensemble queued, back up; delete the stack and its data volumes; restore. The ensemble of tests/ensemble
reads back identical (its stored files byte for byte, the cluster's statistics value for value) and the queued
ensemble runs to the end once the workers return."""
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from cloudburst import Client
from cloudburst.state.store import MEMBERS_DIR, SERIES_DIR
from stack_view import MASTER, client_settings, cloudburst, cluster_host, playbook

testinfra_hosts = [MASTER]
REPO = Path(__file__).resolve().parents[4]
EARLIER = "e2e-300"  # tests/ensemble's
QUEUED = f"queued-at-backup-{int(time.time())}"
VOLUMES = ["cloudburst_redis-data", "cloudburst_influxdb-data", "cloudburst_files"]


def wait_for(what: str, condition, timeout_s: float, poll_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - services restarting: not yet
            value = f"{type(error).__name__}: {error}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s (last: {value!r})"
        time.sleep(poll_s)


def snapshot(client: Client) -> dict:
    ensemble = client.ensemble(EARLIER)
    store = client.store
    files = {(part, batch): store.read(EARLIER, part, batch) for part in (SERIES_DIR, MEMBERS_DIR)
             for batch in store.batches(EARLIER, part)}
    return {"files": files, "percentiles": ensemble.percentiles("node:123").to_dict("list"),
            "status": ensemble.status()}


def set_availability(availability: str) -> None:
    """Every node but the master (the scenario's workers, and the one grow.yml added)."""
    master = cluster_host(MASTER)
    for node in master.check_output("docker node ls --format '{{.Hostname}}'").split():
        if node != MASTER:
            master.check_output(f"docker node update --availability {availability} {node}")


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    client = Client(client_settings())
    before = snapshot(client)
    scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    scenario.update(members=24, seed=3)
    path = tmp_path_factory.mktemp("scenario") / "queued.yml"
    path.write_text(yaml.safe_dump(scenario))
    set_availability("drain")
    try:
        wait_for("the workers gone from the drained nodes", lambda: cluster_host(MASTER).check_output(
            "docker service ps cloudburst_worker --filter desired-state=running -q") == "", 180)
        submitted = cloudburst("submit", str(REPO / "files" / "models" / "Net3.inp"), str(path), "--name", QUEUED)
        assert submitted.returncode == 0, submitted.stderr
        backup_dir = tmp_path_factory.mktemp("backups")
        backed_up = playbook("playbooks/backup.yml", "-e", f"backup_dir={backup_dir}")
        assert backed_up.returncode == 0, backed_up.stdout[-3000:]
        folder = next(backup_dir.iterdir())
        master = cluster_host(MASTER)
        master.check_output("docker stack rm cloudburst")
        wait_for("the stack's containers gone", lambda: master.check_output(
            "docker ps -q --filter label=com.docker.stack.namespace=cloudburst") == "", 180)
        master.check_output("docker container prune -f --filter label=com.docker.stack.namespace=cloudburst")
        master.check_output(f"docker volume rm {' '.join(VOLUMES)}")
    finally:
        set_availability("active")  # no stack runs now; restore.yml's site.yml waits for a worker on every node
    restore = playbook("playbooks/restore.yml", "-e", f"backup_from={folder}")
    assert restore.returncode == 0, restore.stdout[-3000:]
    return {"before": before, "client": Client(client_settings()), "folder": folder}


def test_a_backup_holds_each_part_in_one_folder_readable_by_its_owner_only(restored):
    folder = restored["folder"]
    assert sorted(path.name for path in folder.iterdir()) == [
        "backup.json", "files.tar.gz", "influxdb.tar.gz", "redis-data.tar.gz", "secrets.tar.gz"]
    assert {oct(path.stat().st_mode & 0o777) for path in folder.iterdir()} == {"0o600"}
    with tarfile.open(folder / "secrets.tar.gz") as secrets:  # the cluster's CA and the master's key go with it
        names = {Path(name).name for name in secrets.getnames()}
    assert {"cluster-ca.crt", "cluster-ca.key", "master.crt", "master.key", "redis_submitter_password"} <= names


def test_an_earlier_ensemble_reads_back_identical_after_the_volumes_were_deleted_and_restored(restored):
    after = wait_for("the restored stack answers", lambda: snapshot(restored["client"]), 300)
    assert after["files"] == restored["before"]["files"] and len(after["files"]) > 0
    assert after["percentiles"] == restored["before"]["percentiles"]
    assert after["status"] == restored["before"]["status"]


def test_an_ensemble_queued_at_the_backup_runs_to_the_end_after_the_restore(restored):
    ensemble = restored["client"].ensemble(QUEUED)
    progress = wait_for(f"{QUEUED} finished", lambda: (lambda p: p if p.finished == 24 else None)(
        ensemble.status()), 600, poll_s=3)
    assert progress.failed == 0
    assert cloudburst("status", QUEUED).returncode == 0


def test_the_people_added_before_the_backup_submit_and_upload_after_the_restore(restored):
    """tests/users left bob: his Redis user (Redis's ACL file), Nginx user (the files volume) and settings."""
    bob = {"CLOUDBURST_CONFIG": str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "users" / "bob" / "client.toml")}
    listed = wait_for("bob lists", lambda: (lambda run: run if run.returncode == 0 else None)(
        cloudburst("list", env=bob)), 300, poll_s=3)
    assert "alice-work " in listed.stdout
    uploaded = cloudburst("upload", str(Path(__file__).resolve().parents[4] / "files" / "models" / "Net3.inp"),
                          env=bob)
    assert uploaded.returncode == 0 and len(uploaded.stdout.strip()) == 64, uploaded.stderr
