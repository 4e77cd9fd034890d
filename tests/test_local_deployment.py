"""site.yml on this machine (inventory/local, as `make demo` runs it): a stack that cannot converge is reported
with the service, the node and the task's error, and a normal re-run brings it back."""
import re
import socket
import subprocess

import pytest


def site(repo, env, *extra: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(["ansible-playbook", "-i", "inventory/local", "site.yml", *extra],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def deployed(repo, ansible_env):
    result = site(repo, ansible_env)
    assert result.returncode == 0, result.stdout[-4000:]
    yield
    restored = site(repo, ansible_env, "--tags", "stack")
    assert restored.returncode == 0, restored.stdout[-4000:]


def test_a_stack_that_cannot_converge_fails_naming_service_node_and_error(repo, ansible_env, deployed):
    # More CPUs than this machine has: swarm accepts the service, but Docker rejects every worker container.
    result = site(repo, ansible_env, "--tags", "stack", "-e", "stack_worker_cpus=64", "-e", "stack_converge_timeout_s=20")
    output = re.sub(r"\s+", " ", result.stdout)
    assert result.returncode != 0
    match = re.search(r"msg: 'The stack did not converge within 20 s: (.*?)'", output)
    assert match, output[-3000:]
    assert f"service worker on node {socket.gethostname()} is not running (rejected: " in match.group(1), match.group(1)
    assert "range of cpus" in match.group(1).lower()  # Docker's own error: "Range of CPUs is from 0.01 to ..."
    assert "service redis" not in match.group(1)  # the healthy services are not blamed
