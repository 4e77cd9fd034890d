"""Values the client's light modules share with the job schema (``cloudburst.job``), here so that reading them does
not import the schema's pydantic models (the CLI's ``list`` and ``status`` start without them)."""
from __future__ import annotations

from datetime import UTC, datetime

ENSEMBLE_PATTERN = r"[A-Za-z0-9_.\-]{1,128}"                # an ensemble's or task set's name
DEFAULT_START = datetime(2000, 1, 1, tzinfo=UTC)  # member 0's start when a scenario names none
