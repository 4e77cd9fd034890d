"""After side_effect teardown.yml: no stack, no swarm, and (by default) the data volumes kept."""
import json

import pytest
from stack_view import MASTER, WORKERS, cluster_host

testinfra_hosts = [MASTER]
ADDED = "cb-stack-worker3"  # joined in grow.yml


@pytest.mark.parametrize("name", [MASTER, *WORKERS, ADDED])
def test_every_node_left_the_swarm_and_runs_no_stack_container(name):
    node = cluster_host(name)
    assert json.loads(node.check_output("docker info --format '{{json .Swarm.LocalNodeState}}'")) == "inactive"
    assert node.check_output("docker ps -q --filter label=com.docker.stack.namespace=cloudburst") == ""


def test_the_masters_data_volumes_are_kept():
    volumes = cluster_host(MASTER).check_output("docker volume ls -q --filter label=com.docker.stack.namespace=cloudburst")
    assert {"cloudburst_redis-data", "cloudburst_influxdb-data", "cloudburst_files"} <= set(volumes.split())


def test_the_registry_is_removed_and_its_images_kept():
    master = cluster_host(MASTER)
    assert master.check_output("docker ps -aq --filter name=cloudburst-registry") == ""
    assert "cloudburst-registry" in master.check_output("docker volume ls -q").split()
