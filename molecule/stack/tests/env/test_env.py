"""After side_effect push_env.yml: the env is served with its hashes, workers on both nodes install it and run
EPANET jobs end to end (model uploaded to Nginx, results in InfluxDB), and a second push changes nothing."""
import hashlib
import io
import json
import os
import re
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import redis
import requests
import wntr
from cloudburst.schema.batch import make_batch
from cloudburst.state.reader import member_rows
from cloudburst.state.https import cluster_session
from cloudburst.state.store import WebDavStore
from rq import Queue, Worker
from rq.serializers import JSONSerializer
from stack_view import CA, MASTER, WORKERS, master_address, password

testinfra_hosts = [MASTER]
REPO = Path(__file__).resolve().parents[4]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def files():
    session = cluster_session(CA)  # verify=CA on a plain Session loses to REQUESTS_CA_BUNDLE, when it is set
    session.auth = ("cloudburst", password("files_reader_password"))
    base = f"https://{master_address()}:8080"
    return lambda path: session.get(f"{base}/{path}", timeout=60)


def test_nginx_serves_the_current_env_and_every_wheel_with_the_manifests_hashes(files):
    version = files("env/current").text.strip()
    archive = files(f"env/{version}/env.zip").content
    assert hashlib.sha256(archive).hexdigest() == version
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(archive)).read("cloudburst-manifest.json"))
    assert manifest["module"] == "worker"
    # Exactly the lock's packages (the path dependency built into a wheel of its own), each once.
    locked = json.loads((REPO / "files" / "env" / "epanet" / "Pipfile.lock").read_text())["default"]
    shipped = [canonical(wheel["file"].split("-")[0]) for wheel in manifest["wheels"]
               if wheel["file"] not in (manifest["installer"], manifest["bytecode"]["file"])]
    assert sorted(shipped) == sorted(canonical(name) for name in locked)
    assert manifest["installer"].startswith("uv-")  # the workers build the venv with uv, shipped like the wheels
    assert manifest["bytecode"]["file"].startswith("pyc-cpython-311-")  # compiled once on the controller
    for wheel in manifest["wheels"]:
        assert hashlib.sha256(files(f"wheels/{wheel['file']}").content).hexdigest() == wheel["sha256"], wheel["file"]


def test_a_second_push_changes_nothing():
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(REPO / "push-env.yml")],
                            env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    recap = result.stdout.split("PLAY RECAP", 1)[1]
    assert set(re.findall(r"changed=(\d+)", recap)) == {"0"}, recap


def test_workers_on_both_nodes_run_epanet_jobs_end_to_end():
    address = master_address()
    connection = redis.Redis(host=address, port=6379, ssl=True, ssl_ca_certs=CA, username="admin", password=password("redis_password"))
    deadline = time.monotonic() + 300  # each node downloads and installs the env (~100 MB of wheels)
    while len({worker.name.split(".")[0] for worker in Worker.all(connection=connection)}) < 2:
        assert time.monotonic() < deadline, "workers on both nodes did not start within 300 s"
        time.sleep(2)
    model = (Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp").read_bytes()
    sha = hashlib.sha256(model).hexdigest()
    uploaded = requests.put(f"https://{address}:8080/models/{sha}.inp", data=model,
                            auth=("uploader", password("files_uploader_password")), verify=CA, timeout=60)
    assert uploaded.status_code in (201, 204)
    queue = Queue("cloudburst", connection=connection, serializer=JSONSerializer)
    jobs = [queue.enqueue("worker.run", make_batch("molecule", [{
        "schema": "cloudburst.job/1", "ensemble": "molecule", "member": member,
        "input": {"url": f"https://nginx:8080/models/{sha}.inp", "sha256": sha},
        "run": {"alterations": [{"type": "demand_scale", "factor": 0.8 + 0.01 * member}]}}]))
        for member in range(40)]
    deadline = time.monotonic() + 120
    while any(job.get_status(refresh=True) not in ("finished", "failed") for job in jobs):
        assert time.monotonic() < deadline, "jobs did not finish within 120 s"
        time.sleep(1)
    assert [job.get_status() for job in jobs] == ["finished"] * 40, [job.exc_info for job in jobs if job.exc_info][:1]
    # Each batch's return names the host whose worker ran it: both worker hosts took jobs.
    assert {job.return_value()["worker"] for job in jobs} == set(WORKERS)
    store = WebDavStore(f"https://{address}:8080/results", ("cloudburst", password("files_reader_password")),
                        session=cluster_session(CA))
    rows = member_rows(store, "molecule", store.batches("molecule"))
    assert rows["member"].tolist() == list(range(40)) and set(rows["status"]) == {"finished"}
