"""Reading the swarm as the master sees it, for the scenario's testinfra tests."""
import json
import os

import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]


def cluster_host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def nodes_by_hostname() -> dict[str, dict]:
    """Every node the master lists, inspected, keyed by hostname."""
    master = cluster_host("cb-master")
    ids = master.check_output("docker node ls -q").split()
    inspected = json.loads(master.check_output("docker node inspect " + " ".join(ids)))
    by_name: dict[str, dict] = {}
    for node in inspected:
        name = node["Description"]["Hostname"]
        assert name not in by_name, f"{name} is listed twice by the manager"
        by_name[name] = node
    return by_name


def local_swarm_state(name: str) -> dict:
    return json.loads(cluster_host(name).check_output("docker info --format '{{json .Swarm}}'"))
