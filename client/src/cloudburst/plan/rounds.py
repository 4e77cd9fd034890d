"""An evaluation round planned on the client: the sets checked against the model with the sentences ``submit``
uses, then split into chunks (``cloudburst.schema.evaluation``), one queue job each. Nothing here talks to the
cluster."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cloudburst.engine import warm
from cloudburst.engine.checks import job_problems
from cloudburst.engine.evaluation import set_document
from cloudburst.errors import InputError
from cloudburst.plan.submission import ModelFile
from cloudburst.schema import evaluation as rounds
from cloudburst.schema.job import parse_job

MAX_SETS_PER_CHUNK = 1000  # a chunk's job re-runs whole when its worker dies: this bounds what is run again


@dataclass(frozen=True)
class RoundSettings:
    """What every round of a session shares: the model (checked once), the run's settings and the metrics' nodes."""
    model: ModelFile
    model_input: dict[str, Any]          # where the workers fetch the model (``cloudburst.state.files.model_input``)
    run: dict[str, Any]                  # the run's settings (``cloudburst.job/1``'s run) without alterations
    nodes: list[str]                     # the per-node metrics' columns
    node_request: str | list[str]        # how chunks name them: "*" (every junction, the worker's own list) or ids
    pressure_threshold_m: float = 20.0   # what ``nodes_below_threshold`` counts below
    observe: tuple[tuple[str, str, str, int], ...] = ()  # the ``observed`` metric's columns (checked by the caller)

    @classmethod
    def of(cls, model: ModelFile, model_input: dict[str, Any], run: dict[str, Any] | None,
           nodes: str | list[str], pressure_threshold_m: float,
           observe: tuple[tuple[str, str, str, int], ...] = ()) -> RoundSettings:
        """Checked settings: InputError when the model does not open in EPANET 2.3.5 (the engine rounds run on), the
        run asks for another engine, or a node is not the model's junction or tank."""
        run = dict(run or {})
        if "alterations" in run:
            raise InputError("run.alterations: a round's alterations are its sets, one list per evaluation")
        refusal = warm.opening_refusal(model.data)
        if refusal is not None:
            raise InputError(refusal)
        probe = parse_job(rounds.set_document({"input": model_input, "run": run}, 0, []))
        if warm.file_path_reason(probe) is not None:
            raise InputError(f"run: rounds run on the warm engine (EPANET 2.3.5): {warm.file_path_reason(probe)}")
        problems = job_problems(probe, model.wn)
        if problems:
            raise InputError(problems)
        if nodes == "*":
            ids = list(model.wn.junction_name_list)
        else:
            known = set(model.wn.node_name_list)
            unknown = [node for node in nodes if node not in known]
            if unknown:
                raise InputError(f"nodes: the model has no node {', '.join(map(str, unknown[:5]))}"
                                 + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""))
            ids = list(nodes)
        return cls(model, model_input, run, ids, "*" if nodes == "*" else ids, pressure_threshold_m, observe)


def plan_chunks(settings: RoundSettings, sets: list[list[dict[str, Any]]], metrics: list[str], session: str,
                round_: int, chunks: int, check_sets: bool = True) -> list[dict[str, Any]]:
    """The round's chunks (about ``chunks`` of them, at most ``MAX_SETS_PER_CHUNK`` sets each) asking for
    ``metrics`` (checked: ``rounds.check_metrics``), after checking every set (unless ``check_sets`` is false: sets
    built from parts checked before): InputError naming the first set with problems (and how many others have
    some), nothing planned."""
    if "resilience" in metrics and settings.model.wn.pump_name_list:
        raise InputError(f"metrics: resilience counts no pump power, and the model has "
                         f"{len(settings.model.wn.pump_name_list)} pumps: ask for it on models fed by reservoirs and "
                         "tanks only")
    if not isinstance(sets, list) or not sets:
        raise InputError("sets: a round needs a list of alteration sets (each a list of alterations, [] for none)")
    base = {"schema": rounds.SCHEMA, "session": session, "round": round_, "input": settings.model_input,
            "run": settings.run, "metrics": metrics, "nodes": settings.node_request,
            "pressure_threshold_m": settings.pressure_threshold_m,
            **({"observe": [list(observation) for observation in settings.observe]} if settings.observe else {})}
    failing: list[tuple[int, list[str]]] = []
    for position, alterations in enumerate(sets if check_sets else []):
        if not isinstance(alterations, list):
            failing.append((position, [f"a set is a list of alterations, not {type(alterations).__name__}"]))
            continue
        try:
            problems = job_problems(parse_job(set_document({**base, "sets": [alterations]}, 0)), settings.model.wn)
        except InputError as error:
            problems = error.problems
        if problems:
            failing.append((position, problems))
    if failing:
        position, problems = failing[0]
        sentences = [f"set {position}: {problem}" for problem in problems]
        if len(failing) > 1:
            sentences.append(f"{len(failing) - 1} more of the {len(sets)} sets have problems")
        raise InputError(sentences)
    size = min(max(math.ceil(len(sets) / max(chunks, 1)), 1), MAX_SETS_PER_CHUNK)
    return [{**base, "chunk": index, "first": first, "sets": sets[first:first + size]}
            for index, first in enumerate(range(0, len(sets), size))]
