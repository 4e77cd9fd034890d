"""Registry mode on a mixed Debian 12/13 cluster: the controller pushed CloudBurst's images once to the master's
registry (TLS through the cluster's CA, logins required) and every node pulled what it runs from there."""
import json
import ssl
import urllib.error
import urllib.request

import pytest
from registry_view import (
    STACK_IMAGES,
    cluster_ca,
    registry_address,
    registry_get,
    service_images,
)
from stack_view import MASTER, WORKERS, cluster_host, tasks

testinfra_hosts = [MASTER]


def test_the_registry_holds_each_stack_image_under_cloudburst():
    repositories = registry_get("/v2/_catalog")["repositories"]
    assert {f"cloudburst/{name}" for name in STACK_IMAGES} <= set(repositories)
    for name in STACK_IMAGES:
        assert len(registry_get(f"/v2/cloudburst/{name}/tags/list")["tags"]) == 1


def test_every_service_but_grafana_runs_an_image_from_the_registry():
    images = service_images()
    assert set(images) == {"redis", "influxdb", "nginx", "rq-dashboard", "worker"}
    assert all(image.startswith(f"{registry_address()}/cloudburst/") for image in images.values()), images


def test_the_registry_refuses_requests_without_a_login():
    with pytest.raises(urllib.error.HTTPError) as refused:
        registry_get("/v2/_catalog", login=False)
    assert refused.value.code == 401


def test_the_registrys_certificate_is_trusted_only_through_the_clusters_ca():
    with pytest.raises(urllib.error.URLError) as refused:
        registry_get("/v2/", context=ssl.create_default_context())
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    assert registry_get("/v2/", context=cluster_ca()) == {}


def test_plain_http_gets_no_registry_answer():
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{registry_address()}/v2/_catalog", timeout=15)
    assert refused.value.code == 400  # Go's TLS server: "Client sent an HTTP request to an HTTPS server"


@pytest.mark.parametrize("name", [MASTER, *WORKERS])
def test_each_node_pulled_its_stack_images_and_was_sent_none_as_an_archive(name):
    node = cluster_host(name)
    images = [json.loads(line) for line in node.check_output("docker image ls --format '{{json .}}'").splitlines()]
    repositories = {image["Repository"] for image in images}
    runs = {"worker"} if name in WORKERS else {"redis", "influxdb", "nginx", "rq-dashboard"}
    assert {f"{registry_address()}/cloudburst/{image}" for image in runs} <= repositories
    # Only the master received an archive: the registry's own image, under its local name.
    local = {repository for repository in repositories if repository.startswith("cloudburst/")}
    assert local == ({"cloudburst/registry"} if name == MASTER else set())
    assert node.check_output("ls /var/tmp") == ""


def test_the_registry_comes_back_with_its_host_and_keeps_its_images_on_a_volume():
    inspected = json.loads(cluster_host(MASTER).check_output("docker inspect cloudburst-registry"))[0]
    assert inspected["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert {"Type": "volume", "Name": "cloudburst-registry"}.items() <= next(
        mount for mount in inspected["Mounts"] if mount["Destination"] == "/var/lib/docker-registry").items()
    assert inspected["State"]["Running"]


def test_the_cluster_mixes_debian_12_and_13_and_runs_workers_on_both():
    releases = {name: cluster_host(name).check_output(". /etc/os-release && echo $VERSION_ID")
                for name in [MASTER, *WORKERS]}
    assert sorted(set(releases.values())) == ["12", "13"], releases
    running = {task["Node"] for task in tasks("worker")}
    assert {releases[node] for node in running} == {"12", "13"}
