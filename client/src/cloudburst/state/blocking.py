"""Blocking reads on Redis (XREAD, BLPOP) as a client waits on the workers: on a connection pool of their own whose
socket times out shortly after the longest block, so a master that vanished without closing the connection costs
one wait, not a hang, and the shared pool's connections never sit in a block."""
from __future__ import annotations

from redis import ConnectionPool, Redis

MAX_BLOCK_S = 10.0  # one blocking read waits in Redis at most this long (its socket gives up 5 s later)


def blocking_client(redis: Redis) -> Redis:
    """A client for blocking reads, to the same server with the same credentials as ``redis``."""
    shared = redis.connection_pool
    options = {**shared.connection_kwargs, "socket_timeout": MAX_BLOCK_S + 5.0}
    return Redis(connection_pool=ConnectionPool(connection_class=shared.connection_class, **options))
