"""The package's rooms: each folder imports only the folders it may (each ``__init__.py`` says which), and none
of them loops back. The imports are read from the source (every ``import``, also inside functions and under
TYPE_CHECKING, and every ``lazy("cloudburst....")``), so a test passing here cannot hide an import."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "client" / "src" / "cloudburst"
FOLDERS = ("schema", "state", "engine", "worker", "plan", "api", "cli")
# What each folder must never import (the data's path: schema -> state/plan -> engine -> worker | api -> cli).
FORBIDDEN = {
    "schema": {"state", "engine", "worker", "plan", "api", "cli"},
    "state": {"engine", "worker", "plan", "api", "cli"},
    "engine": {"worker", "plan", "api", "cli"},
    "plan": {"state", "worker", "api", "cli"},
    "worker": {"plan", "api", "cli"},
    "api": {"worker", "cli"},
    "cli": {"worker"},
    "base": {"state", "engine", "worker", "plan", "api", "cli", "schema"},  # errors, config, lazy, version
}
# Shims for names stored in Redis before the split: each only hands a worker function on.
SHIMS = {"fireflow.py": "worker", "segments.py": "worker", "taskrun.py": "worker"}


def room_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else "base"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every cloudburst module the file imports, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}" if is_module(f"{node.module}.{alias.name}")
                       else node.module) for alias in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "lazy"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, str(node.args[0].value)))
    return [(line, name) for line, name in found if name.startswith("cloudburst.")]


def target_room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else None


def crossings(files: list[Path]) -> list[str]:
    wrong = []
    for path in files:
        if path.name == "__init__.py" and path.parent == PACKAGE or path.name in SHIMS and path.parent == PACKAGE:
            continue  # the package's face and the shims hand names on; their tests are test_faces.py
        room = room_of(path)
        for line, module in imported_modules(path):
            target = target_room(module)
            if target is not None and target in FORBIDDEN[room]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({room}) imports {module} ({target})")
    return sorted(set(wrong))


def test_every_module_lives_in_a_room():
    loose = sorted(path.name for path in PACKAGE.glob("*.py")
                   if path.name not in {"__init__.py", "errors.py", "config.py", "lazy.py", "version.py", *SHIMS})
    assert loose == []
    assert sorted(path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__") == \
        sorted(FOLDERS)


def test_no_folder_imports_one_it_must_not():
    assert crossings(sorted(PACKAGE.rglob("*.py"))) == []


def test_the_direction_check_sees_a_crossing(tmp_path):
    """The check itself: a worker module importing the client's handles, inside a function, is caught."""
    planted = PACKAGE / "worker" / "_planted_crossing.py"
    planted.write_text("def f():\n    from cloudburst.api.client import Client\n    return Client\n")
    try:
        assert crossings([planted]) == ["worker/_planted_crossing.py:2 (worker) imports cloudburst.api.client (api)"]
    finally:
        planted.unlink()


def test_shims_only_hand_on_worker_functions():
    for name, room in SHIMS.items():
        targets = {target_room(module) for _, module in imported_modules(PACKAGE / name)}
        assert targets == {room}, name


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_folder_says_what_lives_there_and_what_it_may_import(folder):
    doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
    assert doc, folder
    for forbidden in FORBIDDEN[folder]:
        assert f"``{forbidden}``" in doc, f"{folder}/__init__.py does not say it never imports {forbidden}"


def is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_no_import_loop_between_modules():
    """Module-level imports form no cycle (imports under TYPE_CHECKING or inside functions aside)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("cloudburst", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        edges = set()
        for node in tree.body:  # top level only: what runs when the module is imported
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cloudburst."):
                for alias in node.names:  # `from package import module` depends on that module
                    submodule = f"{node.module}.{alias.name}"
                    edges.add(submodule if is_module(submodule) else node.module)
            elif isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name.startswith("cloudburst.")}
        graph[module] = edges
    loops = []

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            loops.append(trail[trail.index(module):] + [module])
            return
        for target in graph.get(module, ()):
            visit(target, trail + [module])

    for module in graph:
        visit(module, [])
    assert loops == []
