"""The SWMM example env's module the workers import before taking jobs: the stormwater functions, loaded once.

Task sets name them by their own module (``stormwater:run_member``); ``worker.run_member`` is the same function,
for clients that enqueue with RQ directly as the original CloudBurst did (``queue.enqueue("worker.run_member",
...)``).
"""
from stormwater import run_member, scaled_model

__all__ = ["run_member", "scaled_model"]
