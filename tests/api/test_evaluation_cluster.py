"""Evaluation rounds (``Client.session`` / ``Client.evaluate``) against the local cluster: answers in the sets'
order equal to plain owa-epanet runs made here, bad sets refused before anything is queued, and a real pymoo GA
whose every generation is one round on the workers."""
from __future__ import annotations

import time

import cloudburst
import cloudburst.plan.submission
import epanet.toolkit as tk
import numpy as np
import pytest
from cloudburst.errors import InputError
from local_cluster import client_settings, start_workers, stop
from test_engine_models import scale_demands
from test_engine_toolkit import _read_output, save_run
from test_scenarios import NET3
from wntr.epanet.util import FlowUnits, HydParam

HOUR = 3600


def plain_epanet_pressures(factor: float, tmp_path):
    """Net3 for one hour with every junction's demands times ``factor``, by plain owa-epanet calls: EPANET's own
    output file's junction pressures in metres (times x junctions)."""
    out = tmp_path / f"reference-{factor}-{time.monotonic_ns()}.out"
    project = tk.createproject()
    tk.open(project, str(NET3), "/dev/null", str(out))
    tk.settimeparam(project, tk.DURATION, HOUR)
    junctions = [tk.getnodeid(project, node) for node in range(1, tk.getcount(project, tk.NODECOUNT) + 1)
                 if tk.getnodetype(project, node) == tk.JUNCTION]
    scale_demands(project, factor, junctions)
    units = FlowUnits(tk.getflowunits(project))
    save_run(project)
    pressure = _read_output(out)["pressure"][junctions]
    return junctions, np.asarray(HydParam.Pressure._to_si(units, pressure.to_numpy()), dtype=np.float64)


@pytest.fixture
def client(cluster) -> cloudburst.Client:
    return cloudburst.Client(client_settings(cluster))


def test_a_round_answers_every_set_in_order_with_epanets_own_numbers(cluster, client, tmp_path):
    factors = [0.6, 1.0, 1.4, 0.8, 1.2, 2.0, 0.9]
    sets = [[{"type": "demand_scale", "factor": factor}] for factor in factors]
    workers = start_workers(cluster)
    try:
        session = client.session(NET3, run={"duration_s": HOUR},
                                 metrics=["pressure_min", "nodes_below_threshold", "node_pressure_min"])
        first = session.evaluate(sets)
        again = session.evaluate(sets[:2], metrics=["pressure_mean"])
    finally:
        stop(workers)
    assert list(first) == ["pressure_min", "nodes_below_threshold", "node_pressure_min"]
    assert first["node_pressure_min"].shape == (len(sets), len(session.nodes))
    assert (first.status == "finished").all() and not any(first.reasons)
    for position in range(len(sets)):
        factor = sets[position][0]["factor"]
        junctions, pressure = plain_epanet_pressures(factor, tmp_path)
        assert junctions == session.nodes
        assert first["pressure_min"][position] == np.float32(pressure.min())  # the engine's float32, exactly
        assert np.array_equal(first["node_pressure_min"][position], pressure.min(axis=0).astype(np.float32))
        assert first["nodes_below_threshold"][position] == (pressure.min(axis=0) < 20.0).sum()
    assert again["pressure_mean"].shape == (2,) and again.status.tolist() == ["finished", "finished"]
    assert session.rounds == 2


def test_a_set_that_does_not_fit_the_model_is_refused_with_submits_sentence_and_nothing_is_queued(cluster, client):
    session = client.session(NET3, run={"duration_s": HOUR})
    with pytest.raises(InputError) as refused:
        session.evaluate([[{"type": "demand_scale", "factor": 1.0}],
                          [{"type": "pipe_property", "property": "roughness", "pipes": ["no-such-pipe"],
                            "value": 100}],
                          [{"type": "demand_scale", "factor": -1}]])
    sentences = refused.value.problems
    assert sentences[0].startswith("set 1: $.run.alterations[0].pipes") and "no-such-pipe" in sentences[0]
    assert sentences[-1] == "1 more of the 3 sets have problems"
    with pytest.raises(InputError, match="metrics: 'lowest'"):
        session.evaluate([[]], metrics=["lowest"])
    with pytest.raises(InputError, match="nodes: the model has no node nowhere"):
        client.session(NET3, nodes=["nowhere"])
    with pytest.raises(InputError, match="rounds run on the warm engine"):
        client.session(NET3, run={"epanet": "2.2"})
    assert client.queue.count == 0 and not cluster["redis"].keys("rq:job:round-*")
    assert session.rounds == 0


def test_a_model_epanet_2_3_5_does_not_open_is_refused_at_the_session_with_submits_sentence(cluster, client, tmp_path):
    path = tmp_path / "self-pipe.inp"  # EPANET 2.3.5 refuses a pipe from a node to itself (2.2 opens it)
    path.write_text(NET3.read_text().replace("[PIPES]", "[PIPES]\n SELF_PIPE 10 10 1000 12 100 0 Open", 1))
    with pytest.raises(InputError, match="EPANET 2.3.5 does not open the model"):
        client.session(path)
    assert not client.models.has(cloudburst.plan.submission.read_model(path).sha256)  # nothing uploaded


def test_round_map_runs_a_population_as_one_round_and_hands_each_individual_its_row(cluster, client, tmp_path):
    """The map DEAP's toolbox takes (``toolbox.register("map", ...)``), used as a plain loop would."""
    from cloudburst.api.optimize import round_map

    workers = start_workers(cluster)
    try:
        session = client.session(NET3, run={"duration_s": HOUR}, metrics=["pressure_min"])
        evaluate_all = round_map(session, lambda individual: [{"type": "demand_scale", "factor": individual[0]}])
        population = [[0.7], [1.3], [0.9]]
        fitness = evaluate_all(lambda individual, row: (row["pressure_min"], row["status"]), population)
    finally:
        stop(workers)
    assert session.rounds == 1
    for individual, (pressure, status) in zip(population, fitness):
        _, reference = plain_epanet_pressures(individual[0], tmp_path)
        assert status == "finished" and pressure == np.float32(reference.min())


def test_an_unanswered_round_times_out_leaving_no_job_and_its_jobs_would_expire(cluster, client):
    """No worker listens: while the round waits its jobs carry their expiry (what is left of a client that dies
    here); once its time passes it says so and takes them off the queue, so a later round waits behind nothing."""
    import threading

    session = client.session(NET3, run={"duration_s": HOUR}, timeout_s=3)
    raised = []

    def evaluate() -> None:
        try:
            session.evaluate([[{"type": "demand_scale", "factor": 1.0}]] * 3)
        except TimeoutError as error:
            raised.append(error)

    started = time.monotonic()
    evaluating = threading.Thread(target=evaluate)
    evaluating.start()
    while not cluster["redis"].keys("rq:job:round-*") and time.monotonic() - started < 3:
        time.sleep(0.01)
    ttls = [cluster["redis"].ttl(key) for key in cluster["redis"].keys("rq:job:round-*")]
    queued = client.queue.count
    evaluating.join(timeout=30)
    assert ttls and all(0 < ttl <= 600 for ttl in ttls) and queued == len(ttls)
    assert raised and "not answered within 3 s" in str(raised[0]) and time.monotonic() - started < 10
    assert client.queue.count == 0 and not cluster["redis"].keys("rq:job:round-*")


def test_a_pymoo_ga_runs_each_generation_as_one_round_and_its_best_holds_in_plain_epanet(cluster, client, tmp_path):
    """Largest demand factor that keeps every junction's pressure at 0 m or more (Net3 has one junction near 0 m at
    its own demands): a GA of 12 for 5 generations."""
    from cloudburst.api.optimize import pymoo_problem
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.optimize import minimize

    workers = start_workers(cluster)
    try:
        session = client.session(NET3, run={"duration_s": HOUR}, metrics=["pressure_min"])
        problem = pymoo_problem(
            session, n_var=1, xl=0.5, xu=3.0,
            sets=lambda x: [{"type": "demand_scale", "factor": float(x[0])}],
            objectives=lambda X, result: -X[:, 0],
            constraints=lambda X, result: -result["pressure_min"])
        found = minimize(problem, GA(pop_size=12), ("n_gen", 5), seed=1)
    finally:
        stop(workers)
    assert session.rounds == 5  # one round per generation, every individual of it in that round
    factor = float(found.X[0])
    _, pressure = plain_epanet_pressures(factor, tmp_path)
    assert pressure.min() >= 0.0  # feasible in EPANET's own run
    reported = float(found.opt.get("G")[0][0])  # the constraint pymoo saw for its best: the cluster's answer
    assert reported == -float(np.float32(pressure.min()))
    assert factor > 0.6  # the feasible factors are 0.5 to about 0.93: the search moved up from the lower bound


def test_a_worker_killed_mid_round_costs_a_rerun_of_its_chunk_and_the_round_answers_every_set_once(cluster, client):
    """One runner takes the first chunk of a week-long Net3 round and is killed in it; a second runner (1 s
    heartbeats: the chunk is found abandoned within seconds) runs it again. The round answers every set, in
    order, with the numbers an undisturbed round gives."""
    import signal
    import threading

    from rq.job import Job

    timing = ("--heartbeat-s", "1", "--maintenance-s", "1")
    # Two chunks of 1,000 week-long sets, seconds each: the kill lands well inside the first, before it answers (a
    # kill between its answer and its job's end would make it answer twice, which the round takes once).
    sets = [[{"type": "demand_scale", "factor": 0.8 + 0.0001 * position}] for position in range(2000)]
    session = client.session(NET3, metrics=["pressure_min", "pressure_mean"], timeout_s=300)  # Net3's own week
    answers = {}
    victim = start_workers(cluster, count=1, options=timing)
    rescuer = []
    try:
        evaluating = threading.Thread(target=lambda: answers.update(round=session.evaluate(sets)))
        evaluating.start()
        first_chunk = f"round-{session.name}-0-0"
        wait_until_started = time.monotonic() + 60
        while client.redis.hget(f"{Job.redis_job_namespace_prefix}{first_chunk}", "status") != b"started":
            assert time.monotonic() < wait_until_started, "the first chunk never started"
            time.sleep(0.05)
        victim[0].send_signal(signal.SIGKILL)
        victim[0].wait(timeout=10)
        rescuer = start_workers(cluster, count=1, options=timing)
        evaluating.join(timeout=240)
        assert not evaluating.is_alive(), "the round did not come back"
        undisturbed = session.evaluate(sets)
    finally:
        stop(rescuer)
    disturbed = answers["round"]
    assert (disturbed.status == "finished").all()
    assert np.array_equal(disturbed["pressure_min"], undisturbed["pressure_min"])
    assert np.array_equal(disturbed["pressure_mean"], undisturbed["pressure_mean"])
    assert not cluster["redis"].keys(f"cloudburst:round:{session.name}:*")  # every reply taken, none left behind
