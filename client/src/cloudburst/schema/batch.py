"""Batch jobs, schema ``cloudburst.batch/1``: many members of one ensemble in one queue job.

A batch holds what its members' job documents (``cloudburst.job/1``) share once, in ``common``, and each
member's own fields (its number, its run, a start of its own) in ``members``; a worker rebuilds each member's
document as ``{**common, **member}``. A batch's name is fixed when it is made (its first and last member, and
the retry round that made it), and names its job and its files in the results store.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudburst.errors import InputError
from cloudburst.schema.defaults import ENSEMBLE_PATTERN

_T = TypeVar("_T")

SCHEMA = "cloudburst.batch/1"
# A batch is sized to run about this long on one worker process (the client's default; scenarios may set it).
DEFAULT_BATCH_S = 3.0
MAX_BATCH_MEMBERS = 1000
# A small ensemble is cut into at least this many batches, so it spreads over that many worker processes.
SPREAD_OVER = 8
BATCH_PATTERN = r"^[0-9]{7,}-[0-9]{7,}(_r[0-9]+)?$"  # also a job ID's tail: letters, digits, _ and - only


class BatchJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: Literal["cloudburst.batch/1"] = Field(alias="schema")
    ensemble: str = Field(pattern=f"^{ENSEMBLE_PATTERN}$")
    batch: str = Field(pattern=BATCH_PATTERN)
    common: dict[str, Any]
    members: list[dict[str, Any]] = Field(min_length=1)

    def member_documents(self) -> Iterator[dict[str, Any]]:
        for member in self.members:
            yield {**self.common, **member}


def parse_batch(document: Any) -> BatchJob:
    try:
        return BatchJob.model_validate(document)
    except ValidationError as error:
        raise InputError([f"$.{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()]) \
            from None


def batch_name(first: int, last: int, round_: int = 0) -> str:
    return f"{first:07d}-{last:07d}" + (f"_r{round_}" if round_ else "")


def make_batch(ensemble: str, documents: Sequence[dict[str, Any]], round_: int = 0) -> dict[str, Any]:
    """One batch job of these member documents (of one ensemble, in member order)."""
    first = documents[0]
    common = {key: value for key, value in first.items()
              if key != "member" and all(document.get(key, _ABSENT) == value for document in documents[1:])}
    members = [{key: value for key, value in document.items() if key not in common} for document in documents]
    return {"schema": SCHEMA, "ensemble": ensemble,
            "batch": batch_name(documents[0]["member"], documents[-1]["member"], round_),
            "common": common, "members": members}


_ABSENT = object()


def batch_size(seconds_per_member: float, batch_s: float = DEFAULT_BATCH_S, members: int | None = None,
               workers: int = 1) -> int:
    """Members per batch so one batch runs about ``batch_s`` seconds; never so large that fewer batches than
    ``workers`` (when the ensemble is known) leave workers idle."""
    size = max(1, int(batch_s / max(seconds_per_member, 1e-6)))
    if members is not None:
        size = min(size, max(1, math.ceil(members / max(workers, 1))))
    return min(size, MAX_BATCH_MEMBERS)


def split(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """Consecutive lists of ``size`` items (the last may be shorter): members into batches, lines into requests."""
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

