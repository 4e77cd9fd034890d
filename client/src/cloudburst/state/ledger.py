"""An ensemble's ledger in Redis: which members each batch holds, which finished or failed, how often each ran.

Keys, owned here (``cloudburst.records`` owns the ensemble's record beside them):

- ``cloudburst:ensemble:<name>:plan``        hash, batch -> its members (written when the batch is enqueued)
- ``cloudburst:ensemble:<name>:done``        hash, batch -> {"finished": ranges, "failed": {member: reason}}
- ``cloudburst:ensemble:<name>:executions``  hash, batch -> how many times the batch ran to the end
- ``cloudburst:ensemble:<name>:attempts``    hash, batch -> how many attempts at it began: the latest's number
                                             is the fencing token only that attempt may record (and checkpoint)
                                             with
- ``cloudburst:ensemble:<name>:stats``       hash: ``done`` (members recorded so far, each batch adds its own),
                                             ``at`` and ``members`` (when statistics last ran, over how many)
- ``cloudburst:ensemble:<name>:stats-pending``  the ID of the statistics job queued or running: one at a time
                                             (``cloudburst.state.statistics_jobs`` takes over a claim whose job
                                             is gone)
- ``cloudburst:ensemble:<name>:arguments``   hash, a task set's pack -> its tasks' arguments (zlib'd JSON), kept
                                             for ``retry`` longer than RQ keeps the job's own copy
- ``cloudburst:ensemble:<name>:staged``      list, the job IDs a submit (or retry) has written and not queued yet;
                                             it lives ``STAGING_TTL_S`` past the client's last chunk
- ``cloudburst:ensemble:<name>:signals``     stream, one entry per batch recorded (``batch``) and per statistics
                                             run written (``statistics``), capped near ``SIGNALS_KEPT``: what a
                                             waiting client blocks on instead of polling
- ``cloudburst:ensemble:<name>:partial:<batch>``  hash, member -> its result (``engine.MemberResult.to_bytes``):
                                             a running batch's finished members, so that a batch whose worker
                                             died runs only the rest; gone once the batch is recorded

A worker records a finished batch in one step (its outcome and its execution count), after the batch's files are
in the store: a batch is either stored and recorded, or runs again. Each run of a batch job is an attempt that
begins by taking a fencing token (``begin``); an attempt that began after the batch was recorded does nothing, and
an attempt overtaken by a newer one (a cut-off host's, a job RQ gave up on and queued again) neither checkpoints,
stores nor records once the newer one has begun: the token is checked in the same script that records. So each
batch records one execution, whatever fault made its job run again.
"""
from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cloudburst.state import redis_values
from cloudburst.state.blocking import MAX_BLOCK_S, blocking_client
from cloudburst.state.records import DELETED_KEY

PREFIX = "cloudburst:ensemble:"
PLAN, DONE, EXECUTIONS, STATS, STATS_PENDING = "plan", "done", "executions", "stats", "stats-pending"
ATTEMPTS = "attempts"
# Why an attempt at a batch stored and recorded nothing (``BatchOutcome.superseded``).
RECORDED_ALREADY = "the batch was recorded already by an earlier attempt: not run again"
OVERTAKEN = "a newer attempt at the batch began: this one stores and records nothing"
DELETED = "the ensemble was deleted: nothing of the batch is kept"
# The scripts read the records' tombstones (``cloudburst.state.records.DELETED_KEY``, a hash of deleted names): an
# ensemble deleted while its batches run gets nothing back from them.
# ``begin``: -1 for a deleted ensemble, 0 when the batch is recorded already (nothing to run), else the new
# attempt's fencing token, and then, given the batch's partial key, what earlier attempts kept (HGETALL's pairs).
# KEYS: done, attempts, tombstones[, partial]; ARGV: batch, ensemble.
_BEGIN = """
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then return {-1} end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {0} end
local token = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if KEYS[4] then return {token, redis.call('HGETALL', KEYS[4])} end
return {token}
"""
# ``record_batch``: -2 for a deleted ensemble, -1 for an attempt that is not the latest (or a batch recorded
# already), else the members the ensemble has recorded so far. KEYS: done, partial, executions, stats, attempts,
# tombstones, signals; ARGV: batch, outcome, members, token ("" for a caller without one), ensemble, signals kept.
_RECORD = """
if redis.call('HEXISTS', KEYS[6], ARGV[5]) == 1 then return -2 end
if ARGV[4] ~= '' and (redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[4] or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1)
then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[6], '*', 'recorded', ARGV[1])
return redis.call('HINCRBY', KEYS[4], 'done', ARGV[3])
"""
# ``checkpoint``: kept only by the latest attempt of an ensemble not deleted. KEYS: partial, attempts, tombstones;
# ARGV: batch, token, ttl, ensemble, member, data...
_CHECKPOINT = """
if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then return 0 end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
PARTIAL, ARGUMENTS, STAGED, SIGNALS = "partial", "arguments", "staged", "signals"
# A waiting client reads the signals after the last one it saw: it needs only the newest few (a reader that fell
# further behind reads the state anyway). Redis trims the stream near this length.
SIGNALS_KEPT = 100
STATISTICS_SIGNAL = "statistics"
# A client that wrote no chunk of its jobs for this long is taken as cut off: its staged jobs are never queued.
STAGING_TTL_S = 30
# A batch's checkpoint outlives a worker that died with it by this long (its retry comes within minutes).
PARTIAL_TTL_S = 7 * 86400
# A claimed statistics run that never started (its worker died) stops blocking the next one after this long.
STATS_CLAIM_S = 600
# Takes over a claim (ARGV[2]: the new job ID, ARGV[3]: its seconds) only while it still names the stale job ARGV[1]
# (or, ARGV[1] empty, while there is none): of two callers that found the same stale claim, one queues a job.
_TAKE_OVER_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if (ARGV[1] == '' and not held) or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def key_for(name: str, part: str) -> str:
    return f"{PREFIX}{name}:{part}"


def ranges(members: Iterable[int]) -> list[list[int]]:
    """Members as [first, last] runs: a batch's contiguous members take a few bytes, not one number each."""
    runs: list[list[int]] = []
    for member in sorted(members):
        if runs and member == runs[-1][1] + 1:
            runs[-1][1] = member
        else:
            runs.append([member, member])
    return runs


def expand(runs: list[list[int]]) -> list[int]:
    return [member for first, last in runs for member in range(first, last + 1)]


@dataclass(frozen=True)
class StatisticsClaim:
    job_id: str   # the statistics job its claimer queued (or is about to)
    age_s: int    # since it was claimed


@dataclass
class BatchOutcome:
    finished: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    unbalanced: dict[int, str] = field(default_factory=dict)  # hydraulics stopped balancing (UNBALANCED STOP)
    members_done: int = 0  # set once recorded: the ensemble's members recorded so far (not stored)
    # Why this attempt stored and recorded nothing: the batch was recorded already, or a newer attempt overtook it.
    superseded: str = ""
    resumed: list[int] = field(default_factory=list)  # not run again: kept by an earlier run of the batch

    def to_json(self) -> str:
        return json.dumps({"finished": ranges(self.finished), "failed": {str(m): r for m, r in self.failed.items()},
                           "unbalanced": {str(m): r for m, r in self.unbalanced.items()}})

    @classmethod
    def from_json(cls, text: bytes | str) -> "BatchOutcome":
        data = json.loads(text)
        return cls(expand(data["finished"]), {int(member): reason for member, reason in data["failed"].items()},
                   {int(member): reason for member, reason in data.get("unbalanced", {}).items()})

    @property
    def recorded(self) -> int:
        return len(self.finished) + len(self.failed) + len(self.unbalanced)


class Ledger:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._begin = redis.register_script(_BEGIN)
        self._record = redis.register_script(_RECORD)
        self._checkpoint = redis.register_script(_CHECKPOINT)

    def begin(self, name: str, batch: str) -> int:
        """A new attempt at the batch: its fencing token (1, 2, ...), 0 when the batch is recorded already, -1 when
        the ensemble was deleted."""
        return int(self._begin(keys=[key_for(name, DONE), key_for(name, ATTEMPTS), DELETED_KEY], args=[batch, name])[0])

    def resume(self, name: str, batch: str) -> tuple[int, dict[int, bytes]]:
        """``begin``, and the members of the batch earlier, unfinished attempts kept (``checkpointed``), in one round
        trip: a new attempt's token and what it need not run again."""
        reply = self._begin(keys=[key_for(name, DONE), key_for(name, ATTEMPTS), DELETED_KEY,
                                  key_for(name, f"{PARTIAL}:{batch}")], args=[batch, name])
        pairs = reply[1] if len(reply) > 1 else []
        return int(reply[0]), {int(member): redis_values.binary(data) for member, data in zip(pairs[::2], pairs[1::2])}

    def is_latest(self, name: str, batch: str, token: int) -> bool:
        """Whether the attempt holding ``token`` is still the batch's latest and the batch is not recorded: the
        check before it writes the batch's files."""
        pipeline = self.redis.pipeline(transaction=True)
        pipeline.hget(key_for(name, ATTEMPTS), batch)
        pipeline.hexists(key_for(name, DONE), batch)
        latest, recorded = pipeline.execute()
        return latest is not None and int(latest) == token and not recorded

    def plan_batches(self, pipeline: Pipeline, name: str, batches: dict[str, list[int]]) -> None:
        """Queue (on the caller's pipeline, beside the jobs) which members each new batch holds."""
        pipeline.hset(key_for(name, PLAN), mapping={batch: json.dumps(ranges(members))
                                                    for batch, members in batches.items()})

    def drop_batches(self, name: str, batches: list[str]) -> None:
        """Forget batches removed from the queue before they ran (an adaptive ensemble that stopped early)."""
        if batches:
            self.redis.hdel(key_for(name, PLAN), *batches)

    def plan(self, name: str) -> dict[str, list[int]]:
        return {redis_values.text(batch): expand(json.loads(members))
                for batch, members in self.redis.hgetall(key_for(name, PLAN)).items()}

    def record_batch(self, name: str, batch: str, outcome: BatchOutcome, token: int | None = None) -> int | None:
        """Record a stored batch; returns how many members the ensemble's batches have recorded so far, or None
        when the attempt holding ``token`` was overtaken by a newer one, the batch is recorded already or the
        ensemble was deleted (nothing changes; ``deleted`` tells the last apart). Without a token (a batch run
        outside a queue's job) only a deleted ensemble refuses it."""
        recorded = int(self._record(
            keys=[key_for(name, DONE), key_for(name, f"{PARTIAL}:{batch}"), key_for(name, EXECUTIONS),
                  key_for(name, STATS), key_for(name, ATTEMPTS), DELETED_KEY, key_for(name, SIGNALS)],
            args=[batch, outcome.to_json(), outcome.recorded, "" if token is None else token, name, SIGNALS_KEPT]))
        return None if recorded < 0 else recorded

    def stage(self, pipeline: Pipeline, name: str, job_ids: list[str]) -> None:
        """Queue (on the caller's pipeline) job IDs written and not queued yet; the list lives ``STAGING_TTL_S``
        past the last chunk."""
        pipeline.rpush(key_for(name, STAGED), *job_ids)
        pipeline.expire(key_for(name, STAGED), STAGING_TTL_S)

    def staged_key(self, name: str) -> str:
        return key_for(name, STAGED)

    def staging(self, name: str) -> bool:
        """Whether a client is queueing the ensemble's jobs now (its staged list has not expired)."""
        return bool(self.redis.exists(key_for(name, STAGED)))

    def deleted(self, name: str) -> bool:
        """Whether the ensemble (or task set) was deleted and not submitted again."""
        return bool(self.redis.hexists(DELETED_KEY, name))

    def checkpoint(self, name: str, batch: str, results: dict[int, bytes], token: int | None = None) -> bool:
        """Keep finished members of a running batch (one command for all of them); False, keeping nothing, for an
        attempt that a newer one overtook."""
        pairs = [part for member, data in results.items() for part in (str(member), data)]
        return bool(self._checkpoint(keys=[key_for(name, f"{PARTIAL}:{batch}"), key_for(name, ATTEMPTS), DELETED_KEY],
                                     args=[batch, "" if token is None else token, PARTIAL_TTL_S, name, *pairs]))

    def checkpointed(self, name: str, batch: str) -> dict[int, bytes]:
        """The members of the batch an earlier, unfinished run of it kept."""
        return {int(member): redis_values.binary(data)
                for member, data in self.redis.hgetall(key_for(name, f"{PARTIAL}:{batch}")).items()}

    def keep_arguments(self, name: str, packs: dict[str, list[list[Any]]]) -> None:
        """Keep each pack's ``[index, arguments]`` pairs (a task set's), for a retry to enqueue them again."""
        if packs:
            self.redis.hset(key_for(name, ARGUMENTS), mapping={
                pack: zlib.compress(json.dumps(tasks, separators=(",", ":")).encode())
                for pack, tasks in packs.items()})

    def arguments(self, name: str) -> dict[int, Any]:
        """Every kept task's arguments, by task index."""
        kept: dict[int, Any] = {}
        for data in self.redis.hvals(key_for(name, ARGUMENTS)):
            unpacked = json.loads(zlib.decompress(redis_values.binary(data)))
            kept.update((index, arguments) for index, arguments in unpacked)
        return kept

    def claim_statistics(self, name: str, job_id: str) -> bool:
        """True for the one caller that may queue the next statistics job, as ``job_id`` (none is queued or
        running)."""
        return bool(self.redis.set(key_for(name, STATS_PENDING), job_id, nx=True, ex=STATS_CLAIM_S))

    def statistics_claim(self, name: str) -> StatisticsClaim | None:
        """The job the statistics claim names, and how long ago it was taken; None: no claim."""
        pipeline = self.redis.pipeline(transaction=False)
        pipeline.get(key_for(name, STATS_PENDING))
        pipeline.ttl(key_for(name, STATS_PENDING))
        held, ttl_s = pipeline.execute()
        if held is None:
            return None
        return StatisticsClaim(redis_values.text(held), STATS_CLAIM_S - max(int(ttl_s), 0))

    def take_over_statistics(self, name: str, stale: StatisticsClaim | None, job_id: str) -> bool:
        """Claim the next statistics job, as ``job_id``, from a claim whose job is gone (or from none)."""
        return bool(self.redis.eval(_TAKE_OVER_SCRIPT, 1, key_for(name, STATS_PENDING),
                                    "" if stale is None else stale.job_id, job_id, STATS_CLAIM_S))

    def release_statistics(self, name: str, job_id: str | None = None) -> None:
        """A statistics job done: the next may be queued. With ``job_id``, only while the claim is still that job's
        (a job taken for gone that ran on after all leaves its successor's claim alone)."""
        if job_id is None:
            self.redis.delete(key_for(name, STATS_PENDING))
        else:
            self.redis.eval(_RELEASE_SCRIPT, 1, key_for(name, STATS_PENDING), job_id)

    def done(self, name: str) -> dict[str, BatchOutcome]:
        return {redis_values.text(batch): BatchOutcome.from_json(outcome)
                for batch, outcome in self.redis.hgetall(key_for(name, DONE)).items()}

    def executions(self, name: str) -> dict[str, int]:
        counts = self.redis.hgetall(key_for(name, EXECUTIONS))
        return {redis_values.text(batch): int(count) for batch, count in counts.items()}

    def stats_state(self, name: str) -> dict[str, float]:
        return {redis_values.text(key): float(value) for key, value in self.redis.hgetall(key_for(name, STATS)).items()}

    def set_stats_state(self, name: str, **values: float) -> None:
        pipeline = self.redis.pipeline(transaction=True)
        pipeline.hset(key_for(name, STATS), mapping=redis_values.fields(values))
        pipeline.xadd(key_for(name, SIGNALS), {"recorded": STATISTICS_SIGNAL}, maxlen=SIGNALS_KEPT, approximate=True)
        pipeline.execute()

    def signals(self, name: str) -> Signals:
        """What the workers record of ``name`` from now on (make it before reading the state: no signal falls
        between the read and the wait)."""
        return Signals(self.redis, key_for(name, SIGNALS))

    def forget(self, name: str) -> None:
        partial = [key_for(name, f"{PARTIAL}:{batch}") for batch in self.plan(name)]
        self.redis.delete(*(key_for(name, part) for part in (PLAN, DONE, EXECUTIONS, ATTEMPTS, STATS, STATS_PENDING,
                                                             ARGUMENTS, STAGED, SIGNALS)), *partial)


class Signals:
    """One ensemble's or task set's signals stream as a client waits on it: each ``wait`` blocks in Redis (XREAD)
    until an entry newer than the last one seen comes (``cloudburst.state.blocking``)."""

    def __init__(self, redis: Redis, key: str):
        self._redis = blocking_client(redis)
        self._key = key
        self._last: str | None = None  # the newest entry seen; None: not read yet (Redis was away)
        self._mark()

    def _mark(self) -> None:
        try:
            newest = self._redis.xrevrange(self._key, count=1)
            self._last = redis_values.text(newest[0][0]) if newest else "0-0"
        except (RedisConnectionError, RedisTimeoutError):
            self._last = None

    def wait(self, timeout_s: float) -> bool:
        """Block until a signal comes (True, every waiting one taken) or ``timeout_s`` passes (False). With Redis
        away it sleeps the time out and says False: the caller's read of the state tells the rest."""
        started = time.monotonic()
        if self._last is None:
            self._mark()
            if self._last is None:
                time.sleep(timeout_s)
                return False
            return True  # the state may have moved while Redis was away: read it
        block_ms = max(int(min(timeout_s, MAX_BLOCK_S) * 1000), 1)
        try:
            entries = self._redis.xread({self._key: self._last}, block=block_ms)
        except (RedisConnectionError, RedisTimeoutError):
            self._redis.connection_pool.disconnect()
            self._last = None
            time.sleep(max(timeout_s - (time.monotonic() - started), 0.0))
            return False
        if not entries:
            return False
        streams: Any = entries  # [[key, [(id, fields), ...]]]: redis-py types every reply as any of its shapes
        self._last = redis_values.text(streams[0][1][-1][0])
        return True

    def close(self) -> None:
        self._redis.close()


def retry_round(batch: str) -> int:
    """0 for a batch made at submission, n for one made by the n-th retry (named ``<first>-<last>_r<n>``)."""
    _, _, round_ = batch.partition("_r")
    return int(round_ or 0)


@dataclass(frozen=True)
class MemberStates:
    """Each member's state as the ledger tells it: a member that finished in any batch counts as finished."""
    finished: set[int]
    failed: dict[int, str]  # failed and not finished since, with the latest reason
    unbalanced: dict[int, str] = field(default_factory=dict)  # stopped balancing, and not finished since

    @classmethod
    def of(cls, done: dict[str, BatchOutcome]) -> "MemberStates":
        finished: set[int] = set()
        failed: dict[int, str] = {}
        unbalanced: dict[int, str] = {}
        for batch in sorted(done, key=retry_round):  # a later round's outcome wins
            outcome = done[batch]
            finished.update(outcome.finished)
            for member, reason in outcome.failed.items():
                failed[member] = reason
                unbalanced.pop(member, None)
            for member, reason in outcome.unbalanced.items():
                unbalanced[member] = reason
                failed.pop(member, None)
        return cls(finished, {member: reason for member, reason in failed.items() if member not in finished},
                   {member: reason for member, reason in unbalanced.items() if member not in finished})
