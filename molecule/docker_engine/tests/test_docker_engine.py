"""What a user relies on after the docker_engine role ran on a bare host."""
import json


def test_engine_answers_and_reports_a_server_version(host):
    result = host.run("docker version --format '{{.Server.Version}}'")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip()


def test_engine_runs_as_the_daemon_the_role_started(host):
    pid = host.file("/var/run/docker.pid").content_string.strip()
    assert host.file(f"/proc/{pid}/comm").content_string.strip() == "dockerd"


def test_daemon_settings_come_from_role_variables(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "20m", "max-file": "3"}
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "json-file"
    assert info["DockerRootDir"] == "/var/lib/docker"


def test_docker_sdk_and_community_docker_dependencies_import(host):
    result = host.run("python3 -c 'import docker, jsondiff, yaml; print(docker.__version__)'")
    assert result.rc == 0, result.stderr


def test_engine_can_run_a_container_on_overlay2(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["Driver"] == "overlay2"
