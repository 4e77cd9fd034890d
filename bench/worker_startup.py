"""Benchmark: a worker container's start to its first finished job, for the example env, cold and warm.

Packages files/env/epanet as push-env does, serves it from a real Nginx on loopback with a Redis beside it,
enqueues one Net3 member as a batch job (dry run: no results store), and starts CloudBurst's worker image: cold with
an empty cache volume (downloads env.zip and ~200 MB of wheels, builds the venv), then warm (the same volume:
nothing to install). The cold start is measured twice in the same run: the env packaged with uv as its installer
and the wheels' bytecode compiled on the controller (the defaults), and with pip and no bytecode shipped (the
baseline: the image's pip, compiling bytecode as it installs). Prints seconds from `docker run` to the job
finished, and where the cold start spends them.

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
from cloudburst.schema.batch import make_batch  # noqa: E402
from services import nginx_server, redis_server  # noqa: E402
from verdict import verdict  # noqa: E402
from worker_container import (  # noqa: E402
    READER,
    WorkerContainer,
    build_worker_image,
    package,
    publish,
)

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
        baseline = package(REPO / "files" / "env" / "epanet", build, "pip", "--bytecode", "off")
        info = package(REPO / "files" / "env" / "epanet", build)
        wheel_mb = sum((build / "wheels" / wheel["file"]).stat().st_size for wheel in baseline["wheels"]) / 1e6
        bytecode_mb = (build / "wheels" / info["bytecode"]["file"]).stat().st_size / 1e6
        with nginx_server(root, {READER[0]: READER[1]}) as files_url, redis_server(scratch) as redis_url:
            queue = Queue("cloudburst", connection=Redis.from_url(redis_url), serializer=JSONSerializer)
            cold_s, installed = {}, {}
            for name, packaged in (("pip", baseline), ("uv", info)):
                publish(packaged, build, root)
                cold = WorkerContainer(files_url, redis_url, scratch / "secrets", processes=1)
                try:
                    cold_s[name] = first_job_seconds(cold, queue, files_url, sha256, len(cold_s))
                    installed[name] = re.search(r"installed \((\d+) wheels, with (\w+)\) in ([\d.]+) s", cold.logs())
                    if name == "pip":
                        continue
                    cold.remove(keep_cache=True)
                    warm = WorkerContainer(files_url, redis_url, scratch / "secrets", processes=1,
                                           cache_volume=cold.cache_volume)
                    warm_s = first_job_seconds(warm, queue, files_url, sha256, 9)
                    reused = "already installed" in warm.logs()
                    warm.remove()
                finally:
                    cold.remove()
    print(f"worker start to first finished job, example env ({len(baseline['wheels'])} wheels, {wheel_mb:.0f} MB; "
          f"with uv: uv's wheel 18 MB and the bytecode {bytecode_mb:.0f} MB more), one Net3 job, 1 process")
    for name, how in (("pip", "compiling as it installs"), ("uv", "bytecode shipped")):
        print(f"  cold with {name:<3} (empty cache): {cold_s[name]:6.1f} s   of which env download + venv install "
              f"{installed[name].group(3)} s ({how})")
    print(f"  warm with uv  (cached venv): {warm_s:6.1f} s   venv reused: {reused}")
    print(verdict("cold start with uv", cold_s["uv"], 8, at_least=False, unit=" s"))
    print(verdict("warm start", warm_s, 2, at_least=False, unit=" s"))


if __name__ == "__main__":
    main()
