"""The result format in InfluxDB, named once: measurements, tags, fields, how a point is written and read.

Measurements: ``node`` and ``link`` (series; tags ensemble, member, element; one field per attribute),
``summary`` and ``status`` (tags ensemble, member). Their timestamps are whole seconds: the member's start time
plus the simulation time, so re-running a member overwrites the same points instead of adding new ones.
``execution`` (tags ensemble, member) is the exception: one point per execution of a member, stamped with the
wall clock, so counting its points per member counts how often the member ran. Lines carry nanoseconds
(``PRECISION``), so a member's results and its execution point go to InfluxDB in one request. The writer
(``cloudburst.results``), the reader (``cloudburst.reader``), the CLI and the dashboard tests all use these names.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

NODE, LINK, SUMMARY, STATUS, EXECUTION = "node", "link", "summary", "status", "execution"
SERIES_MEASUREMENTS = (NODE, LINK)
ENSEMBLE_TAG, MEMBER_TAG, ELEMENT_TAG = "ensemble", "member", "element"
STATUS_FIELD, ERROR_FIELD, RUNTIME_FIELD, WORKER_FIELD = "status", "error", "runtime_s", "worker"
FINISHED, FAILED = "finished", "failed"
NODE_ATTRIBUTES = ("demand", "head", "pressure", "quality", "leak_demand")
LINK_ATTRIBUTES = ("flowrate", "velocity", "headloss", "status", "setting", "friction_factor", "reaction_rate")
ATTRIBUTES = {NODE: NODE_ATTRIBUTES, LINK: LINK_ATTRIBUTES}
# The timestamp precision of every line this module writes (InfluxDB's precision parameter).
PRECISION = "ns"
# The summary field members are ranked by, lowest (worst) first.
RANKING_FIELD = "pressure_min"


def escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_fields(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(f"{escape_tag(key)}={'true' if value else 'false'}")
        elif isinstance(value, (int, np.integer)):
            parts.append(f"{escape_tag(key)}={int(value)}i")
        elif isinstance(value, (float, np.floating)):
            if math.isfinite(value):
                parts.append(f"{escape_tag(key)}={float(value)!r}")
        else:
            parts.append(f"{escape_tag(key)}={escape_string_field(str(value))}")
    return ",".join(parts)


def member_tags(ensemble: str, member: int) -> str:
    return f"{ENSEMBLE_TAG}={escape_tag(ensemble)},{MEMBER_TAG}={member}"


def series_prefix(kind: str, ensemble: str, member: int, element: str) -> str:
    """A series point's measurement and tags, up to the space before its fields."""
    return f"{kind},{member_tags(ensemble, member)},{ELEMENT_TAG}={escape_tag(element)} "


def stamp(seconds: int) -> str:
    """A whole-second time as a line's timestamp, in PRECISION."""
    return f"{seconds}000000000"


def member_line(measurement: str, ensemble: str, member: int, seconds: int, fields: dict[str, Any]) -> str:
    """One point per member (summary, status), at a whole second: re-running the member overwrites it."""
    return f"{measurement},{member_tags(ensemble, member)} {format_fields(fields)} {stamp(seconds)}"


def execution_line(ensemble: str, member: int, fields: dict[str, Any]) -> str:
    """One point per execution of a member, at the wall clock's nanosecond: executions never overwrite."""
    return f"{EXECUTION},{member_tags(ensemble, member)} {format_fields(fields)} {time.time_ns()}"


# --- reading: InfluxQL ---------------------------------------------------------------------------------------

def quote(value: str) -> str:
    """A string literal's inside for InfluxQL."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def of_ensemble(name: str) -> str:
    return f"{ENSEMBLE_TAG} = '{quote(name)}'"


def status_query(name: str, state: str, field: str = RUNTIME_FIELD) -> str:
    """One row per member whose status record says ``state``."""
    return (f"SELECT {field} FROM {STATUS} WHERE {of_ensemble(name)} AND {STATUS_FIELD} = '{state}' "
            f"GROUP BY {MEMBER_TAG}")


def series_query(name: str, kind: str, element: str, attribute: str, member: int | None = None) -> str:
    """Every member's (or one member's) values of one attribute of one element, grouped by member."""
    where = f"{of_ensemble(name)} AND {ELEMENT_TAG} = '{quote(element)}'"
    if member is not None:
        where += f" AND {MEMBER_TAG} = '{member}'"
    return f'SELECT "{attribute}" FROM "{kind}" WHERE {where} GROUP BY {MEMBER_TAG}'


def executions_query(name: str) -> str:
    """How many executions each member had."""
    return f"SELECT count({RUNTIME_FIELD}) FROM {EXECUTION} WHERE {of_ensemble(name)} GROUP BY {MEMBER_TAG}"


def summary_query(name: str) -> str:
    return f"SELECT * FROM {SUMMARY} WHERE {of_ensemble(name)} GROUP BY {MEMBER_TAG}"
