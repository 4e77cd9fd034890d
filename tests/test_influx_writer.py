"""The InfluxDB writer against real influxd processes: batching, refusal, retry through an outage."""
import threading
import time

import pytest

from cloudburst.influx import InfluxWriteError, InfluxWriter
from services import free_port, influxdb


def test_batches_of_many_points_all_arrive(influx):
    influx.query("CREATE DATABASE writer_tests")
    lines = [f"m,k=v{i % 7} x={i}.5 {1700000000 + i}" for i in range(45_000)]
    writer = InfluxWriter(influx.url, "writer_tests", batch_lines=20_000)
    assert writer.write(lines) == 45_000
    assert influx.rows("SELECT count(x) FROM m", "writer_tests")[0]["count"] == 45_000


def test_a_refused_write_fails_at_once_with_influxdbs_reason(influx):
    writer = InfluxWriter(influx.url, "no_such_db", retry_for_s=10)
    started = time.monotonic()
    with pytest.raises(InfluxWriteError, match="HTTP 404 .*database not found"):
        writer.write(["m x=1 1700000000"])
    assert time.monotonic() - started < 2


def test_writes_are_retried_until_a_late_influxdb_answers(tmp_path):
    """Nothing listens at first; InfluxDB starts 2 s later, and the writer's backoff carries the write through."""
    port = free_port()
    started = threading.Event()
    stop = threading.Event()
    holder = {}

    def start_late():
        time.sleep(2)
        with influxdb(tmp_path, http_port=port) as server:
            server.query("CREATE DATABASE late")
            holder["server"] = server
            started.set()
            stop.wait(60)

    thread = threading.Thread(target=start_late)
    thread.start()
    try:
        writer = InfluxWriter(f"http://127.0.0.1:{port}", "late", retry_for_s=30, backoff_s=0.25)
        while True:
            try:
                writer.write(["m x=1 1700000000"])
                break
            except InfluxWriteError as error:  # up, but the database not yet created: try again
                assert "database not found" in str(error)
        assert started.wait(30)
        assert holder["server"].rows("SELECT x FROM m", "late") == [{"time": 1700000000, "x": 1}]
    finally:
        stop.set()
        thread.join()
