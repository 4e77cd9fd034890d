"""Evaluation rounds' replies in Redis, owned here:

- ``cloudburst:round:<session>:<round>``  list, one entry per chunk a worker answered (``ChunkReply.to_bytes``);
                                          the client pops them as they come (BLPOP) and the list expires
                                          ``REPLY_TTL_S`` after the last push, so a client that died mid-round
                                          leaves nothing behind

A chunk whose job ran twice (its worker died after answering) answers twice: the client keeps the first answer of
each chunk.
"""
from __future__ import annotations

import time

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cloudburst.state import redis_values
from cloudburst.state.blocking import MAX_BLOCK_S, blocking_client

PREFIX = "cloudburst:round:"
REPLY_TTL_S = 600


def reply_key(session: str, round_: int) -> str:
    return f"{PREFIX}{session}:{round_}"


def push_reply(redis: Redis, key: str, reply: bytes) -> None:
    """A worker's answer to one chunk, in one round trip."""
    pipeline = redis.pipeline(transaction=True)
    pipeline.rpush(key, reply)
    pipeline.expire(key, REPLY_TTL_S)
    pipeline.execute()


class Replies:
    """A round's reply list as the client waits on it (``cloudburst.state.blocking``)."""

    def __init__(self, redis: Redis):
        self._redis = blocking_client(redis)

    def take(self, key: str, timeout_s: float) -> list[bytes]:
        """Every reply waiting on ``key``, blocking up to ``timeout_s`` for the first; [] when none came (or Redis
        is away: the caller's check of the jobs tells the rest)."""
        try:
            first = self._redis.blpop([key], timeout=max(min(timeout_s, MAX_BLOCK_S), 0.001))
            if first is None:
                return []
            pipeline = self._redis.pipeline(transaction=True)
            pipeline.lrange(key, 0, -1)
            pipeline.delete(key)
            rest = pipeline.execute()[0]
        except (RedisConnectionError, RedisTimeoutError):
            self._redis.connection_pool.disconnect()
            time.sleep(min(timeout_s, 1.0))
            return []
        return [redis_values.binary(first[1]), *(redis_values.binary(reply) for reply in rest)]

    def forget(self, key: str) -> None:
        try:
            self._redis.delete(key)
        except (RedisConnectionError, RedisTimeoutError):
            pass  # it expires

    def close(self) -> None:
        self._redis.close()
