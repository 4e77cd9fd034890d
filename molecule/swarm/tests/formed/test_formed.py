"""After the first converge: a master and two workers, labelled by node ID."""
from swarm_view import cluster_host, local_swarm_state, nodes_by_hostname

testinfra_hosts = ["cb-master"]


def test_master_lists_exactly_the_three_inventory_hosts_all_ready():
    nodes = nodes_by_hostname()
    assert sorted(nodes) == ["cb-master", "cb-worker1", "cb-worker2"]
    assert all(node["Status"]["State"] == "ready" for node in nodes.values())


def test_master_is_the_only_manager_and_leader():
    nodes = nodes_by_hostname()
    assert nodes["cb-master"]["Spec"]["Role"] == "manager"
    assert nodes["cb-master"]["ManagerStatus"]["Leader"] is True
    assert nodes["cb-worker1"]["Spec"]["Role"] == "worker"
    assert nodes["cb-worker2"]["Spec"]["Role"] == "worker"


def test_nodes_carry_cloudburst_role_labels_and_inventory_labels():
    nodes = nodes_by_hostname()
    assert nodes["cb-master"]["Spec"]["Labels"] == {"cloudburst.role": "master", "cloudburst.worker": "false"}
    assert nodes["cb-worker1"]["Spec"]["Labels"] == {
        "cloudburst.role": "worker", "cloudburst.worker": "true", "zone": "a"}
    assert nodes["cb-worker2"]["Spec"]["Labels"] == {"cloudburst.role": "worker", "cloudburst.worker": "true"}


def test_workers_advertise_their_eth0_address(host):
    nodes = nodes_by_hostname()
    for name in ("cb-worker1", "cb-worker2"):
        state = local_swarm_state(name)
        eth0 = cluster_host(name).interface("eth0").addresses
        assert nodes[name]["Status"]["Addr"] == state["NodeAddr"]
        assert state["NodeAddr"] in eth0, (state["NodeAddr"], eth0)


def test_spare_host_is_untouched_by_site_yml():
    assert not cluster_host("cb-worker3").exists("dockerd")
