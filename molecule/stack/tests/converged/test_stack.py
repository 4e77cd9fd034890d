"""After converge (and an idempotent re-run): every service up, on the right nodes, each behind its credentials;
site.yml in check mode changes nothing."""
import contextlib
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
import redis
import requests
from stack_view import (
    CA,
    redis_as,
    redis_user,
    MASTER,
    SECRET_COUNT,
    WORKERS,
    cloudburst,
    cluster_host,
    master_address,
    password,
    secret_values,
    services,
    tasks,
)

testinfra_hosts = [MASTER]
MASTER_SERVICES = ["influxdb", "nginx", "redis", "rq-dashboard"]


@pytest.fixture(scope="module")
def address() -> str:
    return master_address()


def test_every_service_runs_its_tasks():
    running = services()
    assert sorted(running) == sorted(MASTER_SERVICES + ["worker"])
    for name in running:
        states = [task["CurrentState"] for task in tasks(name)]
        assert states and all(state.startswith("Running") for state in states), (name, states)


def test_master_services_run_on_the_master_only():
    for name in MASTER_SERVICES:
        assert [task["Node"] for task in tasks(name)] == [MASTER]


def test_worker_runs_one_task_on_each_worker_node_and_none_on_the_master():
    assert sorted(task["Node"] for task in tasks("worker")) == WORKERS


def test_the_rerun_replaced_no_task():
    for name in services():
        assert tasks(name, desired="shutdown") == [], f"{name} had a task replaced"


def test_redis_refuses_a_command_without_a_user_and_accepts_each_user_with_its_password():
    with pytest.raises(redis.AuthenticationError):
        redis_as(None).ping()
    with pytest.raises(redis.AuthenticationError):  # the password-only default user is off, even with admin's
        redis_as(None, "redis_password").ping()
    with pytest.raises(redis.AuthenticationError):
        redis_as("submitter", "redis_worker_password").ping()
    for user in ("admin", "submitter", "worker", "dashboard", "reader"):
        assert redis_user(user).ping(), user


def test_the_deployed_redis_refuses_each_user_what_its_role_does_not_need():
    submitter, worker, reader = redis_user("submitter"), redis_user("worker"), redis_user("reader")
    for connection in (submitter, worker, reader):
        for command in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "SETUSER", "intruder", "on")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                connection.execute_command(*command)
    with pytest.raises(redis.exceptions.NoPermissionError):
        submitter.set("outside-cloudburst", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        submitter.publish("rq:pubsub:any-worker", '{"command": "shutdown"}')
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.set("cloudburst:probe", 1)
    admin = redis_user("admin")
    assert admin.acl_getuser("intruder") is None and admin.acl_getuser("default")["enabled"] is False


def influx_write(address: str, user: str | None, secret: str | None) -> requests.Response:
    auth = (user, password(secret)) if user else None
    return requests.post(f"https://{address}:8086/write", params={"db": "cloudburst", "precision": "s"},
                         data=f"probe,source=test value=1 {1_700_000_000}", auth=auth, verify=CA, timeout=10)


def test_influxdb_refuses_anonymous_writes_accepts_the_write_user_and_not_the_read_user(address):
    assert influx_write(address, None, None).status_code == 401
    assert influx_write(address, "cloudburst_writer", "influxdb_write_password").status_code == 204
    refused = influx_write(address, "cloudburst_reader", "influxdb_read_password")
    assert refused.status_code == 403 and "not authorized to write" in refused.text
    read = requests.post(f"https://{address}:8086/query", params={"db": "cloudburst", "q": "SELECT value FROM probe"},
                         auth=("cloudburst_reader", password("influxdb_read_password")), verify=CA, timeout=10)
    assert read.status_code == 200 and read.json()["results"][0]["series"][0]["values"][0][1] == 1


def test_nginx_serves_an_uploaded_file_and_refuses_uploads_without_the_uploader(address):
    """The uploader (client.toml) may PUT models, the workers may not; nobody may write env/ or wheels/ over HTTP:
    push-env writes them on the master, so a leaked client.toml cannot change the code the workers run."""
    url = f"https://{address}:8080/models/probe.inp"
    body = b"[TITLE]\nprobe\n"
    assert requests.put(url, data=body, verify=CA, timeout=10).status_code == 401
    assert requests.put(url, data=body, auth=("cloudburst", password("files_reader_password")), verify=CA, timeout=10).status_code == 401
    assert requests.put(url, data=body, auth=("uploader", password("files_uploader_password")), verify=CA, timeout=10).status_code in (201, 204)
    assert requests.get(url, verify=CA, timeout=10).status_code == 401
    served = requests.get(url, auth=("cloudburst", password("files_reader_password")), verify=CA, timeout=10)
    assert served.status_code == 200 and served.content == body
    uploader = ("uploader", password("files_uploader_password"))
    for path in ("env/probe.txt", "wheels/probe.txt", "env/current", "probe.txt"):
        assert requests.put(f"https://{address}:8080/{path}", data=b"x", auth=uploader, verify=CA, timeout=10).status_code == 403
        assert requests.delete(f"https://{address}:8080/{path}", auth=uploader, verify=CA, timeout=10).status_code == 403
    analyst = ("analyst", password("files_analyst_password"))
    assert requests.get(url, auth=analyst, verify=CA, timeout=10).status_code == 401  # the analyst reads results only
    assert requests.put(url, data=body, auth=analyst, verify=CA, timeout=10).status_code == 401


def test_the_results_store_takes_the_workers_writes_lists_as_json_and_refuses_anonymous_use(address):
    url = f"https://{address}:8080/results/probe-ensemble/members/0000000-0000000.parquet"
    worker = ("cloudburst", password("files_reader_password"))
    assert requests.put(url, data=b"PAR1", verify=CA, timeout=10).status_code == 401
    assert requests.put(url, data=b"PAR1", auth=worker, verify=CA, timeout=10).status_code in (201, 204)
    listing = requests.get(f"https://{address}:8080/results/probe-ensemble/members/", auth=worker, verify=CA, timeout=10)
    assert listing.status_code == 200 and [entry["name"] for entry in listing.json()] == ["0000000-0000000.parquet"]
    assert requests.get(url, verify=CA, timeout=10).status_code == 401
    analyst = ("analyst", password("files_analyst_password"))
    assert requests.get(url, auth=analyst, verify=CA, timeout=10).status_code == 200
    assert requests.put(url, data=b"PAR1", auth=analyst, verify=CA, timeout=10).status_code == 401
    assert requests.delete(url, auth=analyst, verify=CA, timeout=10).status_code == 401
    uploader = ("uploader", password("files_uploader_password"))
    assert requests.delete(f"https://{address}:8080/results/probe-ensemble/", auth=uploader, verify=CA, timeout=10).status_code == 204
    assert requests.get(url, auth=worker, verify=CA, timeout=10).status_code == 404


def test_rq_dashboard_requires_its_password(address):
    url = f"https://{address}:9181/"
    assert requests.get(url, verify=CA, timeout=10).status_code == 401
    assert requests.get(url, auth=("admin", "wrong"), verify=CA, timeout=10).status_code == 401
    assert requests.get(url, auth=("admin", password("rq_dashboard_password")), verify=CA, timeout=10).status_code == 200


def test_workers_wait_for_an_env_and_say_so(host):
    logs = host.check_output("docker service logs --raw cloudburst_worker 2>&1")
    assert "no env published yet" in logs


def test_data_written_before_a_forced_update(address):
    """Seeds the data tests/updated reads back after side_effect force_update.yml."""
    assert redis_user("admin").set("survivor", "still-here")
    assert influx_write(address, "cloudburst_writer", "influxdb_write_password").status_code == 204


def published_ports() -> dict[int, str]:
    """Every port the stack publishes, from the services' own specs (so a new one cannot slip by)."""
    ports = {}
    for name, service in services().items():
        for port in service["Endpoint"]["Spec"].get("Ports", []):
            ports[port["PublishedPort"]] = name
    return ports


PROBES = {6379: "/", 8086: "/query?q=SHOW+DATABASES", 8080: "/env/current", 9181: "/"}  # HTTP paths asking for a user


def test_every_published_port_speaks_tls_only_and_refuses_anonymous_use(address):
    ports = published_ports()
    assert ports == {6379: "redis", 8086: "influxdb", 8080: "nginx", 9181: "nginx"}  # rq-dashboard behind Nginx
    for port, service in ports.items():
        for plain in (b"PING\r\n", f"GET {PROBES[port]} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode()):
            with socket.create_connection((address, port), timeout=10) as connection:
                connection.sendall(plain)
                answer = b""
                with contextlib.suppress(OSError):
                    while chunk := connection.recv(4096):
                        answer += chunk
            # Nothing a plain-text client can use: a TLS alert, a closed connection, or HTTP 400 "use HTTPS"
            assert not re.search(rb"PONG|NOAUTH|WWW-Authenticate|HTTP/1\.[01] (200|401)", answer), (port, answer[:200])
            assert answer[:1] in (b"", b"\x15") or b"400" in answer.split(b"\r\n", 1)[0], (port, answer[:200])
        if service == "redis":
            with pytest.raises(redis.AuthenticationError):
                redis_as(None).get("cloudburst:ensembles")
        else:
            response = requests.get(f"https://{address}:{port}{PROBES[port]}", verify=CA, timeout=10)
            assert response.status_code == 401, (port, service)


def test_a_client_trusting_another_ca_is_refused_with_a_sentence_naming_the_host_and_the_ca(address, tmp_path):
    other = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other), "-days", "1", "-subj",
                    "/CN=Some other CA"], check=True, capture_output=True)
    refused = cloudburst("list", env={"CLOUDBURST_CA_FILE": str(other)})
    assert refused.returncode == 3, refused
    assert re.fullmatch(rf"cloudburst: Redis at rediss://{re.escape(address)}:6379/0 presents a certificate that the "
                        rf"CA in {re.escape(str(other))} does not vouch for \([a-z -]+\): is ca_file this cluster's CA "
                        r"\(site.yml writes it beside client.toml\)\?", refused.stderr.strip()), refused.stderr
    assert cloudburst("list").returncode == 0  # the CA site.yml wrote beside client.toml


def test_nginx_password_files_hash_at_crypts_own_cost_it_checks_on_every_request(host):
    """SHA-512 crypt at 5,000 rounds ($6$salt$hash, no rounds= field): at passlib's default 656,000 every
    authenticated request cost Nginx 0.45 s of CPU (a results GET, a batch PUT, a model download)."""
    nginx = host.check_output("docker ps -q --filter label=com.docker.swarm.service.name=cloudburst_nginx").strip()
    for name in ("files_htpasswd_readers", "files_htpasswd_uploaders", "files_htpasswd_results_writers",
                 "files_htpasswd_results_readers"):
        lines = host.check_output(f"docker exec {nginx} cat /run/secrets/{name}").split()
        assert lines and all(line.split(":", 1)[1].startswith("$6$") and "rounds=" not in line for line in lines), name


def test_no_password_shows_in_docker_inspect_or_service_logs(host):
    secrets = secret_values()
    assert len(secrets) == SECRET_COUNT
    inspected = host.check_output("docker service inspect $(docker service ls -q) && docker inspect $(docker ps -q)")
    logs = host.check_output("for s in $(docker service ls -q); do docker service logs --raw $s 2>&1; done")
    for secret in secrets:
        assert secret not in inspected and secret not in logs
    for name in WORKERS:  # the worker containers too, on their own hosts
        containers = cluster_host(name).check_output("docker inspect $(docker ps -q)")
        assert "CLOUDBURST_" in containers  # their settings are there, their passwords not
        assert not [secret for secret in secrets if secret in containers], name


def test_no_password_is_in_the_repository():
    """Neither in a tracked file nor in an untracked one Git would pick up (the generated secrets live outside)."""
    repo = Path(__file__).resolve().parents[4]
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            check=True, capture_output=True).stdout.decode().split("\0")
    secrets = [secret.encode() for secret in secret_values()]
    assert len(listed) > 100 and len(secrets) == SECRET_COUNT
    for name in filter(None, listed):
        path = repo / name
        if path.is_file():
            content = path.read_bytes()
            assert not [secret for secret in secrets if secret in content], name


def test_site_in_check_mode_on_the_converged_cluster_changes_nothing_and_fails_nowhere():
    """``site.yml --check`` against the converged scenario: every probe runs (check_mode: false where it only
    reads), nothing would change, no task fails. ``--diff`` names what would change if anything did."""
    repo = Path(__file__).resolve().parents[4]
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(repo / "roles"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CONFIG": str(repo / "ansible.cfg")}
    result = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--check", "--diff",
                             str(repo / "molecule" / "swarm" / "converge.yml")],
                            env=env, capture_output=True, text=True, timeout=900, cwd=repo)
    assert result.returncode == 0, result.stdout[-4000:]
    recap = result.stdout.split("PLAY RECAP", 1)[1]
    assert set(re.findall(r"changed=(\d+)", recap)) == {"0"}, result.stdout[-6000:]
    assert set(re.findall(r"failed=(\d+)", recap)) == {"0"}, recap
