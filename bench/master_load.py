"""Benchmark: the load one ensemble member puts on the master (Redis, InfluxDB, Nginx), for capacity planning.

Runs members of the demo scenario (Net3, 24 h) through worker runners with the example env against a Redis,
an InfluxDB and an Nginx started here on loopback, twice: summary-only outputs (the default) and full series
(pressure and head at every node, flow at every link). Reads Redis's own command and byte counters, InfluxDB's
httpd statistics and the bytes Nginx served, and prints them per member. docs/scaling.md turns them into how
many worker hosts one master can feed.

    .venv/bin/python bench/master_load.py [--members 200]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wntr
import yaml
from redis import Redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from services import influxdb, nginx_server, redis_server  # noqa: E402

from cloudburst.influx import InfluxWriter  # noqa: E402
from cloudburst.job import parse_job  # noqa: E402
from cloudburst.queue import enqueue_members, open_queue  # noqa: E402
from cloudburst.results import series_lines  # noqa: E402
from cloudburst.resultformat import PRECISION  # noqa: E402
from cloudburst.scenarios import generate  # noqa: E402

RUNNER = REPO / "files" / "images" / "worker" / "runner.py"
FULL_SERIES = [{"element": "node", "attributes": ["pressure", "head"]}, {"element": "link", "attributes": ["flowrate"]}]


def redis_counters(connection: Redis) -> tuple[int, int, int]:
    commands = sum(stats["calls"] for stats in connection.info("commandstats").values())
    stats = connection.info("stats")
    return commands, stats["total_net_input_bytes"], stats["total_net_output_bytes"]


def influx_counters(server) -> tuple[int, int, int]:
    for series in server.query("SHOW STATS FOR 'httpd'"):
        row = dict(zip(series["columns"], series["values"][0]))
        return row["writeReq"], row["pointsWrittenOK"], row["writeReqBytes"]
    raise RuntimeError("InfluxDB reported no httpd statistics")


def nginx_bytes(log: Path) -> int:
    return sum(int(line.split()[-1]) for line in log.read_text().splitlines() if line.strip())


def redis_commands_per_s(redis_url: str) -> float:
    """What this Redis takes: redis-benchmark's mean requests/s over single commands RQ uses (8 clients)."""
    host_port = redis_url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, port = host_port.split(":")
    output = subprocess.run(["redis-benchmark", "-h", host, "-p", port, "-c", "8", "-n", "100000", "-q", "--csv",
                             "-t", "set,get,lpush,rpop,hset"], capture_output=True, text=True, check=True).stdout
    rates = [float(line.split(",")[1].strip('"')) for line in output.splitlines() if line.startswith('"')
             and not line.startswith('"test"')]
    return sum(rates) / len(rates)


def influx_points_per_s(server, members: int = 40) -> float:
    """What this InfluxDB ingests: full-series lines of Net3 members (built beforehand), written with the
    writer's own batching and concurrency into a fresh database."""
    wn = wntr.network.WaterNetworkModel(str(REPO / "files" / "models" / "Net3.inp"))
    wn.options.time.duration = 24 * 3600
    wn.options.quality.parameter = "NONE"
    with tempfile.TemporaryDirectory() as workdir:
        results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(workdir, "load"))
    lines = []
    for member in range(members):
        job = parse_job({"schema": "cloudburst.job/1", "ensemble": "capacity", "member": member,
                         "input": {"url": "http://x/n.inp", "sha256": "0" * 64}, "output": {"series": FULL_SERIES}})
        lines += series_lines(job, wn, results)
    points = sum(line.rsplit(" ", 2)[1].count("=") for line in lines)
    server.query("CREATE DATABASE capacity")
    started = time.perf_counter()
    InfluxWriter(server.url, "capacity").write(lines, precision=PRECISION)
    return points / (time.perf_counter() - started)


def measure(label: str, outputs: dict, members: int, scratch: Path, servers: dict) -> dict[str, float]:
    scenario = yaml.safe_load((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text())
    scenario.update(members=members, output={"db": "load", **outputs})
    model = wntr.network.WaterNetworkModel(str(REPO / "files" / "models" / "Net3.inp"))
    source = {"url": f"{servers['files']}/models/{servers['sha256']}.inp", "sha256": servers["sha256"]}
    documents = generate(scenario, model, source, name=f"load-{label}").documents
    connection = Redis.from_url(servers["redis"])
    connection.flushdb()
    connection.config_resetstat()
    before_influx, before_nginx = influx_counters(servers["influx"]), nginx_bytes(servers["nginx_log"])
    enqueue_members(open_queue(connection), documents)
    env = {**os.environ, "PYTHONPATH": str(REPO / "files" / "env" / "epanet"), "CLOUDBURST_LOG_LEVEL": "WARNING",
           "CLOUDBURST_INFLUX_URL": servers["influx"].url, "CLOUDBURST_INFLUX_DB": "load",
           "CLOUDBURST_FILES_URL": servers["files"], "CLOUDBURST_FILES_USER": "cloudburst",
           "CLOUDBURST_FILES_PASSWORD_FILE": str(servers["password_file"]),
           "CLOUDBURST_MODEL_CACHE": str(scratch / f"cache-{label}")}
    workers = [subprocess.Popen([sys.executable, str(RUNNER), "--redis-url", servers["redis"], "--burst"], env=env)
               for _ in range(2)]
    started = time.perf_counter()
    for worker in workers:
        worker.wait()
    elapsed = time.perf_counter() - started
    commands, bytes_in, bytes_out = redis_counters(connection)
    after_influx = influx_counters(servers["influx"])
    requests_, points, body = (after - before for after, before in zip(after_influx, before_influx))
    return {"members": members, "seconds": elapsed, "redis_commands": commands / members,
            "redis_bytes": (bytes_in + bytes_out) / members, "influx_requests": requests_ / members,
            "influx_points": points / members, "influx_bytes": body / members,
            "nginx_bytes": (nginx_bytes(servers["nginx_log"]) - before_nginx) / members}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        root = scratch / "files"
        (root / "models").mkdir(parents=True)
        model = (REPO / "files" / "models" / "Net3.inp").read_bytes()
        sha256 = hashlib.sha256(model).hexdigest()
        (root / "models" / f"{sha256}.inp").write_bytes(model)
        (scratch / "password").write_text("reader")
        with redis_server(scratch) as redis_url, influxdb(scratch) as influx, \
                nginx_server(root, {"cloudburst": "reader"}, access_log=True) as files:
            influx.query("CREATE DATABASE load")
            servers = {"redis": redis_url, "influx": influx, "files": files, "sha256": sha256,
                       "password_file": scratch / "password", "nginx_log": root.parent / f"nginx-{files.rsplit(':', 1)[1]}" / "access.log"}
            results = {"summary only": measure("summary", {}, args.members, scratch, servers),
                       "full series": measure("series", {"series": FULL_SERIES}, args.members, scratch, servers)}
            redis_capacity = redis_commands_per_s(redis_url)
            influx_capacity = influx_points_per_s(influx)
    print(f"load on the master per member: Net3 24 h, {args.members} members, 2 worker processes on this host")
    print(f"  {'outputs':<14} {'Redis cmds':>10} {'Redis bytes':>12} {'Influx reqs':>11} {'Influx points':>13} "
          f"{'Influx bytes':>12} {'Nginx bytes':>11} {'members/s':>9}")
    for label, row in results.items():
        print(f"  {label:<14} {row['redis_commands']:10.1f} {row['redis_bytes']:12,.0f} {row['influx_requests']:11.2f} "
              f"{row['influx_points']:13,.1f} {row['influx_bytes']:12,.0f} {row['nginx_bytes']:11,.0f} "
              f"{row['members'] / row['seconds']:9.1f}")
    summary, series = results["summary only"], results["full series"]
    print(f"capacity measured here: Redis {redis_capacity:,.0f} commands/s (redis-benchmark, 8 clients, single "
          f"commands); InfluxDB {influx_capacity:,.0f} points/s (full-series lines, the writer's batching)")
    redis_bound = redis_capacity / summary["redis_commands"]
    influx_bound = influx_capacity / series["influx_points"]
    per_core = summary["members"] / summary["seconds"] / 2  # 2 worker processes on this host's 2 cores
    print("extrapolation (not measured on such a cluster): what one master like this one feeds")
    print(f"  Redis bounds any workload at {redis_bound:,.0f} members/s; InfluxDB bounds Net3 full series at "
          f"{influx_bound:,.0f} members/s")
    print(f"  a Net3 worker core here runs {per_core:.1f} members/s, a 16-core worker host ~{16 * per_core:,.0f}/s: "
          f"summary-only ~{redis_bound / (16 * per_core):.1f} hosts, full series ~{influx_bound / (16 * per_core):.2f} hosts")


if __name__ == "__main__":
    main()
