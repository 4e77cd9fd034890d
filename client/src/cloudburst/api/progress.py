"""An ensemble's progress, and showing it while a person waits: in a terminal, a log, or a notebook."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TextIO

from cloudburst.errors import ServiceAway
from cloudburst.state.records import CANCELLED, CUT_OFF, FINISHED, FINISHED_WITH_FAILURES, RUNNING, SUBMITTING

# How long following an ensemble waits for a service that stopped answering (a Redis restart takes seconds).
AWAY_S = 300.0
MIN_READ_GAP_S = 0.002  # status is read at most this often, however fast the workers' signals come


@dataclass(frozen=True)
class Progress:
    members: int
    finished: int
    failed: int
    running: int
    unbalanced: int = 0  # hydraulics stopped balancing (UNBALANCED STOP): not in the statistics

    @property
    def recorded(self) -> int:
        return self.finished + self.failed + self.unbalanced

    @property
    def queued(self) -> int:
        return max(self.members - self.recorded - self.running, 0)

    @property
    def done(self) -> bool:
        return self.recorded >= self.members

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "queued": self.queued, "done": self.done}


def shown_state(stamp: str, progress: Progress) -> str:
    """Running until every member (task) has an outcome, unless cancelled; then finished, or finished with
    failures when any failed (or, for an ensemble, stopped unbalanced)."""
    if progress.done:
        return FINISHED_WITH_FAILURES if progress.failed or progress.unbalanced else FINISHED
    if stamp in (SUBMITTING, CUT_OFF):
        return stamp
    return CANCELLED if stamp == CANCELLED else RUNNING


def bar(progress: Progress, elapsed_s: float, width: int = 30) -> str:
    done = progress.recorded
    filled = int(width * done / progress.members) if progress.members else width
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = f"{(progress.members - done) / rate:5.0f} s" if rate > 0 and done < progress.members else "    -"
    unbalanced = f"unbalanced {progress.unbalanced}  " if progress.unbalanced else ""
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{progress.members}  finished {progress.finished}  "
            f"failed {progress.failed}  {unbalanced}running {progress.running}  {rate:6.1f}/s  ETA {eta}")


class Display(Protocol):
    interval_s: float

    def show(self, progress: Progress) -> None: ...

    def close(self) -> None: ...


class TerminalDisplay:
    """One line redrawn in place on a terminal; on a pipe or log file, a line every few seconds."""

    def __init__(self, stream: TextIO = sys.stderr):
        self.stream = stream
        self.live = stream.isatty()
        self.interval_s = 1.0 if self.live else 5.0
        self.started = time.monotonic()

    def show(self, progress: Progress) -> None:
        line = bar(progress, time.monotonic() - self.started)
        self.stream.write(("\r" + line) if self.live else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


class NotebookDisplay:
    """The same line, updated in place in a notebook's output cell (no widgets needed)."""

    interval_s = 1.0

    def __init__(self) -> None:
        from IPython.display import display
        self.started = time.monotonic()
        self.handle = display({"text/plain": "waiting for the first count"}, raw=True, display_id=True)

    def show(self, progress: Progress) -> None:
        self.handle.update({"text/plain": bar(progress, time.monotonic() - self.started)}, raw=True)

    def close(self) -> None:
        pass


def in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = shell.get_ipython()
    return ipython is not None and hasattr(ipython, "kernel")


def default_display() -> Display:
    return NotebookDisplay() if in_notebook() else TerminalDisplay()


def follow(status: Callable[[], Progress], settled: Callable[[Progress], bool], what: str,
           display: Display | None, poll_s: float, timeout_s: float | None, away_s: float = AWAY_S,
           wake: Callable[[float], bool] | None = None) -> Progress:
    """Read ``status`` until ``settled`` says so, showing it at the display's interval (and the last one);
    TimeoutError naming ``what`` and the progress once ``timeout_s`` passes. A service that stops answering (a
    Redis restarting) is waited for, up to ``away_s`` at a time, saying so once on standard error. Ctrl-C stops
    following only. The display is closed either way.

    ``wake(seconds)`` blocks until the workers signal a change or the seconds pass: status is read again at once on
    a signal (``poll_s`` is then only the fallback for what no signal announces, such as a job RQ failed after its
    worker died), spending at most a tenth of the time reading it (a large ensemble's status costs more than a
    small one's). Without ``wake``, status is read every ``poll_s``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    away_since: float | None = None
    shown_at = -float("inf")
    try:
        while True:
            read_at = time.monotonic()
            try:
                current = status()
                done = settled(current)
                if display is not None and (done or read_at - shown_at >= display.interval_s):
                    display.show(current)
                    shown_at = read_at
                if done:
                    return current
            except ServiceAway as away:
                if away_since is None:
                    away_since = time.monotonic()
                    print(f"\n{away}: waiting for it (up to {away_s:g} s)", file=sys.stderr)
                if time.monotonic() - away_since > away_s:
                    raise
                time.sleep(poll_s)
                continue
            away_since = None
            read_s = time.monotonic() - read_at
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{what} not done within {timeout_s:g} s: {current.as_dict()}")
            if wake is None:
                time.sleep(poll_s)
                continue
            wait_s = poll_s if deadline is None else min(poll_s, max(deadline - time.monotonic(), 0.0))
            redraw_in_s = 0.0 if display is None else shown_at + display.interval_s - time.monotonic()
            if redraw_in_s > 0:
                wait_s = min(wait_s, redraw_in_s)
            if wake(wait_s):
                time.sleep(max(0.0, max(MIN_READ_GAP_S, 10 * read_s) - (time.monotonic() - read_at)))
    finally:
        if display is not None:
            display.close()
