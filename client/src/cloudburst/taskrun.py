"""Shim for one release (remove in 0.4): task packs queued before the package split call
``cloudburst.taskrun.run_pack``; it is ``cloudburst.worker.taskrun.run_pack`` now."""
from cloudburst.worker.taskrun import run_pack

__all__ = ["run_pack"]
