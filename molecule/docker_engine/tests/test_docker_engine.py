"""What a user relies on after the docker_engine role ran on a bare host."""
import json


def test_engine_answers_with_the_version_of_the_package_the_role_installed(host):
    result = host.run("docker version --format '{{.Server.Version}}'")
    assert result.rc == 0, result.stderr
    packaged = host.package("docker.io").version  # docker_engine_source: distro (the scenario's default)
    assert packaged.startswith(result.stdout.strip() + "-"), (packaged, result.stdout)


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


def test_engine_runs_a_container_from_a_locally_imported_image_on_overlay2(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["Driver"] == "overlay2"
    # An image of the host's own echo and C library (no registry is needed, or reachable, to test the engine).
    host.check_output("tar -ch -C / usr/bin/echo lib64/ld-linux-x86-64.so.2 lib/x86_64-linux-gnu/libc.so.6 "
                      "| docker import - cloudburst-probe:engine")
    try:
        ran = host.run("docker run --rm cloudburst-probe:engine /usr/bin/echo ran on overlay2")
        assert ran.rc == 0 and ran.stdout.strip() == "ran on overlay2", ran.stderr
        layers = json.loads(host.check_output("docker image inspect cloudburst-probe:engine"))[0]["GraphDriver"]
        assert layers["Name"] == "overlay2"
    finally:
        host.run("docker rmi cloudburst-probe:engine")
