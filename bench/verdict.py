"""How a benchmark states its target: measured against the goal in the same run, MET or NOT MET."""
from __future__ import annotations


def verdict(what: str, measured: float, goal: float, at_least: bool, unit: str = "") -> str:
    """One line: what was measured, the goal, and whether this run met it."""
    met = measured >= goal if at_least else measured <= goal
    relation = ">=" if at_least else "<="
    return (f"  target {what}: {measured:,.2f}{unit} {relation} {goal:,.2f}{unit}: "
            f"{'MET' if met else 'NOT MET'}")


def exactly(what: str, measured: int, expected: int) -> str:
    """One line for a count that must be the expected one: neither fewer (lost) nor more (stored twice)."""
    return (f"  target {what}: {measured:,} == {expected:,}: "
            f"{'MET' if measured == expected else 'NOT MET'}")
