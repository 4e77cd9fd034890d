"""Benchmark: an ensemble's full series through the results store and the cluster's statistics, at scale.

Net6 (wntr's largest network: 3,356 nodes), 24 h, pressure at every junction every hour, 500 members (demand
scaled by U(0.8, 1.2)), run by two worker runners with the example env against Redis, InfluxDB and Nginx (the
results store) started here on loopback, submitted with the Python API. Prints, beside the issue's targets:

- every value stored once (the rows of the ensemble's raw Parquet files == members x junctions x 25);
- store ingest in values/s (encoding a batch's table and PUTting it, as workers do) against the InfluxDB
  writer's points/s for the same values as member-tagged line protocol (the old format), in the same run;
- bytes on disk per stored value, as EPANET gave the values (lossless) and, for a second ensemble of the same
  members, with ``output.resolution: {pressure: 0.001}`` (values to the nearest 2**-10 m);
- seconds from the last member recorded until the statistics cover every member;
- `results` at one element (``Ensemble.percentiles``) and `risk` over all nodes, in seconds.

    .venv/bin/python bench/results_store.py [--members 500] [--processes 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import wntr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cloudburst  # noqa: E402
from bench_cluster import bench_cluster  # noqa: E402
from cloudburst.engine.batch import MemberResult, series_table  # noqa: E402
from cloudburst.engine.results import SeriesBlock  # noqa: E402
from cloudburst.schema import resultformat as fmt  # noqa: E402
from cloudburst.schema.resultformat import encode  # noqa: E402
from cloudburst.state.influx import InfluxWriter  # noqa: E402
from verdict import exactly, verdict  # noqa: E402

NET6 = Path(wntr.__file__).parent / "library" / "networks" / "Net6.inp"


def raw_rows(directory: Path) -> int:
    """Rows in every Parquet file of a directory, from each file's own footer (nothing that could drop a
    duplicate)."""
    return sum(pq.ParquetFile(path).metadata.num_rows for path in directory.glob("*.parquet"))


def ingest_rates(client: cloudburst.Client, influx_url: str, blocks: list[SeriesBlock], members: int) -> tuple[float, float]:
    """Values/s into the store (encode + PUT of one batch file of ``members`` members) and points/s into
    InfluxDB (the same values as member-tagged lines, the writer's batching), in this run."""
    results = [MemberResult(member, 0, {"status": fmt.FINISHED}, {}, blocks) for member in range(members)]
    values = sum(block.size for block in blocks) * members
    started = time.perf_counter()
    client.store.put_batch("ingest-probe", "0000000-0000000", encode(series_table(results), [fmt.VALUE]), b"PAR1")
    store_rate = values / (time.perf_counter() - started)
    client.store.delete("ingest-probe")
    lines = [f"node,ensemble=probe,member={member},element={element} pressure={float(value)!r} {int(at)}"
             for member in range(members) for block in blocks
             for row, at in enumerate(block.elapsed_s) for element, value in zip(block.elements, block.values[row])]
    started = time.perf_counter()
    InfluxWriter(influx_url, "ingest_probe", username="admin", password="admin-secret").write(lines)
    return store_rate, values / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    wn = wntr.network.WaterNetworkModel(str(NET6))
    junctions = len(wn.junction_name_list)
    scenario = {"ensemble": "net6", "members": args.members, "seed": 6, "run": {"duration_s": 86400},
                "alterations": [{"type": "demand_scale",
                                 "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}],
                "output": {"series": [{"element": "node", "attributes": ["pressure"], "types": ["junction"],
                                       "step_s": 3600}],
                           "statistics": {"below": {"pressure": [20]}}}}
    with bench_cluster(args.processes) as cluster:
        client, influx, scratch = cluster["client"], cluster["influx"], cluster["scratch"]
        started = time.perf_counter()
        ensemble = client.submit(NET6, scenario, name="net6")
        submitted = time.perf_counter()
        final = ensemble.wait(progress=False, statistics_s=0)
        last_member = time.perf_counter()
        while not ensemble.statistics_current():
            time.sleep(0.1)
        statistics_ready = time.perf_counter()
        stored = raw_rows(cluster["root"] / "results" / "net6" / "series")
        series_bytes = sum(path.stat().st_size for path in (cluster["root"] / "results" / "net6" / "series")
                           .glob("*.parquet"))
        batches = len(client.ledger.plan("net6"))
        timer = time.perf_counter()
        bands = ensemble.percentiles(f"node:{wn.junction_name_list[100]}")
        results_s = time.perf_counter() - timer
        timer = time.perf_counter()
        risk = ensemble.risk("pressure", below=20)
        risk_s = time.perf_counter() - timer
        rounded = client.submit(NET6, {**scenario, "output": {**scenario["output"],
                                                               "resolution": {"pressure": 0.001}}}, name="net6-mm")
        rounded.wait(progress=False, statistics_s=0)
        rounded_stored = raw_rows(cluster["root"] / "results" / "net6-mm" / "series")
        rounded_bytes = sum(path.stat().st_size for path in (cluster["root"] / "results" / "net6-mm" / "series")
                            .glob("*.parquet"))
        influx.query("CREATE DATABASE ingest_probe")
        wn.options.time.duration = 86400
        block_results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(scratch, "probe"))
        frame = block_results.node["pressure"][wn.junction_name_list]
        keep = [i for i, t in enumerate(frame.index) if int(t) % 3600 == 0]
        blocks = [SeriesBlock("node", "pressure", wn.junction_name_list, np.asarray(frame.index[keep], np.int32),
                              frame.to_numpy()[keep].astype(np.float32))]
        store_rate, influx_rate = ingest_rates(client, influx.url, blocks, members=8)
    expected = args.members * junctions * 25
    print(f"Net6 ({junctions} junctions), 24 h hourly pressure, {args.members} members in {batches} batches, "
          f"{args.processes} worker processes")
    print(f"  enqueue {submitted - started:.1f} s; last member after {last_member - submitted:.1f} s "
          f"({final.finished} finished, {final.failed} failed)")
    print(f"  values stored: {stored:,} of {expected:,} asked for")
    print(f"  store ingest {store_rate:,.0f} values/s vs InfluxDB writer {influx_rate:,.0f} points/s "
          f"(the same values, member-tagged): {store_rate / influx_rate:.1f}x")
    print(f"  on disk: {series_bytes:,} bytes of series, {series_bytes / max(stored, 1):.2f} B per value as EPANET "
          f"gave them; {rounded_bytes / max(rounded_stored, 1):.2f} B per value at a 1 mm resolution "
          f"({rounded_stored:,} values)")
    print(f"  statistics over every member {statistics_ready - last_member:.1f} s after the last member; "
          f"{len(bands)} time steps at one node; risk over {len(risk)} nodes")
    print(exactly("every value stored once (rows in the raw files)", stored, expected))
    print(verdict("store ingest / InfluxDB writer", store_rate / influx_rate, 10, at_least=True, unit="x"))
    print(verdict("bytes on disk per value, lossless", series_bytes / max(stored, 1), 2.0, at_least=False, unit=" B"))
    print(verdict("bytes on disk per value, 1 mm resolution", rounded_bytes / max(rounded_stored, 1), 2.0,
                  at_least=False, unit=" B"))
    print(verdict("statistics ready after the last member", statistics_ready - last_member, 10, at_least=False,
                  unit=" s"))
    print(verdict("results at one element", results_s, 1.0, at_least=False, unit=" s"))
    print(verdict("risk over all nodes", risk_s, 5.0, at_least=False, unit=" s"))


if __name__ == "__main__":
    main()
