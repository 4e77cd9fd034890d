"""Shim for one release (remove in 0.4): task sets stored before the package split name
``cloudburst.fireflow:run_task``; it is ``cloudburst.worker.studies.run_fire_flow`` now."""
from cloudburst.worker.studies import run_fire_flow as run_task

__all__ = ["run_task"]
