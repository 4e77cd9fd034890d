"""Benchmark: a worker container's start to its first finished job, for the example env, cold and warm.

Packages files/env/epanet as push-env does, serves it from a real Nginx on loopback with a Redis beside it,
enqueues one Net3 member as a batch job (dry run: no results store), and starts CloudBurst's worker image: cold with an empty cache
volume (downloads env.zip and ~100 MB of wheels, builds the venv), then warm (the same volume: nothing to
install). Prints seconds from `docker run` to the job finished, and where the cold start spends them.

    .venv/bin/python bench/worker_startup.py
"""
from __future__ import annotations

import hashlib
import re
import sys
import tempfile
import time
from pathlib import Path

import wntr
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from services import nginx_server, redis_server  # noqa: E402
from verdict import verdict  # noqa: E402
from worker_container import READER, WorkerContainer, build_worker_image, package, publish  # noqa: E402

from cloudburst.batches import make_batch  # noqa: E402

NET3 = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"


def first_job_seconds(worker: WorkerContainer, queue: Queue, files_url: str, sha256: str, member: int) -> float:
    job = queue.enqueue("worker.run", make_batch("startup", [{
        "schema": "cloudburst.job/1", "ensemble": "startup", "member": member,
        "input": {"url": f"{files_url}/models/{sha256}.inp", "sha256": sha256}}]))
    started = time.perf_counter()
    worker.start()
    while job.get_status(refresh=True) not in ("finished", "failed"):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if job.get_status() != "finished":
        raise SystemExit(f"the job failed: {job.exc_info}\n{worker.logs()[-2000:]}")
    return elapsed


def main() -> None:
    build_worker_image()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        root, build = scratch / "files", scratch / "build"
        (root / "models").mkdir(parents=True)
        sha256 = hashlib.sha256(NET3.read_bytes()).hexdigest()
        (root / "models" / f"{sha256}.inp").write_bytes(NET3.read_bytes())
        info = package(REPO / "files" / "env" / "epanet", build)
        publish(info, build, root)
        wheel_mb = sum((build / "wheels" / wheel["file"]).stat().st_size for wheel in info["wheels"]) / 1e6
        with nginx_server(root, {READER[0]: READER[1]}) as files_url, redis_server(scratch) as redis_url:
            queue = Queue("cloudburst", connection=Redis.from_url(redis_url), serializer=JSONSerializer)
            cold = WorkerContainer(files_url, redis_url, scratch / "secrets", processes=1)
            try:
                cold_s = first_job_seconds(cold, queue, files_url, sha256, 0)
                installed = re.search(r"installed \((\d+) wheels\) in ([\d.]+) s", cold.logs())
                cold.remove(keep_cache=True)
                warm = WorkerContainer(files_url, redis_url, scratch / "secrets", processes=1,
                                       cache_volume=cold.cache_volume)
                warm_s = first_job_seconds(warm, queue, files_url, sha256, 1)
                reused = "already installed" in warm.logs()
                warm.remove()
            finally:
                cold.remove()
    print(f"worker start to first finished job, example env ({len(info['wheels'])} wheels, {wheel_mb:.0f} MB), "
          "one Net3 job, 1 process")
    print(f"  cold (empty cache): {cold_s:6.1f} s   of which env download + venv install {installed.group(2)} s")
    print(f"  warm (cached venv): {warm_s:6.1f} s   venv reused: {reused}")
    print(verdict("cold start", cold_s, 60, at_least=False, unit=" s"))
    print(verdict("warm start", warm_s, 5, at_least=False, unit=" s"))


if __name__ == "__main__":
    main()
