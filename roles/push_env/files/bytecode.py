"""Bytecode for the workers: the wheels' Python modules compiled once on the controller and shipped beside them.

A worker's first import of the example env compiles about 5 s of bytecode (numpy, pandas, scipy, wntr...) on
every node; compiled here once per set of wheels, a node only unpacks it into the venv. The .pyc files are
"unchecked-hash" (PEP 552): valid wherever the source is the one compiled, which the wheels' sha256 guarantee,
whatever the installed files' timestamps. They are built only by a controller Python of the workers' version
(the bytecode's magic number is fixed within a Python minor version); a worker whose Python has another magic
number skips them and compiles on import as before. Test suites (``tests``/``test`` directories) are left out.

The archive is cached by the wheels' sha256 and the magic number, so an unchanged env reuses it (and keeps its
version); its entries are sorted with fixed timestamps and its .pyc name no build path, so a rebuild is the same.
"""
from __future__ import annotations

import compileall
import hashlib
import importlib.util
import os
import py_compile
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from reproducible import write_zip

# Where a wheel's files land: its root, or its .data/purelib and .data/platlib directories, in site-packages.
_INSTALLED_AT_ROOT = re.compile(r"^[^/]+\.data/(purelib|platlib)/")
_TEST_SUITES = re.compile(r"(^|/)tests?/")


def magic_number() -> str:
    return importlib.util.MAGIC_NUMBER.hex()


def archive_name(wheel_digests: list[str]) -> str:
    """The archive's file name: what it was compiled from (the wheels' sha256) and for (the magic number)."""
    key = hashlib.sha256("\n".join([magic_number(), *sorted(wheel_digests)]).encode()).hexdigest()
    return f"pyc-{sys.implementation.cache_tag}-{key[:24]}.zip"


def _sources(wheel: Path) -> dict[str, bytes]:
    """The wheel's .py files by their path in site-packages, test suites left out."""
    found = {}
    with zipfile.ZipFile(wheel) as archive:
        for entry in archive.namelist():
            if not entry.endswith(".py"):
                continue
            installed = _INSTALLED_AT_ROOT.sub("", entry)
            if installed.split("/", 1)[0].endswith(".data") or _TEST_SUITES.search(installed):
                continue
            found[installed] = archive.read(entry)
    return found


def build_bytecode(wheels: list[Path], digests: list[str], directory: Path, python_version: str,
                   log: Callable[[str], None]) -> Path | None:
    """The bytecode archive for these wheels in ``directory`` (built unless cached); None when this Python is not
    the workers' version (they then compile on import)."""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != python_version:
        log(f"push-env: no bytecode shipped: this controller runs Python {running}, the workers {python_version} "
            "(they compile it on first import)")
        return None
    target = directory / archive_name(digests)
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for wheel in wheels:
            for installed, source in _sources(wheel).items():
                (root / installed).parent.mkdir(parents=True, exist_ok=True)
                (root / installed).write_bytes(source)
        # Files that do not compile (Python 2 leftovers in some wheels) are left to fail on import as before.
        compileall.compile_dir(root, quiet=2, workers=os.cpu_count() or 1, stripdir=str(root),
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        compiled = sorted(str(path.relative_to(root)) for path in root.rglob("*.pyc"))
        directory.mkdir(parents=True, exist_ok=True)
        part = target.with_suffix(".part")
        write_zip(part, ((name, (root / name).read_bytes()) for name in compiled))
        part.rename(target)
    log(f"push-env: bytecode compiled for the workers: {len(compiled)} modules, {target.stat().st_size / 1e6:.1f} MB")
    return target
