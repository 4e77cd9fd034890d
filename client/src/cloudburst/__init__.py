"""CloudBurst: EPANET ensembles on a Docker Swarm. This is the client's face: ``Client`` and every type its API
returns. An env's ``worker.py`` uses ``cloudburst.worker`` instead.

The package's folders follow the data's path (each ``__init__.py`` says what lives there and what it may import):
``schema`` (what client and worker agree on), ``plan`` (a scenario into job documents), ``api`` (the client's
handles), ``cli``; ``state`` (the cluster's shared state), ``engine`` (one member on EPANET), ``worker`` (what an
env's worker calls). ``errors``, ``config`` and ``lazy`` serve them all.
"""
import typing as _typing

from cloudburst.errors import CloudBurstError, ConfigError, EpanetError, InputError, MemberFailed, ServiceError
from cloudburst.lazy import lazy_face as _lazy_face
from cloudburst.version import __version__

if _typing.TYPE_CHECKING:
    from cloudburst.api.calibration import Calibration
    from cloudburst.api.client import Client
    from cloudburst.api.design import Design
    from cloudburst.api.ensemble import Alternatives, Ensemble
    from cloudburst.api.evaluation import Evaluations, Session
    from cloudburst.api.progress import Progress
    from cloudburst.api.services import Services
    from cloudburst.api.studies import FireFlow, Segments, StudyRun
    from cloudburst.api.taskset import TaskSet
    from cloudburst.config import Settings
    from cloudburst.plan.submission import AlternativesPlan, EnsemblePlan, ModelFile, StudyPlan
    from cloudburst.state.reader import ResultsReader
    from cloudburst.state.records import EnsembleRecord, TaskSetRecord

# Where each public name lives. They are imported when first asked for: a worker process, which imports
# cloudburst's engine and never the client's handles, starts without them (part of a worker's start-up time).
_LAZY = {
    "Client": "cloudburst.api.client",
    "Ensemble": "cloudburst.api.ensemble", "Alternatives": "cloudburst.api.ensemble",
    "TaskSet": "cloudburst.api.taskset",
    "StudyRun": "cloudburst.api.studies", "FireFlow": "cloudburst.api.studies", "Segments": "cloudburst.api.studies",
    "Progress": "cloudburst.api.progress",
    "Session": "cloudburst.api.evaluation", "Evaluations": "cloudburst.api.evaluation",
    "Design": "cloudburst.api.design", "Calibration": "cloudburst.api.calibration",
    "Services": "cloudburst.api.services",
    "Settings": "cloudburst.config",
    "EnsembleRecord": "cloudburst.state.records", "TaskSetRecord": "cloudburst.state.records",
    "ResultsReader": "cloudburst.state.reader",
    "ModelFile": "cloudburst.plan.submission", "EnsemblePlan": "cloudburst.plan.submission",
    "StudyPlan": "cloudburst.plan.submission", "AlternativesPlan": "cloudburst.plan.submission",
}

__all__ = [
    "Client", "Settings", "Services",
    "Ensemble", "Alternatives", "TaskSet", "StudyRun", "FireFlow", "Segments", "Session", "Evaluations",
    "Design", "Calibration",
    "Progress", "EnsembleRecord", "TaskSetRecord", "ResultsReader",
    "ModelFile", "EnsemblePlan", "StudyPlan", "AlternativesPlan",
    "CloudBurstError", "InputError", "ServiceError", "ConfigError", "EpanetError", "MemberFailed",
    "__version__",
]


__getattr__, __dir__ = _lazy_face(__name__, _LAZY, globals())
