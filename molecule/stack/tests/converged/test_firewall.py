"""The firewall role (cloudburst_firewall_enabled): the swarm's ports answer the cluster's hosts and drop
everyone else, here cb-stack-worker3, a host on the same network that is not (yet) in the inventory's groups."""
import pytest
from stack_view import (
    MASTER,
    WORKERS,
    assert_firewall_admits_exactly,
    cluster_host,
    host_address,
)

testinfra_hosts = [MASTER]
OUTSIDER = "cb-stack-worker3"
CONNECT = ("python3 -c \"import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\" "
           "{} {}")


@pytest.mark.parametrize("port", [2377, 7946])
def test_a_swarm_port_of_the_master_answers_a_cluster_host_and_drops_an_outsider(port):
    master = host_address(MASTER)
    assert cluster_host(WORKERS[0]).run(CONNECT.format(master, port)).rc == 0
    refused = cluster_host(OUTSIDER).run(CONNECT.format(master, port))
    assert refused.rc != 0 and "timed out" in refused.stderr, refused.stderr


def test_every_host_admits_exactly_the_cluster_hosts_on_every_swarm_port():
    assert_firewall_admits_exactly([MASTER, *WORKERS])
