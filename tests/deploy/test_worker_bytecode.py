"""The worker image under Docker against a real Nginx and Redis: env versions switch with no job lost or run
twice, venvs built with uv (shipped with the env) or pip, requirements published only as sdists (pure Python and a C
extension) built for the workers, the wheels' bytecode compiled on the controller and imported as shipped, a missing
env is waited for, a corrupt env is refused, a killed process's job runs
again; push-env refuses an unresolvable env."""

from __future__ import annotations

import importlib.util
import sys
import zipfile

import pytest
from worker_container import (
    WORKER_CONTEXT,
)


def load_entrypoint():
    spec = importlib.util.spec_from_file_location("worker_entrypoint", WORKER_CONTEXT / "entrypoint.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_bytecode_for_another_python_is_skipped_and_an_archive_reaching_outside_the_venv_is_refused(tmp_path):
    entrypoint = load_entrypoint()
    venv = tmp_path / "venv"
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    package_dir = site / "probe"
    package_dir.mkdir(parents=True)
    (package_dir / "mod.py").write_text("VALUE = 1\n")
    archive = tmp_path / "pyc.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(f"probe/__pycache__/mod.{sys.implementation.cache_tag}.pyc", b"compiled elsewhere")
        bundle.writestr(f"absent/__pycache__/gone.{sys.implementation.cache_tag}.pyc", b"no such module")
    entrypoint.unpack_bytecode(archive, "00000000", venv)
    assert not (package_dir / "__pycache__").exists()  # another magic number: nothing written
    entrypoint.unpack_bytecode(archive, importlib.util.MAGIC_NUMBER.hex(), venv)
    unpacked = [path.name for path in (package_dir / "__pycache__").iterdir()]
    assert unpacked == [f"mod.{sys.implementation.cache_tag}.pyc"]
    assert not (site / "absent").exists()  # no .pyc for a module the venv does not have
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(f"../../__pycache__/evil.{sys.implementation.cache_tag}.pyc", b"outside")
    with pytest.raises(entrypoint.EnvRefused, match="holds '../../__pycache__/evil"):
        entrypoint.unpack_bytecode(archive, importlib.util.MAGIC_NUMBER.hex(), venv)
