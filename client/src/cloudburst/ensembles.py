"""An ensemble's life in the cluster: its record in Redis, its progress, retry and cancel, and its results.

Finished and failed counts come from the status records workers write to InfluxDB (one per member, re-runs
overwrite); running and queued members from RQ's registry and queue in Redis.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import requests
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from cloudburst.config import Settings
from cloudburst.queue import job_prefix, open_queue

ENSEMBLES_KEY = "cloudburst:ensembles"
_CANCEL_SCRIPT = """
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local kept, removed = {}, 0
for _, id in ipairs(ids) do
  if string.sub(id, 1, #ARGV[1]) == ARGV[1] then
    removed = removed + 1
    redis.call('DEL', ARGV[2] .. id)
  else
    kept[#kept + 1] = id
  end
end
redis.call('DEL', KEYS[1])
for i = 1, #kept, 5000 do
  redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 4999, #kept)))
end
return removed
"""


class ServiceError(RuntimeError):
    """A service that does not answer or refuses the credentials; the message is one sentence."""


@dataclass
class Progress:
    members: int
    finished: int
    failed: int
    running: int

    @property
    def queued(self) -> int:
        return max(self.members - self.finished - self.failed - self.running, 0)

    @property
    def done(self) -> bool:
        return self.finished + self.failed >= self.members


class Cluster:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.redis = Redis.from_url(settings.redis_url, password=settings.redis_password or None,
                                    socket_connect_timeout=5)
        self.queue: Queue = open_queue(self.redis, settings.queue)
        self.http = requests.Session()

    # --- checks -------------------------------------------------------------------------------------------
    def checked(self) -> "Cluster":
        """This cluster, once Redis and InfluxDB answered and took the credentials; raises ServiceError."""
        import redis as redis_errors
        try:
            self.redis.ping()
        except redis_errors.AuthenticationError:
            raise ServiceError(f"Redis at {self.settings.redis_url} refused the password") from None
        except redis_errors.RedisError as error:
            raise ServiceError(f"Redis at {self.settings.redis_url} does not answer ({type(error).__name__})") from None
        self.influx("SHOW MEASUREMENTS LIMIT 1")
        return self

    def influx(self, query: str) -> list[dict[str, Any]]:
        try:
            response = self.http.post(f"{self.settings.influx_url}/query", timeout=60,
                                      params={"db": self.settings.influx_db, "q": query, "epoch": "s"},
                                      auth=(self.settings.influx_user, self.settings.influx_password))
        except requests.RequestException as error:
            raise ServiceError(f"InfluxDB at {self.settings.influx_url} does not answer ({type(error).__name__})") from None
        if response.status_code in (401, 403):
            raise ServiceError(f"InfluxDB at {self.settings.influx_url} refused user {self.settings.influx_user!r}")
        if response.status_code != 200:
            raise ServiceError(f"InfluxDB at {self.settings.influx_url} answered HTTP {response.status_code}")
        result = response.json()["results"][0]
        if "error" in result:
            raise ServiceError(f"InfluxDB refused the query: {result['error']}")
        return result.get("series", [])

    def frame(self, query: str) -> pd.DataFrame:
        rows = []
        for series in self.influx(query):
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(series.get("tags", {}))
                rows.append(row)
        return pd.DataFrame(rows)

    # --- models -------------------------------------------------------------------------------------------
    def upload_model(self, data: bytes, sha256: str) -> tuple[str, bool]:
        """The model's URL as workers reach it; uploads it unless Nginx already has it. Returns (url, uploaded)."""
        path = f"models/{sha256}.inp"
        auth = (self.settings.files_user, self.settings.files_password)
        try:
            present = self.http.head(f"{self.settings.files_url}/{path}", auth=auth, timeout=30)
            if present.status_code == 401:
                raise ServiceError(f"Nginx at {self.settings.files_url} refused user {self.settings.files_user!r}")
            uploaded = present.status_code != 200
            if uploaded:
                put = self.http.put(f"{self.settings.files_url}/{path}", data=data, auth=auth, timeout=300)
                if put.status_code not in (201, 204):
                    raise ServiceError(f"Nginx at {self.settings.files_url} refused the model upload: HTTP {put.status_code}")
        except requests.RequestException as error:
            raise ServiceError(f"Nginx at {self.settings.files_url} does not answer ({type(error).__name__})") from None
        return f"{self.settings.cluster_files_url}/{path}", uploaded

    def fetch_model(self, sha256: str) -> bytes:
        response = self.http.get(f"{self.settings.files_url}/models/{sha256}.inp", timeout=300,
                                 auth=(self.settings.files_user, self.settings.files_password))
        if response.status_code != 200:
            raise ServiceError(f"Nginx has no model {sha256[:12]} (HTTP {response.status_code})")
        return response.content

    # --- ensembles ----------------------------------------------------------------------------------------
    def record(self, name: str, members: int, seed: int, scenario: dict[str, Any], model_sha256: str) -> None:
        self.redis.hset(f"cloudburst:ensemble:{name}", mapping={
            "members": members, "seed": seed, "model_sha256": model_sha256, "scenario": json.dumps(scenario),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "state": "submitted"})
        self.redis.sadd(ENSEMBLES_KEY, name)

    def info(self, name: str) -> dict[str, str]:
        info = {key.decode(): value.decode() for key, value in self.redis.hgetall(f"cloudburst:ensemble:{name}").items()}
        if not info:
            raise LookupError(f"no ensemble {name!r}; `cloudburst list` shows the ensembles")
        return info

    def names(self) -> list[str]:
        return sorted(name.decode() for name in self.redis.smembers(ENSEMBLES_KEY))

    def _members_with_status(self, name: str, state: str) -> set[int]:
        frame = self.frame(f"SELECT runtime_s FROM status WHERE ensemble = '{_quote(name)}' AND status = '{state}' "
                           "GROUP BY member")
        return set(frame["member"].astype(int)) if not frame.empty else set()

    def finished_members(self, name: str) -> set[int]:
        return self._members_with_status(name, "finished")

    def failures(self, name: str) -> pd.DataFrame:
        """Each failed member's reason, by member number: the one its status records, or, for a job that failed
        before the engine could record one (a payload that is not a job, a timeout), RQ's."""
        frame = self.frame(f"SELECT error FROM status WHERE ensemble = '{_quote(name)}' AND status = 'failed' "
                           "GROUP BY member")
        recorded = set(frame["member"].astype(int)) if not frame.empty else set()
        rows = [{"member": str(member), "error": reason} for member, reason in self._rq_failures(name).items()
                if member not in recorded]
        frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True) if rows else frame
        return frame.sort_values("member", key=lambda member: member.astype(int)) if not frame.empty else frame

    def _failed_in_rq(self, name: str) -> dict[int, str]:
        """Job IDs in RQ's failed registry of the ensemble's members, by member."""
        prefix = job_prefix(name)
        registry = FailedJobRegistry(self.queue.name, connection=self.redis)
        return {int(job[len(prefix):]): job for job in registry.get_job_ids(cleanup=False) if job.startswith(prefix)}

    def _rq_failures(self, name: str) -> dict[int, str]:
        """Members whose job is in RQ's failed registry, with the last line of the failure RQ recorded."""
        failed = self._failed_in_rq(name)
        reasons = {}
        for member, job in zip(failed, Job.fetch_many(list(failed.values()), connection=self.redis,
                                                      serializer=self.queue.serializer)):
            if job is None:
                continue
            result = job.latest_result()
            text = (result.exc_string if result is not None else None) or "failed (RQ recorded no reason)"
            reasons[member] = text.strip().splitlines()[-1]
        return reasons

    def failed_members(self, name: str) -> set[int]:
        """Members whose status says failed, and members whose job RQ failed (a timeout, or a write that
        never reached InfluxDB)."""
        return self._members_with_status(name, "failed") | set(self._failed_in_rq(name))

    def running(self, name: str) -> list[str]:
        prefix = job_prefix(name)
        registry = StartedJobRegistry(self.queue.name, connection=self.redis)
        return [job for job in registry.get_job_ids(cleanup=False) if job.startswith(prefix)]

    def queued_ids(self, name: str) -> set[str]:
        prefix = job_prefix(name).encode()
        return {job.decode() for job in self.redis.lrange(self.queue.key, 0, -1) if job.startswith(prefix)}

    def progress(self, name: str) -> Progress:
        members = int(self.info(name)["members"])
        finished = self.finished_members(name)
        failed = self.failed_members(name) - finished  # a member retried to success counts once, as finished
        return Progress(members, len(finished), len(failed), len(self.running(name)))

    def cancel(self, name: str) -> int:
        self.info(name)
        removed = self.redis.eval(_CANCEL_SCRIPT, 1, self.queue.key, job_prefix(name),
                                  "rq:job:")
        self.redis.hset(f"cloudburst:ensemble:{name}", "state", "cancelled")
        return int(removed)

    def wait(self, name: str, report, interval_s: float = 1.0) -> Progress:
        while True:
            progress = self.progress(name)
            report(progress)
            if progress.done:
                return progress
            time.sleep(interval_s)

    # --- results ------------------------------------------------------------------------------------------
    def percentiles(self, name: str, kind: str, element: str, attribute: str) -> pd.DataFrame:
        frame = self.frame(f'SELECT "{attribute}" FROM "{kind}" WHERE ensemble = \'{_quote(name)}\' '
                           f"AND element = '{_quote(element)}' GROUP BY member")
        if frame.empty:
            raise LookupError(f"no {attribute} series for {kind} {element} in ensemble {name!r} (did its "
                              "output ask for series of that element?)")
        table = frame.pivot_table(index="time", columns="member", values=attribute)
        values = table.to_numpy(dtype=float)
        result = pd.DataFrame({
            "time": pd.to_datetime(table.index, unit="s", utc=True),
            "members": np.sum(np.isfinite(values), axis=1),
            "min": np.nanmin(values, axis=1),
            "p5": np.nanpercentile(values, 5, axis=1),
            "p50": np.nanpercentile(values, 50, axis=1),
            "p95": np.nanpercentile(values, 95, axis=1),
            "max": np.nanmax(values, axis=1),
        })
        return result.reset_index(drop=True)

    def summaries(self, name: str) -> pd.DataFrame:
        frame = self.frame(f"SELECT * FROM summary WHERE ensemble = '{_quote(name)}' GROUP BY member")
        if frame.empty:
            raise LookupError(f"no summaries for ensemble {name!r} yet")
        frame = frame.drop(columns=[c for c in ("time", "ensemble") if c in frame.columns])
        frame["member"] = frame["member"].astype(int)
        return frame.sort_values(["pressure_min", "member"]).reset_index(drop=True)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")

