"""Following an ensemble through a Redis restart (a real redis-server stopped and started again on its port): the
follower says the service is away, waits for it, and carries on; one that stays away past the patience ends the
wait with the service's error."""
from __future__ import annotations

import subprocess
import threading
import time

import pytest
from cloudburst.api.progress import Progress, follow
from cloudburst.errors import ServiceAway, service_errors
from redis import Redis
from services import free_port

pytestmark = pytest.mark.services


def start_redis(port: int, directory) -> subprocess.Popen:
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                                "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            Redis(port=port, socket_connect_timeout=0.2).ping()
            return process
        except Exception:  # noqa: BLE001 - not up yet
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)


def status_of(port: int):
    connection = Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5)

    def status() -> Progress:
        with service_errors("Redis", f"redis://127.0.0.1:{port}"):
            return Progress(members=3, finished=int(connection.get("finished") or 0), failed=0, running=0)
    return status


def test_following_waits_through_a_redis_restart_and_says_so(tmp_path, capsys):
    port = free_port()
    redis = start_redis(port, tmp_path)
    Redis(port=port).set("finished", 1)
    restarted: list[subprocess.Popen] = []

    def restart() -> None:
        time.sleep(0.5)
        redis.kill()
        redis.wait()
        time.sleep(8)  # longer than redis-py's own reconnection retries
        restarted.append(start_redis(port, tmp_path))
        Redis(port=port).set("finished", 3)  # the members finished while it was away (a Redis reloading its AOF)
    thread = threading.Thread(target=restart)
    thread.start()
    try:
        final = follow(status_of(port), lambda progress: progress.done, "ensemble 'probe'", None, poll_s=0.1,
                       timeout_s=60)
    finally:
        thread.join()
        for process in restarted:
            process.terminate()
            process.wait()
    assert final.finished == 3
    said = capsys.readouterr().err
    assert f"Redis at redis://127.0.0.1:{port} does not answer (ConnectionError): waiting for it (up to 300 s)" in said


def test_a_redis_that_stays_away_past_the_patience_ends_the_wait(tmp_path):
    port = free_port()
    redis = start_redis(port, tmp_path)
    redis.kill()
    redis.wait()
    started = time.monotonic()
    with pytest.raises(ServiceAway, match="does not answer"):
        follow(status_of(port), lambda progress: progress.done, "ensemble 'probe'", None, poll_s=0.1, timeout_s=60,
               away_s=1.0)
    assert time.monotonic() - started < 10
