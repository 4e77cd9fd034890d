"""Benchmark: CloudBurst's result writer vs a raw HTTP POST of prebuilt line protocol, same points.

Starts its own influxd on loopback (Debian's influxdb), runs Net6 for 24 h once, then writes the same
series (node pressure and head, link flowrate) three times each way into fresh databases and prints
points per second and the ratio. CloudBurst's figure includes building the line protocol from the
result frames; the raw figure posts lines built beforehand, in the same batch size.

    .venv/bin/python bench/result_write.py
"""
from __future__ import annotations

import functools
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import wntr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from services import influxdb  # noqa: E402
from verdict import verdict  # noqa: E402

from cloudburst.influx import InfluxWriter, batches  # noqa: E402
from cloudburst.job import parse_job  # noqa: E402
from cloudburst.results import series_lines  # noqa: E402
from cloudburst.resultformat import PRECISION  # noqa: E402

NET6 = Path(wntr.__file__).parent / "library" / "networks" / "Net6.inp"
ROUNDS = 3


def raw_post(session: requests.Session, url: str, db: str, body: bytes) -> None:
    response = session.post(f"{url}/write", params={"db": db, "precision": PRECISION}, data=body, timeout=60)
    response.raise_for_status()


def main() -> None:
    wn = wntr.network.WaterNetworkModel(str(NET6))
    wn.options.time.duration = 24 * 3600
    wn.options.quality.parameter = "NONE"
    with tempfile.TemporaryDirectory() as workdir:
        results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(workdir, "bench"))
    job = parse_job({"schema": "cloudburst.job/1", "ensemble": "bench", "member": 0,
                     "input": {"url": "http://x/net6.inp", "sha256": "0" * 64, "start_time_utc": "2024-01-01T00:00:00Z"},
                     "output": {"series": [{"element": "node", "attributes": ["pressure", "head"]},
                                           {"element": "link", "attributes": ["flowrate"]}]}})
    prebuilt = list(series_lines(job, wn, results))
    points = sum(line.rsplit(" ", 2)[1].count("=") for line in prebuilt)
    with tempfile.TemporaryDirectory() as data, influxdb(Path(data)) as server:
        session = requests.Session()
        cloudburst_s, raw_s, raw_concurrent_s = [], [], []
        concurrency = InfluxWriter(server.url, "unused").concurrent_posts
        for round_ in range(ROUNDS):
            for name, timings in (("cb", cloudburst_s), ("raw", raw_s), ("rawc", raw_concurrent_s)):
                db = f"{name}{round_}"
                server.query(f"CREATE DATABASE {db}")
                started = time.perf_counter()
                if name == "cb":
                    InfluxWriter(server.url, db, session=session).write(series_lines(job, wn, results),
                                                                       precision=PRECISION)
                else:
                    bodies = ["\n".join(batch).encode() for batch in batches(prebuilt, 20_000)]
                    post = functools.partial(raw_post, session, server.url, db)
                    if name == "raw":
                        for body in bodies:
                            post(body)
                    else:
                        with ThreadPoolExecutor(concurrency) as pool:
                            list(pool.map(post, bodies))
                timings.append(time.perf_counter() - started)
        stored = server.rows("SELECT count(pressure) FROM node", "cb0")[0]["count"]
    cb, raw, rawc = (statistics.median(t) for t in (cloudburst_s, raw_s, raw_concurrent_s))
    print(f"result_write: Net6 24 h, {len(prebuilt)} lines, {points} points (node pressure+head, link flowrate)")
    print(f"  stored node pressure values: {stored}")
    print(f"  cloudburst writer (builds lines + posts): {cb:.2f} s  {points / cb:,.0f} points/s")
    print(f"  raw POST of prebuilt lines:               {raw:.2f} s  {points / raw:,.0f} points/s")
    print(f"  raw POST, {concurrency} requests at once:         {rawc:.2f} s  {points / rawc:,.0f} points/s")
    print(f"  median of {ROUNDS} rounds; ratio against the sequential raw POST (for reference): {raw / cb:.2f}x")
    # Like with like: the baseline posts as many requests at once as the writer does.
    print(verdict(f"writer vs raw POST with {concurrency} requests at once", rawc / cb, 0.9, at_least=True, unit="x"))


if __name__ == "__main__":
    main()
