"""Functions for the task-set tests, run by real runner processes: each does one thing a user's function might."""
import os
import time
from pathlib import Path

from cloudburst import worker as cloudburst_worker


def square(x):
    return x * x


def describe(a, b=0, *, label="sum"):
    return {"label": label, "total": a + b, "pid": os.getpid()}


def fail(message):
    raise ValueError(message)


def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


def not_json():
    return {1, 2, 3}


def numpy_values(n):
    import numpy
    return {"mean": numpy.float32(n) / 2, "values": numpy.arange(n)}


def mark(directory, task):
    """Appends this call to a file per task: how often each task really ran."""
    with open(Path(directory) / f"{task}.calls", "a") as calls:
        calls.write(f"{os.getpid()}\n")
    return task


def record(measurement, value, tag):
    return cloudburst_worker.write_points(measurement, [{"fields": {"value": value}, "tags": {"probe": tag}}])


NOT_A_FUNCTION = 42
