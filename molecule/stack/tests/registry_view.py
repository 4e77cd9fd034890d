"""The cluster's registry (images_mode registry) as the controller reaches it: TLS through the cluster's own CA."""
import base64
import json
import ssl
import urllib.request

from stack_view import SECRETS, master_address, password

REGISTRY_PORT = 5000
STACK_IMAGES = ["redis", "influxdb", "nginx", "rq-dashboard", "worker"]


def registry_address() -> str:
    return f"{master_address()}:{REGISTRY_PORT}"


def cluster_ca() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(SECRETS / "cluster-ca.crt"))


def registry_get(path: str, *, login: bool = True, context: ssl.SSLContext | None = None) -> dict:
    request = urllib.request.Request(f"https://{registry_address()}{path}")
    if login:
        token = base64.b64encode(f"cloudburst:{password('registry_password')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, context=context or cluster_ca(), timeout=15) as response:
        return json.load(response)


def service_images() -> dict[str, str]:
    from stack_view import services
    return {name: service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] for name, service in services().items()}
