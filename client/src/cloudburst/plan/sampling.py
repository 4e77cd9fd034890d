"""Drawing a scenario's uncertain values: distributions, sampling designs and shared draws (pure, reproducible).

Every uncertain value in a scenario is a distribution spec, e.g. ``{distribution: normal, mean: 1, std: 0.1}``.
The design draws one uniform number per member and spec (``random``: independent; ``lhs``: Latin hypercube;
``sobol``: scrambled Sobol' points, balanced when the member count is a power of 2), all from numpy's PCG64
generator seeded with the scenario's seed; each spec turns its uniform into a value through its inverse CDF.
Specs that name the same ``draw`` share one uniform, so their values move together (fully rank-correlated:
e.g. residential and commercial demand factors driven by one weather draw).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.stats import qmc

from cloudburst.plan.sensitivity import DESIGN as SALTELLI
from cloudburst.plan.sensitivity import saltelli_design

log = logging.getLogger(__name__)

DISTRIBUTIONS: dict[str, tuple[str, ...]] = {  # name -> required parameters
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "lognormal": ("mean", "sigma"),
    "truncnorm": ("mean", "std", "low", "high"),
    "triangular": ("low", "mode", "high"),
    "beta": ("a", "b"),
    "choice": ("values",),
}
OPTIONAL = {"beta": ("low", "high"), "choice": ("weights",)}
DESIGNS = ("random", "lhs", "sobol")
SPEC_KEYS = {"distribution", "draw"}


@dataclass(frozen=True)
class Spec:
    """One distribution spec found in a scenario, where it stands (a JSON path) and its design column."""
    path: str
    parameters: dict[str, Any]
    column: int


def is_spec(value: Any) -> bool:
    return isinstance(value, dict) and "distribution" in value


def describe(parameters: dict[str, Any]) -> str:
    """A spec as a reader writes it: normal(mean=1, std=0.3)."""
    arguments = ", ".join(f"{key}={value}" for key, value in parameters.items() if key not in SPEC_KEYS)
    return f"{parameters['distribution']}({arguments})"


def spec_problems(value: dict[str, Any], path: str) -> list[str]:
    kind = value["distribution"]
    if kind not in DISTRIBUTIONS:
        return [f"{path}: unknown distribution {kind!r}; known: {', '.join(DISTRIBUTIONS)}"]
    needed = DISTRIBUTIONS[kind]
    missing = [name for name in needed if name not in value]
    if missing:
        return [f"{path}: distribution {kind} needs {', '.join(missing)}"]
    unknown = sorted(set(value) - set(needed) - set(OPTIONAL.get(kind, ())) - SPEC_KEYS)
    if unknown:
        return [f"{path}: distribution {kind} takes no {', '.join(unknown)}"]
    if "draw" in value and not isinstance(value["draw"], str):
        return [f"{path}.draw: name the shared draw with a string"]
    if kind == "choice":
        if not isinstance(value["values"], list) or not value["values"]:
            return [f"{path}: choice needs a non-empty list of values"]
        weights = value.get("weights")
        if weights is not None and (len(weights) != len(value["values"]) or min(weights) < 0 or sum(weights) <= 0):
            return [f"{path}: choice needs one weight >= 0 per value, not all 0"]
        return []
    numbers = [value[name] for name in needed + OPTIONAL.get(kind, ()) if name in value]
    if not all(isinstance(number, (int, float)) and not isinstance(number, bool) for number in numbers):
        return [f"{path}: the parameters of {kind} must be numbers"]
    low, high = value.get("low", 0), value.get("high", 1)
    if kind in ("uniform", "truncnorm", "triangular", "beta") and not low < high:
        return [f"{path}: {kind} needs low < high"]
    if kind in ("normal", "truncnorm", "lognormal") and not value[needed[1]] > 0:
        return [f"{path}: {kind} needs {needed[1]} > 0"]
    if kind == "triangular" and not low <= value["mode"] <= high:
        return [f"{path}: triangular needs low <= mode <= high"]
    if kind == "beta" and not (value["a"] > 0 and value["b"] > 0):
        return [f"{path}: beta needs a > 0 and b > 0"]
    return []


def find_specs(value: Any, path: str, found: list[tuple[str, dict[str, Any]]]) -> None:
    """Append every distribution spec under value, in document order, with its path."""
    if is_spec(value):
        found.append((path, value))
    elif isinstance(value, dict):
        for key, item in value.items():
            find_specs(item, f"{path}.{key}", found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            find_specs(item, f"{path}[{index}]", found)


def columns(found: list[tuple[str, dict[str, Any]]]) -> list[Spec]:
    """Each spec's design column, numbered in order of first use: its own, or its shared ``draw``'s."""
    keys = [("draw", parameters["draw"]) if "draw" in parameters else ("spec", path) for path, parameters in found]
    order = {key: index for index, key in enumerate(dict.fromkeys(keys))}
    return [Spec(path, parameters, order[key]) for (path, parameters), key in zip(found, keys)]


def design(members: int, dimensions: int, kind: str, seed: int) -> np.ndarray:
    """Uniform numbers in [0, 1), one row per member and one column per independent draw."""
    rng = np.random.default_rng(seed)
    if dimensions == 0:
        return np.empty((members, 0))
    if kind == "random":
        uniform: np.ndarray = rng.random((members, dimensions))
        return uniform
    if kind == "lhs":
        hypercube: np.ndarray = qmc.LatinHypercube(d=dimensions, rng=rng).random(members)
        return hypercube
    if kind == SALTELLI:  # set by a sensitivity study: members is base_samples x (dimensions + 2)
        return saltelli_design(members // (dimensions + 2), dimensions, seed)
    with warnings.catch_warnings(record=True) as caught:  # Sobol' warns when members is not a power of 2
        warnings.simplefilter("always")
        points: np.ndarray = qmc.Sobol(d=dimensions, scramble=True, rng=rng).random(members)
    for warning in caught:
        log.info("sobol design: %s", warning.message)
    return points


def values(parameters: dict[str, Any], uniforms: np.ndarray) -> list[Any]:
    """The spec's values for these uniforms (inverse CDF)."""
    kind = parameters["distribution"]
    p = parameters
    if kind == "choice":
        weights = np.asarray(p.get("weights") or [1] * len(p["values"]), dtype=float)
        picks = np.searchsorted(np.cumsum(weights) / weights.sum(), uniforms, side="right")
        return [p["values"][min(int(pick), len(p["values"]) - 1)] for pick in picks]
    if kind == "uniform":
        drawn = stats.uniform.ppf(uniforms, loc=p["low"], scale=p["high"] - p["low"])
    elif kind == "normal":
        drawn = stats.norm.ppf(uniforms, loc=p["mean"], scale=p["std"])
    elif kind == "lognormal":
        drawn = stats.lognorm.ppf(uniforms, s=p["sigma"], scale=np.exp(p["mean"]))
    elif kind == "truncnorm":
        a, b = (p["low"] - p["mean"]) / p["std"], (p["high"] - p["mean"]) / p["std"]
        drawn = stats.truncnorm.ppf(uniforms, a, b, loc=p["mean"], scale=p["std"])
    elif kind == "triangular":
        width = p["high"] - p["low"]
        drawn = stats.triang.ppf(uniforms, (p["mode"] - p["low"]) / width, loc=p["low"], scale=width)
    else:
        low, high = p.get("low", 0.0), p.get("high", 1.0)
        drawn = stats.beta.ppf(uniforms, p["a"], p["b"], loc=low, scale=high - low)
    return [float(value) for value in drawn]


def draw_all(specs: list[Spec], members: int, kind: str, seed: int) -> dict[str, list[Any]]:
    """Every spec's value for every member, by the spec's path."""
    dimensions = len({spec.column for spec in specs})
    uniforms = design(members, dimensions, kind, seed)
    return {spec.path: values(spec.parameters, uniforms[:, spec.column]) for spec in specs}
