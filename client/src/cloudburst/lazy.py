"""Modules imported when first used: the client's API names pandas, wntr and the study modules at its top, and
the CLI's quick commands (``list``, ``status``) never touch them, so they start without importing them."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for a module; the first attribute read imports it and every read after that goes to it."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{'' if self._module is None else ' (imported)'}>"


def lazy(name: str) -> Any:
    """A stand-in for the module ``name`` (typed Any: import the module under TYPE_CHECKING for the checker)."""
    return LazyModule(name)


def lazy_face(package: str, homes: Mapping[str, str],
              namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package face's ``__getattr__`` and ``__dir__``: each public name imported from its home module (``homes``)
    when first asked for, and listed with the package's own names."""
    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(importlib.import_module(homes[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace["__all__"]))

    return __getattr__, __dir__
