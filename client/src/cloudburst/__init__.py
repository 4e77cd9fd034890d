"""CloudBurst: EPANET ensembles on a Docker Swarm. The Python API: ``Client`` and ``Ensemble``."""
from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

from cloudburst.errors import CloudBurstError, InputError, ServiceError  # noqa: E402

__all__ = ["Client", "Ensemble", "CloudBurstError", "InputError", "ServiceError", "__version__"]


def __getattr__(name: str) -> Any:
    # The API is imported when first asked for: a worker process, which imports cloudburst's engine modules and
    # never the client's, starts without it (part of a worker's start-up time).
    if name in ("Client", "Ensemble"):
        from cloudburst import api
        return getattr(api, name)
    raise AttributeError(f"module 'cloudburst' has no attribute {name!r}")
