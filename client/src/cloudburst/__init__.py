"""CloudBurst: EPANET ensembles on a Docker Swarm. The Python API: ``Client`` and ``Ensemble``."""

__version__ = "0.2.0"

from cloudburst.api import Client, Ensemble  # noqa: E402
from cloudburst.errors import CloudBurstError, InputError, ServiceError  # noqa: E402

__all__ = ["Client", "Ensemble", "CloudBurstError", "InputError", "ServiceError", "__version__"]
