"""Time windows on EPANET's pattern clock: what a fire flow or a contaminant source "in force from start_s until
end_s" becomes, so that it holds exactly [start_s, end_s) of simulated time on any model.

EPANET reads a pattern's period ``floor((t + PATTERN START) / PATTERN TIMESTEP) modulo its length`` at run time
t. A 0/1 pattern therefore has to be written on the model's clock (its pattern start), long enough never to wrap
within the run, and its edges must fall on period boundaries. Where ``start_s + PATTERN START`` or ``end_s + PATTERN
START`` is not a multiple of the pattern step, every pattern of the model is re-expressed at a finer step that
divides the old one and puts both edges on boundaries: each multiplier repeated, the same demands at every moment.
Both engines (wntr's file path and the warm engine's toolkit) build their windows with these functions.
"""
from __future__ import annotations

import math
from collections.abc import Iterable


def clock_shift(model_clock_start_s: int, clock_start_s: int) -> int:
    """How far a run starting at clock time ``clock_start_s`` is from the model's own start clock time: the seconds
    its pattern start moves on (the time of day only, so within a day, forward)."""
    return (clock_start_s - model_clock_start_s) % 86400


def finer_step(step_s: int, pattern_start_s: int, start_s: int, end_s: int | None) -> int:
    """The longest pattern step that divides ``step_s`` and puts the window's edges on period boundaries."""
    finer = step_s
    for edge in (start_s, end_s):
        if edge is not None:
            finer = math.gcd(finer, edge + pattern_start_s)
    return finer


def repeated(multipliers: Iterable[float], factor: int) -> list[float]:
    """A pattern's multipliers at a step ``factor`` times finer: each repeated ``factor`` times."""
    return [float(value) for value in multipliers for _ in range(factor)]


def window_multipliers(step_s: int, pattern_start_s: int, duration_s: int, start_s: int,
                       end_s: int | None) -> list[float]:
    """The 0/1 pattern at ``step_s`` that is 1 exactly while start_s <= t < end_s (no end: to the run's end), t the
    run's time; it covers the clock from 0 to the run's end (and the window's), so it never wraps within the run."""
    horizon_s = max(duration_s, start_s, end_s or 0)
    periods = (pattern_start_s + horizon_s) // step_s + 1
    return [1.0 if start_s <= period * step_s - pattern_start_s and (end_s is None or
                                                                   period * step_s - pattern_start_s < end_s)
            else 0.0 for period in range(periods)]
