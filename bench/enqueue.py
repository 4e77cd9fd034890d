"""Benchmark: enqueueing 100,000 ensemble members into a real Redis on loopback.

Compares CloudBurst's path (members cut into batch jobs, the batches' job hashes and their planned members
written in pipelined chunks), over TLS as deployed (rediss://, verified against a CA made here) and in plain text,
with RQ's own enqueue_many of one job per member (the path before batches) and with
a pipelined raw LPUSH of every member's payload (no job hashes: what Redis itself takes). Members are drawn from
the demo's scenario (files/scenarios/net3-demand-roughness.yml) beforehand; the figures are making the batches
and enqueueing. Prints members per second.

    .venv/bin/python bench/enqueue.py [--members 100000] [--batch 75]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import wntr
import yaml
from redis import Redis
from rq import Queue, Retry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from cloudburst.api.queue import enqueue_batches
from cloudburst.plan.scenarios import generate  # noqa: E402
from cloudburst.schema.batch import make_batch, split  # noqa: E402
from cloudburst.schema.queues import ENTRY_POINT, JobPolicy, job_id, open_queue  # noqa: E402
from cloudburst.state.connection import connect  # noqa: E402
from cloudburst.state.ledger import Ledger  # noqa: E402
from services import redis_server, tls_material  # noqa: E402
from verdict import verdict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three paths, interleaved (median)")
    parser.add_argument("--batch", type=int, default=75, help="members per batch (the client's 3 s of Net3 runs)")
    args = parser.parse_args()
    scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    scenario["members"] = args.members
    model = wntr.network.WaterNetworkModel(str(REPO / "files" / "models" / "Net3.inp"))
    started = time.perf_counter()
    documents = generate(scenario, model, {"url": "http://nginx:8080/models/x.inp", "sha256": "0" * 64}).documents
    generate_s = time.perf_counter() - started
    policy = JobPolicy()
    figures: dict[str, list[float]] = {}
    # CloudBurst's path on two servers of its own, one speaking TLS only and one plain text, so that neither
    # carries the other paths' rounds; RQ's and the raw path on a third.
    with tempfile.TemporaryDirectory() as scratch, redis_server(Path(scratch)) as url, \
            redis_server(Path(scratch)) as plain_url, \
            redis_server(Path(scratch), tls=tls_material(Path(scratch))) as tls_url:
        # CloudBurst's path on the client's own connections (cloudburst.state.connection); the others on redis-py's
        others, plain = Redis.from_url(url), connect(plain_url)
        over_tls = connect(tls_url, ca_file=str(Path(scratch) / "cluster-ca.crt"))
        paths = ("cloudburst batches over TLS", "cloudburst batches", "rq enqueue_many", "raw pipelined LPUSH")
        for name in [name for _ in range(args.rounds) for name in paths]:
            connection = over_tls if name.endswith("TLS") else plain if name.startswith("cloudburst") else others
            connection.flushdb()
            started = time.perf_counter()
            if name.startswith("cloudburst"):
                batches = (make_batch("bench", part) for part in split(documents, args.batch))
                enqueue_batches(open_queue(connection), Ledger(connection), "bench", batches, policy)
            elif name.startswith("rq"):
                queue = open_queue(connection)
                for at in range(0, len(documents), 5000):
                    queue.enqueue_many([Queue.prepare_data(
                        ENTRY_POINT, args=(document,), job_id=job_id(document["ensemble"], str(document["member"])),
                        timeout=policy.timeout_s, result_ttl=policy.result_ttl_s, failure_ttl=policy.failure_ttl_s,
                        retry=Retry(max=policy.retries)) for document in documents[at:at + 5000]])
            else:
                for at in range(0, len(documents), 5000):
                    pipeline = connection.pipeline(transaction=False)
                    pipeline.lpush("raw", *(json.dumps(document) for document in documents[at:at + 5000]))
                    pipeline.execute()
            figures.setdefault(name, []).append(time.perf_counter() - started)
            if name.startswith("raw"):
                queued = connection.llen("raw")
            elif name.startswith("rq"):
                queued = connection.llen("rq:queue:cloudburst")
            else:
                queued = sum(map(len, Ledger(connection).plan("bench").values()))
            assert queued == len(documents), (name, queued)
    print(f"{len(documents)} members of the demo scenario (drawn and checked in {generate_s:.1f} s beforehand), "
          f"median of {args.rounds} rounds")
    rates = {}
    for name, timings in figures.items():
        seconds = statistics.median(timings)
        rates[name] = len(documents) / seconds
        print(f"  {name:<28} {seconds:6.2f} s  {rates[name]:9,.0f} members/s  (rounds: "
              f"{', '.join(f'{len(documents) / t:,.0f}' for t in timings)})")
    print(f"  TLS costs {100 * (1 - rates['cloudburst batches over TLS'] / rates['cloudburst batches']):.1f} % of "
          "the plain-text rate")
    print(verdict("cloudburst enqueue over TLS", rates["cloudburst batches over TLS"], 100_000, at_least=True,
                  unit=" members/s"))


if __name__ == "__main__":
    main()
