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


def test_make_demo_runs_the_ensemble_and_draws_the_fan_chart(repo, deployed, tmp_path):
    """The README's `make demo`, as a new user runs it (on top of this machine's deployment)."""
    chart = repo / "demo-fan-chart.png"
    chart.unlink(missing_ok=True)
    demo = subprocess.run(["make", "demo"], cwd=repo, capture_output=True, text=True, timeout=1200)
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-4000:]
    assert "200/200  finished 200  failed 0" in demo.stderr
    assert "200 members, worst (lowest minimum pressure) first:" in demo.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ensemble = re.findall(r"ensemble (\S+): fan chart", demo.stdout)[-1]
    status = subprocess.run([str(repo / ".venv" / "bin" / "cloudburst"), "status", ensemble],
                            capture_output=True, text=True, timeout=120)
    assert "members 200  finished 200  failed 0  unbalanced 0  running 0  queued 0" in status.stdout
