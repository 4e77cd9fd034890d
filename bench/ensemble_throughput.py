"""Benchmark: ensemble members through a plain multiprocessing.Pool, a bare toolkit loop and CloudBurst's workers.

Every member scales all demands and all pipe roughnesses by its own drawn factors and runs hydraulics (quality
off) on Net3 (its own 168 h), Net6 (3,356 nodes, 24 h) and a 10,068-node model (three joined copies of Net6,
bench/big_model.py; 24 h). Side by side, in one run, per model:

- the Pool of the plain wntr function a modeller would write (load, alter, write .inp, run EPANET, read);
- the bare toolkit loop, the physical limit: each process opens the model once in EPANET 2.3's toolkit
  (cloudburst.engine.toolkit, the binding the engine uses) and per member sets the base demands and roughnesses,
  solves hydraulics reading junction pressure and demand at report times, and sets the values back: the same
  API calls and reads as the engine, no queue, no checks, no writes;
- CloudBurst's workers (files/images/worker/runner.py running the example env) on the warm engine, members in
  batches the client sizes (about 3 s, at most an eighth of the ensemble), each batch's summaries and status
  stored in the results store on an Nginx started here and recorded in Redis; on Net3 also on wntr's file path
  (the scenario's ``run.epanet: "2.2"``), as before the warm engine.

Prints wall time, members per second and the ratios, median of the rounds (interleaved).

    .venv/bin/python bench/ensemble_throughput.py [--models net3,net6,big] [--processes N] [--rounds 3] [--scale 1]
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import wntr
from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from cloudburst.api.queue import enqueue_batches  # noqa: E402
from cloudburst.schema.batch import (  # noqa: E402
    DEFAULT_BATCH_S,
    SPREAD_OVER,
    batch_size,
    make_batch,
    split,
)
from cloudburst.state.ledger import Ledger  # noqa: E402
from env_manifest import write_env_manifest  # noqa: E402
from services import nginx_server, redis_server  # noqa: E402
from verdict import verdict  # noqa: E402

NETWORKS = Path(wntr.__file__).parent / "library" / "networks"
RUNNER = REPO / "files" / "images" / "worker" / "runner.py"
ENV = REPO / "files" / "env" / "epanet"
# model -> (its .inp in the scratch directory, duration (None: the model's own), members)
EPYT_NETWORKS = Path(importlib.util.find_spec("epyt").origin).parent / "networks" / "asce-tf-wdst"
MODELS = {"net3": ("Net3.inp", None, 1000), "net6": ("Net6.inp", 24 * 3600, 60), "big": ("Big.inp", 24 * 3600, 40),
          "hanoi": ("Hanoi.inp", 0, 20000), "net1": ("Net1.inp", 3600, 20000)}
TINY = ("hanoi", "net1")  # steady-state / one-hour members: the per-member overhead is all there is


def draws(members: int, seed: int = 2024) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    return list(zip(rng.uniform(0.8, 1.2, members).tolist(), rng.uniform(0.7, 1.0, members).tolist()))


def plain_wntr(task: tuple[str, int | None, tuple[float, float]]) -> float:
    """What a modeller would write without CloudBurst: load, alter, run; returns the lowest junction pressure."""
    path, duration_s, (demand_factor, roughness_factor) = task
    wn = wntr.network.WaterNetworkModel(path)
    for _, junction in wn.junctions():
        for demand in junction.demand_timeseries_list:
            demand.base_value *= demand_factor
    for _, pipe in wn.pipes():
        pipe.roughness *= roughness_factor
    wn.options.quality.parameter = "NONE"
    if duration_s is not None:
        wn.options.time.duration = duration_s
    with tempfile.TemporaryDirectory() as workdir:
        results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(workdir, "run"))
    return float(results.node["pressure"][wn.junction_name_list].min().min())


def _ready(_: int) -> bool:
    return "wntr" in sys.modules


def run_pool(path: str, duration_s: int | None, scenarios: list[tuple[float, float]], processes: int) -> float:
    """Seconds for the Pool to run every scenario, its processes started and wntr imported beforehand, as the
    CloudBurst workers are (like with like: neither side's start-up is on the clock)."""
    with multiprocessing.Pool(processes) as pool:
        assert all(pool.map(_ready, range(processes * 4), chunksize=1))  # each process up, wntr imported
        started = time.perf_counter()
        pool.map(plain_wntr, [(path, duration_s, factors) for factors in scenarios])
        return time.perf_counter() - started


_bare: dict = {}


def _open_bare(path: str, duration_s: int | None) -> None:
    import epanet.toolkit as en
    from cloudburst.engine import toolkit
    project = toolkit.Project(path)
    if duration_s is not None:
        project.set_time(en.DURATION, duration_s)
    junctions = range(1, project.junction_count + 1)
    pipes = [link for link in range(1, project.link_count + 1) if project.link_type(link) in (en.PIPE, en.CVPIPE)]
    _bare.update(project=project, en=en, pipes=pipes,
                 demands=[(node, category, base) for node in junctions
                          for category, (base, _) in enumerate(project.demands(node), start=1)],
                 roughness=[(link, project.link_value(link, en.ROUGHNESS)) for link in pipes])


def bare_member(factors: tuple[float, float]) -> float:
    """One member on the open model: set, solve, read, set back."""
    project, en = _bare["project"], _bare["en"]
    demand_factor, roughness_factor = factors
    for node, category, base in _bare["demands"]:
        project.set_base_demand(node, category, base * demand_factor)
    for link, roughness in _bare["roughness"]:
        project.set_link_value(link, en.ROUGHNESS, roughness * roughness_factor)
    capture = project.run([en.PRESSURE, en.DEMAND], False)
    for node, category, base in _bare["demands"]:
        project.set_base_demand(node, category, base)
    for link, roughness in _bare["roughness"]:
        project.set_link_value(link, en.ROUGHNESS, roughness)
    return float(capture.values[en.PRESSURE][:, :project.junction_count].min())


def run_bare(path: str, duration_s: int | None, scenarios: list[tuple[float, float]], processes: int) -> float:
    """Seconds for the bare toolkit loop over every scenario, each process's model opened beforehand."""
    with multiprocessing.Pool(processes, initializer=_open_bare, initargs=(path, duration_s)) as pool:
        assert all(pool.map(_ready, range(processes * 4), chunksize=1))
        started = time.perf_counter()
        pool.map(bare_member, scenarios)
        return time.perf_counter() - started


def job(member: int, factors: tuple[float, float], model_url: str, sha256: str, duration_s: int | None,
        epanet: str = "2.3.5") -> dict:
    return {"schema": "cloudburst.job/1", "ensemble": "bench", "member": member, "seed": 2024,
            "input": {"url": model_url, "sha256": sha256},
            "run": {**({} if duration_s is None else {"duration_s": duration_s}), "epanet": epanet,
                    "alterations": [{"type": "demand_scale", "factor": factors[0]},
                                    {"type": "pipe_property", "property": "roughness", "factor": factors[1]}]}}


def run_cloudburst(jobs: list[dict], processes: int, redis_url: str, worker_env: dict[str, str], size: int) -> float:
    """Seconds from enqueueing every member (in batches of ``size``) to the last batch finished, with the workers
    started and idle beforehand (as in a running cluster: their start-up is bench/worker_startup's figure)."""
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue("cloudburst", connection=connection, serializer=JSONSerializer)
    batches = [make_batch("bench", part) for part in split(jobs, size)]
    manifest = write_env_manifest((ENV,), Path(tempfile.mkdtemp()) / "env-manifest.json")
    env = {**os.environ, **worker_env, "PYTHONPATH": str(ENV), "CLOUDBURST_LOG_LEVEL": "WARNING",
           "CLOUDBURST_ENV_MANIFEST": str(manifest)}
    workers = [subprocess.Popen([sys.executable, str(RUNNER), "--redis-url", redis_url], env=env)
               for _ in range(processes)]
    try:
        while len(Worker.all(connection=connection)) < processes:
            time.sleep(0.05)
        started = time.perf_counter()
        enqueue_batches(queue, Ledger(connection), "bench", batches)
        while len(queue.finished_job_registry) + len(queue.failed_job_registry) < len(batches):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait()
    if len(queue.failed_job_registry):
        raise SystemExit(f"{len(queue.failed_job_registry)} of {len(batches)} batches failed")
    finished = sum(len(outcome.finished) for outcome in Ledger(connection).done("bench").values())
    if "CLOUDBURST_RESULTS_URL" in worker_env and finished != len(jobs):
        raise SystemExit(f"{finished} of {len(jobs)} members stored")
    return elapsed


def main() -> None:
    from big_model import write as write_big_model
    from cloudburst.engine.warm import solve_seconds
    from cloudburst.schema.job import Run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="net3,net6,big,hanoi,net1",
                        help="comma-separated: net3, net6, big, hanoi, net1")
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply each model's member count (a quick look)")
    args = parser.parse_args()
    print(f"{args.processes} processes, median of {args.rounds} rounds; every member: demand x U(0.8,1.2), "
          "roughness x U(0.7,1.0), EPANET hydraulics, quality off")
    verdicts = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "models").mkdir()
        for name in ("Net3.inp", "Net6.inp"):
            (scratch / "models" / name).write_bytes((NETWORKS / name).read_bytes())
        for name in ("Hanoi.inp", "Net1.inp"):
            (scratch / "models" / name).write_bytes((EPYT_NETWORKS / name).read_bytes())
        write_big_model(scratch / "models" / "Big.inp")
        (scratch / "password").write_text("worker-secret")
        with nginx_server(scratch, {"worker": "worker-secret"}, results_writers=("worker",)) as files, \
                redis_server(scratch) as redis_url:
            for model in args.models.split(","):
                file_name, duration_s, members = MODELS[model]
                members = max(int(members * args.scale), 2)
                path = scratch / "models" / file_name
                sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
                scenarios = draws(members)
                jobs = [job(member, factors, f"{files}/models/{file_name}", sha256, duration_s)
                        for member, factors in enumerate(scenarios)]
                cache = str(scratch / "model-cache")
                writing = {"CLOUDBURST_MODEL_CACHE": cache, "CLOUDBURST_FILES_URL": files,
                           "CLOUDBURST_FILES_USER": "worker", "CLOUDBURST_FILES_PASSWORD_FILE": str(scratch / "password"),
                           "CLOUDBURST_RESULTS_URL": f"{files}/results"}
                run = Run.model_validate({} if duration_s is None else {"duration_s": duration_s})
                wn = wntr.network.WaterNetworkModel(str(path))
                solve_seconds(path, wn, run)  # warm the OS file cache
                size = batch_size(solve_seconds(path, wn, run), DEFAULT_BATCH_S, members, SPREAD_OVER)
                contenders = {"pool": lambda: run_pool(str(path), duration_s, scenarios, args.processes),
                              "bare": lambda: run_bare(str(path), duration_s, scenarios, args.processes),
                              "warm": lambda: run_cloudburst(jobs, args.processes, redis_url, writing, size)}
                if model in TINY:  # a wntr load per member: minutes for what the others take seconds
                    del contenders["pool"]
                if model == "net3":
                    file_jobs = [{**document, "run": {**document["run"], "epanet": "2.2"}} for document in jobs]
                    contenders["file"] = lambda: run_cloudburst(file_jobs, args.processes, redis_url, writing, size)
                timings: dict[str, list[float]] = {name: [] for name in contenders}
                for _ in range(args.rounds):  # interleaved, so drifts in machine load touch all alike
                    for name, measure in contenders.items():
                        timings[name].append(measure())
                median = {name: statistics.median(values) for name, values in timings.items()}
                nodes = wn.num_nodes
                print(f"\n{model}: {nodes:,} nodes, {(duration_s or int(wn.options.time.duration)) // 3600} h, "
                      f"{members} members (CloudBurst batches of {size}; every member stored and recorded, checked)")
                labels = {"pool": "multiprocessing.Pool (plain wntr, EPANET 2.2 file path)",
                          "bare": "bare toolkit loop (EPANET 2.3, no queue, no writes)",
                          "warm": "CloudBurst warm engine, summaries + status stored",
                          "file": "CloudBurst on wntr's file path, summaries + status stored"}
                for name, seconds in median.items():
                    against_pool = f"{median['pool'] / seconds:5.2f}x the Pool  " if "pool" in median else ""
                    print(f"  {labels[name]:<62} {seconds:7.2f} s  {members / seconds:7.1f} members/s  "
                          f"{against_pool}{median['bare'] / seconds:4.2f}x the bare loop")
                if model in TINY:
                    verdicts.append(verdict(f"{model}: the warm engine's members/s at least half the bare toolkit "
                                            "loop's", median["bare"] / median["warm"], 0.5, at_least=True, unit="x"))
                else:
                    verdicts.append(verdict(f"{model}: the warm engine within 1.2x of the bare toolkit loop (its time "
                                            "/ the loop's)", median["warm"] / median["bare"], 1.2, at_least=False,
                                            unit="x"))
                if model == "net3":
                    verdicts.append(verdict("net3: the warm engine with summary writes vs the Pool",
                                            median["pool"] / median["warm"], 3.0, at_least=True, unit="x"))
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
