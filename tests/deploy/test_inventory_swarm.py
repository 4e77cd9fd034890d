"""Inventory validation on this machine's own one-node swarm (Docker)."""
import subprocess

import pytest
from test_inventory_validation import (
    assert_stopped_before_any_change,
)


@pytest.fixture(scope="module")
def local_swarm(repo, ansible_env):
    """This machine as a one-node swarm (inventory/local), as `make demo` leaves it."""
    formed = subprocess.run(["ansible-playbook", "-i", "inventory/local", "site.yml", "--tags", "docker_engine,swarm"],
                            cwd=repo, env=ansible_env, capture_output=True, text=True, timeout=600)
    assert formed.returncode == 0, formed.stdout[-3000:]


def test_a_worker_label_no_node_carries_is_refused_before_images_and_stack(repo, ansible_env, local_swarm):
    result = subprocess.run(["ansible-playbook", "-i", "inventory/local", "site.yml", "--tags", "stack",
                             "-e", "stack_worker_label=gpu=true"],
                            cwd=repo, env=ansible_env, capture_output=True, text=True, timeout=300)
    assert_stopped_before_any_change(
        result, "stack_worker_label gpu=true matches no node of the swarm, so no worker would run")
    assert "Images | Look for" not in result.stdout and "Stack | Deploy" not in result.stdout
