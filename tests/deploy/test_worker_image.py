"""The worker image under Docker: envs published, refused, installed with uv or pip, upgraded; jobs killed and run again."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer
from services import nginx_server, redis_server
from waiting import wait_until
from worker_container import (
    READER,
    WorkerContainer,
    build_worker_image,
    package,
    point,
    publish,
)

PROBE_WORKER = '''
import os
import time

from redis import Redis

VERSION = {version}
_redis = Redis.from_url(os.environ["CLOUDBURST_REDIS_URL"])


def which(tag, sleep_s=0.0):
    """Record that this job ran (and on which version), after sleeping sleep_s on its first attempt."""
    attempt = _redis.incr(f"attempts:{{tag}}")
    if attempt == 1:
        time.sleep(sleep_s)
    _redis.rpush("ran", f"{{tag}}@{{VERSION}}")
    return VERSION
'''


RUNTIME = "rq==3.0.0\nredis==8.1.0\nasync-timeout==5.0.1\n"


@pytest.fixture(scope="module")
def image() -> str:
    return build_worker_image()


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("env-build")


def probe_env(directory: Path, version: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "worker.py").write_text(PROBE_WORKER.format(version=version))
    (directory / "requirements.txt").write_text(RUNTIME)
    return directory


@pytest.fixture
def cluster(tmp_path, image, build_dir):
    """Nginx and Redis on loopback, a worker container, and a way to publish probe env versions."""
    root = tmp_path / "files"
    root.mkdir()
    with nginx_server(root, {READER[0]: READER[1]}) as files_url, redis_server(tmp_path) as redis_url:
        worker = WorkerContainer(files_url, redis_url, tmp_path / "secrets")

        def release(version: int, installer: str = "uv") -> str:
            return publish(package(probe_env(tmp_path / f"env-v{version}", version), build_dir, installer), build_dir,
                           root)

        connection = Redis.from_url(redis_url)
        yield {"worker": worker, "release": release, "root": root, "redis": connection,
               "queue": Queue("cloudburst", connection=connection, serializer=JSONSerializer)}
        worker.remove()


def wait_finished(jobs: list[Job], timeout_s: float = 120) -> None:
    wait_until("every job finished or failed", lambda: [job.get_status(refresh=True) for job in jobs], timeout_s,
               done=lambda statuses: all(status in ("finished", "failed") for status in statuses))
    assert [job.get_status() for job in jobs] == ["finished"] * len(jobs), [job.exc_info for job in jobs][:2]


def test_a_new_version_takes_over_after_the_jobs_in_hand_with_none_lost_or_run_twice(cluster):
    queue, worker = cluster["queue"], cluster["worker"]
    v1 = cluster["release"](1)
    worker.start().wait_for_log(f"process 1 started on env {v1[:12]}")
    early = [queue.enqueue("worker.which", f"early-{n}") for n in range(4)]
    wait_finished(early)
    assert [job.return_value() for job in early] == [1] * 4

    in_flight = [queue.enqueue("worker.which", f"slow-{n}", 2.0) for n in range(6)]
    wait_until("two slow jobs started", lambda: [job.get_status(refresh=True) for job in in_flight], 120,
               done=lambda statuses: statuses.count("started") >= 2)
    v2 = cluster["release"](2)
    logs = worker.wait_for_log(f"switching from env {v1[:12]} to {v2[:12]}")
    later = [queue.enqueue("worker.which", f"later-{n}") for n in range(4)]
    wait_finished(in_flight + later)
    # the supervisor notices each old process's exit within a second
    logs = wait_until("both old processes finished their last job", worker.logs, 30,
                      done=lambda text: text.count("finished its last job") >= 2)
    assert f"env {v2[:12]} installed" in logs and logs.count("finished its last job") == 2

    assert [job.return_value() for job in later] == [2] * 4
    assert {job.return_value() for job in in_flight[:2]} == {1}  # started on v1, finished on v1
    ran = [entry.decode() for entry in cluster["redis"].lrange("ran", 0, -1)]
    tags = [entry.split("@")[0] for entry in ran]
    assert sorted(tags) == sorted(job.args[0] for job in early + in_flight + later)  # each exactly once


def test_with_no_env_published_the_worker_waits_says_so_and_serves_once_one_is(cluster):
    queue, worker = cluster["queue"], cluster["worker"]
    early = queue.enqueue("worker.which", "before-any-env")  # waits in the queue, not lost
    logs = worker.start().wait_for_log("no env published yet")
    assert re.search(r"no env published yet at http://\S+/env/current; waiting \d+ s \(publish one with "
                     r"push-env.yml\)", logs)
    assert early.get_status(refresh=True) == "queued"
    v1 = cluster["release"](1)
    worker.wait_for_log(f"process 1 started on env {v1[:12]}", timeout_s=90)  # backoff is at most 30 s
    wait_finished([early])
    assert early.return_value() == 1


def test_a_corrupt_env_is_refused_and_the_worker_keeps_its_version(cluster):
    queue, worker, root = cluster["queue"], cluster["worker"], cluster["root"]
    v1 = cluster["release"](1)
    worker.start().wait_for_log(f"process 1 started on env {v1[:12]}")
    forged = "f" * 64
    (root / "env" / forged).mkdir()
    original = (root / "env" / v1 / "env.zip").read_bytes()
    (root / "env" / forged / "env.zip").write_bytes(original[:-10] + b"tampered!!")
    point(root, forged)
    logs = worker.wait_for_log(f"refused env {forged[:12]}")
    assert re.search(rf"refused env {forged[:12]}: env.zip of version {forged[:12]} has sha256 \w+: corrupt or "
                     rf"altered; keeping env {v1[:12]}", logs)
    job = queue.enqueue("worker.which", "after-corruption")
    wait_finished([job])
    assert job.return_value() == 1


def test_a_wheel_that_does_not_match_its_manifest_hash_is_refused_and_the_worker_keeps_its_version(
        cluster, tmp_path, build_dir):
    queue, worker, root = cluster["queue"], cluster["worker"], cluster["root"]
    v1 = cluster["release"](1)
    worker.start().wait_for_log(f"process 1 started on env {v1[:12]}")
    env = probe_env(tmp_path / "env-v2", 2)
    (env / "requirements.txt").write_text(RUNTIME + "six==1.17.0\n")  # a wheel the worker has not cached yet
    info = package(env, build_dir)
    v2 = publish(info, build_dir, root, current=v1)
    six = next(wheel["file"] for wheel in info["wheels"] if wheel["file"].startswith("six-"))
    (root / "wheels" / six).write_bytes((root / "wheels" / six).read_bytes() + b"altered")
    point(root, v2)
    logs = worker.wait_for_log(f"refused env {v2[:12]}")
    assert re.search(rf"refused env {v2[:12]}: wheel {re.escape(six)} has sha256 \w+, the manifest says \w+; "
                     rf"keeping env {v1[:12]}", logs), logs[-2000:]
    job = queue.enqueue("worker.which", "after-altered-wheel")
    wait_finished([job])
    assert job.return_value() == 1


def forge_uninstallable(info: dict, root: Path, wheel_prefix: str) -> str:
    """Publish a copy of the packaged env whose wheel (by name prefix) is not a wheel, with hashes that match it
    everywhere (manifest, lock file, env.zip's own): it passes every check and fails only in pip. Returns the
    version, not yet current."""
    source = zipfile.ZipFile(info["zip"])
    manifest = json.loads(source.read("cloudburst-manifest.json"))
    wheel = next(entry for entry in manifest["wheels"] if entry["file"].startswith(wheel_prefix))
    garbage = b"not a wheel at all"
    digest = hashlib.sha256(garbage).hexdigest()
    lock = source.read(manifest["requirements"]).decode().replace(wheel["sha256"], digest)
    wheel["sha256"] = digest
    forged = io.BytesIO()
    with zipfile.ZipFile(forged, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "cloudburst-manifest.json":
                data = json.dumps(manifest).encode()
            elif item.filename == manifest["requirements"]:
                data = lock.encode()
            target.writestr(item, data)
    version = hashlib.sha256(forged.getvalue()).hexdigest()
    (root / "wheels" / wheel["file"]).write_bytes(garbage)
    (root / "env" / version).mkdir(parents=True)
    (root / "env" / version / "env.zip").write_bytes(forged.getvalue())
    return version


def test_an_env_that_fails_to_install_is_refused_and_the_worker_keeps_its_version(cluster, tmp_path, build_dir):
    queue, worker, root = cluster["queue"], cluster["worker"], cluster["root"]
    v1 = cluster["release"](1)
    worker.start().wait_for_log(f"process 1 started on env {v1[:12]}")
    env = probe_env(tmp_path / "env-v3", 3)
    (env / "requirements.txt").write_text(RUNTIME + "six==1.17.0\n")
    info = package(env, build_dir)
    publish(info, build_dir, root, current=v1)
    broken = forge_uninstallable(info, root, "six-")
    point(root, broken)
    logs = worker.wait_for_log(f"refused env {broken[:12]}")
    assert re.search(rf"refused env {broken[:12]}: installing env {broken[:12]} failed: .+; keeping env {v1[:12]}",
                     logs), logs[-2000:]
    job = queue.enqueue("worker.which", "after-install-failure")
    wait_finished([job])
    assert job.return_value() == 1


def test_the_venv_is_built_with_uv_shipped_with_the_env_or_with_pip_when_the_env_asks(cluster):
    queue, worker = cluster["queue"], cluster["worker"]
    v1 = cluster["release"](1)
    worker.start().wait_for_log(f"process 1 started on env {v1[:12]}")
    v2 = cluster["release"](2, installer="pip")
    logs = worker.wait_for_log(f"process 1 started on env {v2[:12]}")
    assert re.search(rf"env {v1[:12]} installed \(\d+ wheels, with uv\) in", logs), logs[-2000:]
    assert re.search(rf"env {v2[:12]} installed \(\d+ wheels, with pip\) in", logs), logs[-2000:]
    job = queue.enqueue("worker.which", "on-pip")
    wait_finished([job])
    assert job.return_value() == 2


def site_packages(version: str) -> str:
    return f"/var/lib/cloudburst/envs/{version}/venv/lib/python3.11/site-packages"


def test_the_wheels_bytecode_compiled_on_the_controller_is_what_the_workers_import(cluster, build_dir):
    queue, worker = cluster["queue"], cluster["worker"]
    v1 = cluster["release"](1)
    logs = worker.start().wait_for_log(f"process 1 started on env {v1[:12]}")
    job = queue.enqueue("worker.which", "compiled")
    wait_finished([job])
    manifest = json.loads(zipfile.ZipFile(cluster["root"] / "env" / v1 / "env.zip").read("cloudburst-manifest.json"))
    archive = zipfile.ZipFile(build_dir / "wheels" / manifest["bytecode"]["file"])
    unpacked = int(re.search(r"bytecode for (\d+) modules unpacked into the venv", logs).group(1))
    assert unpacked == len(archive.namelist()) > 20  # rq's, redis's and async-timeout's modules, every one installed
    for module in ("rq/__pycache__/job.cpython-311.pyc", "redis/__pycache__/client.cpython-311.pyc"):
        in_venv = subprocess.run(["docker", "exec", worker.name, "cat", f"{site_packages(v1)}/{module}"],
                                 capture_output=True, check=True).stdout
        # Imported by the runner, and still the shipped file: a .pyc Python had rejected would have been rewritten
        # (timestamp-based, flags 0). Flags 1: hash-based, unchecked (PEP 552).
        assert in_venv == archive.read(module) and int.from_bytes(in_venv[4:8], "little") == 1, module


def test_the_bytecode_is_the_same_from_any_controller_and_is_not_built_for_another_python(tmp_path, build_dir):
    env = probe_env(tmp_path / "env-bytecode", 1)
    first = package(env, build_dir)
    elsewhere = package(env, tmp_path / "another-build")
    assert elsewhere["version"] == first["version"]  # the same env, compiled again, keeps its version
    other_python = package(env, tmp_path / "build-312", "uv", "--python-version", "3.12")
    assert "bytecode" not in other_python and "bytecode" in first
    assert "no bytecode shipped: this controller runs Python 3.11, the workers 3.12" in other_python["log"]
    without = package(env, build_dir, "uv", "--bytecode", "off")
    assert "bytecode" not in without and without["version"] != first["version"]


def test_a_restart_on_the_same_version_installs_nothing(cluster):
    worker = cluster["worker"]
    v1 = cluster["release"](1)
    worker.start().wait_for_log(f"process 1 started on env {v1[:12]}")
    subprocess.run(["docker", "restart", worker.name], check=True, capture_output=True)
    logs = wait_until("the restarted worker's processes", worker.logs, 120,
                      done=lambda text: text.count(f"process 1 started on env {v1[:12]}") == 2)
    assert logs.count(f"env {v1[:12]} installed (") == 1
    assert f"env {v1[:12]} already installed in" in logs.split("stopped", 1)[1]
    job = cluster["queue"].enqueue("worker.which", "after-restart")
    wait_finished([job])
    assert job.return_value() == 1


def test_a_job_whose_process_is_killed_runs_again_and_finishes(cluster):
    queue, worker = cluster["queue"], cluster["worker"]
    v1 = cluster["release"](1)
    worker.start().wait_for_log(f"process 1 started on env {v1[:12]}")
    victim = queue.enqueue("worker.which", "victim", 60.0, retry=Retry(max=2), job_timeout=300)
    wait_until("the victim started", lambda: victim.get_status(refresh=True), 120,
               done=lambda status: status == "started")
    worker.kill_runners()
    wait_finished([victim], timeout_s=60)
    assert int(cluster["redis"].get("attempts:victim")) == 2
    assert [entry.decode() for entry in cluster["redis"].lrange("ran", 0, -1)] == ["victim@1"]
    assert "exited with -9; restarting" in worker.logs()


C_EXTENSION = r"""
#include <Python.h>
static PyObject *twice(PyObject *self, PyObject *args) {
    long value;
    if (!PyArg_ParseTuple(args, "l", &value)) return NULL;
    return PyLong_FromLong(2 * value);
}
static PyMethodDef methods[] = {{"twice", twice, METH_VARARGS, "2 x value"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cext_probe", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cext_probe(void) { return PyModule_Create(&module); }
"""


SDIST_WORKER = """

import cext_probe
import docopt


def parsed(argv):
    return f"{docopt.docopt('usage: probe <x>', argv)['<x>']}:{cext_probe.twice(21)}"
"""


def c_extension_sdist(directory: Path) -> Path:
    """An sdist of a C extension (published as source only), made here."""
    source = directory / "cext-probe"
    source.mkdir(parents=True)
    (source / "cext_probe.c").write_text(C_EXTENSION)
    (source / "setup.py").write_text("from setuptools import Extension, setup\n"
                                     "setup(name='cext-probe', version='1.0', "
                                     "ext_modules=[Extension('cext_probe', ['cext_probe.c'])])\n")
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(directory / "dists")], cwd=source, check=True,
                   capture_output=True)
    return directory / "dists"


def test_requirements_published_only_as_sdists_are_built_for_the_workers_and_run_there(cluster, tmp_path, build_dir):
    """docopt 0.6.2 (pure Python) is an sdist on PyPI; cext-probe (a C extension) one made here."""
    dists = c_extension_sdist(tmp_path)
    env = probe_env(tmp_path / "env-sdists", 5)
    (env / "worker.py").write_text((env / "worker.py").read_text() + SDIST_WORKER)
    (env / "requirements.txt").write_text(RUNTIME + f"docopt==0.6.2\n--find-links {dists}\ncext-probe==1.0\n")
    info = package(env, build_dir)
    shipped = {wheel["file"] for wheel in info["wheels"]}
    assert {"docopt-0.6.2-py2.py3-none-any.whl", "cext_probe-1.0-cp311-cp311-linux_x86_64.whl"} <= shipped, shipped
    assert re.search(r"docopt-0.6.2.tar.gz: published as source only; built docopt-0.6.2-\S+ for the workers",
                     info["log"]), info["log"]
    again = package(env, build_dir)
    assert again["version"] == info["version"] and "published as source only" not in again["log"]  # cached: no rebuild
    publish(info, build_dir, cluster["root"])
    cluster["worker"].start().wait_for_log(f"process 1 started on env {info['version'][:12]}")
    job = cluster["queue"].enqueue("worker.parsed", ["seven"])
    wait_finished([job])
    assert job.return_value() == "seven:42"  # the compiled extension runs in the worker image's Python


@pytest.mark.services  # starts its own service (or Docker) inside the test
def test_push_env_refuses_an_unresolvable_env_naming_the_package_and_uploads_nothing(repo, ansible_env, tmp_path):
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "worker.py").write_text("def run(job):\n    return job\n")
    (env_dir / "requirements.txt").write_text(RUNTIME + "cloudburst-no-such-package==9.9\n")
    build = tmp_path / "build"
    result = subprocess.run(["ansible-playbook", "-i", "inventory/local", "push-env.yml", "-e", f"push_env_dir={env_dir}",
                             "-e", f"push_env_build_dir={build}"],
                            cwd=repo, env=ansible_env, capture_output=True, text=True, timeout=600)
    output = re.sub(r"\s+", " ", result.stdout + result.stderr)
    assert result.returncode != 0
    assert "push-env: cannot resolve cloudburst-no-such-package==9.9 for the workers" in output
    assert "Push env | Upload" not in output and "Push env | Point current" not in output
    assert not [path for path in build.glob("*") if path.name != "wheels"]  # no env version was built


@pytest.mark.services  # starts its own service (or Docker) inside the test
def test_push_env_keeps_the_newest_versions_it_is_told_to_and_prunes_the_rest(repo, ansible_env, tmp_path):
    """push-env.yml against a files volume on this machine's Docker (the stack's layout): four older versions
    published earlier, keep 2: the new one is current, the 2 newest older ones stay, the 2 oldest go, and with them
    the wheels only they needed (and one no version lists)."""
    stack = f"prune{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "volume", "create", f"{stack}_files"], check=True, capture_output=True)
    try:
        mountpoint = Path(subprocess.run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", f"{stack}_files"],
                                         check=True, capture_output=True, text=True).stdout.strip())
        older = [f"{index:x}" * 64 for index in range(1, 5)]
        (mountpoint / "wheels").mkdir()
        for age, version in enumerate(older):  # the first is the oldest
            (mountpoint / "env" / version).mkdir(parents=True)
            wheel = f"probe{age}-1.0-py3-none-any.whl"
            (mountpoint / "wheels" / wheel).write_bytes(b"wheel")
            needs = [wheel, "shared-1.0-py3-none-any.whl"]
            (mountpoint / "env" / version / "wheels.json").write_text(json.dumps(needs))
            os.utime(mountpoint / "env" / version, (1_700_000_000 + age, 1_700_000_000 + age))
        for wheel in ("shared-1.0-py3-none-any.whl", "orphan-1.0-py3-none-any.whl"):
            (mountpoint / "wheels" / wheel).write_bytes(b"wheel")
        env_dir = probe_env(tmp_path / "env", 9)
        result = subprocess.run(["ansible-playbook", "-i", "inventory/local", "push-env.yml",
                                 "-e", f"push_env_dir={env_dir}", "-e", f"push_env_build_dir={tmp_path / 'build'}",
                                 "-e", f"push_env_stack_name={stack}", "-e", "push_env_keep_versions=2"],
                                cwd=repo, env=ansible_env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:]
        current = (mountpoint / "env" / "current").read_text().strip()
        kept = {path.name for path in (mountpoint / "env").iterdir() if path.is_dir()}
        assert kept == {current, older[3], older[2]}
        assert (mountpoint / "env" / current / "env.zip").is_file()
        current_wheels = json.loads((mountpoint / "env" / current / "wheels.json").read_text())
        assert any(wheel.startswith("rq-") for wheel in current_wheels)
        present = {path.name for path in (mountpoint / "wheels").iterdir()}
        assert present == set(current_wheels) | {"probe3-1.0-py3-none-any.whl", "probe2-1.0-py3-none-any.whl",
                                                 "shared-1.0-py3-none-any.whl"}
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", f"{stack}_files"], capture_output=True)


def test_the_worker_runs_only_what_the_pushed_env_declares_and_refuses_the_rest_unrun(cluster):
    queue, worker = cluster["queue"], cluster["worker"]
    v1 = cluster["release"](1)
    worker.start().wait_for_log(f"process 1 started on env {v1[:12]}")
    canary = "/var/lib/cloudburst/canary"
    attempts = [queue.enqueue("subprocess.getoutput", f"id; ls /run/test-secrets; touch {canary}"),
                queue.enqueue("os.system", f"touch {canary}")]
    declared = queue.enqueue("worker.which", "declared")
    wait_until("the jobs to end", lambda: [job.get_status(refresh=True) for job in attempts + [declared]], 120,
               done=lambda statuses: all(status in ("finished", "failed") for status in statuses))
    for job in attempts:
        assert job.get_status() == "failed" and job.return_value() is None
        assert (f"CloudBurstRefusedFunction: job {job.id} names {job.func_name}, which is neither one of CloudBurst's "
                f"entry points nor a function the env {v1[:12]} declares callable") in job.latest_result().exc_string
    assert declared.get_status() == "finished" and declared.return_value() == 1
    looked = subprocess.run(["docker", "exec", worker.name, "ls", canary], capture_output=True, text=True)
    assert looked.returncode != 0 and "No such file" in looked.stderr
