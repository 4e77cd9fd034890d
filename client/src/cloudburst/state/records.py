"""Records in Redis of what was submitted: ensembles (when, from which model and scenario, their state) and task
sets (which function, how many tasks). One namespace holds both, told apart by the record's ``kind``, so a name
is either an ensemble or a task set and the ledger, queue and store serve both alike.

The keys are owned here, as RQ's ``Job.key_for`` owns a job's: ``cloudburst:ensemble:<name>`` (a hash), the
index ``cloudburst:ensembles`` (a set of names) and ``cloudburst:deleted`` (a hash: name -> what was deleted and
when, so that a deleted name still answers "deleted"; submitting that name again takes it back). Nothing else
writes them.

What a person is told of an ensemble or task set (``cloudburst.api.progress.shown_state``) comes from the stored
stamp (submitted, retried, cancelled) and its progress: running, finished, finished with failures, cancelled,
deleted.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from cloudburst.errors import InputError
from cloudburst.schema.defaults import DEFAULT_START
from cloudburst.state import redis_values

RECORD_PREFIX = "cloudburst:ensemble:"
INDEX_KEY = "cloudburst:ensembles"
DELETED_KEY = "cloudburst:deleted"
# The stamps a record stores. A record is made "submitting"; its jobs reach the queue all at once at the end of the
# submit, which stamps it "submitted" (``cloudburst.api.queue.enqueue_batches``).
SUBMITTING, SUBMITTED, RETRIED, CANCELLED = "submitting", "submitted", "retried", "cancelled"
# Shown for a record still "submitting" whose client stopped staging jobs (``Ledger.staging``): nothing of it runs.
CUT_OFF = "cut off (retry or delete)"
# What is shown: derived from the stamp and the progress.
RUNNING, FINISHED, FINISHED_WITH_FAILURES, DELETED = "running", "finished", "finished with failures", "deleted"
# A record's kind (records written before task sets have none: ensembles).
ENSEMBLE, TASKS, DESIGN, CALIBRATION = "ensemble", "tasks", "design", "calibration"
KIND_WORDS = {ENSEMBLE: "an ensemble", TASKS: "a task set", DESIGN: "a design study",
              CALIBRATION: "a calibration study"}
KIND_COMMANDS = {ENSEMBLE: "cloudburst status", TASKS: "cloudburst tasks status", DESIGN: "cloudburst design",
                 CALIBRATION: "cloudburst calibrate"}
SEARCHES = (DESIGN, CALIBRATION)  # the studies a client searches a generation at a time (``SearchRecord``)


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
    owner: str = ""                                  # the Redis user who submitted it ("": before owners were)

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
                   state=text["state"], owner=text.get("owner", ""))


@dataclass(frozen=True)
class TaskSetRecord:
    name: str
    tasks: int
    function: str      # module:function
    timeout_s: int     # each task's
    created_at: str = ""
    state: str = SUBMITTED
    kind: str = TASKS
    owner: str = ""

    def to_redis(self) -> dict[str, str | int]:
        fields = asdict(self)
        del fields["name"]
        return fields

    @classmethod
    def from_redis(cls, name: str, fields: dict[bytes, bytes]) -> "TaskSetRecord":
        text = {key.decode(): value.decode() for key, value in fields.items()}
        return cls(name=name, tasks=int(text["tasks"]), function=text["function"], timeout_s=int(text["timeout_s"]),
                   created_at=text["created_at"], state=text["state"], owner=text.get("owner", ""))


@dataclass(frozen=True)
class SearchRecord:
    """A design or calibration study (``cloudburst.api.design``, ``cloudburst.api.calibration``): its model and
    scenario, so that it resumes from its name; its progress is its stored generations."""
    name: str
    model_sha256: str
    scenario: dict[str, Any]
    created_at: str = ""
    state: str = SUBMITTED
    kind: str = DESIGN
    owner: str = ""

    def to_redis(self) -> dict[str, str | int]:
        fields = asdict(self)
        del fields["name"]
        return {**fields, "scenario": json.dumps(self.scenario)}

    @classmethod
    def from_redis(cls, name: str, fields: dict[bytes, bytes]) -> "SearchRecord":
        text = {key.decode(): value.decode() for key, value in fields.items()}
        return cls(name=name, model_sha256=text["model_sha256"], scenario=json.loads(text["scenario"]),
                   created_at=text["created_at"], state=text["state"], kind=text["kind"], owner=text.get("owner", ""))


Record = EnsembleRecord | TaskSetRecord | SearchRecord


class Records:
    """The ensemble and task set records of one cluster's Redis; ``owner`` is the Redis user whose client creates
    records (``cloudburst.state.people``)."""

    def __init__(self, redis: Redis, owner: str = ""):
        self.redis = redis
        self.owner = owner

    def refuse_taken(self, name: str) -> None:
        """Raise InputError when an ensemble of that name exists (create checks again, atomically)."""
        if self.redis.sismember(INDEX_KEY, name):
            raise _taken(name)

    def create(self, record: Record) -> Record:
        """Store a new record, stamped now; refuses a name already taken (the index entry is claimed first). A
        deleted name is free again."""
        if not self.redis.sadd(INDEX_KEY, record.name):
            raise _taken(record.name)
        self.redis.hdel(DELETED_KEY, record.name)
        created = type(record)(**{**asdict(record), "state": SUBMITTING, "owner": self.owner,
                                  "created_at": datetime.now(UTC).isoformat(timespec="seconds")})
        self.redis.hset(key_for(record.name), mapping=redis_values.fields(created.to_redis()))
        return created

    def _fields(self, name: str, kind: str) -> dict[bytes, bytes]:
        stored = {redis_values.binary(key): redis_values.binary(value)
                  for key, value in self.redis.hgetall(key_for(name)).items()}
        if not stored:
            what = KIND_WORDS[kind].split(" ", 1)[1]
            raise InputError(f"no {what} {name!r}; `cloudburst list` shows the ensembles and task sets")
        actual = redis_values.text(stored.get(b"kind", ENSEMBLE.encode()))
        if actual != kind:
            raise InputError(f"{name!r} is {KIND_WORDS[actual]}: see `{KIND_COMMANDS[actual]} {name}`")
        return stored

    def kind(self, name: str) -> str:
        """ENSEMBLE or TASKS; InputError when nothing has that name."""
        kind = self.redis.hget(key_for(name), "kind")
        if kind is None and not self.redis.exists(key_for(name)):
            gone = self.redis.hget(DELETED_KEY, name)
            if gone is not None:
                raise InputError(f"{name!r} was deleted at {json.loads(gone)['deleted_at']}")
            raise InputError(f"no ensemble or task set {name!r}; `cloudburst list` shows them")
        return redis_values.text(kind) if kind is not None else ENSEMBLE

    def get(self, name: str) -> EnsembleRecord:
        return EnsembleRecord.from_redis(name, self._fields(name, ENSEMBLE))

    def get_taskset(self, name: str) -> TaskSetRecord:
        return TaskSetRecord.from_redis(name, self._fields(name, TASKS))

    def get_search(self, name: str, kind: str) -> SearchRecord:
        """A design (``DESIGN``) or calibration (``CALIBRATION``) study's record."""
        return SearchRecord.from_redis(name, self._fields(name, kind))

    def get_any(self, name: str) -> Record:
        """The record of that name, whatever its kind."""
        kind = self.kind(name)
        if kind == TASKS:
            return self.get_taskset(name)
        return self.get_search(name, kind) if kind in SEARCHES else self.get(name)

    def owners(self, names: list[str]) -> dict[str, str]:
        """Each name's owner ("" for one recorded before owners were, or gone), read in one round trip."""
        pipeline = self.redis.pipeline(transaction=False)
        for name in names:
            pipeline.hget(key_for(name), "owner")
        return {name: redis_values.text(owner) if owner is not None else ""
                for name, owner in zip(names, pipeline.execute())}

    def set_state(self, name: str, state: str) -> None:
        self.redis.hset(key_for(name), "state", state)

    def set_members(self, name: str, members: int) -> None:
        """An adaptive ensemble's member count: the members enqueued so far, and at its end those that ran."""
        self.redis.hset(key_for(name), "members", members)

    def set_adaptive(self, name: str, state: dict[str, Any]) -> None:
        """An adaptive ensemble's latest intervals and progress (``cloudburst.adaptive.state_text``)."""
        self.redis.hset(key_for(name), "adaptive", json.dumps(state))

    def adaptive(self, name: str) -> dict[str, Any] | None:
        text = self.redis.hget(key_for(name), "adaptive")
        return None if text is None else json.loads(text)

    def mark_deleted(self, name: str) -> None:
        """The tombstone: what the record was (kind, creation, size) and when it was deleted. Set before anything
        of the ensemble is removed, so that work still running on it sees it (``Ledger``) and keeps nothing."""
        fields = {redis_values.text(key): redis_values.text(value)
                  for key, value in self.redis.hgetall(key_for(name)).items()}
        gone = {"kind": fields.get("kind", ENSEMBLE), "created_at": fields.get("created_at", ""),
                "owner": fields.get("owner", ""),
                "members": int(fields.get("members", fields.get("tasks", 0))), "function": fields.get("function", ""),
                "deleted_at": datetime.now(UTC).isoformat(timespec="seconds")}
        self.redis.hset(DELETED_KEY, name, json.dumps(gone))

    def delete(self, name: str) -> None:
        """Remove the record, leaving its tombstone (``mark_deleted``, set now when it was not before)."""
        if not self.redis.hexists(DELETED_KEY, name):
            self.mark_deleted(name)
        pipeline = self.redis.pipeline(transaction=True)
        pipeline.delete(key_for(name))
        pipeline.srem(INDEX_KEY, name)
        pipeline.execute()

    def deleted(self) -> dict[str, dict[str, Any]]:
        """Names deleted and not submitted again: kind, created_at, members (tasks), function, deleted_at."""
        deleted = sorted(self.redis.hgetall(DELETED_KEY).items())
        return {redis_values.text(name): json.loads(value) for name, value in deleted}

    def names(self) -> list[str]:
        return sorted(redis_values.text(name) for name in self.redis.smembers(INDEX_KEY))


def _taken(name: str) -> InputError:
    return InputError(f"an ensemble or task set named {name!r} exists; give another name")
