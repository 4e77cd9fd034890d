"""Segment criticality: isolation valves split the network into segments (what closing the valves around a break
takes out of service); each segment is isolated in turn and a pressure-driven run says what that costs.

Valves are a layer of (link, node) pairs: the valve sits on the link at that node's end (wntr's convention). A
layer comes from the study's ``valves`` (a list of [link, node] pairs or a CSV file with link and node columns)
or is generated (``generate: strategic`` with ``n``: wntr's N-k strategy, ``n`` valves missing at each node; or
``generate: random`` with ``count``), with a seed. Segments are wntr's (``valve_segments``).

Isolating a segment closes its links and every link whose valve protects one of its nodes (that link's body lies
in the neighbouring segment, but with its valve shut it carries nothing to the isolated nodes). The run is
pressure-driven (EPANET's PDA: no water below ``minimum_pressure_m``, all of it from ``required_pressure_m``) for
the run's whole duration, and per segment it gives, against the same member without an isolation:
``unserved_m3`` (demand not served because of it), ``nodes_without_water`` (junctions that asked for water and got
less than ``short_fraction`` of it over the run) and ``hours_without_water`` (the longest any junction spent below
that share).
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import epanet.toolkit as en
import numpy as np
import pandas as pd
import wntr
from wntr.epanet.util import HydParam

from cloudburst.engine.warm import Changes, OpenModel, apply_alterations, apply_settings, force_status, si_to_model
from cloudburst.errors import InputError


@dataclass(frozen=True)
class SegmentSettings:
    minimum_pressure_m: float = 0.0
    required_pressure_m: float = 14.0
    short_fraction: float = 0.5

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> "SegmentSettings":
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(f"segments: unknown setting {', '.join(unknown)}; known: "
                             f"{', '.join(cls.__dataclass_fields__)}")
        settings = cls(**{key: float(value) for key, value in raw.items()})
        if not 0 <= settings.minimum_pressure_m < settings.required_pressure_m:
            raise InputError("segments: need 0 <= minimum_pressure_m < required_pressure_m")
        if not 0 < settings.short_fraction <= 1:
            raise InputError("segments: short_fraction is a share in (0, 1]")
        return settings


@dataclass(frozen=True)
class Segment:
    segment: int
    nodes: list[str]
    links: list[str]
    closes: list[str]  # what isolating it closes: its links and the links whose valves protect its nodes


def valve_layer(section: Any, wn: wntr.network.WaterNetworkModel, base_dir: Path | None = None) -> pd.DataFrame:
    """The valve layer a study names: columns link and node, one row per valve; raises InputError."""
    if isinstance(section, list):
        pairs = section
    elif isinstance(section, str):
        path = Path(section) if base_dir is None else base_dir / section
        if not path.exists():
            raise InputError(f"$.study.valves: no valve layer file {path}")
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and not {"link", "node"} <= set(rows[0]):
            raise InputError(f"$.study.valves: {path.name} needs columns link and node")
        pairs = [[row["link"], row["node"]] for row in rows]
    elif isinstance(section, dict) and section.get("generate") in ("strategic", "random"):
        seed = int(section.get("seed", 0))
        if section["generate"] == "strategic":
            layer = wntr.network.generate_valve_layer(wn, "strategic", int(section.get("n", 1)), seed=seed)
        else:
            layer = wntr.network.generate_valve_layer(wn, "random", int(section.get("count", len(wn.pipe_name_list))),
                                                      seed=seed)
        chosen: pd.DataFrame = layer[["link", "node"]].reset_index(drop=True)
        return chosen
    else:
        raise InputError("$.study.valves: a list of [link, node] pairs, a CSV file (link, node), or "
                         "{generate: strategic, n: 1} / {generate: random, count: N}")
    problems = []
    for position, pair in enumerate(pairs):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            problems.append(f"valve {position}: give [link, node]")
            continue
        link, node = map(str, pair)
        if link not in wn.link_name_list:
            problems.append(f"valve {position}: no link {link}")
        elif node not in (wn.get_link(link).start_node_name, wn.get_link(link).end_node_name):
            problems.append(f"valve {position}: node {node} is not an end of link {link}")
    if problems:
        raise InputError("$.study.valves: " + "; ".join(problems[:5]))
    if not pairs:
        raise InputError("$.study.valves: the layer has no valve")
    return pd.DataFrame([[str(link), str(node)] for link, node in pairs], columns=["link", "node"])


def segments_of(wn: wntr.network.WaterNetworkModel, layer: pd.DataFrame) -> list[Segment]:
    """Every segment the valves make, with what isolating it closes."""
    node_segments, link_segments, _ = wntr.metrics.topographic.valve_segments(wn.to_graph(), layer)
    found = []
    for number in sorted(set(node_segments) | set(link_segments)):
        nodes = sorted(node_segments.index[node_segments == number], key=str)
        links = sorted(link_segments.index[link_segments == number], key=str)
        guarding = layer.loc[layer["node"].isin(nodes), "link"].tolist()
        found.append(Segment(int(number), nodes, links, sorted(set(links) | set(guarding), key=str)))
    return found


@dataclass(frozen=True)
class Outage:
    segment: int
    unserved_m3: float
    nodes_without_water: int
    hours_without_water: float
    balanced: bool


class SegmentRuns:
    """One member's isolations: its alterations applied for each run, pressure-driven."""

    def __init__(self, model: OpenModel, job: Any, settings: SegmentSettings):
        self.model, self.job, self.settings = model, job, settings
        self.m3_per_unit_s = 1 / si_to_model(model, 1.0, HydParam.Demand)  # model flow unit x s -> m3
        self.junction = np.array([model.project.node_type(i) == en.JUNCTION
                                  for i in range(1, model.project.node_count + 1)])
        self.base = self._run([])

    def _run(self, closes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        model, settings = self.model, self.settings
        changes = Changes(model)
        changes.structural = True  # closing links disables controls and adds statuses: re-open afterwards
        try:
            apply_settings(self.job.run, model, changes)
            apply_alterations(self.job.run, model, changes)
            _, _, _, exponent = model.project.demand_model()
            model.project.set_demand_model(en.PDA, si_to_model(model, settings.minimum_pressure_m, HydParam.Pressure),
                                           si_to_model(model, settings.required_pressure_m, HydParam.Pressure),
                                           exponent)
            for link in closes:
                if model.project.link_type(model.link_index[link]) == en.CVPIPE:
                    model.project.make_plain_pipe(model.link_index[link])  # closed: no check valve to keep
                force_status(model, changes, link, "closed", 0, None)
            return model.project.demand_volumes(settings.short_fraction)
        finally:
            changes.put_back()

    def _without_water(self, delivered: np.ndarray, asked: np.ndarray) -> np.ndarray:
        return self.junction & (asked > 0) & (delivered < self.settings.short_fraction * asked)

    def isolate(self, segment: int, closes: list[str]) -> Outage:
        """What isolating the segment costs beyond what the member lacks without it."""
        delivered, asked, short_s, balanced = self._run(closes)
        base_delivered, base_asked, base_short_s, _ = self.base
        unserved = float(np.sum((base_delivered - delivered)[self.junction])) * self.m3_per_unit_s
        without = self._without_water(delivered, asked) & ~self._without_water(base_delivered, base_asked)
        longer = np.clip(short_s - base_short_s, 0, None)[self.junction]
        hours = float(longer.max()) / 3600 if longer.size else 0.0
        return Outage(segment, max(unserved, 0.0), int(without.sum()), hours, balanced)


def isolate_member(model: OpenModel, job: Any, segments: list[list[Any]], settings: SegmentSettings) -> dict[str, Any]:
    """One member's isolations of a group of segments ([number, links to close, nodes] each), on the open model."""
    runs = SegmentRuns(model, job, settings)
    rows = [{**asdict(runs.isolate(int(number), list(closes))), "nodes": nodes} for number, closes, nodes in segments]
    return {"member": job.member, "segments": rows}
