"""The firewall role (cloudburst_firewall_enabled): the swarm's ports answer the cluster's hosts and drop
everyone else, here cb-stack-worker3, a host on the same network that is not (yet) in the inventory's groups."""
import re

import pytest

from stack_view import MASTER, WORKERS, cluster_host, host_address

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
    cluster = {f"{host_address(name)}/32" for name in [MASTER, *WORKERS]}
    for name in [MASTER, *WORKERS]:
        rules = cluster_host(name).check_output("iptables -S CLOUDBURST-SWARM")
        for protocol, port in [("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789)]:
            admitted = set(re.findall(rf"-s (\S+) -p {protocol} -m {protocol} --dport {port} -j ACCEPT", rules))
            assert admitted == cluster, (name, protocol, port)
            assert f"-p {protocol} -m {protocol} --dport {port} -j DROP" in rules
        assert cluster_host(name).check_output("iptables -S INPUT").splitlines()[1].endswith("-j CLOUDBURST-SWARM")
