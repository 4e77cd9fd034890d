"""Exactly-once execution records: each attempt at a batch takes a fencing token, and only the latest attempt of a
batch not yet recorded may checkpoint or record it (against a real Redis; the scripts run in Redis itself)."""
from __future__ import annotations

import pytest
from cloudburst.state.ledger import BatchOutcome, Ledger, key_for
from redis import Redis
from services import redis_server

pytestmark = pytest.mark.services


@pytest.fixture
def ledger(tmp_path):
    with redis_server(tmp_path) as url:
        yield Ledger(Redis.from_url(url))


def test_attempts_take_increasing_tokens_and_only_the_latest_records(ledger):
    first = ledger.begin("fenced", "0-9")
    second = ledger.begin("fenced", "0-9")  # the job ran again: RQ gave the first attempt up
    assert (first, second) == (1, 2)
    outcome = BatchOutcome(finished=list(range(10)))
    assert ledger.is_latest("fenced", "0-9", second) and not ledger.is_latest("fenced", "0-9", first)
    assert ledger.record_batch("fenced", "0-9", outcome, first) is None  # the overtaken attempt
    assert ledger.executions("fenced") == {} and ledger.done("fenced") == {}
    assert ledger.record_batch("fenced", "0-9", outcome, second) == 10
    assert ledger.record_batch("fenced", "0-9", outcome, second) is None  # recorded already: not twice
    assert ledger.executions("fenced") == {"0-9": 1} and ledger.stats_state("fenced")["done"] == 10
    assert ledger.begin("fenced", "0-9") == 0  # a later attempt finds it recorded and runs nothing
    assert not ledger.is_latest("fenced", "0-9", second)


def test_an_overtaken_attempt_keeps_no_checkpoint(ledger):
    first = ledger.begin("fenced", "10-19")
    assert ledger.checkpoint("fenced", "10-19", {10: b"kept by the first"}, first)
    second = ledger.begin("fenced", "10-19")
    assert not ledger.checkpoint("fenced", "10-19", {11: b"late, from the first"}, first)
    assert ledger.checkpointed("fenced", "10-19") == {10: b"kept by the first"}
    assert ledger.checkpoint("fenced", "10-19", {11: b"from the second"}, second)
    assert ledger.checkpointed("fenced", "10-19") == {10: b"kept by the first", 11: b"from the second"}
    assert ledger.redis.ttl(key_for("fenced", "partial:10-19")) > 0
    ledger.record_batch("fenced", "10-19", BatchOutcome(finished=[10, 11]), second)
    assert not ledger.checkpoint("fenced", "10-19", {12: b"after the record"}, first)
    assert ledger.redis.exists(key_for("fenced", "partial:10-19")) == 0


def test_a_resumed_attempt_takes_its_token_and_what_earlier_ones_kept_in_one_round_trip(ledger):
    first = ledger.begin("resumed", "20-29")
    ledger.checkpoint("resumed", "20-29", {20: b"kept", 21: b"\x00binary\xff"}, first)
    reads_before = ledger.redis.info("stats")["total_reads_processed"]
    token, kept = ledger.resume("resumed", "20-29")
    assert ledger.redis.info("stats")["total_reads_processed"] - reads_before == 2  # resume's, and this INFO's
    assert token == 2 and ledger.is_latest("resumed", "20-29", token)
    assert kept == {int(member): data for member, data in
                    ledger.redis.hgetall(key_for("resumed", "partial:20-29")).items()} == {20: b"kept", 21: b"\x00binary\xff"}
    assert ledger.resume("resumed", "30-39") == (1, {})  # nothing kept: a first attempt
    ledger.record_batch("resumed", "20-29", BatchOutcome(finished=list(range(20, 30))), token)
    assert ledger.resume("resumed", "20-29") == (0, {})  # recorded: nothing to run


def test_without_a_token_a_batch_records_as_before_and_forget_drops_the_attempts(ledger):
    assert ledger.record_batch("plain", "0-1", BatchOutcome(finished=[0, 1])) == 2
    ledger.begin("plain", "2-3")
    ledger.forget("plain")
    assert ledger.redis.keys("cloudburst:ensemble:plain*") == []
