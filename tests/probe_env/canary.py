"""A module of the probe env that declares nothing callable: importing it leaves a file the tests look for."""
import os
from pathlib import Path

(Path(os.environ["PROBE_DIR"]) / "canary-imported").write_text(f"{os.getpid()}\n")


def _private() -> str:
    return "never called"
