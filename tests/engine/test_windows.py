"""A fire flow "from start_s until end_s" holds exactly [start_s, end_s) of simulated time on models whose pattern
clock is not Net3's: a 07:00 pattern start (with two run durations) and a 3 h pattern step with a window between
two steps, on both engines.

The reference side uses no CloudBurst code: owa-epanet's own wrapper opens the same .inp, adds the fire demand with
a 0/1 pattern worked out by hand in each test (which of the model's pattern periods the window covers), and EPANET
writes its own binary output (read by test_engine_toolkit's reader). The warm engine (EPANET 2.3.5, the same
stepping) must equal it bit for bit; wntr's file path (EPANET 2.2) within 1 mm.
"""
from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import epanet.toolkit as tk
import numpy as np
import pandas as pd
import pytest
from cloudburst.engine.batch import run_batch
from cloudburst.engine.models import parse_inp
from cloudburst.plan.scenarios import generate
from cloudburst.schema.batch import make_batch
from test_engine import stored_batch, values
from test_engine_reference import NET3
from test_engine_toolkit import _read_output, engine, save_run, set_pattern, warm_cache  # noqa: F401 (fixtures)
from wntr.epanet.util import FlowUnits, HydParam, from_si

HOUR = 3600
FIRE_NODE, FIRE_M3S = "123", 0.05  # 50 L/s at a junction near the pumps' discharge
_members = itertools.count()


def model_with(tmp_path: Path, pattern_step: str = "1:00", pattern_start: str = "0:00") -> Path:
    text = NET3.read_text()
    text = text.replace(" Pattern Timestep   \t1:00 ", f" Pattern Timestep   \t{pattern_step} ")
    text = text.replace(" Pattern Start      \t0:00 ", f" Pattern Start      \t{pattern_start} ")
    assert f"Pattern Timestep   \t{pattern_step} " in text and f"Pattern Start      \t{pattern_start} " in text
    path = tmp_path / f"net3-step-{pattern_step.replace(':', '')}-start-{pattern_start.replace(':', '')}.inp"
    path.write_text(text)
    return path


@pytest.fixture
def run_fire(results_store, model_dir, model_server, warm_cache, engine):
    """The member (a fire flow at node 123 from start_s to end_s) on the warm engine, or on the file path (EPANET
    2.2); the stored pressures, a row per report time and a column per node."""
    def run(model: Path, duration_s: int, start_s: int, end_s: int, warm: bool) -> pd.DataFrame:
        data = model.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        (model_dir / f"{sha}.inp").write_bytes(data)
        series = [{"element": "node", "attributes": ["pressure"]}]
        batch = make_batch("windows", [{
            "schema": "cloudburst.job/1", "ensemble": "windows", "member": next(_members), "seed": 1,
            "input": {"url": f"{model_server}/{sha}.inp", "sha256": sha, "start_time_utc": "2024-01-01T00:00:00Z"},
            "run": {"duration_s": duration_s, **({} if warm else {"epanet": "2.2"}),
                    "alterations": [{"type": "fire_flow", "node": FIRE_NODE,
                                                               "flow_m3s": FIRE_M3S, "start_s": start_s,
                                                               "end_s": end_s}]},
            "output": {"series": series}}])
        outcome = run_batch(batch, warm_cache, results_store, None, engine)
        assert outcome.finished, outcome
        _, frame = stored_batch(results_store, "windows", batch["batch"])
        return values(frame, "pressure")
    return run


def reference(model: Path, duration_s: int, fire_pattern: list[float] | None, tmp_path: Path,
              pattern_step_s: int | None = None, pattern_start_s: int | None = None) -> pd.DataFrame:
    """EPANET's own run of the model with the fire as a demand on a hand-made pattern (and, where asked, the model's
    patterns written out at a finer step by repeating each multiplier, or its pattern start and start clock time
    set); its pressures in metres."""
    out = tmp_path / f"reference-{next(_members)}.out"
    project = tk.createproject()
    tk.open(project, str(model), "/dev/null", str(out))
    tk.settimeparam(project, tk.DURATION, duration_s)
    if pattern_start_s is not None:
        tk.settimeparam(project, tk.PATTERNSTART, pattern_start_s)
        tk.settimeparam(project, tk.STARTTIME, pattern_start_s)
    if pattern_step_s is not None:
        factor = tk.gettimeparam(project, tk.PATTERNSTEP) // pattern_step_s
        for index in range(1, tk.getcount(project, tk.PATCOUNT) + 1):
            multipliers = [tk.getpatternvalue(project, index, period)
                           for period in range(1, tk.getpatternlen(project, index) + 1)]
            set_pattern(project, index, list(np.repeat(multipliers, factor)))
        tk.settimeparam(project, tk.PATTERNSTEP, pattern_step_s)
    if fire_pattern is not None:
        tk.addpattern(project, "fire")
        set_pattern(project, tk.getpatternindex(project, "fire"), fire_pattern)
        node = tk.getnodeindex(project, FIRE_NODE)
        tk.adddemand(project, node, float(from_si(FlowUnits.GPM, FIRE_M3S, HydParam.Demand)), "fire", "fire")
    save_run(project)
    return HydParam.Pressure._to_si(FlowUnits.GPM, _read_output(out)["pressure"])


def assert_equal(stored: pd.DataFrame, expected: pd.DataFrame, tolerance_m: float = 0.0) -> None:
    expected = expected.loc[stored.index, stored.columns]
    if tolerance_m == 0.0:
        assert (stored.to_numpy(np.float64) == expected.to_numpy(np.float64)).all()
    else:
        assert np.abs(stored.to_numpy(np.float64) - expected.to_numpy(np.float64)).max() < tolerance_m


@pytest.mark.parametrize("duration_h", [24, 12])
def test_a_fire_holds_its_hours_on_a_model_with_a_07_00_pattern_start(run_fire, tmp_path, duration_h):
    model = model_with(tmp_path, pattern_start="7:00")
    # Hours 3-5 of the run are the model's clock 10:00-12:00: its 1 h periods 10 and 11 (period 0 is clock 0:00).
    periods = 7 + duration_h + 1
    fire = [0.0] * 10 + [1.0, 1.0] + [0.0] * (periods - 12)
    expected = reference(model, duration_h * HOUR, fire, tmp_path)
    stored = run_fire(model, duration_h * HOUR, 3 * HOUR, 5 * HOUR, warm=True)
    assert_equal(stored, expected)
    assert_equal(run_fire(model, duration_h * HOUR, 3 * HOUR, 5 * HOUR, warm=False), expected, tolerance_m=1e-3)
    # Against the same model without a fire: equal until hour 3, lower at node 123 (by more than 10 cm) during hours 3 and 4.
    quiet = reference(model, duration_h * HOUR, [0.0] * periods, tmp_path)
    assert (stored.loc[:2 * HOUR] == quiet.loc[:2 * HOUR, stored.columns]).all().all()
    assert (stored.loc[[3 * HOUR, 4 * HOUR], FIRE_NODE] < quiet.loc[[3 * HOUR, 4 * HOUR], FIRE_NODE] - 0.1).all()


def test_a_fire_between_pattern_steps_burns_exactly_its_two_hours(run_fire, tmp_path):
    model = model_with(tmp_path, pattern_step="3:00")
    # 07:00-09:00 falls inside the 3 h periods 2 (06-09): the model's patterns at 1 h (each multiplier three times),
    # the fire on 1 h periods 7 and 8.
    fire = [0.0] * 7 + [1.0, 1.0] + [0.0] * (25 - 9)
    expected = reference(model, 24 * HOUR, fire, tmp_path, pattern_step_s=HOUR)
    stored = run_fire(model, 24 * HOUR, 7 * HOUR, 9 * HOUR, warm=True)
    assert_equal(stored, expected)
    assert_equal(run_fire(model, 24 * HOUR, 7 * HOUR, 9 * HOUR, warm=False), expected, tolerance_m=1e-3)
    quiet = reference(model, 24 * HOUR, [0.0] * 25, tmp_path, pattern_step_s=HOUR)
    assert (stored.loc[:6 * HOUR] == quiet.loc[:6 * HOUR, stored.columns]).all().all()
    assert (stored.loc[[7 * HOUR, 8 * HOUR], FIRE_NODE] < quiet.loc[[7 * HOUR, 8 * HOUR], FIRE_NODE] - 0.1).all()


def test_members_dated_00_00_and_06_00_start_the_models_clock_at_their_time_of_day(results_store, model_dir,
                                                                                  model_server, warm_cache, engine,
                                                                                  tmp_path):
    """A rolling forecast: member i dated t0 + i x 6 h (the client's own drawing of the members). Net3's clock starts
    at 12 am with pattern start 0: the member dated 06:00 equals Net3 run with its pattern start and start clock
    time set to 6:00 by hand, bit for bit on the warm engine, within 1 mm on the file path."""
    data = NET3.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(data)
    scenario = {"ensemble": "rolling", "members": 2, "start_time_utc": "2024-06-01T00:00:00Z",
                "start_every_s": 6 * HOUR, "run": {"duration_s": 24 * HOUR},
                "output": {"series": [{"element": "node", "attributes": ["pressure"]}]}}
    documents = generate(scenario, parse_inp(NET3, "Net3"), {"url": f"{model_server}/{sha}.inp", "sha256": sha}
                         ).documents
    assert [document["run"]["clock_start_s"] for document in documents] == [0, 6 * HOUR]
    stored = {}
    for warm in (True, False):
        for document in documents:
            if not warm:  # EPANET 2.2: wntr's file path
                document = {**document, "run": {**document["run"], "epanet": "2.2"}}
            batch = make_batch("rolling", [document])
            run_batch(batch, warm_cache, results_store, None, engine)
            stored[warm, document["member"]] = values(stored_batch(results_store, "rolling", batch["batch"])[1],
                                                      "pressure")
    midnight = reference(NET3, 24 * HOUR, None, tmp_path)
    six = reference(NET3, 24 * HOUR, None, tmp_path, pattern_start_s=6 * HOUR)
    assert_equal(stored[True, 0], midnight)
    assert_equal(stored[True, 1], six)
    assert_equal(stored[False, 0], midnight, tolerance_m=1e-3)
    assert_equal(stored[False, 1], six, tolerance_m=1e-3)
    assert np.abs(stored[True, 0].to_numpy(np.float64) - stored[True, 1].to_numpy(np.float64)).max() > 1.0
