"""Fire-flow availability (cloudburst.fireflow, cloudburst.studies): each hydrant's search against an independent
bisection written here on wntr's EPANET file path, and the study end to end on a real Redis, Nginx and runner
processes: submitted from a scenario file, searched on the workers per member, the distribution per hydrant."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import wntr
from cloudburst.engine import toolkit
from cloudburst.engine.fireflow import FireFlowSettings, search_member
from cloudburst.engine.models import parse_inp
from cloudburst.engine.warm import OpenModel
from cloudburst.errors import InputError
from cloudburst.schema.job import parse_job

NET3 = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"


START_S, DURATION_S, LIMIT_M = 18 * 3600, 2 * 3600, 14.0


def member_job(factor: float, member: int = 0) -> dict:
    sha = hashlib.sha256(NET3.read_bytes()).hexdigest()
    return {"schema": "cloudburst.job/1", "ensemble": "fire", "member": member,
            "input": {"url": "http://models.invalid/net3.inp", "sha256": sha},
            "run": {"alterations": [{"type": "demand_scale", "factor": factor}]}}


def searched(factor: float, hydrants: list[str], path: Path = NET3, start_s: int = START_S) -> dict:
    model = OpenModel(path, parse_inp(path, str(path)), toolkit.Project(path))
    try:
        return search_member(model, parse_job(member_job(factor)), hydrants, FireFlowSettings(start_s=start_s))
    finally:
        model.project.close()


class WntrFire:
    """The test's own reference: Net3 with every junction's demand scaled, on wntr's EPANET 2.2 file path, a fire
    demand at the hydrant from START_S for DURATION_S, pressures at the report times within the fire."""

    def __init__(self, factor: float, scratch: Path, path: Path = NET3, start_s: int = START_S,
                 hourly_patterns: bool = False):
        """``hourly_patterns``: the model's patterns written out at a 1 h step (each multiplier repeated) first, for a
        fire whose edges fall between the model's own pattern periods."""
        self.factor, self.scratch, self.runs = factor, scratch, 0
        self.path, self.start_s, self.hourly_patterns = path, start_s, hourly_patterns
        self.watched = self.below_limit_free(self.pressures(None, 0.0))

    def pressures(self, hydrant: str | None, flow_lps: float):
        wn = wntr.network.WaterNetworkModel(str(self.path))
        for _, junction in wn.junctions():
            for demand in junction.demand_timeseries_list:
                demand.base_value *= self.factor
        start, end = self.start_s, self.start_s + DURATION_S
        wn.options.time.duration = end
        wn.options.hydraulic.demand_model = "DD"
        if self.hourly_patterns:
            repeat = int(wn.options.time.pattern_timestep) // 3600
            for _, pattern in wn.patterns():
                pattern.multipliers = np.repeat(pattern.multipliers, repeat)
            wn.options.time.pattern_timestep = 3600
        # Period i of the fire's pattern covers the model's clock [i step, (i + 1) step): run time i step - start.
        step, clock = int(wn.options.time.pattern_timestep), int(wn.options.time.pattern_start)
        wn.add_pattern("fire", [1.0 if start <= i * step - clock < end else 0.0 for i in range((clock + end) // step + 2)])
        if hydrant is not None:
            wn.get_node(hydrant).add_demand(flow_lps / 1000, "fire")
        self.runs += 1
        results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(self.scratch / f"run{self.runs}"))
        pressure = results.node["pressure"]
        return pressure.loc[start:end, wn.junction_name_list]

    @staticmethod
    def below_limit_free(pressure) -> list[str]:
        return [name for name in pressure.columns if pressure[name].min() >= LIMIT_M]

    def holds(self, hydrant: str, flow_lps: float) -> bool:
        pressure = self.pressures(hydrant, flow_lps)
        elsewhere = [name for name in self.watched if name != hydrant]
        return pressure[hydrant].min() >= LIMIT_M and pressure[elsewhere].min().min() >= LIMIT_M

    def bisect(self, hydrant: str, ceiling: float = 500.0, tolerance: float = 0.01) -> float:
        if not self.holds(hydrant, 0.0):
            return 0.0
        low, high = 0.0, ceiling
        while high - low > tolerance:
            middle = (low + high) / 2
            low, high = (middle, high) if self.holds(hydrant, middle) else (low, middle)
        return low


def test_each_search_matches_an_independent_bisection_on_wntrs_file_path_within_0_1_lps(tmp_path):
    factor = 1.15
    found = {row["hydrant"]: row for row in searched(factor, ["15", "101", "10", "261"])["hydrants"]}
    reference = WntrFire(factor, tmp_path)
    limits = {name: row["limited_by"] for name, row in found.items()}
    assert limits["10"] == "residual" and found["10"]["flow_lps"] == 0.0  # below 14 m with no fire (pump suction)
    assert {"residual", "system"} <= set(limits.values()), limits  # both limits are exercised
    for hydrant, row in found.items():
        expected = reference.bisect(hydrant)
        assert abs(row["flow_lps"] - expected) <= 0.1, (hydrant, row, expected)
    # The search needs fewer runs than the bisection (about 16 per hydrant from a 500 L/s ceiling).
    assert sum(row["runs"] for row in found.values()) < reference.runs


@pytest.mark.parametrize("times, start_s, hourly", [
    ((" Pattern Start      \t0:00 ", " Pattern Start      \t7:00 "), 11 * 3600, False),    # clock 18:00-20:00
    ((" Pattern Timestep   \t1:00 ", " Pattern Timestep   \t3:00 "), 7 * 3600, True)],     # inside 3 h periods
    ids=["pattern start 7:00", "3 h pattern step, fire 07:00-09:00"])
def test_searches_hold_the_fire_to_its_hours_on_other_pattern_clocks(tmp_path, times, start_s, hourly):
    text = NET3.read_text()
    assert times[0] in text
    path = tmp_path / "net3-clock.inp"
    path.write_text(text.replace(times[0], times[1]))
    found = {row["hydrant"]: row for row in searched(1.15, ["15", "101", "261"], path, start_s)["hydrants"]}
    reference = WntrFire(1.15, tmp_path, path, start_s, hourly)
    for hydrant, row in found.items():
        expected = reference.bisect(hydrant)
        assert 0 < expected < 500 and abs(row["flow_lps"] - expected) <= 0.1, (hydrant, row, expected)


def test_more_demand_leaves_less_fire_flow_and_the_junctions_left_out_are_named():
    low, high = searched(0.8, ["15", "101"]), searched(1.3, ["15", "101"])
    for light, heavy in zip(low["hydrants"], high["hydrants"]):
        assert heavy["flow_lps"] < light["flow_lps"], (light, heavy)
    assert "10" in low["left_out"]  # below the system limit without any fire: not "elsewhere"


def test_bad_settings_and_hydrants_are_refused_with_the_reason():
    with pytest.raises(InputError, match="give start_s"):
        FireFlowSettings.parse({"duration_s": 3600})
    with pytest.raises(InputError, match="unknown setting flow"):
        FireFlowSettings.parse({"start_s": 0, "flow": 3})
    with pytest.raises(InputError, match="duration_s must be > 0"):
        FireFlowSettings.parse({"start_s": 0, "duration_s": 0})
    with pytest.raises(InputError, match="not junctions of the model: 1"):  # a reservoir's ID
        searched(1.0, ["15", "1"])
