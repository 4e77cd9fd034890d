"""The ledger's signals on a real Redis: recording a batch, or writing an ensemble's statistics, wakes a client that
follows that ensemble at once; another ensemble's records do not."""
from __future__ import annotations

import threading
import time

import pytest
from cloudburst.state.ledger import BatchOutcome, Ledger
from redis import Redis
from services import redis_server


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path) as url:
        yield url


def test_a_recorded_batch_and_written_statistics_wake_the_follower_at_once(redis_url):
    ledger = Ledger(Redis.from_url(redis_url))
    signals, elsewhere = ledger.signals("pushed"), ledger.signals("other")
    try:
        assert signals.wait(0.05) is False  # nothing recorded yet: the wait runs out
        recorder = threading.Timer(0.2, ledger.record_batch, ("pushed", "b0", BatchOutcome(finished=[0, 1])))
        recorder.start()
        started = time.monotonic()
        assert signals.wait(60.0) is True
        assert time.monotonic() - started < 30  # woken by the record, not by the 60 s running out
        assert ledger.stats_state("pushed")["done"] == 2  # the record itself is unchanged
        ledger.set_stats_state("pushed", members=2)
        assert signals.wait(60.0) is True
        assert elsewhere.wait(0.1) is False  # "other" saw none of it
        ledger.record_batch("pushed", "b1", BatchOutcome(finished=[2]))
        ledger.record_batch("pushed", "b2", BatchOutcome(finished=[3]))
        assert signals.wait(60.0) is True and signals.wait(0.05) is False  # one wake takes every waiting message
    finally:
        signals.close()
        elsewhere.close()


@pytest.mark.services  # starts (and stops) its own Redis inside the test
def test_redis_going_away_under_a_waiting_follower_is_a_missed_signal_not_an_error(tmp_path):
    """The follower falls back to its poll (which reads the state and reports Redis down in its own words)."""
    server = redis_server(tmp_path)
    url = server.__enter__()
    signals = Ledger(Redis.from_url(url)).signals("pushed")
    assert signals.wait(0.05) is False  # subscribed
    server.__exit__(None, None, None)  # Redis stops
    started = time.monotonic()
    assert signals.wait(0.5) is False
    assert 0.4 <= time.monotonic() - started < 30  # it waited its time out instead of raising at once
    signals.close()
