"""Alternatives: a base scenario with named variants, each its own ensemble, submitted together, and their
summaries and bands side by side.

    ensemble: net3-options
    members: 200
    seed: 7
    alterations: [...]             # the base
    alternatives:
      base: {}                     # the base as it is
      bigger-main:                 # changed settings, alterations or distributions:
        add_alterations:           #   appended to the base's alterations
          - {type: pipe_property, pipes: ["20"], property: diameter, value: 0.9}
      high-demand:
        alterations:               #   any other top-level key replaces the base's
          - type: demand_scale
            factor: {distribution: truncnorm, mean: 1.2, std: 0.3, low: 0, high: 3}

Variant ``v`` is the ensemble ``<name>.v``. Every variant keeps the base's seed, so values drawn from the same
distributions are the same in each (common random numbers: differences come from the variants, not the draws).
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from cloudburst.errors import InputError
from cloudburst.schema.defaults import ENSEMBLE_PATTERN

VARIANT_KEYS = ("members", "run", "alterations", "add_alterations", "output", "sampling", "batch", "budget",
                "start_time_utc", "start_every_s", "sweep")
SUMMARY_FIELDS = ("pressure_min", "pressure_mean", "nodes_below_threshold")
PERCENTILES = (5, 50, 95)  # numpy's linear interpolation over the members


def variants(scenario: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """Each variant's ensemble name and its whole scenario (the base with the variant's changes); raises
    InputError naming every problem."""
    section = scenario.get("alternatives")
    if not isinstance(section, dict) or not section:
        raise InputError("$.alternatives: a mapping of variant names to their changes (an empty mapping for the base)")
    base = {key: value for key, value in scenario.items() if key != "alternatives"}
    problems, found = [], {}
    for variant, changes in section.items():
        path = f"$.alternatives.{variant}"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(variant)):
            problems.append(f"{path}: a variant's name is letters, digits, '_' and '-'")
            continue
        if not isinstance(changes, dict):
            problems.append(f"{path}: a mapping of changes ({{}} for the base as it is)")
            continue
        problems += [f"{path}: {key} cannot vary (it may: {', '.join(VARIANT_KEYS)})"
                     for key in sorted(set(changes) - set(VARIANT_KEYS))]
        merged = {**base, **{key: value for key, value in changes.items() if key != "add_alterations"}}
        added = changes.get("add_alterations", [])
        if not isinstance(added, list):
            problems.append(f"{path}.add_alterations: a list of alterations")
            added = []
        merged["alterations"] = list(merged.get("alterations") or []) + added
        ensemble = f"{name}.{variant}"
        if not re.fullmatch(ENSEMBLE_PATTERN, ensemble):
            problems.append(f"{path}: the ensemble name {ensemble!r} is too long")
        found[ensemble] = merged
    if problems:
        raise InputError(problems)
    return found


def summary_table(summaries: dict[str, pd.DataFrame], fields: tuple[str, ...] = SUMMARY_FIELDS) -> pd.DataFrame:
    """Per ensemble: finished members and p5/p50/p95 of each member summary field present."""
    rows = {}
    for name, frame in summaries.items():
        row: dict[str, float] = {"members": len(frame)}
        for field in fields:
            if field in frame.columns and len(frame):
                values = frame[field].to_numpy(dtype=float)
                for q in PERCENTILES:
                    row[f"{field}_p{q}"] = float(np.percentile(values, q))
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("ensemble")


def bands(series: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per ensemble and report time: p5, p50, p95 over its members of one element's stored values."""
    tables = []
    for name, frame in series.items():
        grouped = frame.groupby("elapsed_s")["value"]
        table = pd.DataFrame({f"p{q}": grouped.quantile(q / 100, interpolation="linear") for q in PERCENTILES})
        table["members"] = grouped.size()
        tables.append(table.reset_index().assign(ensemble=name))
    return pd.concat(tables, ignore_index=True)[["ensemble", "elapsed_s", "p5", "p50", "p95", "members"]]
