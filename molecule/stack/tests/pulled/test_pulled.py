"""After side_effect pulled.yml: make images-publish pushed CloudBurst's images to <registry>/published and
site.yml in pull mode put every service on them; the cluster runs an ensemble on them."""
from pathlib import Path

import pytest
import yaml
from registry_view import STACK_IMAGES, registry_address, registry_get, service_images
from stack_view import MASTER, WORKERS, cloudburst, cluster_host, tasks

testinfra_hosts = [MASTER]
REPO = Path(__file__).resolve().parents[4]
ADDED = "cb-stack-worker3"  # joined in grow.yml


def test_images_publish_pushed_the_same_images_under_the_named_namespace():
    repositories = set(registry_get("/v2/_catalog")["repositories"])
    assert {f"published/{name}" for name in STACK_IMAGES} <= repositories
    for name in STACK_IMAGES:
        assert registry_get(f"/v2/published/{name}/tags/list")["tags"] == \
            registry_get(f"/v2/cloudburst/{name}/tags/list")["tags"]  # the build context's hash, as in registry mode


def test_every_service_runs_the_published_images():
    images = service_images()
    assert all(image.startswith(f"{registry_address()}/published/") for image in images.values()), images
    for service in images:
        running = tasks(service)
        assert running and all(task["Image"] == images[service] for task in running), (service, running)


@pytest.mark.parametrize("name", [MASTER, *WORKERS, ADDED])
def test_each_node_pulled_what_it_runs_from_the_published_namespace(name):
    repositories = set(cluster_host(name).check_output("docker image ls --format '{{.Repository}}'").split())
    runs = {"worker"} if name != MASTER else {"redis", "influxdb", "nginx", "rq-dashboard"}
    assert {f"{registry_address()}/published/{image}" for image in runs} <= repositories


def test_an_ensemble_runs_on_the_pulled_images(tmp_path):
    scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    scenario.update(members=40, seed=11)
    path = tmp_path / "pulled.yml"
    path.write_text(yaml.safe_dump(scenario))
    submitted = cloudburst("submit", str(REPO / "files" / "models" / "Net3.inp"), str(path), "--name", "pulled-40",
                           "--wait", timeout=600)
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-2000:]
    status = cloudburst("status", "pulled-40")
    assert status.returncode == 0 and "finished 40  failed 0" in status.stdout, status.stdout
