"""After grow.yml: cb-worker3 joined, and the stale cb-worker2 was brought back."""
from swarm_view import local_swarm_state, nodes_by_hostname

testinfra_hosts = ["cb-master"]


def test_master_lists_four_ready_nodes_each_once():
    nodes = nodes_by_hostname()
    assert sorted(nodes) == ["cb-master", "cb-worker1", "cb-worker2", "cb-worker3"]
    assert all(node["Status"]["State"] == "ready" for node in nodes.values())


def test_added_worker_is_labelled_a_worker():
    labels = nodes_by_hostname()["cb-worker3"]["Spec"]["Labels"]
    assert labels["cloudburst.role"] == "worker"
    assert labels["cloudburst.worker"] == "true"


def test_stale_worker_rejoined_the_masters_swarm_as_a_worker():
    nodes = nodes_by_hostname()
    state = local_swarm_state("cb-worker2")
    assert state["LocalNodeState"] == "active"
    assert state["NodeID"] == nodes["cb-worker2"]["ID"]
    assert state["ControlAvailable"] is False
    assert nodes["cb-worker2"]["Spec"]["Labels"]["cloudburst.role"] == "worker"
