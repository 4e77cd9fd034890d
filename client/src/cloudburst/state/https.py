"""HTTPS to the cluster's own services: verified against the cluster's CA (site.yml writes it beside client.toml;
on a worker the stack mounts it), never against it for anyone else's hosts (an S3 store keeps the system's CAs)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import requests

from cloudburst.errors import service_errors


class _ClusterSession(requests.Session):
    """A session whose CA file holds whatever the environment says: requests lets REQUESTS_CA_BUNDLE (often set
    system-wide) replace a session's own ``verify``, which would check the cluster's servers against the wrong CAs."""

    def merge_environment_settings(self, url: str | bytes | None, proxies: MutableMapping[str, str] | None,
                                   stream: bool | None, verify: bool | str | None, cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None or verify is True:
            settings["verify"] = self.verify
        return settings


def cluster_session(ca_file: str | None) -> requests.Session:
    """A session that verifies the cluster's servers against ``ca_file`` (the system's CAs when None)."""
    if not ca_file:
        return requests.Session()
    session = _ClusterSession()
    session.verify = ca_file
    return session


def trusted_ca(session: requests.Session) -> str | None:
    """The CA file a session verifies servers against, when it names one."""
    return session.verify if isinstance(session.verify, str) else None


@contextlib.contextmanager
def session_errors(service: str, url: str, session: requests.Session) -> Iterator[None]:
    """``service_errors`` for requests made with ``session``: a certificate it refuses names the CA it trusts."""
    with service_errors(service, url, trusted_ca(session)):
        yield
