"""The master's traffic captured (tcpdump on the master host, every interface: the published ports and the overlay's
VXLAN packets from the worker hosts) while an ensemble and a task set run: no password, no basic-auth header, no
Redis AUTH, no result file and no ensemble name in clear anywhere in it."""
import json
import subprocess
import time
from pathlib import Path

from stack_view import MASTER, cloudburst, cluster_host, secret_values

testinfra_hosts = [MASTER]
REPO = Path(__file__).resolve().parents[4]
MODEL = REPO / "files" / "models" / "Net3.inp"
CAPTURE = "/tmp/cloudburst-capture.pcap"


def test_nothing_secret_or_computed_crosses_the_network_in_clear(tmp_path):
    master = cluster_host(MASTER)
    master.check_output("command -v tcpdump >/dev/null || (apt-get update -qq && "
                        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null)")
    master.check_output(f"rm -f {CAPTURE}; (tcpdump -i any -s 0 -U -w {CAPTURE} 'tcp or udp port 4789' "
                        ">/tmp/tcpdump.log 2>&1 &)")
    time.sleep(2)
    name = f"captured-{int(time.time())}"
    scenario = tmp_path / "small.yml"
    scenario.write_text((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text()
                        .replace("members: 200", "members: 40"))
    try:
        ensemble = cloudburst("submit", str(MODEL), str(scenario), "--name", name, "--wait")
        assert ensemble.returncode == 0, ensemble.stderr[-2000:]
        read = cloudburst("results", name, "--element", "node:123", "--attribute", "pressure", "--csv",
                          str(tmp_path / "read.csv"))
        assert read.returncode == 0, read.stderr
        uploaded = cloudburst("upload", str(MODEL))
        tasks = tmp_path / "tasks.jsonl"
        tasks.write_text("".join(json.dumps({"model": uploaded.stdout.strip(), "demand_factor": 0.9 + i / 100}) + "\n"
                                 for i in range(20)))
        taskset = cloudburst("tasks", "submit", "worker:lowest_pressure", str(tasks), "--name", f"{name}-tasks",
                             "--wait")
        assert taskset.returncode == 0, taskset.stderr[-2000:]
        assert cloudburst("tasks", "results", f"{name}-tasks").returncode == 0
    finally:
        master.run("pkill -INT tcpdump; sleep 2")
    pcap = tmp_path / "capture.pcap"
    subprocess.run(["docker", "cp", f"{MASTER}:{CAPTURE}", str(pcap)], check=True)
    captured = pcap.read_bytes()
    # The capture did see the work: packets on each published port and on the overlay between the hosts.
    for traffic in ("tcp port 6379", "tcp port 8080", "tcp port 8086", "udp port 4789"):
        packets = master.check_output(f"tcpdump -r {CAPTURE} -nn '{traffic}' 2>/dev/null | wc -l")
        assert int(packets) > 10, (traffic, packets)
    for secret in secret_values():
        assert secret.encode() not in captured, "a secret of the controller's secrets directory crossed in clear"
    # Markers of each kind (long enough that encrypted bytes never match them by chance): a basic-auth header, Redis's
    # AUTH command, a results file's column, a batch document's key, the ensemble's name, the task set's function.
    for clear in (b"Authorization: Basic", b"\r\nAUTH\r\n", b"elapsed_s", b'"ensemble"', name.encode(),
                  b"lowest_pressure"):
        assert clear not in captured, clear
