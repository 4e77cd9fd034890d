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

from cloudburst.queue import enqueue_members, open_queue  # noqa: E402
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
    print(f"load on the master per member: Net3 24 h, {args.members} members, 2 worker processes on this host")
    print(f"  {'outputs':<14} {'Redis cmds':>10} {'Redis bytes':>12} {'Influx reqs':>11} {'Influx points':>13} "
          f"{'Influx bytes':>12} {'Nginx bytes':>11} {'members/s':>9}")
    for label, row in results.items():
        print(f"  {label:<14} {row['redis_commands']:10.1f} {row['redis_bytes']:12,.0f} {row['influx_requests']:11.2f} "
              f"{row['influx_points']:13,.1f} {row['influx_bytes']:12,.0f} {row['nginx_bytes']:11,.0f} "
              f"{row['members'] / row['seconds']:9.1f}")


if __name__ == "__main__":
    main()
