"""Segment criticality (cloudburst.segments) on a small model whose segments and outages are worked out by hand,
and on Net3 with wntr's strategic valve layer, against real EPANET runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import wntr
from cloudburst.engine import toolkit
from cloudburst.engine.models import parse_inp
from cloudburst.engine.segments import (
    SegmentRuns,
    SegmentSettings,
    segments_of,
    valve_layer,
)
from cloudburst.engine.warm import OpenModel
from cloudburst.errors import InputError
from cloudburst.schema.job import parse_job

HOURS = 6


DEMAND_M3S = 0.001  # 1 L/s at each junction


def small_model(path: Path, check_valves: tuple[str, ...] = ()) -> Path:
    """R -p1- J1 -p2- J2 -p3- J3, and J2 -p4- J4: a reservoir at 50 m feeding four junctions of 1 L/s; the pipes
    named in check_valves have one (CV), open towards the junctions."""
    wn = wntr.network.WaterNetworkModel()
    wn.add_reservoir("R", base_head=50.0)
    for name in ("J1", "J2", "J3", "J4"):
        wn.add_junction(name, base_demand=DEMAND_M3S, elevation=0.0)
    for name, start, end in (("p1", "R", "J1"), ("p2", "J1", "J2"), ("p3", "J2", "J3"), ("p4", "J2", "J4")):
        wn.add_pipe(name, start, end, length=100.0, diameter=0.3, roughness=100.0, check_valve=name in check_valves)
    wn.options.time.duration = HOURS * 3600
    wn.options.time.hydraulic_timestep = 3600
    wn.options.time.report_timestep = 3600
    wntr.network.write_inpfile(wn, str(path))
    return path


# Valves on p2 at J1, and on p3 and p4 at J2: by hand, four segments.
VALVES = [["p2", "J1"], ["p3", "J2"], ["p4", "J2"]]


BY_HAND = {  # nodes -> (links in the segment, links isolating it closes)
    ("J1", "R"): (["p1"], ["p1", "p2"]),
    ("J2",): (["p2"], ["p2", "p3", "p4"]),
    ("J3",): (["p3"], ["p3"]),
    ("J4",): (["p4"], ["p4"]),
}


def job_for(path: Path, alterations: list | None = None) -> object:
    return parse_job({"schema": "cloudburst.job/1", "ensemble": "seg", "member": 0,
                      "input": {"url": "http://models.invalid/m.inp", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
                      "run": {"alterations": alterations or []}})


def isolate_each(path: Path) -> dict:
    """Each segment of VALVES' layer isolated in turn on the warm engine: its outage by the segment's nodes."""
    wn = parse_inp(path, str(path))
    model = OpenModel(path, wn, toolkit.Project(path))
    try:
        runs = SegmentRuns(model, job_for(path), SegmentSettings())
        return {tuple(segment.nodes): runs.isolate(segment.segment, segment.closes)
                for segment in segments_of(wn, valve_layer(VALVES, wn))}
    finally:
        model.project.close()


def test_segments_are_the_hand_computed_ones(tmp_path):
    path = small_model(tmp_path / "small.inp")
    wn = parse_inp(path, str(path))
    found = {tuple(segment.nodes): (segment.links, segment.closes) for segment in segments_of(wn, valve_layer(VALVES, wn))}
    assert found == BY_HAND


def test_isolating_each_segment_costs_exactly_the_demand_it_cuts_off(tmp_path):
    outages = isolate_each(small_model(tmp_path / "small.inp"))
    cut_off = {("J1", "R"): 4, ("J2",): 3, ("J3",): 1, ("J4",): 1}  # junctions left without a path to R
    for nodes, junctions in cut_off.items():
        outage = outages[nodes]
        # Within 1e-4: EPANET keeps a closed link's flow at a tiny non-zero value, so a cut-off node's pressure-driven
        # demand is not quite zero.
        assert outage.unserved_m3 == pytest.approx(junctions * DEMAND_M3S * HOURS * 3600, rel=1e-4), (nodes, outage)
        assert outage.nodes_without_water == junctions
        assert outage.hours_without_water == HOURS


def test_segments_with_check_valve_pipes_are_isolated_like_any_other(tmp_path):
    """EPANET refuses to set a CV pipe's status (error 207): isolating a segment that holds one still closes it."""
    path = small_model(tmp_path / "small-cv.inp", check_valves=("p3", "p4"))
    assert " CV" in path.read_text()  # the model as EPANET reads it has the check valves
    outages = isolate_each(path)
    for nodes, junctions in {("J1", "R"): 4, ("J2",): 3, ("J3",): 1, ("J4",): 1}.items():
        assert outages[nodes].unserved_m3 == pytest.approx(junctions * DEMAND_M3S * HOURS * 3600, rel=1e-4), nodes
        assert outages[nodes].nodes_without_water == junctions


def test_a_segments_study_on_a_steady_state_run_is_refused_saying_why(tmp_path):
    path = small_model(tmp_path / "small.inp")
    wn = parse_inp(path, str(path))
    from cloudburst.plan.studies import parse_study
    study = {"type": "segments", "valves": VALVES}
    with pytest.raises(InputError, match=r"steady-state snapshot \(duration 0\): set run.duration_s"):
        parse_study(study, wn, duration_s=0)
    wn.options.time.duration = 0
    with pytest.raises(InputError, match="steady-state snapshot"):
        parse_study(study, wn)
    assert len(parse_study(study, wn, duration_s=3600).segments) == 4  # the scenario's run sets a duration


def test_net3_with_wntrs_strategic_layer_puts_each_junction_in_one_segment_and_isolations_cost_something():
    path = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"
    wn = parse_inp(path, str(path))
    layer = valve_layer({"generate": "strategic", "n": 1, "seed": 3}, wn)
    segments = segments_of(wn, layer)
    nodes = [node for segment in segments for node in segment.nodes]
    assert sorted(nodes) == sorted(wn.node_name_list)  # a partition of the nodes
    model = OpenModel(path, wn, toolkit.Project(path))
    try:
        runs = SegmentRuns(model, job_for(path), SegmentSettings())
        biggest = max(segments, key=lambda segment: len(segment.nodes))
        outage = runs.isolate(biggest.segment, biggest.closes)
    finally:
        model.project.close()
    assert outage.unserved_m3 > 0 and outage.nodes_without_water >= 1


def test_a_valve_not_at_an_end_of_its_link_is_refused(tmp_path):
    path = small_model(tmp_path / "small.inp")
    wn = parse_inp(path, str(path))
    with pytest.raises(InputError, match="node J4 is not an end of link p2"):
        valve_layer([["p2", "J4"]], wn)
    with pytest.raises(InputError, match="no link p9"):
        valve_layer([["p9", "J1"]], wn)
