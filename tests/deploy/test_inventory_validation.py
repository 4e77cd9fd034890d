"""Bad inventories and settings stop site.yml with one clear sentence before any host is changed.

The hosts are fake names on a local connection, so the validation runs for real (facts are
gathered from this machine) and the recap proves no task changed anything.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def host(**host_vars):
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "swarm_advertise_addr": "127.0.0.1", **host_vars}


def run_site(repo: Path, env: dict, tmp_path: Path, inventory: dict, *options: str) -> subprocess.CompletedProcess:
    inventory_file = tmp_path / "hosts.yml"
    inventory_file.write_text(yaml.safe_dump(inventory))
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory_file), str(repo / "site.yml"), *options],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def assert_stopped_before_any_change(result: subprocess.CompletedProcess, sentence: str) -> None:
    output = re.sub(r"\s+", " ", result.stdout + result.stderr)
    assert result.returncode != 0, output
    assert sentence in output, output
    assert "Docker engine | Install" not in output
    recap = result.stdout.split("PLAY RECAP", 1)[1]
    assert re.findall(r"changed=(\d+)", recap) and set(re.findall(r"changed=(\d+)", recap)) == {"0"}


def test_inventory_without_a_master_is_refused(repo, ansible_env, tmp_path):
    result = run_site(repo, ansible_env, tmp_path, {
        "cloudburst_workers": {"hosts": {"w1": host()}}})
    assert_stopped_before_any_change(
        result, "The inventory must put exactly one host in group 'cloudburst_master' (the master that "
                "initializes the swarm); it has 0.")


def test_inventory_with_two_initial_masters_is_refused(repo, ansible_env, tmp_path):
    result = run_site(repo, ansible_env, tmp_path, {
        "cloudburst_master": {"hosts": {"m1": host(), "m2": host()}},
        "cloudburst_workers": {"hosts": {"w1": host()}}})
    assert_stopped_before_any_change(result, "it has 2: m1, m2.")


def test_inventory_without_workers_is_refused(repo, ansible_env, tmp_path):
    result = run_site(repo, ansible_env, tmp_path, {
        "cloudburst_master": {"hosts": {"m1": host()}}})
    assert_stopped_before_any_change(
        result, "The inventory must put at least one host in group 'cloudburst_workers'")


def test_unknown_engine_source_is_refused_naming_the_variable(repo, ansible_env, tmp_path):
    result = run_site(repo, ansible_env, tmp_path, {
        "cloudburst_master": {"hosts": {"m1": host()}},
        "cloudburst_workers": {"hosts": {"w1": host(docker_engine_source="snap")}}})
    assert_stopped_before_any_change(
        result, "value of docker_engine_source must be one of: distro, docker, got: snap")


@pytest.mark.parametrize("host_vars, sentence", [
    ({"swarm_advertise_addr": "", "swarm_advertise_interface": "nosuch0"},
     "Host w1 has no advertise address: interface nosuch0 (swarm_advertise_interface) has no IPv4 address "
     "or does not exist."),
    ({"swarm_advertise_addr": "worker-one"},
     "Host w1 has no advertise address: swarm_advertise_addr is worker-one, not an IP address."),
])
def test_host_without_an_advertise_address_is_refused(repo, ansible_env, tmp_path, host_vars, sentence):
    result = run_site(repo, ansible_env, tmp_path, {
        "cloudburst_master": {"hosts": {"m1": host()}},
        "cloudburst_workers": {"hosts": {"w1": host(**host_vars)}}})
    assert_stopped_before_any_change(result, sentence)


def test_unknown_image_mode_is_refused_naming_the_variable(repo, ansible_env, tmp_path):
    result = run_site(repo, ansible_env, tmp_path, {
        "cloudburst_master": {"hosts": {"m1": host(images_mode="mirror")}},
        "cloudburst_workers": {"hosts": {"w1": host(images_mode="mirror")}}})
    assert_stopped_before_any_change(result, "value of images_mode must be one of: build, registry, pull, got: mirror")


def test_pull_mode_without_a_published_registry_is_refused_naming_make_images_publish(repo, ansible_env, tmp_path):
    result = run_site(repo, ansible_env, tmp_path, {
        "cloudburst_master": {"hosts": {"m1": host(images_mode="pull")}},
        "cloudburst_workers": {"hosts": {"w1": host(images_mode="pull")}}})
    assert_stopped_before_any_change(
        result, "images_mode is pull but images_pull_registry is empty: publish CloudBurst's images first with "
                "make images-publish REGISTRY=<registry>/<namespace>")


def test_vault_secrets_without_the_password_variables_are_refused_naming_them(repo, ansible_env, tmp_path):
    vault_mode = {"stack_secrets_source": "vault", "stack_redis_password": "set-in-vault"}
    result = run_site(repo, ansible_env, tmp_path, {
        "cloudburst_master": {"hosts": {"m1": host(**vault_mode)}},
        "cloudburst_workers": {"hosts": {"w1": host()}}})
    assert_stopped_before_any_change(
        result, "stack_secrets_source is vault but stack_redis_submitter_password, stack_redis_worker_password, "
                "stack_redis_dashboard_password, stack_redis_reader_password, stack_influxdb_admin_password, "
                "stack_influxdb_write_password, stack_influxdb_read_password, stack_grafana_admin_password, "
                "stack_rq_dashboard_password, stack_files_reader_password, stack_files_uploader_password, "
                "stack_files_analyst_password are not set")
    assert "stack_redis_password," not in re.sub(r"\s+", " ", result.stdout)


def kernel_does_esp() -> tuple[bool, str]:
    """Whether this machine's kernel takes the IPsec SA swarm's encrypted overlay needs (the probe is removed)."""
    spi = ["src", "192.0.2.7", "dst", "192.0.2.8", "proto", "esp", "spi", "0x5eed"]
    added = subprocess.run(["ip", "xfrm", "state", "add", *spi, "mode", "transport", "aead", "rfc4106(gcm(aes))",
                            "0x" + "ab" * 20, "64"], capture_output=True, text=True)
    if added.returncode == 0:
        subprocess.run(["ip", "xfrm", "state", "delete", *spi], check=True)
    return added.returncode == 0, added.stderr.strip()


def test_an_encrypted_overlay_is_refused_on_a_kernel_without_ipsec_and_accepted_on_one_with_it(
        repo, ansible_env, tmp_path):
    # Only the validation plays run (they are tagged always): a supported kernel must not get Docker installed.
    result = run_site(repo, ansible_env, tmp_path, {
        "cloudburst_master": {"hosts": {"m1": host(stack_overlay_encrypted=True)}},
        "cloudburst_workers": {"hosts": {"w1": host(stack_overlay_encrypted=True)}}}, "--tags", "validation-only")
    supported, kernel_says = kernel_does_esp()
    if supported:
        assert result.returncode == 0, result.stdout[-3000:]
    else:
        assert_stopped_before_any_change(
            result, f"stack_overlay_encrypted is true but the kernel of m1 cannot do the IPsec ESP (rfc4106(gcm(aes))) "
                    f"swarm encrypts the overlay with: {kernel_says}")


def ip_command_answering(tmp_path: Path, exit_code: int, kernel_says: str) -> Path:
    """A directory whose `ip` answers the xfrm probe as a kernel with (exit 0) or without IPsec ESP would; every
    other use goes to the real ip. The real kernel decides only one branch of the test above: this runs both."""
    shim = tmp_path / "ip-shim"
    shim.mkdir()
    real_ip = subprocess.run(["sh", "-c", "command -v ip"], capture_output=True, text=True, check=True).stdout.strip()
    (shim / "ip").write_text(f"""#!/bin/sh
if [ "$1 $2" = "xfrm state" ]; then
  [ {exit_code} -ne 0 ] && echo "{kernel_says}" >&2
  exit {exit_code}
fi
exec {real_ip} "$@"
""")
    (shim / "ip").chmod(0o755)
    return shim


@pytest.mark.parametrize("supported", [True, False], ids=["kernel with ESP", "kernel without ESP"])
def test_both_outcomes_of_the_encryption_probe_run_on_any_kernel(repo, ansible_env, tmp_path, supported):
    says = "RTNETLINK answers: Function not implemented"
    shim = ip_command_answering(tmp_path, 0 if supported else 2, says)
    env = {**ansible_env, "PATH": f"{shim}:{ansible_env['PATH']}"}
    result = run_site(repo, env, tmp_path, {
        "cloudburst_master": {"hosts": {"m1": host(stack_overlay_encrypted=True)}},
        "cloudburst_workers": {"hosts": {"w1": host(stack_overlay_encrypted=True)}}}, "--tags", "validation-only")
    if supported:
        assert result.returncode == 0, result.stdout[-3000:]
        assert "Stack | Remove the probe's security association" in result.stdout
    else:
        assert_stopped_before_any_change(
            result, "stack_overlay_encrypted is true but the kernel of m1 cannot do the IPsec ESP (rfc4106(gcm(aes))) "
                    f"swarm encrypts the overlay with: {says}")
