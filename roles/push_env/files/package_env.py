#!/usr/bin/env python3
"""Package an analysis env for CloudBurst's workers, on the controller: resolve, download wheels, build env.zip.

    package_env.py ENV_DIR OUT_DIR [--python-version 3.11] [--glibc 2.36] [--arch x86_64] [--installer uv|pip]
                   [--bytecode on|off]

ENV_DIR holds the env's code (worker.py or a package) and Pipfile.lock, or requirements.txt. Every
requirement is downloaded as a wheel for the workers' Python and platform (no worker needs an index);
local path dependencies of a Pipfile are built into wheels, and requirements published only as sdists are built
into wheels in a container of the workers' own Debian (``sdists.py``). OUT_DIR receives ``wheels/`` and
``<version>/env.zip`` (and uv's wheel, the installer workers build the venv with), where the version is env.zip's
sha256: env.zip is built byte-for-byte reproducibly
(sorted entries, fixed timestamps), so an unchanged env keeps its version. env.zip holds the code,
``requirements.lock.txt`` (name==version with the wheel's sha256, installed with --require-hashes) and
``cloudburst-manifest.json`` (module to preload, wheels and their sha256, the names each of the env's modules
exports, and the functions each declares callable: all a worker will run besides CloudBurst's own entry points).
The wheels' modules are compiled to bytecode once here and shipped beside them (``bytecode.py``).
Prints the manifest as JSON.
Exits 2 with one sentence on stderr when the env cannot be packaged.
"""
from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bytecode import build_bytecode, magic_number
from reproducible import SOURCE_DATE_EPOCH, write_zip
from sdists import SdistBuilder, SdistError, log_to_stderr, requirement_named

MANIFEST = "cloudburst-manifest.json"
LOCK = "requirements.lock.txt"
RUNTIME = ("rq", "redis")  # the worker runs RQ inside the env's own venv
# The installer workers build env venvs with (shipped like the env's wheels: nodes need no index), by the
# workers' architecture: uv's wheel carries its binary, checked against this sha256 here and by the workers.
INSTALLER = "uv==0.13.9"
INSTALLER_SHA256 = {"x86_64": "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"}
SKIP = {"Pipfile", "Pipfile.lock", "requirements.txt", MANIFEST, LOCK}


class PackagingError(RuntimeError):
    pass


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_of(env_dir: Path) -> tuple[list[str], list[Path], bool]:
    """(pinned requirement lines, local paths to build, whether the lines are complete and hashed)."""
    lock, plain = env_dir / "Pipfile.lock", env_dir / "requirements.txt"
    if lock.exists():
        packages = json.loads(lock.read_text()).get("default", {})
        lines, paths = [], []
        for name, spec in sorted(packages.items()):
            if "path" in spec:
                paths.append((env_dir / spec["path"]).resolve())
            elif "version" in spec:
                hashes = " ".join(f"--hash={h}" for h in spec.get("hashes", []))
                lines.append(f"{name}{spec['version']} {hashes}".strip())
            else:
                raise PackagingError(f"Pipfile.lock entry {name!r} is neither a pinned version nor a local path "
                                     "(VCS and URL requirements cannot be shipped as wheels)")
        return lines, paths, True
    if plain.exists():
        lines = [line.strip() for line in plain.read_text().splitlines()
                 if line.strip() and not line.strip().startswith("#")]
        return lines, [], False
    raise PackagingError(f"{env_dir} has neither Pipfile.lock nor requirements.txt: give the env's requirements")


def pip(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, env=env)


def unresolvable(stderr: str) -> str:
    for pattern in (r"No matching distribution found for (\S+)", r"Could not find a version that satisfies the "
                    r"requirement (\S+)", r"THESE PACKAGES DO NOT MATCH THE HASHES.*?\n\s+(\S+)",
                    r"ResolutionImpossible.*"):
        match = re.search(pattern, stderr, re.S)
        if match:
            return match.group(1) if match.groups() else "the requirements (conflicting versions)"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def platform_tags(glibc: str, arch: str) -> list[str]:
    """Every manylinux tag a node with this glibc runs (pip takes --platform values literally, newest first)."""
    major, minor = (int(part) for part in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{arch}" for m, name in legacy.items() if m <= minor]


_NO_WHEEL = re.compile(r"No matching distribution found for (\S+)")
MAX_SDISTS = 50  # sdist-only requirements built in one packaging run


def download(lines: list[str], paths: list[Path], complete: bool, wheels: Path, python: str,
             platforms: list[str], builder: SdistBuilder | None = None) -> list[Path]:
    """Every requirement's wheel for the workers; a requirement published only as an sdist is built into one by
    ``builder`` (None: refused, naming it)."""
    wheels.mkdir(parents=True, exist_ok=True)
    target = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for tag in platforms:
        target += ["--platform", tag]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        built = scratch / "built"
        for path in paths:
            # SOURCE_DATE_EPOCH: the same source builds the same wheel bytes, so the env's version is stable.
            result = pip("wheel", "--no-deps", "-w", str(built), str(path),
                         env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
            if result.returncode != 0:
                raise PackagingError(f"cannot build a wheel of the local package {path}: {unresolvable(result.stderr)}")
        fetched = scratch / "fetched"
        from_sdists: list[Path] = []
        sdist_count = 0
        remaining = list(lines)
        for _ in range(MAX_SDISTS):
            if not remaining:
                break
            requirements = scratch / "requirements.txt"
            requirements.write_text("\n".join(remaining) + "\n")
            args = ["download", *target, "-d", str(fetched), "-r", str(requirements)]
            if complete:
                args += ["--no-deps", "--require-hashes"]
            elif builder is not None and builder.cache.exists():
                args += ["--find-links", str(builder.cache)]  # wheels built from sdists earlier in this run
            result = pip(*args)
            if result.returncode == 0:
                break
            missing = _NO_WHEEL.search(result.stderr)
            if builder is None or missing is None:
                raise PackagingError(f"cannot resolve {unresolvable(result.stderr)} for the workers "
                                     f"(CPython {python}, {platforms[0]}, wheels only)")
            line = requirement_named(missing.group(1), remaining) if complete else missing.group(1)
            if line is None:
                raise PackagingError(f"cannot resolve {missing.group(1)} for the workers")
            try:
                options = [option for option in remaining if option.lstrip().startswith("-")]
                wheel = builder.wheel_for(builder.fetch(line, scratch / "sdists" / str(sdist_count), options))
                sdist_count += 1
            except SdistError as error:
                raise PackagingError(str(error)) from None
            if complete:  # a locked sdist: its own hash was checked; its wheel joins the others as built
                from_sdists.append(wheel)
                remaining.remove(line)
        files = sorted([*fetched.glob("*.whl"), *built.glob("*.whl"), *from_sdists])
        names = {canonical(f.name.split("-")[0]) for f in files}
        missing_runtime = [name for name in RUNTIME if name not in names]
        if missing_runtime:
            raise PackagingError(f"the env does not depend on {' and '.join(missing_runtime)}: the worker runs RQ inside "
                                 "the env's venv; add rq and redis to its requirements")
        kept = []
        for wheel in files:
            destination = wheels / wheel.name
            data = wheel.read_bytes()
            if not destination.exists() or destination.read_bytes() != data:
                destination.write_bytes(data)
            kept.append(destination)
        return kept


def download_installer(wheels: Path, python: str, arch: str, platforms: list[str]) -> Path | None:
    """uv's wheel for the workers (None for an architecture without a pinned one: workers then install with pip)."""
    digest = INSTALLER_SHA256.get(arch)
    if digest is None:
        return None
    wheels.mkdir(parents=True, exist_ok=True)
    known = [path for path in wheels.glob(f"{INSTALLER.replace('==', '-')}-*.whl")
             if hashlib.sha256(path.read_bytes()).hexdigest() == digest]
    if known:
        return known[0]
    with tempfile.TemporaryDirectory() as scratch:
        requirement = Path(scratch) / "installer.txt"
        requirement.write_text(f"{INSTALLER} --hash=sha256:{digest}\n")
        target = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp", "--no-deps",
                  "--require-hashes"] + [option for tag in platforms for option in ("--platform", tag)]
        result = pip("download", *target, "-d", scratch, "-r", str(requirement))
        if result.returncode != 0:
            raise PackagingError(f"cannot download the workers' installer {INSTALLER}: {unresolvable(result.stderr)}")
        wheel = next(Path(scratch).glob("*.whl"))
        destination = wheels / wheel.name
        destination.write_bytes(wheel.read_bytes())
        return destination


def code_files(env_dir: Path) -> list[Path]:
    files = []
    for path in sorted(env_dir.rglob("*")):
        relative = path.relative_to(env_dir)
        if path.is_dir() or relative.name in SKIP or any(part.startswith(".") or part == "__pycache__"
                                                         for part in relative.parts):
            continue
        files.append(path)
    return files


def env_modules(env_dir: Path) -> dict[str, ast.Module]:
    """The env's own modules (top-level .py files and packages), each parsed."""
    candidates = [(path.stem, path) for path in env_dir.glob("*.py")]
    candidates += [(path.parent.name, path) for path in env_dir.glob("*/__init__.py")]
    trees = {}
    for module, path in sorted(candidates):
        try:
            trees[module] = ast.parse(path.read_bytes(), str(path))
        except SyntaxError as error:
            raise PackagingError(f"{path.relative_to(env_dir)} is not valid Python (line {error.lineno}: "
                                 f"{error.msg})") from None
    return trees


def exports(env_dir: Path) -> dict[str, list[str] | None]:
    """The env's own modules and the public names each defines or imports at its top level: what the client names
    when it refuses a function a module does not have."""
    found = {}
    for module, tree in env_modules(env_dir).items():
        names = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.ImportFrom):
                names.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Assign):
                names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        # A star import can bring any name: the module's exports are then unknown (None), and not checked.
        found[module] = None if "*" in names else sorted(name for name in names if not name.startswith("_"))
    return found


def declared_all(tree: ast.Module) -> list[str] | None:
    """The names a module's top-level ``__all__ = [...]`` (or tuple) of string literals lists, or None."""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id == "__all__"
                                                 for target in node.targets)
                and isinstance(node.value, (ast.List, ast.Tuple))
                and all(isinstance(item, ast.Constant) and isinstance(item.value, str) for item in node.value.elts)):
            return [item.value for item in node.value.elts]
    return None


def callables(env_dir: Path) -> dict[str, list[str]]:
    """What a job or a task may call on the workers, per env module: the names its ``__all__`` lists (the way an
    env names a function it imports, a wheel's included), or else the public functions and classes it defines
    itself. A name it only imports (``from subprocess import getoutput``) is not callable unless ``__all__`` says
    so."""
    found = {}
    for module, tree in env_modules(env_dir).items():
        listed = declared_all(tree)
        defined = [node.name for node in tree.body
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                   and not node.name.startswith("_")]
        found[module] = sorted(set(listed if listed is not None else defined))
    return found


def wheel_modules(wheels: list[Path]) -> list[str]:
    """The top-level modules the wheels install (packages and single-file modules): with the env's own, what a task
    can import besides the standard library."""
    names = set()
    for wheel in wheels:
        try:
            entries = zipfile.ZipFile(wheel).namelist()
        except zipfile.BadZipFile:
            continue
        for entry in entries:
            top, _, rest = entry.partition("/")
            if top.endswith((".dist-info", ".data")) or top.endswith(".libs"):
                continue
            if rest and entry.endswith(".py") or (not rest and top.endswith(".py")):
                names.add(top.removesuffix(".py"))
            elif not rest and top.endswith(".so"):
                names.add(top.split(".")[0])
    return sorted(name for name in names if name.isidentifier())


@functools.cache  # a wheel is hashed once per run: for the bytecode's key and for the lock
def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_zip(env_dir: Path, wheels: list[Path], module: str, installer: Path | None = None,
              bytecode: Path | None = None) -> tuple[bytes, dict]:
    entries = [(wheel.name, sha256_of(wheel)) for wheel in wheels]
    lock_lines = []
    for name, digest in entries:
        project, version = name.split("-")[:2]
        lock_lines.append(f"{project}=={version} --hash=sha256:{digest}")
    # uv's wheel and the bytecode travel with the wheels (fetched and sha256-checked alike), outside the lock.
    extras = [path for path in (installer, bytecode) if path is not None]
    shipped = entries + [(path.name, sha256_of(path)) for path in extras]
    manifest = {"module": module, "requirements": LOCK, "exports": exports(env_dir), "callables": callables(env_dir),
                "modules": wheel_modules(wheels),
                "wheels": [{"file": name, "sha256": digest} for name, digest in shipped]}
    if installer is not None:
        manifest["installer"] = installer.name
    if bytecode is not None:
        manifest["bytecode"] = {"file": bytecode.name, "magic": magic_number()}
    members = [(str(path.relative_to(env_dir)), path.read_bytes()) for path in code_files(env_dir)]
    members += [(LOCK, ("\n".join(lock_lines) + "\n").encode()),
                (MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())]
    with tempfile.SpooledTemporaryFile() as buffer:
        write_zip(buffer, members)
        buffer.seek(0)
        return buffer.read(), manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--python-version", default="3.11")
    parser.add_argument("--glibc", default="2.36", help="the workers' glibc (Debian 12: 2.36)")
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--module", default="worker", help="module the workers import before taking jobs")
    parser.add_argument("--build-base", default="cloudburst/debian:bookworm",
                        help="the workers' base image, in which requirements published only as sdists are built")
    parser.add_argument("--no-sdists", action="store_true", help="refuse requirements without a wheel instead")
    parser.add_argument("--installer", default="uv", choices=["uv", "pip"],
                        help="what workers build the env's venv with (uv: shipped with the wheels; pip: the image's)")
    parser.add_argument("--bytecode", default="on", choices=["on", "off"],
                        help="ship the wheels' modules compiled (off: workers compile them on first import)")
    args = parser.parse_args(argv)
    try:
        if not (args.env_dir / f"{args.module}.py").exists() and not (args.env_dir / args.module).is_dir():
            raise PackagingError(f"{args.env_dir} has no {args.module}.py (or package {args.module}/) for the "
                                 "workers to import")
        lines, paths, complete = requirements_of(args.env_dir)
        platforms = platform_tags(args.glibc, args.arch)
        builder = None if args.no_sdists else SdistBuilder(args.out_dir / "built", args.python_version, platforms,
                                                           args.build_base, pip, log_to_stderr)
        # A wheel built on the workers' own Debian is tagged linux_<arch>: accepted beside the manylinux ones.
        wheels = download(lines, paths, complete, args.out_dir / "wheels", args.python_version,
                          platforms + [f"linux_{args.arch}"], builder)
        installer = (download_installer(args.out_dir / "wheels", args.python_version, args.arch, platforms)
                     if args.installer == "uv" else None)
        bytecode = (None if args.bytecode == "off" else
                    build_bytecode(wheels, [sha256_of(wheel) for wheel in wheels], args.out_dir / "wheels",
                                   args.python_version, log_to_stderr))
        archive, manifest = build_zip(args.env_dir, wheels, args.module, installer, bytecode)
    except PackagingError as error:
        print(f"push-env: {error}.", file=sys.stderr)
        return 2
    version = hashlib.sha256(archive).hexdigest()
    version_dir = args.out_dir / version
    version_dir.mkdir(parents=True, exist_ok=True)
    (version_dir / "env.zip").write_bytes(archive)
    print(json.dumps({"version": version, "zip": str(version_dir / "env.zip"), **manifest}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
