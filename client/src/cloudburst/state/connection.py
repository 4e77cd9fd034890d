"""How CloudBurst connects to Redis, the client and the workers' runner alike: a ``rediss://`` URL is verified
against the cluster's CA, and every request goes out in as few writes as its size allows.

redis-py writes a request as the pieces it packed it in: a pipeline in pieces of up to 6,000 bytes, and each
argument longer than that as three (its header, itself, its end). Over TLS each write is a record of its own, and
Redis decrypts and reads one record per turn of its event loop: a job's start or end took two or three turns
where one does, and Redis's CPU per job grew by a quarter with TLS (``bench/master_load.py``, docs/scaling.md).
Here the pieces are joined into writes of up to ``WRITE_BYTES``."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis import Redis
from redis.connection import Connection, SSLConnection

__all__ = ["WRITE_BYTES", "WholeRequestConnection", "WholeRequestSSLConnection", "coalesced", "connect"]

# Four TLS records of 16 KB: what Redis reads in four turns whatever the writes; larger pieces (a task set's packed
# arguments) are written as they are, not copied.
WRITE_BYTES = 65536


def coalesced(pieces: Iterable[bytes | memoryview]) -> list[bytes | memoryview]:
    """The pieces joined, in order, into as few writes of up to ``WRITE_BYTES`` as they fit in."""
    writes: list[bytes | memoryview] = []
    pending: list[bytes | memoryview] = []
    pending_bytes = 0
    for piece in pieces:
        if pending and pending_bytes + len(piece) > WRITE_BYTES:
            writes.append(b"".join(pending))
            pending, pending_bytes = [], 0
        if len(piece) > WRITE_BYTES:
            writes.append(piece)
            continue
        pending.append(piece)
        pending_bytes += len(piece)
    if pending:
        writes.append(b"".join(pending) if len(pending) > 1 else pending[0])
    return writes


class WholeRequestConnection(Connection):
    """redis-py's connection, writing each request whole (``coalesced``)."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        super().send_packed_command(command if isinstance(command, (str, bytes)) else coalesced(command),
                                    check_health)


class WholeRequestSSLConnection(WholeRequestConnection, SSLConnection):
    """redis-py's TLS connection, writing each request whole (``WholeRequestConnection``'s way, before
    ``SSLConnection`` in the order Python looks methods up): one TLS record where it fits in one."""


def connect(url: str, username: str | None = None, password: str | None = None, ca_file: str | None = None,
            **options: Any) -> Redis:
    """A client of the Redis at ``url`` (no connection is opened until first used); a ``rediss://`` one verified
    against ``ca_file`` when given. ``options`` go to redis-py (``socket_connect_timeout``)."""
    tls = url.startswith("rediss:")
    if tls and ca_file:
        options["ssl_ca_certs"] = ca_file
    return Redis.from_url(url, username=username or None, password=password or None,
                          connection_class=WholeRequestSSLConnection if tls else WholeRequestConnection, **options)
