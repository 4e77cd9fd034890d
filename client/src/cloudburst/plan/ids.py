"""Element IDs a scenario lists, checked against the model: one sentence for a malformed list, one naming the IDs
the model lacks."""
from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from cloudburst.errors import InputError


def checked_ids(value: Any, every: Sequence[str], known: Collection[str], at: str, kind: str, form: str) -> list[str]:
    """``value``: "*" (``every``) or a non-empty list of IDs, each one of ``known`` (a ``kind``: pipe, node ...);
    ``at``: where it is in the scenario; ``form``: what the scenario may give there."""
    if value == "*":
        return list(every)
    if not isinstance(value, list) or not value:
        raise InputError(f"{at}: {form}")
    names = [str(name) for name in value]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InputError(f"{at}: the model has no {kind} {', '.join(unknown[:5])}"
                         + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""))
    return names
