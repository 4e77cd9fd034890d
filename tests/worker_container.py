"""CloudBurst's worker image under Docker on this machine, fed by a real Nginx and Redis on loopback.

Used by tests/test_worker_image.py and bench/worker_startup.py: publish an env the way push-env does
(roles/push_env/files/package_env.py, then env/<version>/env.zip, wheels/ and env/current under Nginx's
root), and run worker containers on the host network so they reach the loopback servers.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ENV = REPO / "roles" / "push_env" / "files" / "package_env.py"
WORKER_CONTEXT = REPO / "files" / "images" / "worker"
BASE_IMAGE = "cloudburst/debian:bookworm"
IMAGE = "cloudburst/worker:tests"
READER = ("cloudburst", "reader-password")


def build_worker_image() -> str:
    subprocess.run(["docker", "build", "-q", "--build-arg", f"BASE={BASE_IMAGE}", "-t", IMAGE, str(WORKER_CONTEXT)],
                   check=True, capture_output=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
    return IMAGE


def package(env_dir: Path, build_dir: Path, installer: str = "uv", *options: str) -> dict:
    result = subprocess.run([sys.executable, str(PACKAGE_ENV), str(env_dir), str(build_dir), "--installer", installer,
                             *options], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return {**json.loads(result.stdout), "log": result.stderr}


def publish(package_info: dict, build_dir: Path, root: Path, current: str | None = None) -> str:
    """Copy the wheels and env.zip under Nginx's root, then point env/current at the version (last, atomically)."""
    version = package_info["version"]
    (root / "wheels").mkdir(parents=True, exist_ok=True)
    for wheel in package_info["wheels"]:
        shutil.copyfile(build_dir / "wheels" / wheel["file"], root / "wheels" / wheel["file"])
    (root / "env" / version).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(package_info["zip"], root / "env" / version / "env.zip")
    point(root, current or version)
    return version


def point(root: Path, version: str) -> None:
    pointer = root / "env" / "current"
    partial = pointer.with_suffix(".part")
    partial.write_text(version + "\n")
    partial.replace(pointer)


class WorkerContainer:
    def __init__(self, files_url: str, redis_url: str, secrets_dir: Path, processes: int = 2,
                 cache_volume: str | None = None):
        self.name = f"cloudburst-test-worker-{uuid.uuid4().hex[:8]}"
        self.cache_volume = cache_volume or self.name
        secrets_dir.mkdir(parents=True, exist_ok=True)
        (secrets_dir / "files_password").write_text(READER[1])
        (secrets_dir / "files_password").chmod(0o644)
        self.args = ["docker", "run", "-d", "--name", self.name, "--network", "host",
                     "-v", f"{self.cache_volume}:/var/lib/cloudburst", "-v", f"{secrets_dir}:/run/test-secrets:ro",
                     "-e", f"CLOUDBURST_FILES_URL={files_url}", "-e", f"CLOUDBURST_FILES_USER={READER[0]}",
                     "-e", "CLOUDBURST_FILES_PASSWORD_FILE=/run/test-secrets/files_password",
                     "-e", f"CLOUDBURST_REDIS_URL={redis_url}", "-e", f"CLOUDBURST_PROCESSES={processes}",
                     "-e", "CLOUDBURST_POLL_S=1", "-e", "CLOUDBURST_HEARTBEAT_S=1", "-e", "CLOUDBURST_MAINTENANCE_S=1",
                     IMAGE]

    def start(self) -> "WorkerContainer":
        subprocess.run(self.args, check=True, capture_output=True)
        return self

    def logs(self) -> str:
        return subprocess.run(["docker", "logs", self.name], capture_output=True, text=True).stdout

    def wait_for_log(self, text: str, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            logs = self.logs()
            if text in logs:
                return logs
            time.sleep(0.5)
        raise AssertionError(f"{text!r} not logged within {timeout_s} s:\n{self.logs()[-3000:]}")

    def kill_runners(self) -> None:
        """SIGKILL every runner process in the container (its supervisor stays and restarts them)."""
        subprocess.run(["docker", "exec", self.name, "python3", "-c",
                        "import os, signal\n"
                        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
                        "    try:\n"
                        "        if int(pid) != os.getpid() and b'runner.py' in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
                        "            os.kill(int(pid), signal.SIGKILL)\n"
                        "    except OSError:\n"
                        "        pass\n"], check=True)

    def remove(self, keep_cache: bool = False) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)
        if not keep_cache:
            subprocess.run(["docker", "volume", "rm", "-f", self.cache_volume], capture_output=True)
