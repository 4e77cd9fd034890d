"""Waiting in tests: every wait has a deadline and, when it passes, says what it waited for and what it last saw."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T], timeout_s: float, poll_s: float = 0.2,
               done: Callable[[T], bool] = bool, tolerate: tuple[type[BaseException], ...] = ()) -> T:
    """Call probe() until done(its value); returns that value. Errors of the ``tolerate`` types count as "not yet"
    (a service restarting); any other error is the test's failure. On the deadline: AssertionError naming what was
    awaited, the last value seen and the last tolerated error."""
    deadline = time.monotonic() + timeout_s
    last: object = "nothing yet"
    error: BaseException | None = None
    while True:
        try:
            value = probe()
            if done(value):
                return value
            last = value
        except tolerate as tolerated:
            error = tolerated
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s; last seen: {last!r}"
                                 + (f"; last error: {type(error).__name__}: {error}" if error else ""))
        time.sleep(poll_s)
