"""After shrink.yml (playbooks/remove-node.yml): cb-worker3 is gone, the rest untouched."""
from swarm_view import local_swarm_state, nodes_by_hostname

testinfra_hosts = ["cb-master"]


def test_master_no_longer_lists_the_removed_node():
    nodes = nodes_by_hostname()
    assert sorted(nodes) == ["cb-master", "cb-worker1", "cb-worker2"]
    assert all(node["Status"]["State"] == "ready" for node in nodes.values())


def test_removed_node_left_the_swarm():
    assert local_swarm_state("cb-worker3")["LocalNodeState"] == "inactive"
