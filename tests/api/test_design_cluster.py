"""Design studies (``Client.design``, ``cloudburst design``) against the local cluster: pymoo's GA and NSGA-II over
Hanoi's pipe options, every generation a round on the workers. Each reported design is run again here by plain
owa-epanet calls (no CloudBurst code) and its cost recomputed from the options table; a stopped study resumes to
the answers of an uninterrupted one without running a design twice; bad studies are refused before anything runs."""
from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import epanet.toolkit as tk
import numpy as np
import pytest
import yaml
from cloudburst.errors import InputError
from local_cluster import cli
from wntr.epanet.util import FlowUnits, HydParam

REPO = Path(__file__).resolve().parents[2]
HANOI = Path(importlib.util.find_spec("epyt").origin).parent / "networks" / "exeter-benchmarks" / "hanoi-exeter.inp"
SCENARIO = yaml.safe_load((REPO / "files" / "scenarios" / "hanoi-design.yml").read_text())
INCH_MM = 25.4


def small(scenario: dict, population: int = 30, evaluations: int = 900, seed: int = 3, **study) -> dict:
    """The shipped Hanoi scenario with a budget a test can afford."""
    small = copy.deepcopy(scenario)
    small["study"]["optimizer"] = {**small["study"]["optimizer"], "population": population,
                                   "evaluations": evaluations, "seed": seed}
    small["study"].update(study)
    return small


def options_table() -> tuple[np.ndarray, np.ndarray]:
    """Diameters (mm) and $/m as the scenario file states them, read here without the code under test."""
    options = SCENARIO["study"]["groups"][0]["options"]
    return (np.array([option["diameter_in"] * INCH_MM for option in options]),
            np.array([option["cost_per_m"] for option in options]))


def plain_hanoi(diameters_mm: dict[str, float], change=None) -> tuple[float, dict[str, float], float]:
    """Hanoi with these pipe diameters (and ``change`` applied to the project) by plain owa-epanet calls: its cost
    from the scenario's table, each junction's pressure (m), and Todini's resilience index at 30 m from EPANET's own
    heads and flows."""
    sizes, prices = options_table()
    project = tk.createproject()
    tk.open(project, str(HANOI), "/dev/null", "")
    cost = 0.0
    for pipe, diameter in diameters_mm.items():
        link = tk.getlinkindex(project, pipe)
        tk.setlinkvalue(project, link, tk.DIAMETER, diameter)
        cost += tk.getlinkvalue(project, link, tk.LENGTH) * prices[int(np.argmin(np.abs(sizes - diameter)))]
    if change is not None:
        change(project)
    tk.solveH(project)
    pressures, surplus, required, supplied = {}, 0.0, 0.0, 0.0
    for node in range(1, tk.getcount(project, tk.NODECOUNT) + 1):
        demand_m3s = tk.getnodevalue(project, node, tk.DEMAND) / 3600  # CMH
        head = tk.getnodevalue(project, node, tk.HEAD)
        if tk.getnodetype(project, node) == tk.JUNCTION:
            pressure = tk.getnodevalue(project, node, tk.PRESSURE)
            pressures[tk.getnodeid(project, node)] = pressure
            surplus += demand_m3s * (pressure - 30.0)
            required += demand_m3s * (tk.getnodevalue(project, node, tk.ELEVATION) + 30.0)
        else:
            supplied += -demand_m3s * head
    tk.close(project)
    tk.deleteproject(project)
    return cost, pressures, surplus / (supplied - required)


def test_a_ga_design_is_feasible_and_costs_what_plain_epanet_and_the_table_say(cluster, client, workers):
    design = client.design(HANOI, small(SCENARIO), name="hanoi-ga")
    best = design.best()
    cost, pressures, _ = plain_hanoi(dict(zip(best["pipe"], best["diameter_mm"])))
    assert min(pressures.values()) >= 30.0
    assert best["cost"].sum() == pytest.approx(cost, rel=1e-9)
    convergence = design.convergence()
    assert convergence["best_cost"].iloc[-1] == pytest.approx(cost, rel=1e-9)
    assert (np.diff(convergence["best_cost"].dropna()) <= 0).all()
    assert convergence["evaluations"].iloc[-1] <= 900
    reported = design.pressures().set_index("node")["pressure_min_m"]
    assert max(abs(reported[node] - pressures[node]) for node in pressures) < 1e-3
    # Better than the search's start: the first generation's best feasible design costs more.
    assert convergence["best_cost"].iloc[-1] < convergence["best_cost"].dropna().iloc[0]


def test_a_stopped_design_resumes_to_the_uninterrupted_answers_running_no_design_twice(cluster, client, workers):
    scenario = small(SCENARIO, population=20, evaluations=3000)  # long enough for designs to be asked for again
    whole = client.design(HANOI, scenario, name="hanoi-whole")

    def stop_at_four(step: dict) -> None:
        if step["generation"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.design(HANOI, scenario, name="hanoi-resumed", on_generation=stop_at_four)
    assert client.design_study("hanoi-resumed").status()["generations"] == 4
    replayed = []
    resumed = client.design(name="hanoi-resumed", on_generation=lambda step: replayed.append(step["replayed"]))
    assert replayed[:4] == [True] * 4 and not any(replayed[4:])
    assert resumed.best().equals(whole.best())
    assert resumed.convergence().equals(whole.convergence())
    # Every distinct design of the record was run once, though some were asked for in more than one generation.
    root = cluster["root"] / "results" / "hanoi-resumed" / "generations"
    import pyarrow.parquet as pq
    designs = [tuple(row) for path in sorted(root.glob("*.parquet"))
               for row in pq.read_table(path).column("design").to_pylist()]
    assert len(designs) > len(set(designs)) == resumed.status()["evaluations"]
    # A finished study is returned as it is: nothing runs again.
    again = client.design(name="hanoi-resumed", on_generation=lambda step: pytest.fail("ran again"))
    assert again.status()["state"] == "finished"


def test_nsga2_cost_and_resilience_gives_a_front_plain_epanet_confirms(cluster, client, workers):
    scenario = small(SCENARIO, population=24, evaluations=480, objectives=["cost", "resilience"])
    scenario["study"]["optimizer"]["algorithm"] = "nsga2"
    design = client.design(HANOI, scenario, name="hanoi-front")
    front = design.pareto()
    assert len(front) >= 2
    sizes, _ = options_table()
    for row in front.itertuples():
        cost, pressures, resilience = plain_hanoi({str(pipe + 1): sizes[option]
                                                   for pipe, option in enumerate(row.design)})
        assert row.cost == pytest.approx(cost, rel=1e-9)
        assert min(pressures.values()) >= 30.0
        assert row.resilience == pytest.approx(resilience, abs=1e-4)
    # Non-dominated, checked here: no design of the front is cheaper and at least as resilient as another.
    for one in front.itertuples():
        assert not any(other.cost <= one.cost and other.resilience >= one.resilience
                       and (other.cost, other.resilience) != (one.cost, one.resilience) for other in front.itertuples())


def test_a_table_too_small_for_the_limits_is_refused_before_the_search(cluster, client, workers):
    scenario = small(SCENARIO)
    scenario["study"]["groups"][0]["options"] = scenario["study"]["groups"][0]["options"][:2]
    with pytest.raises(InputError, match="largest option"):
        client.design(HANOI, scenario, name="hanoi-small-pipes")
    assert not (cluster["root"] / "results" / "hanoi-small-pipes").exists()
    with pytest.raises(InputError, match="no design study"):
        client.design_study("hanoi-small-pipes")


@pytest.mark.parametrize("change, sentence", [
    (lambda study: study["groups"][0].update(pipes=["1", "99"]), "groups[0].pipes: the model has no pipe 99"),
    (lambda study: study["groups"][0]["options"][0].update(cost_per_m=0), "cost_per_m: give a positive number"),
    (lambda study: study["pressure"].update(nodes=["2", "J9"]), "pressure.nodes: the model has no junction J9"),
    (lambda study: study.update(objectives=["cost", "beauty"]), "objectives: [cost], [cost, resilience]"),
    (lambda study: study.update(loadings=[{"name": "fire", "fire_flows": [{"node": "77", "flow_lps": 50}]}]),
     "fire_flows[0].node: the model has no junction 77"),
])
def test_a_bad_study_is_refused_with_one_sentence_and_nothing_runs(cluster, client, change, sentence):
    scenario = small(SCENARIO)
    change(scenario["study"])
    with pytest.raises(InputError) as refused:
        client.design(HANOI, scenario, name="hanoi-bad")
    assert sentence in str(refused.value)
    assert client.queue.count == 0
    assert "hanoi-bad" not in client.records.names()


def test_the_cli_runs_a_design_and_shows_it_again(cluster, workers, tmp_path):
    scenario = tmp_path / "hanoi.yml"
    scenario.write_text(yaml.safe_dump(small(SCENARIO, evaluations=300)))
    plot = tmp_path / "convergence.png"
    ran = cli(cluster, "design", "hanoi-cli", "--model", str(HANOI), "--scenario", str(scenario), "--json",
              "--plot", str(plot), timeout=300)
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(ran.stdout)
    assert shown["state"] == "finished" and len(shown["best"]) == 34
    cost, pressures, _ = plain_hanoi({row["pipe"]: row["diameter_mm"] for row in shown["best"]})
    assert shown["best_cost"] == pytest.approx(cost, rel=1e-9) and min(pressures.values()) >= 30.0
    assert plot.stat().st_size > 10_000
    again = cli(cluster, "design", "hanoi-cli")
    assert again.returncode == 0 and "best feasible cost" in again.stdout
    refused = cli(cluster, "submit", str(HANOI), str(scenario))
    assert refused.returncode == 2 and "cloudburst design NAME" in refused.stderr
    listed = cli(cluster, "list").stdout
    generations = len(list((cluster["root"] / "results" / "hanoi-cli" / "generations").glob("*.parquet")))
    assert re.search(rf"^hanoi-cli +submitter +\S+ +design +{generations} +finished$", listed, re.MULTILINE), listed
    deleted = cli(cluster, "delete", "hanoi-cli", "--yes")
    assert deleted.returncode == 0 and "design study hanoi-cli deleted" in deleted.stdout
    assert not (cluster["root"] / "results" / "hanoi-cli").exists()
    gone = cli(cluster, "design", "hanoi-cli")
    assert gone.returncode == 2 and "no design study 'hanoi-cli'" in gone.stderr


NYT = HANOI.parent / "nytun.inp"
NYT_SCENARIO = yaml.safe_load((REPO / "files" / "scenarios" / "nyt-design.yml").read_text())


def plain_nyt(best) -> tuple[float, dict[str, float]]:
    """New York Tunnels with every duplicated tunnel laid as a real second pipe beside the old one (EPANET's own
    link, not an equivalent diameter), by plain owa-epanet calls: the cost from the scenario's table and each
    junction's pressure (m)."""
    options = NYT_SCENARIO["study"]["groups"][0]["options"]
    price = {round(option["diameter_in"] * INCH_MM, 6): option["cost_per_m"] for option in options}
    project = tk.createproject()
    tk.open(project, str(NYT), "/dev/null", "")
    cost = 0.0
    for row in best.itertuples():
        if row.kept:
            continue
        link = tk.getlinkindex(project, row.pipe)
        start, end = tk.getlinknodes(project, link)
        twin = tk.addlink(project, f"new{row.pipe}", tk.PIPE, tk.getnodeid(project, start), tk.getnodeid(project, end))
        for what in (tk.LENGTH, tk.ROUGHNESS):
            tk.setlinkvalue(project, twin, what, tk.getlinkvalue(project, link, what))
        tk.setlinkvalue(project, twin, tk.DIAMETER, row.diameter_mm / INCH_MM)  # the model's diameters are inches
        cost += tk.getlinkvalue(project, link, tk.LENGTH) * 0.3048 * price[round(row.diameter_mm, 6)]
    tk.solveH(project)
    units = FlowUnits(tk.getflowunits(project))
    pressures = {tk.getnodeid(project, node): float(HydParam.Pressure._to_si(
        units, tk.getnodevalue(project, node, tk.PRESSURE)))
        for node in range(1, tk.getcount(project, tk.NODECOUNT) + 1) if tk.getnodetype(project, node) == tk.JUNCTION}
    tk.close(project)
    tk.deleteproject(project)
    return cost, pressures


def test_duplicated_tunnels_hold_when_laid_as_real_parallel_pipes_in_plain_epanet(cluster, client, workers):
    design = client.design(NYT, small(NYT_SCENARIO, population=40, evaluations=2000), name="nyt-small")
    best = design.best()
    assert best["duplicate"].all() and (~best["kept"]).any() and best["kept"].any()
    cost, pressures = plain_nyt(best)
    assert best["cost"].sum() == pytest.approx(cost, rel=1e-9)
    limits = NYT_SCENARIO["study"]["pressure"]["min_m"]
    assert all(pressure >= limits.get(node, limits["*"]) - 1e-3 for node, pressure in pressures.items())
    reported = design.pressures().set_index("node")["pressure_min_m"]
    assert max(abs(reported[node] - pressures[node]) for node in pressures) < 0.01


def test_a_design_holds_under_each_loading_a_fire_flow_among_them(cluster, client, workers):
    scenario = small(SCENARIO, evaluations=1500, loadings=[
        {"name": "peak", "demand_multiplier": 1.1},
        {"name": "fire at 13", "fire_flows": [{"node": "13", "flow_lps": 150}]}])
    design = client.design(HANOI, scenario, name="hanoi-loadings")
    best = design.best()
    reported = design.pressures()
    assert set(reported["loading"]) == {"peak", "fire at 13"}
    diameters = dict(zip(best["pipe"], best["diameter_mm"]))
    for loading, extra in (("peak", lambda project: scale_all(project, 1.1)),
                           ("fire at 13", lambda project: add_fire(project, "13", 150 * 3.6))):  # L/s as m3/h
        _, pressures, _ = plain_hanoi(diameters, extra)
        assert min(pressures.values()) >= 30.0, loading
        rows = reported[reported["loading"] == loading].set_index("node")["pressure_min_m"]
        assert max(abs(rows[node] - pressures[node]) for node in pressures) < 1e-3


def scale_all(project, factor: float) -> None:
    for node in range(1, tk.getcount(project, tk.NODECOUNT) + 1):
        if tk.getnodetype(project, node) == tk.JUNCTION:
            tk.setbasedemand(project, node, 1, tk.getbasedemand(project, node, 1) * factor)


def add_fire(project, name: str, flow_cmh: float) -> None:
    node = tk.getnodeindex(project, name)
    tk.setbasedemand(project, node, 1, tk.getbasedemand(project, node, 1) + flow_cmh)


def test_an_extended_period_design_holds_at_every_report_time_in_plain_epanet(cluster, client, workers):
    """Net3 over a day, its pumps switching on tank levels: the pipes around junction 15 sized so that 15 keeps its
    pressure at every hourly report time; plain EPANET over the same day confirms the least pressure."""
    from test_scenarios import NET3
    project = tk.createproject()
    tk.open(project, str(NET3), "/dev/null", "")
    node = tk.getnodeindex(project, "15")
    pipes = [tk.getlinkid(project, link) for link in range(1, tk.getcount(project, tk.LINKCOUNT) + 1)
             if tk.getlinktype(project, link) == tk.PIPE and node in tk.getlinknodes(project, link)]
    tk.close(project)
    tk.deleteproject(project)
    baseline = day_pressure_15({})
    scenario = {"ensemble": "net3-eps", "run": {"duration_s": 86400},
                "study": {"type": "design",
                          "groups": [{"pipes": pipes, "options": [{"diameter_in": size, "cost_per_m": cost}
                                                                  for size, cost in ((6, 20), (8, 30), (12, 60),
                                                                                     (16, 100), (24, 200))]}],
                          "pressure": {"nodes": ["15"], "min_m": round(baseline - 0.5, 2)},
                          "optimizer": {"population": 10, "evaluations": 200, "seed": 1}}}
    design = client.design(NET3, scenario, name="net3-eps")
    best = design.best()
    least = day_pressure_15(dict(zip(best["pipe"], best["diameter_mm"] / INCH_MM)))
    assert least >= scenario["study"]["pressure"]["min_m"]
    reported = design.pressures().set_index("node").loc["15", "pressure_min_m"]
    assert reported == pytest.approx(least, abs=1e-3)


def day_pressure_15(diameters_in: dict[str, float]) -> float:
    """Junction 15's least pressure (m) over Net3's hourly report times of a day, by plain owa-epanet calls."""
    from test_scenarios import NET3
    project = tk.createproject()
    tk.open(project, str(NET3), "/dev/null", "")
    tk.settimeparam(project, tk.DURATION, 86400)
    for pipe, diameter in diameters_in.items():
        tk.setlinkvalue(project, tk.getlinkindex(project, pipe), tk.DIAMETER, diameter)
    node = tk.getnodeindex(project, "15")
    units = FlowUnits(tk.getflowunits(project))
    least = np.inf
    tk.openH(project)
    tk.initH(project, 0)
    while True:
        now = tk.runH(project)
        if now % 3600 == 0:
            least = min(least, float(HydParam.Pressure._to_si(units, tk.getnodevalue(project, node, tk.PRESSURE))))
        if tk.nextH(project) <= 0:
            break
    tk.closeH(project)
    tk.close(project)
    tk.deleteproject(project)
    return least
