"""What Redis answers, as CloudBurst reads it: the connections keep Redis's bytes (no ``decode_responses``: results
and packs are binary), and redis-py types every answer as bytes or str; these say which is meant."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.typing import EncodableT, FieldT


def text(value: Any) -> str:
    """A key, field or member name stored as UTF-8."""
    return value.decode() if isinstance(value, bytes) else str(value)


def binary(value: Any) -> bytes:
    """A stored value read as the bytes it was written as."""
    return value if isinstance(value, bytes) else str(value).encode()


def fields(mapping: Mapping[str, EncodableT]) -> dict[FieldT, EncodableT]:
    """A hash's fields as redis-py's ``hset(mapping=...)`` takes them."""
    hash_fields: dict[FieldT, EncodableT] = {}
    hash_fields.update(mapping)
    return hash_fields
