"""An evaluation round's chunk as a worker answers it: run on the warm engine, the reply pushed to the round's list
(where the client blocks), and a payload that is not a round refused once."""
from __future__ import annotations

import socket
from typing import Any

from redis import Redis

from cloudburst.engine.evaluation import evaluate_chunk
from cloudburst.engine.warm import WarmEngine
from cloudburst.errors import InputError
from cloudburst.schema import evaluation as rounds
from cloudburst.state.rounds import push_reply, reply_key


def answer_chunk(chunk: Any, engine: WarmEngine, connection: Redis) -> dict[str, Any]:
    """Evaluate one chunk and push its reply; returns how its sets ended. InputError for a payload that is not a
    chunk of schema ``cloudburst.round/1`` (the same every time: the caller does not retry it)."""
    if not isinstance(chunk, dict) or chunk.get("schema") != rounds.SCHEMA or not isinstance(chunk.get("sets"), list):
        raise InputError(f"not an evaluation round's chunk (schema {rounds.SCHEMA}): {str(chunk)[:200]}")
    try:
        metrics = rounds.check_metrics(chunk.get("metrics", []))
        key = reply_key(str(chunk["session"]), int(chunk["round"]))
    except (KeyError, TypeError, ValueError) as missing:
        raise InputError(f"an evaluation chunk without its session, round or metrics: {missing}") from None
    reply = evaluate_chunk({**chunk, "metrics": metrics}, engine)
    reply.worker = socket.gethostname()
    push_reply(connection, key, reply.to_bytes())
    return {status: reply.status.count(status) for status in (rounds.FINISHED, rounds.FAILED, rounds.UNBALANCED)}
