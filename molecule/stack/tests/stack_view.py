"""The deployed stack as users meet it: services on the master, its published ports reached from the controller."""
import json
import os
import re
import subprocess
from pathlib import Path

import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SECRETS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets"
# The cluster's CA (role tls): every service's certificate is verified against it.
CA = str(SECRETS / "cluster-ca.crt")
MASTER = "cb-stack-master"
WORKERS = ["cb-stack-worker1", "cb-stack-worker2"]


def cluster_host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def password(name: str) -> str:
    return (SECRETS / name).read_text().strip()


# The stack's 13 generated passwords, the registry's password, password file and key, the cluster CA's key and the
# master's key.
SECRET_COUNT = 18


def secret_values() -> list[str]:
    """Everything in the controller's secrets directory that must not leak: all but the registry's certificates
    and certificate requests, which are public."""
    return [path.read_text().strip() for path in sorted(SECRETS.rglob("*"))
            if path.is_file() and path.suffix not in (".crt", ".csr")]


def host_address(name: str) -> str:
    """A test host's address on the scenario's network."""
    inspected = json.loads(subprocess.check_output(["docker", "inspect", name]))
    return inspected[0]["NetworkSettings"]["Networks"]["cb-stack"]["IPAddress"]


def master_address() -> str:
    """The master's address, where its published ports answer."""
    return host_address(MASTER)


def services() -> dict[str, dict]:
    master = cluster_host(MASTER)
    ids = master.check_output("docker service ls -q --filter label=com.docker.stack.namespace=cloudburst").split()
    inspected = json.loads(master.check_output("docker service inspect " + " ".join(ids)))
    return {service["Spec"]["Name"].removeprefix("cloudburst_"): service for service in inspected}


def tasks(service: str, desired: str = "running") -> list[dict]:
    master = cluster_host(MASTER)
    lines = master.check_output(f"docker service ps cloudburst_{service} --no-trunc --filter desired-state={desired} "
                                "--format '{{json .}}'").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


CLIENT_CONFIG = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "client.toml"  # site.yml writes it


def playbook(path: str, *extra: str) -> subprocess.CompletedProcess:
    """One of the repository's playbooks run against the scenario's hosts, as a user runs it."""
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(repo / "roles"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CONFIG": str(repo / "ansible.cfg")}
    return subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(repo / path), *extra],
                          env=env, capture_output=True, text=True, timeout=1200, cwd=repo)


def redis_as(user: str | None, secret: str | None = None, port: int = 6379) -> "redis.Redis":
    """Redis on the master over TLS (verified against the cluster's CA) as one of its users, or none."""
    import redis
    return redis.Redis(host=master_address(), port=port, ssl=True, ssl_ca_certs=CA, username=user,
                       password=password(secret) if secret else None, socket_timeout=10)


def redis_user(name: str) -> "redis.Redis":
    """Redis as one of the stack's users with its own password (admin's is redis_password)."""
    return redis_as(name, "redis_password" if name == "admin" else f"redis_{name}_password")


def client_env(**overrides: str) -> dict[str, str]:
    """The environment the cloudburst CLI runs in: the settings site.yml wrote for this cluster."""
    return {**os.environ, "CLOUDBURST_CONFIG": str(CLIENT_CONFIG), **overrides}


def client_settings():
    from cloudburst.config import Settings
    return Settings.load(CLIENT_CONFIG)


def cloudburst(*args: str, timeout: float = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["cloudburst", *args], env=client_env(**(env or {})), capture_output=True, text=True,
                          timeout=timeout)


def assert_firewall_admits_exactly(hosts: list[str]) -> None:
    """Every host's CLOUDBURST-SWARM chain admits exactly these hosts on every swarm port, drops the rest, and
    INPUT jumps to it first."""
    cluster = {f"{host_address(name)}/32" for name in hosts}
    for name in hosts:
        rules = cluster_host(name).check_output("iptables -S CLOUDBURST-SWARM")
        for protocol, port in [("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789)]:
            admitted = set(re.findall(rf"-s (\S+) -p {protocol} -m {protocol} --dport {port} -j ACCEPT", rules))
            assert admitted == cluster, (name, protocol, port)
            assert f"-p {protocol} -m {protocol} --dport {port} -j DROP" in rules
        assert cluster_host(name).check_output("iptables -S INPUT").splitlines()[1].endswith("-j CLOUDBURST-SWARM")
