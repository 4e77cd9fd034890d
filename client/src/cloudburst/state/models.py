"""Model files on a worker: downloaded once from the file service, their sha256 verified, kept on disk by URL and
sha256 (``ModelCache``). Reading them into model objects is ``cloudburst.engine.models``'.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import requests

from cloudburst.errors import InputError


class ModelCache:
    """Verified model files, keyed by URL and sha256: a job naming a URL that went away fails on every
    worker alike, even where another URL with the same content was cached."""

    def __init__(self, directory: str | os.PathLike[str], session: requests.Session | None = None,
                 timeout_s: float = 30.0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.session = session or requests.Session()
        self.timeout_s = timeout_s

    def path_for(self, url: str, sha256: str) -> Path:
        url_key = hashlib.sha256(url.encode()).hexdigest()[:16]
        cached = self.directory / f"{sha256}-{url_key}.inp"
        if cached.exists():
            return cached
        try:
            response = self.session.get(url, timeout=self.timeout_s)
        except requests.RequestException as error:
            raise InputError([f"$.input.url: cannot fetch {url}: {type(error).__name__}"]) from None
        if response.status_code != 200:
            raise InputError([f"$.input.url: fetching {url} answered HTTP {response.status_code}"])
        actual = hashlib.sha256(response.content).hexdigest()
        if actual != sha256:
            raise InputError([f"$.input.sha256: the model at {url} has sha256 {actual}, the job expects {sha256}"])
        # Write beside the final name and rename, so a concurrent reader never sees half a file.
        with tempfile.NamedTemporaryFile(dir=self.directory, delete=False, suffix=".part") as part:
            part.write(response.content)
        os.replace(part.name, cached)
        return cached
