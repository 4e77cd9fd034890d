"""Wheels for requirements published only as source (sdists), built for the workers on the controller.

The build runs in a container of the workers' own Debian, Python and glibc (``builder/Dockerfile``: the worker
image's base plus a compiler and Python's headers), with no network: the sdist and the wheels of its build
requirements (its ``pyproject.toml``'s ``[build-system] requires``, else setuptools and wheel) are downloaded on the
controller first and mounted. A built wheel is cached by the sdist's sha256, so an unchanged env builds nothing and
keeps its version. ``SOURCE_DATE_EPOCH`` is fixed, so a rebuild of the same sdist gives the same bytes where the
build backend honours it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

from reproducible import SOURCE_DATE_EPOCH

BUILDER_IMAGE = "cloudburst/env-builder:bookworm"
BUILDER_CONTEXT = Path(__file__).with_name("builder")
DEFAULT_BUILD_REQUIRES = ["setuptools>=61", "wheel"]


class SdistError(RuntimeError):
    """An sdist that cannot be fetched or built; the message says which and why."""


def build_requires(sdist: Path) -> list[str]:
    """The sdist's declared build requirements (PEP 518), or setuptools and wheel."""
    def pyproject(names: list[str], read: Callable[[str], bytes]) -> list[str] | None:
        found = [name for name in names if name.count("/") == 1 and name.endswith("/pyproject.toml")]
        if not found:
            return None
        system = tomllib.loads(read(found[0]).decode()).get("build-system", {})
        return list(system.get("requires", DEFAULT_BUILD_REQUIRES))
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            declared = pyproject(archive.namelist(), archive.read)
    else:
        with tarfile.open(sdist) as archive:
            declared = pyproject(archive.getnames(), lambda name: archive.extractfile(name).read())
    return declared if declared is not None else DEFAULT_BUILD_REQUIRES


class SdistBuilder:
    def __init__(self, cache: Path, python: str, platforms: list[str], base_image: str,
                 pip: Callable[..., subprocess.CompletedProcess], log: Callable[[str], None]):
        self.cache = cache
        self.python = python
        self.platforms = platforms
        self.base_image = base_image
        self.pip = pip
        self.log = log
        self.index = cache / "built.json"  # sdist sha256 -> the wheel built from it

    def fetch(self, requirement: str, destination: Path, options: list[str] = ()) -> Path:
        """The requirement's sdist (a line of a requirements file: with hashes, they are checked), looked for where
        the requirements file's own ``options`` (``--find-links``, ``--index-url`` ...) say."""
        destination.mkdir(parents=True, exist_ok=True)
        listed = destination / "sdist.txt"
        listed.write_text("\n".join([*options, requirement]) + "\n")
        args = ["download", "--no-deps", "--no-binary", ":all:", "-d", str(destination), "-r", str(listed)]
        if "--hash=" in requirement:
            args.append("--require-hashes")
        result = self.pip(*args)
        sdists = [path for path in destination.iterdir() if path.name.endswith((".tar.gz", ".zip", ".tar.bz2"))]
        if result.returncode != 0 or not sdists:
            lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
            raise SdistError(f"cannot resolve {requirement.split()[0]} for the workers: no wheel for them and no sdist "
                             f"to build one ({lines[-1] if lines else 'nothing downloaded'})")
        return sdists[0]

    def wheel_for(self, sdist: Path) -> Path:
        """A wheel built from the sdist for the workers (cached by the sdist's sha256)."""
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        built = json.loads(self.index.read_text()) if self.index.exists() else {}
        cached = self.cache / built.get(digest, "-")
        if digest in built and cached.exists():
            self.log(f"push-env: {sdist.name}: wheel built earlier from the same sdist, reused ({cached.name})")
            return cached
        wheel = self._build(sdist)
        built[digest] = wheel.name
        self.index.write_text(json.dumps(built, indent=1, sort_keys=True) + "\n")
        self.log(f"push-env: {sdist.name}: published as source only; built {wheel.name} for the workers")
        return wheel

    def _build(self, sdist: Path) -> Path:
        self.cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            for part in ("in", "deps", "out"):
                (scratch / part).mkdir()
            shutil.copyfile(sdist, scratch / "in" / sdist.name)
            requires = build_requires(sdist)
            target = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp"]
            target += [option for tag in self.platforms for option in ("--platform", tag)]
            result = self.pip("download", *target, "-d", str(scratch / "deps"), *requires)
            if result.returncode != 0:
                raise SdistError(f"cannot download the build requirements of {sdist.name} ({', '.join(requires)})")
            self._ensure_image()
            script = ("python3 -m venv /tmp/build && /tmp/build/bin/pip install -q --no-index --find-links /deps "
                      + " ".join(f"'{requirement}'" for requirement in requires)
                      + f" && /tmp/build/bin/pip wheel -q --no-deps --no-index --no-build-isolation -w /out '/in/{sdist.name}'")
            completed = subprocess.run(
                ["docker", "run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}",
                 "-e", f"SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}", "-e", "HOME=/tmp",
                 "-v", f"{scratch / 'in'}:/in:ro", "-v", f"{scratch / 'deps'}:/deps:ro", "-v", f"{scratch / 'out'}:/out",
                 BUILDER_IMAGE, "sh", "-c", script], capture_output=True, text=True)
            wheels = list((scratch / "out").glob("*.whl"))
            if completed.returncode != 0 or not wheels:
                reason = [line for line in (completed.stderr or completed.stdout).strip().splitlines() if line.strip()]
                raise SdistError(f"building a wheel of {sdist.name} for the workers failed: "
                                 f"{reason[-1] if reason else 'no wheel came out'}")
            destination = self.cache / wheels[0].name
            shutil.copyfile(wheels[0], destination)
            return destination

    def _ensure_image(self) -> None:
        if subprocess.run(["docker", "image", "inspect", BUILDER_IMAGE], capture_output=True).returncode == 0:
            return
        if subprocess.run(["docker", "image", "inspect", self.base_image], capture_output=True).returncode != 0:
            raise SdistError(f"building wheels from sdists needs the workers' base image {self.base_image} on the "
                             "controller: run site.yml (its images role makes it) first")
        self.log(f"push-env: making {BUILDER_IMAGE} (the workers' Debian with a compiler), once")
        completed = subprocess.run(["docker", "build", "-q", "--build-arg", f"BASE={self.base_image}", "-t",
                                    BUILDER_IMAGE, str(BUILDER_CONTEXT)], capture_output=True, text=True,
                                   env={**os.environ, "DOCKER_BUILDKIT": "0"})
        if completed.returncode != 0:
            raise SdistError(f"cannot make {BUILDER_IMAGE}: {completed.stderr.strip()[-300:]}")


def requirement_named(requirement: str, lines: list[str]) -> str | None:
    """The line of ``lines`` that pins the project pip named (``docopt==0.6.2`` -> its hashed line)."""
    project = re.split(r"[=<>!~; \[]", requirement, maxsplit=1)[0]
    canonical = re.sub(r"[-_.]+", "-", project).lower()
    for line in lines:
        name = re.split(r"[=<>!~; \[]", line.strip(), maxsplit=1)[0]
        if re.sub(r"[-_.]+", "-", name).lower() == canonical:
            return line
    return None


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)

