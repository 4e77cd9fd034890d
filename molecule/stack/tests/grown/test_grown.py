"""After side_effect grow.yml: the added worker host joined, got its worker task and takes jobs; nothing else
was restarted."""
import hashlib
import time
from pathlib import Path

import redis
import requests
import wntr
from cloudburst.api.queue import enqueue_batches
from cloudburst.schema.batch import batch_name, make_batch
from cloudburst.schema.queues import job_id, open_queue
from cloudburst.state.ledger import Ledger
from rq import Worker
from stack_view import (
    CA,
    MASTER,
    WORKERS,
    assert_firewall_admits_exactly,
    master_address,
    password,
    services,
    tasks,
)

testinfra_hosts = [MASTER]
ADDED = "cb-stack-worker3"


def test_the_worker_service_now_runs_on_the_added_host_too():
    assert sorted(task["Node"] for task in tasks("worker")) == sorted(WORKERS + [ADDED])


def test_the_firewall_of_every_host_now_admits_the_added_host():
    assert_firewall_admits_exactly([MASTER, *WORKERS, ADDED])


def test_no_task_on_the_other_hosts_was_replaced_by_adding_a_host():
    # The added host's own first worker tasks may be rejected until its images are loaded (swarm places the
    # task as soon as the labelled node joins); tasks elsewhere must all be the ones that ran before.
    replaced = {name: len([task for task in tasks(name, desired="shutdown") if task["Node"] != ADDED])
                for name in services()}
    # Redis and InfluxDB were replaced once, on purpose, by side_effect force_update.yml; Redis once more by
    # tests/users (killed: the people's users survive a restart).
    assert replaced == {"redis": 2, "influxdb": 1, "nginx": 0, "rq-dashboard": 0, "worker": 0}


def test_the_added_host_takes_jobs():
    address = master_address()
    connection = redis.Redis(host=address, port=6379, ssl=True, ssl_ca_certs=CA, username="admin", password=password("redis_password"))
    deadline = time.monotonic() + 300  # the new host downloads and installs the env first
    # Worker containers take their node's name: RQ worker names and status records say which host ran a job.
    while not any(worker.name.split(".")[0] == ADDED for worker in Worker.all(connection=connection)):
        assert time.monotonic() < deadline, "the added host's worker did not start within 300 s"
        time.sleep(2)
    model = (Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp").read_bytes()
    sha = hashlib.sha256(model).hexdigest()
    assert requests.head(f"https://{address}:8080/models/{sha}.inp", verify=CA, timeout=30,
                         auth=("cloudburst", password("files_reader_password"))).status_code == 200
    documents = [{"schema": "cloudburst.job/1", "ensemble": "grown", "member": member,
                  "input": {"url": f"https://nginx:8080/models/{sha}.inp", "sha256": sha}} for member in range(60)]
    queue = open_queue(connection)
    enqueue_batches(queue, Ledger(connection), "grown", (make_batch("grown", [document]) for document in documents))
    jobs = [queue.fetch_job(job_id("grown", batch_name(member, member))) for member in range(60)]
    deadline = time.monotonic() + 120
    while any(job.get_status(refresh=True) not in ("finished", "failed") for job in jobs):
        assert time.monotonic() < deadline, "jobs did not finish within 120 s"
        time.sleep(1)
    hosts = {job.return_value()["worker"] for job in jobs}
    assert hosts == set(WORKERS + [ADDED])
