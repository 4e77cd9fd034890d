"""Ensemble records in Redis: what was submitted, when, from which model and scenario, and its state.

The keys are owned here, as RQ's ``Job.key_for`` owns a job's: ``cloudburst:ensemble:<name>`` (a hash) and the
index ``cloudburst:ensembles`` (a set of names). Nothing else writes them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from redis import Redis

from cloudburst.errors import InputError
from cloudburst.job import DEFAULT_START

RECORD_PREFIX = "cloudburst:ensemble:"
INDEX_KEY = "cloudburst:ensembles"
SUBMITTED, RETRIED, CANCELLED = "submitted", "retried", "cancelled"


def key_for(name: str) -> str:
    return f"{RECORD_PREFIX}{name}"


@dataclass(frozen=True)
class EnsembleRecord:
    name: str
    members: int
    seed: int
    model_sha256: str
    scenario: dict[str, Any]
    start_time_utc: str = DEFAULT_START.isoformat()  # member 0's start
    start_every_s: int = 0                           # member i starts i times this later
    created_at: str = ""
    state: str = SUBMITTED

    def member_start(self, member: int) -> int:
        """A member's start as a Unix timestamp."""
        return int(datetime.fromisoformat(self.start_time_utc).timestamp()) + member * self.start_every_s

    def to_redis(self) -> dict[str, str | int]:
        fields = asdict(self)
        del fields["name"]
        return {**fields, "scenario": json.dumps(self.scenario)}

    @classmethod
    def from_redis(cls, name: str, fields: dict[bytes, bytes]) -> "EnsembleRecord":
        text = {key.decode(): value.decode() for key, value in fields.items()}
        return cls(name=name, members=int(text["members"]), seed=int(text["seed"]),
                   model_sha256=text["model_sha256"], scenario=json.loads(text["scenario"]),
                   start_time_utc=text.get("start_time_utc", DEFAULT_START.isoformat()),
                   start_every_s=int(text.get("start_every_s", 0)), created_at=text["created_at"],
                   state=text["state"])


class Records:
    """The ensemble records of one cluster's Redis."""

    def __init__(self, redis: Redis):
        self.redis = redis

    def refuse_taken(self, name: str) -> None:
        """Raise InputError when an ensemble of that name exists (create checks again, atomically)."""
        if self.redis.sismember(INDEX_KEY, name):
            raise _taken(name)

    def create(self, record: EnsembleRecord) -> EnsembleRecord:
        """Store a new record, stamped now; refuses a name already taken (the index entry is claimed first)."""
        if not self.redis.sadd(INDEX_KEY, record.name):
            raise _taken(record.name)
        created = EnsembleRecord(**{**asdict(record), "created_at":
                                    datetime.now(timezone.utc).isoformat(timespec="seconds")})
        self.redis.hset(key_for(record.name), mapping=created.to_redis())
        return created

    def get(self, name: str) -> EnsembleRecord:
        fields = self.redis.hgetall(key_for(name))
        if not fields:
            raise InputError(f"no ensemble {name!r}; `cloudburst list` shows the ensembles")
        return EnsembleRecord.from_redis(name, fields)

    def set_state(self, name: str, state: str) -> None:
        self.redis.hset(key_for(name), "state", state)

    def delete(self, name: str) -> None:
        pipeline = self.redis.pipeline(transaction=True)
        pipeline.delete(key_for(name))
        pipeline.srem(INDEX_KEY, name)
        pipeline.execute()

    def names(self) -> list[str]:
        return sorted(name.decode() for name in self.redis.smembers(INDEX_KEY))


def _taken(name: str) -> InputError:
    return InputError(f"ensemble {name!r} exists; give another name")
