"""The package's two declared faces, as httpx's test_exported_members checks its own: ``cloudburst`` (the client's:
every type the API returns) and ``cloudburst.worker`` (the env author's: what an env's ``worker.py`` calls), and
the example envs use only the latter."""
from __future__ import annotations

import ast
import inspect
import types
import typing
from pathlib import Path

import cloudburst
import cloudburst.worker

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "files" / "env").rglob("*.py"))


def test_every_name_cloudburst_exports_exists_and_is_cloudburst_s():
    for name in cloudburst.__all__:
        member = getattr(cloudburst, name)
        if name != "__version__":
            assert member.__module__.startswith("cloudburst."), name
    assert public_names(cloudburst) == sorted(name for name in cloudburst.__all__ if not name.startswith("_"))


def public_names(module: types.ModuleType) -> list[str]:
    """What the module offers: its public names, its own submodules aside."""
    return sorted(name for name in dir(module)
                  if not name.startswith("_") and not isinstance(getattr(module, name), types.ModuleType))


def _returned_types(annotation: object) -> set[type]:
    """The classes an annotation names, unions and generics opened."""
    found: set[type] = set()
    if isinstance(annotation, type):
        found.add(annotation)
    for argument in typing.get_args(annotation):
        found |= _returned_types(argument)
    return found


def annotation_namespace(module: types.ModuleType) -> dict[str, object]:
    """The names a module's annotations use: its globals, and what it imports only for the type checker (its
    ``if TYPE_CHECKING:`` block, run here)."""
    namespace = dict(vars(module))
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            exec(compile(ast.Module(body=node.body, type_ignores=[]), module.__name__, "exec"), namespace)  # noqa: S102
    return namespace


def test_every_type_the_api_returns_is_exported():
    """Each public method and property of the client and its handles returns builtins, pandas/wntr objects, or a
    cloudburst type that ``cloudburst`` exports (so a user can name it)."""
    exported = {getattr(cloudburst, name) for name in cloudburst.__all__ if name != "__version__"}
    handles = [cloudburst.Client, cloudburst.Ensemble, cloudburst.TaskSet, cloudburst.Alternatives,
               cloudburst.StudyRun, cloudburst.FireFlow, cloudburst.Segments, cloudburst.Services,
               cloudburst.Session, cloudburst.Design, cloudburst.Calibration]
    seen, missing = set(), []
    for handle in handles:
        for attribute, member in inspect.getmembers(handle):
            if attribute.startswith("_"):
                continue
            function = member.fget if isinstance(member, property) else member
            function = getattr(function, "func", function)  # functools.cached_property
            if not callable(function):
                continue
            function = inspect.unwrap(function)
            returned_annotation = function.__annotations__.get("return")
            if isinstance(returned_annotation, str):  # postponed (from __future__ import annotations)
                namespace = annotation_namespace(inspect.getmodule(function))  # where it is written (or inherited)
                returned_annotation = eval(returned_annotation, namespace)  # the package's own annotation text
            for returned in _returned_types(returned_annotation):
                seen.add(returned)
                if returned.__module__.startswith("cloudburst") and returned not in exported:
                    missing.append(f"{handle.__name__}.{attribute} -> {returned.__module__}.{returned.__qualname__}")
    assert missing == []
    assert {cloudburst.Ensemble, cloudburst.TaskSet, cloudburst.Progress} <= seen  # the walk saw the handles' types


def test_the_worker_face_exports_what_it_names():
    for name in cloudburst.worker.__all__:
        assert getattr(cloudburst.worker, name) is not None, name
    assert public_names(cloudburst.worker) == sorted(cloudburst.worker.__all__)


def test_the_example_envs_use_only_the_worker_face():
    for path in ENVS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cloudburst"):
                assert node.module == "cloudburst" and [alias.name for alias in node.names] == ["worker"], \
                    f"{path.relative_to(REPO)}:{node.lineno} imports from {node.module}"
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("cloudburst") for alias in node.names), path
    names_used = set()
    for path in ENVS:
        names_used |= {node.attr for node in ast.walk(ast.parse(path.read_text()))
                       if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                       and node.value.id == "cloudburst_worker"}
    assert names_used and names_used <= set(cloudburst.worker.__all__)
