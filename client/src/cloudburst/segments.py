"""Shim for one release (remove in 0.4): task sets stored before the package split name
``cloudburst.segments:run_task``; it is ``cloudburst.worker.studies.run_segments`` now."""
from cloudburst.worker.studies import run_segments as run_task

__all__ = ["run_task"]
