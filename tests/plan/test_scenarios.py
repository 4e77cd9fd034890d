"""The cloudburst client: scenario generation (pure), and the CLI against a real Redis, InfluxDB and Nginx with
worker runners running the example env."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wntr
from cloudburst.errors import InputError
from cloudburst.plan.scenarios import generate

REPO = Path(__file__).resolve().parents[2]


NET3 = REPO / "files" / "models" / "Net3.inp"


SOURCE = {"url": "http://nginx:8080/models/x.inp", "sha256": "0" * 64}


@pytest.fixture(scope="module")
def net3() -> wntr.network.WaterNetworkModel:
    return wntr.network.WaterNetworkModel(str(NET3))


def scenario(**changes) -> dict:
    base = {"ensemble": "tests", "members": 50, "seed": 7,
            "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}]}
    return {**base, **changes}


def factors(ensemble) -> list[float]:
    return [document["run"]["alterations"][0]["factor"] for document in ensemble.documents]


def test_the_same_seed_draws_the_same_values_and_another_seed_others(net3):
    first, again = generate(scenario(), net3, SOURCE), generate(scenario(), net3, SOURCE)
    assert factors(first) == factors(again)
    assert factors(generate(scenario(seed=8), net3, SOURCE)) != factors(first)
    assert [d["member"] for d in first.documents] == list(range(50)) and {d["seed"] for d in first.documents} == {7}


@pytest.mark.parametrize("spec, mean, std", [
    ({"distribution": "uniform", "low": 0.8, "high": 1.2}, 1.0, 0.4 / np.sqrt(12)),
    ({"distribution": "normal", "mean": 1.0, "std": 0.05}, 1.0, 0.05),
    ({"distribution": "lognormal", "mean": 0.0, "sigma": 0.1}, np.exp(0.005), np.sqrt((np.exp(0.01) - 1) * np.exp(0.01))),
])
def test_draws_have_their_distributions_moments(net3, spec, mean, std):
    values = np.array(factors(generate(scenario(members=4000, alterations=[{"type": "demand_scale", "factor": spec}]),
                                       net3, SOURCE)))
    assert abs(values.mean() - mean) < 4 * std / np.sqrt(len(values))
    assert abs(values.std() - std) < 0.05 * std


def test_choice_draws_its_values_by_their_weights(net3):
    spec = {"distribution": "choice", "values": [0.5, 1.0, 1.5], "weights": [1, 2, 1]}
    values = factors(generate(scenario(members=4000, alterations=[{"type": "demand_scale", "factor": spec}]), net3, SOURCE))
    shares = {value: values.count(value) / len(values) for value in (0.5, 1.0, 1.5)}
    assert abs(shares[1.0] - 0.5) < 0.03 and abs(shares[0.5] - 0.25) < 0.03 and abs(shares[1.5] - 0.25) < 0.03


def test_a_pipe_sweep_makes_one_member_per_pipe_and_a_fire_flow_sweep_one_per_hydrant(net3):
    pipes = generate(scenario(alterations=[], sweep={"over": "pipes", "alteration": {"type": "link_status"}}), net3, SOURCE)
    assert len(pipes.documents) == len(net3.pipe_name_list) == 117
    assert [d["run"]["alterations"][-1]["link"] for d in pipes.documents] == net3.pipe_name_list
    hydrants = ["10", "15", "20"]
    fire = generate(scenario(sweep={"over": "junctions", "ids": hydrants,
                                    "alteration": {"type": "fire_flow", "flow_m3s": 0.06}}), net3, SOURCE)
    assert [d["run"]["alterations"][-1]["node"] for d in fire.documents] == hydrants
    assert all(len(d["run"]["alterations"]) == 2 for d in fire.documents)  # the template's draw plus the sweep


@pytest.mark.parametrize("changes, sentence", [
    ({"alterations": [{"type": "demand_scale", "factor": {"distribution": "gamma", "a": 1}}]},
     "$.alterations[0].factor: unknown distribution 'gamma'"),
    ({"members": -5}, "$.members: must be a whole number >= 1 (got -5)"),
    ({"alterations": [{"type": "pump_outage", "pump": "P-99"}]}, "member 0: $.run.alterations[0].pump: the model has no pump 'P-99'"),
    ({"alterations": [{"type": "leak", "node": "10", "area_m2": 0.01}]}, "member 0: $.run.alterations[0]"),
    ({"sweep": {"over": "hydrants", "alteration": {"type": "fire_flow", "flow_m3s": 1}}}, "$.sweep.over: unknown element kind"),
])
def test_bad_scenarios_are_refused_with_a_sentence(net3, changes, sentence):
    with pytest.raises(InputError) as refused:
        generate(scenario(**changes), net3, SOURCE)
    assert any(sentence in problem for problem in refused.value.problems), refused.value.problems
    if "leak" in str(changes):
        assert "WNTRSimulator" in str(refused.value) or "wntr" in str(refused.value)
