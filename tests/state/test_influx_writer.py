"""The InfluxDB writer against real influxd processes: batching, refusal, retry through an outage."""
import threading
import time

import pytest
from cloudburst.state.influx import InfluxWriteError, InfluxWriter
from services import free_port, influxdb
from waiting import wait_until


def test_batches_of_many_points_all_arrive(influx):
    influx.query("CREATE DATABASE writer_tests")
    lines = [f"m,k=v{i % 7} x={i}.5 {1700000000 + i}" for i in range(45_000)]
    writer = InfluxWriter(influx.url, "writer_tests", batch_lines=20_000, **influx.credentials)
    assert writer.write(lines) == 45_000
    assert influx.rows("SELECT count(x) FROM m", "writer_tests")[0]["count"] == 45_000


def test_a_refused_write_fails_at_once_with_influxdbs_reason(influx, caplog):
    writer = InfluxWriter(influx.url, "no_such_db", retry_for_s=10, **influx.credentials)
    with pytest.raises(InfluxWriteError, match="HTTP 404 .*database not found"):
        writer.write(["m x=1 1700000000"])
    assert "retrying" not in caplog.text  # a 4xx is final: no retry


def test_wrong_credentials_are_refused_at_once_naming_the_database(influx, caplog):
    influx.query("CREATE DATABASE guarded")
    writer = InfluxWriter(influx.url, "guarded", username="admin", password="wrong", retry_for_s=10)
    with pytest.raises(InfluxWriteError, match="refused the write to 'guarded': HTTP 401"):
        writer.write(["m x=1 1700000000"])
    assert "retrying" not in caplog.text


@pytest.mark.services  # starts its own service (or Docker) inside the test
def test_writes_carry_on_through_an_influxdb_restart_mid_write(tmp_path, caplog):
    """InfluxDB is stopped once the first batches have landed and started again 2 s later on the same data: the
    writer retries the batches it could not deliver, and every point is stored exactly once."""
    port, lines = free_port(), [f"m,k=v{i % 5} x={i} {1700000000 + i}" for i in range(300_000)]
    outcome: dict = {}
    with influxdb(tmp_path, http_port=port) as server:
        server.query("CREATE DATABASE outage")
        writer = InfluxWriter(server.url, "outage", batch_lines=2_000, concurrent_posts=1, retry_for_s=60,
                              backoff_s=0.25)
        thread = threading.Thread(target=lambda: outcome.update(written=writer.write(lines)))
        thread.start()
        wait_until("the first batches stored", lambda: server.rows("SELECT count(x) FROM m", "outage"), 60)
    assert thread.is_alive(), "the write finished before the outage: give it more lines"
    time.sleep(2)
    with influxdb(tmp_path, http_port=port) as server:
        thread.join(timeout=120)
        assert outcome.get("written") == len(lines)
        assert server.rows("SELECT count(x) FROM m", "outage")[0]["count"] == len(lines)
    assert "retrying" in caplog.text


@pytest.mark.services  # starts its own service (or Docker) inside the test
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

        def written() -> bool:
            try:
                return writer.write(["m x=1 1700000000"]) == 1
            except InfluxWriteError as error:  # up, but the database not yet created: try again
                assert "database not found" in str(error)
                return False
        wait_until("the write through a late start", written, 60, poll_s=0.1)
        assert started.wait(30)
        assert holder["server"].rows("SELECT x FROM m", "late") == [{"time": 1700000000, "x": 1}]
    finally:
        stop.set()
        thread.join()
