"""Benchmark: putting CloudBurst's images on the test cluster's hosts, archive copies (images_mode build, the
baseline) against the cluster's own registry (images_mode registry), in the same run.

For each mode, on fresh hosts of Molecule's stack scenario (one master, two workers; Debian 12 and 13;
Docker-in-Docker): Docker Engine and the swarm are converged first (not timed), then site.yml's image layer
(`--tags images`) is timed. Bytes each host received: its network counters (eth0) over the layer (the registry's
pushes and pulls), plus the size of any archive the controller sent it (Molecule copies files through Docker's
API, which the counters do not see). The controller's images are built once beforehand (not timed), so both modes start from the same
built images. Prints the two side by side, then what the figures give for 10 and 100 workers (the model in
docs/scaling.md).

    .venv/bin/python bench/image_distribution.py [--bandwidth-mb-s 117]
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from verdict import verdict

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MASTER = "cb-stack-master"
WORKERS = ["cb-stack-worker1", "cb-stack-worker2"]
MB = 1e6


def run(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - started


def molecule(action: str) -> None:
    run([str(BIN / "molecule"), action, "-s", "stack"],
        {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0"})


def site(mode: str, *options: str) -> float:
    ephemeral = sorted(glob.glob(os.path.expanduser("~/.ansible/tmp/molecule.*.stack")))[-1]
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
           "MOLECULE_EPHEMERAL_DIRECTORY": ephemeral, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return run([str(BIN / "ansible-playbook"), "-i", f"{ephemeral}/inventory/ansible_inventory.yml", "site.yml",
                "-e", f"images_mode={mode}", *options], env)


def build_images() -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles")}
    run([str(BIN / "ansible"), "localhost", "-m", "ansible.builtin.include_role", "-a", "name=images tasks_from=build",
         "-e", "images_mode=registry", "-e", f"images_source_dir={REPO / 'files' / 'images'}"], env)


def counters(host: str) -> tuple[int, int]:
    """(received, sent) bytes of the host's eth0: the scenario network, which the controller reaches too."""
    read = subprocess.check_output(["docker", "exec", host, "cat", "/sys/class/net/eth0/statistics/rx_bytes",
                                    "/sys/class/net/eth0/statistics/tx_bytes"], text=True).split()
    return int(read[0]), int(read[1])


@dataclass
class Delivery:
    mode: str
    seconds: float
    received: dict[str, int]  # host -> bytes received during the image layer
    sent: dict[str, int]

    @property
    def from_controller(self) -> int:
        """Bytes the controller sent: every host's in build mode; in registry mode the master's alone (the push
        and the registry's own image), the workers pulling from the master."""
        return sum(self.received.values()) if self.mode == "build" else self.received[MASTER]

    @property
    def per_worker(self) -> float:
        return sum(self.received[w] for w in WORKERS) / len(WORKERS)


def archive_bytes(host: str) -> int:
    """Bytes of the archive the controller sent the host: the export of the local-named (cloudburst/...) images it
    holds, as docker_image_export writes it. Molecule's hosts receive files through Docker's API, not their
    network, so their counters do not see archives."""
    refs = [ref for ref in subprocess.check_output(["docker", "exec", host, "docker", "image", "ls", "--format",
                                                    "{{.Repository}}:{{.Tag}}"], text=True).split()
            if ref.startswith("cloudburst/")]
    if not refs:
        return 0
    save = subprocess.Popen(["docker", "image", "save", *refs], stdout=subprocess.PIPE)
    total = 0
    assert save.stdout is not None
    while chunk := save.stdout.read(1 << 20):
        total += len(chunk)
    save.wait()
    return total


def deliver(mode: str) -> Delivery:
    molecule("destroy")
    molecule("create")
    site(mode, "--tags", "docker_engine,swarm,firewall")
    before = {host: counters(host) for host in [MASTER, *WORKERS]}
    seconds = site(mode, "--tags", "images")
    after = {host: counters(host) for host in [MASTER, *WORKERS]}
    received = {host: after[host][0] - before[host][0] + archive_bytes(host) for host in before}
    return Delivery(mode, seconds, received, {host: after[host][1] - before[host][1] for host in before})


def model(delivery: Delivery, workers: int, bandwidth: float) -> float:
    """Seconds of transfer for a cluster of `workers` workers and a master, every link `bandwidth` bytes/s: in
    build mode all archives leave the controller's one link; in registry mode the controller's push crosses it
    once and the workers' pulls leave the master's."""
    if delivery.mode == "build":
        return (delivery.received[MASTER] + workers * delivery.per_worker) / bandwidth
    return delivery.received[MASTER] / bandwidth + workers * delivery.per_worker / bandwidth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bandwidth-mb-s", type=float, default=117.0,
                        help="link speed the model assumes, MB/s (117: 1 Gbit/s Ethernet's payload)")
    args = parser.parse_args()
    molecule("destroy")
    try:
        molecule("create")
        build_images()  # every image, the registry's too, built once beforehand (untimed)
        results = [deliver("build"), deliver("registry")]
    finally:
        molecule("destroy")
    archive, registry = results
    print("site.yml --tags images on the test cluster (1 master + 2 workers, fresh hosts, images built beforehand)")
    print(f"{'':34}{'archives (build)':>20}{'registry':>14}")
    print(f"{'time':34}{archive.seconds:>18.1f} s{registry.seconds:>12.1f} s")
    for host in [MASTER, *WORKERS]:
        print(f"{'received by ' + host:34}{archive.received[host] / MB:>17.0f} MB{registry.received[host] / MB:>11.0f} MB")
    print(f"{'sent by the master':34}{archive.sent[MASTER] / MB:>17.0f} MB{registry.sent[MASTER] / MB:>11.0f} MB")
    print(f"{'sent by the controller':34}{archive.from_controller / MB:>17.0f} MB{registry.from_controller / MB:>11.0f} MB")
    print(verdict("bytes the controller sends, registry / archives (measured)",
                  registry.from_controller / max(archive.from_controller, 1), 1 / 2, at_least=False, unit="x"))
    print(verdict("site.yml --tags images time, registry / archives (measured)",
                  registry.seconds / archive.seconds, 1.0, at_least=False, unit="x"))
    bandwidth = args.bandwidth_mb_s * MB
    print(f"model, not measured: transfer time at {args.bandwidth_mb_s:.0f} MB/s per link (docs/scaling.md):")
    for workers in (10, 100):
        print(f"  {workers:>3} workers: archives {model(archive, workers, bandwidth):7.0f} s, "
              f"registry {model(registry, workers, bandwidth):7.0f} s (controller's link: "
              f"{(archive.received[MASTER] + workers * archive.per_worker) / MB / 1000:.1f} GB against "
              f"{registry.received[MASTER] / MB / 1000:.1f} GB)")


if __name__ == "__main__":
    main()
