"""The ledger's signals on a real Redis: recording a batch, or writing an ensemble's statistics, wakes a client that
follows that ensemble at once; another ensemble's records do not; Redis going away is a missed signal."""
from __future__ import annotations

import threading
import time

import pytest
from cloudburst.state.ledger import SIGNALS, SIGNALS_KEPT, BatchOutcome, Ledger, key_for
from redis import Redis
from services import redis_server

pytestmark = pytest.mark.services  # each test starts (and stops) its own Redis


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path) as url:
        yield url


def test_a_recorded_batch_and_written_statistics_wake_the_follower_at_once(redis_url):
    ledger = Ledger(Redis.from_url(redis_url))
    ledger.record_batch("pushed", "before", BatchOutcome(finished=[9]))  # recorded before the follower came
    signals, elsewhere = ledger.signals("pushed"), ledger.signals("other")
    try:
        assert signals.wait(0.05) is False  # only what is recorded from now on wakes it
        recorder = threading.Timer(0.2, ledger.record_batch, ("pushed", "b0", BatchOutcome(finished=[0, 1])))
        recorder.start()
        started = time.monotonic()
        assert signals.wait(8.0) is True
        woke_s = time.monotonic() - started
        assert 0.15 < woke_s < 1.0  # woken by the record at 0.2 s, not by the 8 s running out
        assert ledger.stats_state("pushed")["done"] == 3  # the record itself is unchanged
        ledger.set_stats_state("pushed", members=3)
        assert signals.wait(8.0) is True
        assert elsewhere.wait(0.1) is False  # "other" saw none of it
        ledger.record_batch("pushed", "b1", BatchOutcome(finished=[2]))
        ledger.record_batch("pushed", "b2", BatchOutcome(finished=[3]))
        assert signals.wait(8.0) is True and signals.wait(0.05) is False  # one wake takes every waiting signal
        overtaken = ledger.begin("pushed", "b3")
        ledger.begin("pushed", "b3")
        assert ledger.record_batch("pushed", "b3", BatchOutcome(finished=[4]), overtaken) is None
        assert signals.wait(0.1) is False  # a record refused is no signal
    finally:
        signals.close()
        elsewhere.close()


def test_the_stream_stays_short_and_goes_with_the_ensemble(redis_url):
    redis = Redis.from_url(redis_url)
    ledger = Ledger(redis)
    for batch in range(3 * SIGNALS_KEPT):
        ledger.record_batch("long", str(batch), BatchOutcome(finished=[batch]))
    assert SIGNALS_KEPT <= redis.xlen(key_for("long", SIGNALS)) < 2 * SIGNALS_KEPT
    ledger.forget("long")
    assert not redis.exists(key_for("long", SIGNALS))


def test_redis_going_away_under_a_waiting_follower_is_a_missed_signal_not_an_error(tmp_path):
    """The follower falls back to its poll (which reads the state and reports Redis down in its own words), and
    wakes again once Redis is back."""
    server = redis_server(tmp_path)
    url = server.__enter__()
    signals = Ledger(Redis.from_url(url)).signals("pushed")
    assert signals.wait(0.05) is False
    server.__exit__(None, None, None)  # Redis stops
    started = time.monotonic()
    assert signals.wait(0.5) is False
    assert 0.4 <= time.monotonic() - started < 30  # it waited its time out instead of raising at once
    signals.close()
