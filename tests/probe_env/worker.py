"""A probe env for the runner tests: records its imports and attempts in files the test reads."""
import os
import time
from pathlib import Path

PROBE_DIR = Path(os.environ["PROBE_DIR"])
with open(PROBE_DIR / "imports", "a") as imports:
    imports.write(f"{os.getpid()}\n")


def whoami(tag: str) -> dict:
    return {"tag": tag, "pid": os.getpid()}


def slow_first_attempt(name: str, seconds: float) -> int:
    """Sleeps on its first attempt (long enough to be killed), returns at once on later ones."""
    attempts = PROBE_DIR / f"{name}.attempts"
    with open(attempts, "a") as log:
        log.write(f"{os.getpid()}\n")
    count = len(attempts.read_text().split())
    if count == 1:
        time.sleep(seconds)
    return count


def stubborn(seconds: float) -> str:
    """Swallows every exception for `seconds`, as library code catching broad exceptions does with RQ's alarm."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            time.sleep(0.1)
        except Exception:  # noqa: BLE001 - the point of this probe
            pass
    return "outlived its timeout"


def weigh(payload: str) -> int:
    """Its payload's length: a job whose arguments are large and whose result is small."""
    return len(payload)
