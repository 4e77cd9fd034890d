"""Models EPANET opens and wntr 1.5's .inp reader does not (a rule `IF SYSTEM CLOCKTIME >= 6 AM`): accepted, checked
without their rules, run on EPANET's toolkit with them (bit for bit against owa-epanet's own run of the same
file); refused, with a sentence naming wntr's parser and what to do, where the scenario asks for wntr's path (EPANET 2.2 or
wntr's solver), link series included as they run on the warm engine; and a file
EPANET itself refuses is called invalid with EPANET's words."""
from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import cloudburst
import epanet.toolkit as tk
import numpy as np
import pandas as pd
import pytest
import wntr
from cloudburst.engine.batch import run_batch
from cloudburst.engine.warm import WarmEngine
from cloudburst.errors import InputError
from cloudburst.schema.batch import make_batch
from cloudburst.state.models import ModelCache
from local_cluster import client_settings
from test_engine import stored_batch, values
from test_engine_toolkit import _read_output, save_run
from wntr.epanet.util import FlowUnits, HydParam

NET1 = Path(wntr.__file__).parent / "library" / "networks" / "Net1.inp"
CLOCK_RULE = "RULE 1\nIF SYSTEM CLOCKTIME >= 6 AM\nAND SYSTEM CLOCKTIME < 6 PM\nTHEN LINK 9 STATUS IS CLOSED\n\n"
SCENARIO = {"ensemble": "clock", "members": 2, "seed": 1, "run": {"duration_s": 86400},
            "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.9, "high": 1.1}}],
            "output": {"series": [{"element": "node", "attributes": ["pressure"]}]}}
_members = itertools.count()


def clock_rule_model(tmp_path: Path) -> Path:
    text = NET1.read_text()
    assert "[RULES]\n" in text
    path = tmp_path / "net1-clock-rule.inp"
    path.write_text(text.replace("[RULES]\n", "[RULES]\n" + CLOCK_RULE, 1))
    return path


def epanet_pressures(path: Path, tmp_path: Path) -> pd.DataFrame:
    """owa-epanet's own run of the file (hydraulics and quality stepped together, EPANET writing its output)."""
    out = tmp_path / f"reference-{next(_members)}.out"
    project = tk.createproject()
    tk.open(project, str(path), "/dev/null", str(out))
    tk.settimeparam(project, tk.DURATION, 86400)
    save_run(project)
    return HydParam.Pressure._to_si(FlowUnits.GPM, _read_output(out)["pressure"])


def test_a_model_only_epanet_reads_is_accepted_and_runs_with_its_rules(cluster, tmp_path, results_store, model_dir,
                                                                       model_server, model_session):
    path = clock_rule_model(tmp_path)
    with pytest.raises(ValueError, match="6 AM"):
        wntr.network.WaterNetworkModel(str(path))  # what made CloudBurst refuse it
    plan = cloudburst.Client(client_settings(cluster)).check_submission(path, SCENARIO, name="clock")
    assert plan["members"] == 2
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (model_dir / f"{sha}.inp").write_bytes(data)
    batch = make_batch("clock", [{"schema": "cloudburst.job/1", "ensemble": "clock", "member": 0, "seed": 1,
                                  "input": {"url": f"{model_server}/{sha}.inp", "sha256": sha,
                                            "start_time_utc": "2024-01-01T00:00:00Z"},
                                  "run": {"duration_s": 86400}, "output": SCENARIO["output"]}])
    cache = ModelCache(tmp_path / "cache", session=model_session)
    engine = WarmEngine(cache)
    try:
        outcome = run_batch(batch, cache, results_store, None, engine)
    finally:
        engine.close()
    assert outcome.finished == [0], outcome
    stored = values(stored_batch(results_store, "clock", batch["batch"])[1], "pressure")
    expected = epanet_pressures(path, tmp_path).loc[stored.index, stored.columns]
    assert (stored.to_numpy(np.float64) == expected.to_numpy(np.float64)).all()
    # The rule acted: without it (Net1 as shipped) the tank's level, so its pressure, differs during the day.
    without = epanet_pressures(NET1, tmp_path).loc[stored.index, stored.columns]
    assert np.abs(stored["2"].to_numpy(np.float64) - without["2"].to_numpy(np.float64)).max() > 1.0


def test_link_series_on_such_a_model_are_accepted_they_run_on_the_warm_engine(cluster, tmp_path):
    path = clock_rule_model(tmp_path)
    links = {**SCENARIO, "output": {"series": [{"element": "link", "attributes": ["flowrate"], "ids": ["9"]}]}}
    plan = cloudburst.Client(client_settings(cluster)).check_submission(path, links, name="clock-links")
    assert plan["members"] == 2


@pytest.mark.parametrize("run", [{"epanet": "2.2"}, {"simulator": "wntr"}], ids=["epanet-2.2", "wntr-solver"])
def test_a_scenario_that_needs_wntr_on_such_a_model_is_refused_naming_wntrs_parser(cluster, tmp_path, run):
    path = clock_rule_model(tmp_path)
    on_wntr = {**SCENARIO, "run": {**SCENARIO["run"], **run}}
    client = cloudburst.Client(client_settings(cluster))
    with pytest.raises(InputError) as refused:
        client.check_submission(path, on_wntr, name="clock-wntr")
    message = str(refused.value)
    assert "wntr's .inp parser cannot read the model's [RULES] (could not convert string to float: '6 AM')" in message
    assert 'run: {epanet: "2.3.5"}' in message
    assert client.records.names() == []


def test_a_file_epanet_refuses_is_called_invalid_in_epanets_words(cluster, tmp_path):
    path = tmp_path / "broken.inp"
    path.write_text(NET1.read_text().replace(" 10              \t10              \t11              \t10530",
                                             " 10              \t10              \t11              \tlong", 1))
    assert "\tlong" in path.read_text()
    with pytest.raises(InputError, match=r"is not a valid EPANET \.inp file: EPANET .*Error 2\d\d"):
        cloudburst.Client(client_settings(cluster)).check_submission(path, SCENARIO, name="broken")


def test_a_chemical_whose_units_wntr_does_not_know_is_read_and_a_contamination_study_plans_on_it(tmp_path):
    """BWSN network 1 as epyt ships it says `Quality Chemical TIME` (units wntr 1.5 refuses; EPANET reads them)."""
    import importlib.util

    from cloudburst.engine.models import parse_inp
    from cloudburst.plan.studies import parse_study
    bwsn1 = Path(importlib.util.find_spec("epyt").origin).parent / "networks" / "asce-tf-wdst" / "BWSN_Network_1.inp"
    assert "Chemical TIME" in bwsn1.read_text()
    with pytest.raises(Exception, match="Error 200"):  # wntr's own reader refuses the file
        wntr.network.WaterNetworkModel(str(bwsn1))
    wn = parse_inp(bwsn1, "BWSN_Network_1.inp")
    assert len(wn.junction_name_list) == 126 and wn.options.time.quality_timestep == 300  # the rest as written
    study = parse_study({"type": "contamination", "start_times_s": [0, 300]}, wn)
    assert len(study.injections) == 2 * 126
    net1 = tmp_path / "net1-odd-units.inp"
    net1.write_text(NET1.read_text().replace("\tChlorine mg/L", "\tChlorine BOGUS"))
    assert "BOGUS" in net1.read_text()
    assert parse_inp(net1, "net1").options.quality.parameter == "CHEMICAL"
