"""Models on the cluster's file service (Nginx): uploaded once by sha256, fetched back for a retry; where the
results store is on it; and the manifest of the env the workers run.

A model's path is ``models/<sha256>.inp``; the client reaches Nginx at ``files_url``, workers at
``cluster_files_url`` (the URL written into every job), both built here.
"""
from __future__ import annotations

import io
import json
import zipfile

import requests

from cloudburst.config import Settings
from cloudburst.errors import refused
from cloudburst.state.https import cluster_session, session_errors

ENV_MANIFEST = "cloudburst-manifest.json"  # inside env.zip: written by push-env (roles/push_env/files/package_env.py)


def model_path(sha256: str) -> str:
    return f"models/{sha256}.inp"


def results_url(settings: Settings) -> str:
    """The results store as the client reaches it: ``results_url``, or the file service's ``results/``."""
    return settings.results_url or f"{settings.files_url}/results"


def results_credentials(settings: Settings) -> tuple[str, str]:
    """The results store's user and password (an S3 store's access and secret key); default the file service's."""
    if settings.results_user:
        return settings.results_user, settings.results_password
    return settings.files_user, settings.files_password


def model_input(settings: Settings, sha256: str) -> dict[str, str]:
    """The job's ``input`` for a model on this cluster: the URL workers fetch and the hash they verify."""
    return {"url": f"{settings.cluster_files_url}/{model_path(sha256)}", "sha256": sha256}


class ModelStore:
    def __init__(self, settings: Settings, session: requests.Session | None = None):
        self.url = settings.files_url
        self.auth = (settings.files_user, settings.files_password)
        self.session = session or cluster_session(settings.ca_file or None)

    def has(self, sha256: str) -> bool:
        """Whether the store holds the model already."""
        with session_errors("Nginx", self.url, self.session):
            present = self.session.head(f"{self.url}/{model_path(sha256)}", auth=self.auth, timeout=30)
        if present.status_code in (401, 403):
            raise refused("Nginx", self.url, present, "a model check", self.auth[0])
        return present.status_code == 200

    def upload(self, data: bytes, sha256: str) -> bool:
        """Upload the model unless the store has it already; returns whether it was uploaded."""
        if self.has(sha256):
            return False
        location = f"{self.url}/{model_path(sha256)}"
        with session_errors("Nginx", self.url, self.session):
            put = self.session.put(location, data=data, auth=self.auth, timeout=300)
        if put.status_code not in (201, 204):
            raise refused("Nginx", self.url, put, "the model upload", self.auth[0])
        return True

    def fetch(self, sha256: str) -> bytes:
        with session_errors("Nginx", self.url, self.session):
            response = self.session.get(f"{self.url}/{model_path(sha256)}", auth=self.auth, timeout=300)
        if response.status_code != 200:
            raise refused("Nginx", self.url, response, f"fetching model {sha256[:12]}", self.auth[0])
        return response.content


def current_env_manifest(settings: Settings, session: requests.Session | None = None) -> dict | None:
    """The manifest (``cloudburst-manifest.json``) of the env the workers run now, or None when no env is
    published (workers started with an env of their own, as in a test)."""
    session = session or cluster_session(settings.ca_file or None)
    auth = (settings.files_user, settings.files_password)
    with session_errors("Nginx", settings.files_url, session):
        current = session.get(f"{settings.files_url}/env/current", auth=auth, timeout=30)
        if current.status_code == 404:
            return None
        if current.status_code != 200:
            raise refused("Nginx", settings.files_url, current, "reading the current env", auth[0])
        version = current.text.strip()
        archive = session.get(f"{settings.files_url}/env/{version}/env.zip", auth=auth, timeout=300)
    if archive.status_code != 200:
        raise refused("Nginx", settings.files_url, archive, f"fetching env {version[:12]}", auth[0])
    with zipfile.ZipFile(io.BytesIO(archive.content)) as env_zip:
        manifest = json.loads(env_zip.read(ENV_MANIFEST))
    return {**manifest, "version": version}
