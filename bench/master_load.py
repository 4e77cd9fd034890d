"""Benchmark: the load one ensemble member puts on the master (Redis, the results store on Nginx, InfluxDB), for
capacity planning.

Runs members of the demo scenario (Net3, 24 h) through worker runners with the example env against Redis,
Nginx (models and the results store) and InfluxDB (statistics) started here on loopback, submitted with the
Python API (batches sized by the client), twice: summary-only outputs (the default) and full series (pressure
and head at every node, flow at every link). Reads Redis's own command and byte counters, the bytes Nginx took
and served, and InfluxDB's points, and prints them per member. Then it measures the members per second the
master's Redis records when nothing else limits it: the same client submits a large ensemble in batches of the
summary run's size to runners whose ``worker.run`` does only a batch's Redis side (bench/replay_env: RQ's job,
the fencing token, the check before storing, the record; no EPANET, no store, no statistics), and the members
recorded are timed from submit to the last record. That figure is judged; the extrapolation to worker hosts
(redis-benchmark's single-command rate and a PUT probe of the store) is printed as an estimate only.
docs/scaling.md records a run.

    .venv/bin/python bench/master_load.py [--members 2000] [--replay-members 200000] [--replay-runners 4]
                                          [--wait-rounds 5]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import wntr
import yaml
from redis import Redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
import cloudburst  # noqa: E402
from cloudburst.engine.batch import MemberResult, series_table  # noqa: E402
from cloudburst.engine.results import SeriesBlock  # noqa: E402
from cloudburst.schema import resultformat as fmt  # noqa: E402
from cloudburst.schema.resultformat import encode  # noqa: E402
from local_cluster import client_settings, local_cluster, start_workers, stop  # noqa: E402
from services import influxdb  # noqa: E402
from verdict import verdict  # noqa: E402

MODEL = REPO / "files" / "models" / "Net3.inp"
FULL_SERIES = [{"element": "node", "attributes": ["pressure", "head"]}, {"element": "link", "attributes": ["flowrate"]}]


def redis_counters(connection: Redis) -> tuple[int, int]:
    commands = sum(stats["calls"] for stats in connection.info("commandstats").values())
    stats = connection.info("stats")
    return commands, stats["total_net_input_bytes"] + stats["total_net_output_bytes"]


def influx_points(server) -> int:
    for series in server.query("SHOW STATS FOR 'httpd'"):
        return dict(zip(series["columns"], series["values"][0]))["pointsWrittenOK"]
    raise RuntimeError("InfluxDB reported no httpd statistics")


def nginx_bytes(log: Path) -> tuple[int, int]:
    """Bytes Nginx took (requests, uploads included) and served, from its access log."""
    rows = [line.split() for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return sum(int(row[0]) for row in rows), sum(int(row[1]) for row in rows)


def redis_commands_per_s(connection: Redis) -> float:
    """What this Redis takes: redis-benchmark's mean requests/s over single commands RQ uses (8 clients)."""
    options = connection.connection_pool.connection_kwargs
    user = ["--user", options["username"]] if options.get("username") else []
    output = subprocess.run(["redis-benchmark", "-h", options["host"], "-p", str(options["port"]), *user, "-a",
                             options["password"], "-c", "8", "-n", "100000", "-q", "--csv",
                             "-t", "set,get,lpush,rpop,hset"], capture_output=True, text=True, check=True).stdout
    rates = [float(line.split(",")[1].strip('"')) for line in output.splitlines() if line.startswith('"')
             and not line.startswith('"test"')]
    return sum(rates) / len(rates)


def store_bytes_per_s(client: cloudburst.Client) -> float:
    """What this store takes: 20 PUTs of a 64-member full-series Net3 batch file, bytes per second."""
    wn = wntr.network.WaterNetworkModel(str(MODEL))
    wn.options.time.duration = 86400
    with tempfile.TemporaryDirectory() as workdir:
        results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(Path(workdir) / "probe"))
    blocks = [SeriesBlock(kind, attribute, list(frames[attribute].columns), np.asarray(frames[attribute].index, np.int32),
                          frames[attribute].to_numpy(np.float32))
              for kind, frames, attribute in (("node", results.node, "pressure"), ("node", results.node, "head"),
                                              ("link", results.link, "flowrate"))]
    # Each member's values scaled by its own factor, as members differ: identical members would compress to
    # almost nothing and the probe would time request latency, not the bytes a real batch file carries.
    generator = np.random.default_rng(64)
    members = [MemberResult(m, 0, {}, {}, [SeriesBlock(block.kind, block.attribute, block.elements, block.elapsed_s,
                                                       (block.values * generator.uniform(0.9, 1.1)).astype(np.float32))
                                          for block in blocks]) for m in range(64)]
    data = encode(series_table(members), [fmt.VALUE])
    started = time.perf_counter()
    for round_ in range(20):
        client.store.put_batch("capacity-probe", f"{round_:07d}-{round_:07d}", data, b"PAR1")
    rate = 20 * len(data) / (time.perf_counter() - started)
    client.store.delete("capacity-probe")
    return rate


def redis_cpu_s(connection: Redis) -> float:
    """CPU seconds the Redis server has used (user and system), from its own INFO."""
    cpu = connection.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def replay_rate(cluster: dict, members: int, batch_members: int, runners: int, follow: str = "poll",
                name: str = "load-replay") -> tuple[float, int, float, float]:
    """Members per second the master's Redis recorded with runners doing only a batch's Redis side, how many were
    recorded (every one, or the replay failed), the Redis server's CPU microseconds per member recorded, and the
    read events Redis served per batch (each a round trip from a runner or the client; TLS costs per round trip).

    ``follow``: how the submitting client follows the ensemble meanwhile: ``poll`` reads its status every 50 ms
    (this script's first way, the most a client costs), ``wait`` as ``cloudburst wait`` does (blocked on the
    workers' signals, the status read after each, ``Submitted.wait``: the members, not the statistics the replay
    does not compute)."""
    from cloudburst.api.submitted import Submitted

    scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    scenario.update(members=members, batch={"members": batch_members}, output={})
    client = cloudburst.Client(client_settings(cluster))
    workers = start_workers(cluster, runners, env_dirs=(REPO / "bench" / "replay_env",), preload=("worker",))
    try:
        time.sleep(3)  # the runners started and idle, as in a running cluster
        cpu_before = redis_cpu_s(cluster["redis"])
        reads_before = cluster["redis"].info("stats")["total_reads_processed"]
        started = time.perf_counter()
        ensemble = client.submit(MODEL, scenario, name=name)
        if follow == "wait":
            Submitted.wait(ensemble, progress=False)
        while (progress := ensemble.status()).finished < members:
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        cpu_us = (redis_cpu_s(cluster["redis"]) - cpu_before) * 1e6 / progress.finished
        reads = cluster["redis"].info("stats")["total_reads_processed"] - reads_before
    finally:
        stop(workers)
    return members / seconds, progress.finished, cpu_us, reads / -(-members // batch_members)


def measure(label: str, outputs: dict, members: int, cluster: dict, log: Path) -> dict[str, float]:
    scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    scenario.update(members=members, output=outputs)
    client = cloudburst.Client(client_settings(cluster))
    connection = cluster["redis"]
    connection.config_resetstat()
    before_points, before_nginx = influx_points(cluster["influx"]), nginx_bytes(log)
    workers = start_workers(cluster)
    try:
        started = time.perf_counter()
        ensemble = client.submit(MODEL, scenario, name=f"load-{label}")
        ensemble.wait(progress=False)
        elapsed = time.perf_counter() - started
    finally:
        stop(workers)
    commands, redis_bytes = redis_counters(connection)
    taken, served = (after - before for after, before in zip(nginx_bytes(log), before_nginx))
    return {"members": members, "seconds": elapsed, "batches": len(client.ledger.plan(f"load-{label}")),
            "redis_commands": commands / members, "redis_bytes": redis_bytes / members,
            "store_bytes_in": taken / members, "nginx_bytes_out": served / members,
            "influx_points": (influx_points(cluster["influx"]) - before_points) / members,
            "bytes": client.store.size(f"load-{label}") / members, "client": client}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--replay-members", type=int, default=200_000)
    parser.add_argument("--replay-runners", type=int, default=4)
    parser.add_argument("--wait-rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for part in ("influx", "cluster"):
            (Path(scratch) / part).mkdir()
        with influxdb(Path(scratch) / "influx", auth=True) as influx, \
                local_cluster(Path(scratch) / "cluster", influx, access_log=True) as cluster:
            log = next((Path(scratch) / "cluster").glob("nginx-*/access.log"), Path(scratch) / "none")
            results = {"summary only": measure("summary", {}, args.members, cluster, log),
                       "full series": measure("series", {"series": FULL_SERIES}, args.members, cluster, log)}
            connection = cluster["redis"]
            redis_capacity = redis_commands_per_s(connection)
            store_capacity = store_bytes_per_s(results["summary only"]["client"])
            batch_members = max(1, round(args.members / results["summary only"]["batches"]))
            replayed_rate, replayed, replayed_cpu_us, replayed_reads = replay_rate(
                cluster, args.replay_members, batch_members, args.replay_runners)
            # The same replay with Redis and Nginx speaking TLS only, the client and the runners verifying them; and
            # both again with the client following as `cloudburst wait` does, alternating plain and TLS.
            (Path(scratch) / "tls-cluster").mkdir()
            with local_cluster(Path(scratch) / "tls-cluster", influx, tls=True) as secured:
                tls_rate, tls_replayed, tls_cpu_us, tls_reads = replay_rate(secured, args.replay_members,
                                                                            batch_members, args.replay_runners)
                waited: dict[str, list[float]] = {"plain": [], "tls": []}
                for round_ in range(args.wait_rounds):
                    for label, where in (("plain", cluster), ("tls", secured)):
                        waited[label].append(replay_rate(where, args.replay_members, batch_members,
                                                         args.replay_runners, "wait", f"load-waited-{round_}")[2])
    print(f"load on the master per member: Net3 24 h, {args.members} members, 2 worker processes on this host")
    print(f"  {'outputs':<14} {'batches':>7} {'Redis cmds':>10} {'Redis bytes':>11} {'store in':>10} "
          f"{'Nginx out':>9} {'Influx pts':>10} {'stored B':>9} {'members/s':>9}")
    for label, row in results.items():
        print(f"  {label:<14} {row['batches']:7d} {row['redis_commands']:10.2f} {row['redis_bytes']:11,.0f} "
              f"{row['store_bytes_in']:10,.0f} {row['nginx_bytes_out']:9,.0f} {row['influx_points']:10,.1f} "
              f"{row['bytes']:9,.0f} {row['members'] / row['seconds']:9.1f}")
    summary, series = results["summary only"], results["full series"]
    print(f"capacity measured here: Redis {redis_capacity:,.0f} commands/s (redis-benchmark, 8 clients, single "
          f"commands); the store {store_capacity / 1e6:,.1f} MB/s (PUTs of 64-member full-series batch files)")
    redis_bound = redis_capacity / max(summary["redis_commands"], series["redis_commands"])
    store_bound = store_capacity / series["store_bytes_in"]
    # 2 worker processes on this host's 2 cores; full series include link flows, which run on the file path
    summary_core, series_core = (row["members"] / row["seconds"] / 2 for row in (summary, series))
    print(f"measured: {replayed:,} members recorded by {args.replay_runners} runners doing only a batch's Redis side "
          f"(batches of {batch_members}, the summary run's size), {replayed_rate:,.0f} members/s; the runners, the "
          "client and Redis share this host's 2 cores")
    print("estimate, not measured on such a cluster: what one master like this one feeds")
    print(f"  Redis bounds any workload at {redis_bound:,.0f} members/s; the store bounds Net3 full series at "
          f"{store_bound:,.0f} members/s")
    print(f"  a worker core here runs {summary_core:.1f} Net3 members/s summary-only (a 16-core host "
          f"~{16 * summary_core:,.0f}/s) and {series_core:.1f}/s with full series (~{16 * series_core:,.0f}/s): "
          f"summary-only ~{redis_bound / (16 * summary_core):.1f} hosts, "
          f"full series ~{min(redis_bound, store_bound) / (16 * series_core):.1f} hosts")
    print(verdict("Redis commands per member", summary["redis_commands"], 3, at_least=False))
    print(verdict("members/s the master's Redis recorded (measured replay)", replayed_rate, 20_000, at_least=True))
    print(f"the replay with TLS on (rediss://, verified) and off, same run: {tls_replayed:,} vs {replayed:,} members, "
          f"{tls_rate:,.0f} vs {replayed_rate:,.0f} members/s, Redis CPU {tls_cpu_us:.1f} vs {replayed_cpu_us:.1f} µs "
          f"per member recorded; Redis read events (round trips) per batch {tls_reads:.1f} vs {replayed_reads:.1f}")
    print(f"  the client polling its status every 50 ms: growth {100 * (tls_cpu_us / replayed_cpu_us - 1):+.0f} %")
    plain_us, tls_us = (float(np.median(waited[label])) for label in ("plain", "tls"))
    print(f"the same replays, the client following as `cloudburst wait` does (its workers' signals), "
          f"{args.wait_rounds} rounds alternating plain and TLS: Redis CPU per member recorded, TLS "
          f"{' '.join(f'{value:.2f}' for value in waited['tls'])} µs vs plain "
          f"{' '.join(f'{value:.2f}' for value in waited['plain'])} µs; medians {tls_us:.2f} vs {plain_us:.2f}")
    print(verdict("growth of the master's Redis CPU per member with TLS, a client following as `cloudburst wait` "
                  "(%, medians)", 100 * (tls_us / plain_us - 1), 20, at_least=False))


if __name__ == "__main__":
    main()
