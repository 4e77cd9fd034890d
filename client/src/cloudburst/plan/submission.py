"""A submission as one plan: a model and a scenario turned into everything ``Client.submit`` writes, computed once
(the model read and hashed once, every member drawn once), before anything is uploaded or enqueued.

The plan is one of three kinds: an ensemble (its members' job documents, batch size, adaptive waves), a study (a
task set of CloudBurst's own functions over the members) or alternatives (an ensemble per variant). Executing it
is the client's (``cloudburst.api.client``); ``cloudburst submit --check`` prints it.
"""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import wntr

from cloudburst.engine import models, warm
from cloudburst.engine.checks import budget_limits, store_bytes
from cloudburst.errors import InputError
from cloudburst.plan import adaptive, alternatives, scenarios, sensitivity, studies
from cloudburst.plan.batching import batch_members
from cloudburst.schema.job import EPANET_WARM, parse_job
from cloudburst.schema.queues import TASK_FUNCTIONS

ModelSource: TypeAlias = "str | Path | wntr.network.WaterNetworkModel"
ScenarioSource: TypeAlias = "str | Path | dict[str, Any]"
ENSEMBLE, STUDY, ALTERNATIVES = "ensemble", "study", "alternatives"


@dataclass(frozen=True)
class ModelFile:
    """The model as uploaded (its bytes and sha256) and as parsed (what members are checked against)."""
    data: bytes
    wn: wntr.network.WaterNetworkModel
    sha256: str


@dataclass(frozen=True)
class EnsemblePlan:
    name: str
    content: dict[str, Any]           # the scenario as its record keeps it (with the series its metrics need)
    drawn: scenarios.Ensemble         # every member's job document
    batch_members: int                # members per queue job
    first_members: int                # members enqueued at once (an adaptive ensemble: its first waves)
    adaptive: adaptive.AdaptivePlan | None = None
    kind: str = ENSEMBLE


@dataclass(frozen=True)
class StudyPlan:
    name: str
    study: str                        # its type: fire_flow or segments
    function: str                     # the task function (``cloudburst.schema.queues.TASK_FUNCTIONS``)
    tasks: list[list[Any]]            # each task's arguments: a member's job document, its elements, the settings
    drawn: scenarios.Ensemble
    kind: str = STUDY


@dataclass(frozen=True)
class AlternativesPlan:
    name: str
    variants: list[EnsemblePlan]      # one ensemble per variant, ``<name>.<variant>``
    kind: str = ALTERNATIVES


Plan: TypeAlias = EnsemblePlan | StudyPlan | AlternativesPlan


def read_model(model: ModelSource) -> ModelFile:
    """The model's bytes, parsed form and sha256, from an .inp path or a wntr model; InputError when unreadable."""
    if isinstance(model, wntr.network.WaterNetworkModel):
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            wntr.network.write_inpfile(model, str(path))
            data, wn = models.read_model_file(path)
    else:
        data, wn = models.read_model_file(Path(model))
    return ModelFile(data, wn, hashlib.sha256(data).hexdigest())


def read_scenario(scenario: ScenarioSource) -> tuple[dict[str, Any], Path | None]:
    """The scenario's content and the folder its relative paths start from (None for a dict)."""
    if isinstance(scenario, (str, Path)):
        return scenarios.read_scenario_file(Path(scenario)), Path(scenario).parent
    if not isinstance(scenario, dict):
        raise InputError("$: a scenario holds a mapping (ensemble, members, seed, alterations ...)")
    return scenario, None


def plan_submission(model: ModelFile, content: dict[str, Any], name: str, start: datetime | str | None,
                    model_input: dict[str, Any], influx_db: str, base_dir: Path | None = None) -> Plan:
    """The whole submission; raises InputError naming what is wrong. ``model_input``: where the workers fetch the
    model (``cloudburst.state.files.model_input``); ``influx_db``: the statistics' database unless the scenario
    names one."""
    if not isinstance(content, dict):
        raise InputError("$: a scenario holds a mapping (ensemble, members, seed, alterations ...)")
    content = _with_db(content, influx_db)
    if content.get(ALTERNATIVES) is not None:
        return AlternativesPlan(name, [ensemble_plan(model, _with_db(variant, influx_db), variant_name, start,
                                                     model_input)
                                       for variant_name, variant in alternatives.variants(content, name).items()])
    if content.get(STUDY) is not None:
        return study_plan(model, content, name, start, model_input, base_dir)
    return ensemble_plan(model, content, name, start, model_input)


def ensemble_plan(model: ModelFile, content: dict[str, Any], name: str, start: datetime | str | None,
                  model_input: dict[str, Any]) -> EnsemblePlan:
    adaptive_plan = None
    if content.get("sensitivity") is not None:  # a metric on an element's series: that series is stored
        content = _with_series(content, sensitivity.output_requests(content["sensitivity"]))
    if content.get("adaptive") is not None:
        adaptive_plan = adaptive.parse_adaptive(content["adaptive"], int(content.get("members") or 0))
        content = _with_series(content, adaptive.output_requests(adaptive_plan))
    drawn = scenarios.generate(content, model.wn, model_input, name, start)
    reason = warm.file_path_reason(parse_job(drawn.documents[0]))
    refusal = models.file_path_refusal(model.wn, reason)
    if refusal is not None:
        raise InputError(f"$.run: {refusal}")
    refusal = warm.opening_refusal(model.data) if reason is None and model.data else None
    if refusal is not None:
        raise InputError(f"$.run.epanet: {refusal}")
    size = batch_members(content.get("batch"), model.data, model.wn, len(drawn.documents), drawn.documents[0])
    first = len(drawn.documents) if adaptive_plan is None else min(adaptive_plan.cap, 2 * adaptive_plan.wave)
    return EnsemblePlan(drawn.name, content, drawn, size, first, adaptive_plan)


def study_plan(model: ModelFile, content: dict[str, Any], name: str, start: datetime | str | None,
               model_input: dict[str, Any], base_dir: Path | None) -> StudyPlan:
    members = content.get("members")
    study = studies.parse_study(content[STUDY], model.wn, base_dir, (content.get("run") or {}).get("duration_s"),
                                members if isinstance(members, int) and not isinstance(members, bool) else 1)
    drawn = scenarios.generate({key: value for key, value in content.items() if key != STUDY}, model.wn,
                               model_input, name, start)
    chosen = warm.file_path_reason(parse_job(drawn.documents[0]))
    if chosen is not None:
        raise InputError(f"$.run: a {study.kind} study runs on EPANET {EPANET_WARM}'s toolkit (its searches re-solve "
                         f"one open model), not on wntr's file path ({chosen})")
    per_task = studies.elements_per_task(model.data, model.wn, drawn.documents[0], study)
    return StudyPlan(drawn.name, study.kind, TASK_FUNCTIONS[study.kind],
                     studies.study_tasks(drawn.documents, study, per_task), drawn)


def names(plan: Plan) -> list[str]:
    """Every ensemble or task set name the plan creates."""
    return [variant.name for variant in plan.variants] if isinstance(plan, AlternativesPlan) else [plan.name]


def queued_at_submit(plan: Plan) -> int:
    """The members (or a study's tasks) the plan queues when submitted."""
    if isinstance(plan, AlternativesPlan):
        return sum(variant.first_members for variant in plan.variants)
    return len(plan.tasks) if isinstance(plan, StudyPlan) else plan.first_members


def describe(plan: Plan, model: ModelFile) -> dict[str, Any]:
    """What ``submit --check`` prints of a plan. An ensemble: members (and those queued first), batches and members
    per batch, series values, the store's estimated bytes and the budget's limits; a study: its type, members and
    tasks; alternatives: each variant's ensemble."""
    if isinstance(plan, AlternativesPlan):
        return {"alternatives": plan.name, "ensembles": [describe(variant, model) for variant in plan.variants],
                "model_sha256": model.sha256}
    if isinstance(plan, StudyPlan):
        return {"study": plan.name, "type": plan.study, "members": len(plan.drawn.documents),
                "tasks": len(plan.tasks), "model_sha256": model.sha256}
    members = len(plan.drawn.documents)
    return {"ensemble": plan.name, "members": members, "members_enqueued_first": plan.first_members,
            "batches": -(-plan.first_members // plan.batch_members), "members_per_batch": plan.batch_members,
            "series_values": plan.drawn.series_values,
            "store_bytes_estimate": store_bytes(plan.drawn.series_values, members, -(-members // plan.batch_members)),
            "budget": budget_limits(plan.content.get("budget")), "model_sha256": model.sha256}


def _with_db(content: dict[str, Any], influx_db: str) -> dict[str, Any]:
    return {**content, "output": {"db": influx_db, **(content.get("output") or {})}}


def _with_series(content: dict[str, Any], requests: list[dict[str, Any]]) -> dict[str, Any]:
    output = content["output"]
    return {**content, "output": {**output, "series": list(output.get("series") or []) + requests}}
