"""After remove_dead.yml: cb-worker2 was powered off and removed with playbooks/remove-node.yml; the master no
longer lists it and the remaining nodes are ready."""
from swarm_view import nodes_by_hostname

testinfra_hosts = ["cb-master"]


def test_master_no_longer_lists_the_dead_node_and_the_others_are_ready():
    nodes = nodes_by_hostname()
    assert sorted(nodes) == ["cb-master", "cb-worker1"]
    assert all(node["Status"]["State"] == "ready" for node in nodes.values())
