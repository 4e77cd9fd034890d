"""An env manifest for runners started outside a worker container (the tests' and benchmarks' workers): the
callables of the env directories as push-env's own packaging (roles/push_env/files/package_env.py) declares them,
where a worker container reads its env's manifest."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "roles" / "push_env" / "files"))
package_env = importlib.import_module("package_env")


def write_env_manifest(env_dirs: tuple[Path, ...], path: Path) -> Path:
    """Write the manifest of an env made of ``env_dirs`` (their modules' callables) to ``path``."""
    callables: dict[str, list[str]] = {}
    for env_dir in env_dirs:  # a module in two directories is the first one's, as on PYTHONPATH
        for module, names in package_env.callables(Path(env_dir)).items():
            callables.setdefault(module, names)
    path.write_text(json.dumps({"callables": callables}))
    return path
