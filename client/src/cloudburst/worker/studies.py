"""The studies' tasks on a worker (``cloudburst.schema.queues.TASK_FUNCTIONS`` names them): one member's model
fetched (sha256-checked) from the cluster's files, opened in this process's EPANET toolkit, and the study's kernel
(``cloudburst.engine.fireflow``, ``cloudburst.engine.segments``, ``cloudburst.engine.contamination``) run on it.
A contamination study's member keeps its solved hydraulics in the process for the next task of the same member.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cloudburst.engine import toolkit
from cloudburst.engine.contamination import ContaminationSettings, Injection, SharedHydraulics, task_impacts
from cloudburst.engine.fireflow import FireFlowSettings, search_member
from cloudburst.engine.models import parse_inp
from cloudburst.engine.segments import SegmentSettings, isolate_member
from cloudburst.engine.warm import Changes, OpenModel, apply_alterations, apply_settings
from cloudburst.schema import impacts as impact_format
from cloudburst.schema.job import Job, parse_job
from cloudburst.worker import environment


@contextmanager
def _member_model(job: Job) -> Iterator[OpenModel]:
    path = environment.model_file(str(job.input.sha256))
    model = OpenModel(path, parse_inp(path, str(job.input.url)), toolkit.Project(path))
    try:
        yield model
    finally:
        model.project.close()


def run_fire_flow(job_document: dict[str, Any], hydrants: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """One member's fire-flow searches, a hydrant at a time."""
    job = parse_job(job_document)
    with _member_model(job) as model:
        return search_member(model, job, hydrants, FireFlowSettings.parse(settings))


def run_segments(job_document: dict[str, Any], segments: list[list[Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """One member's isolations of a group of segments ([number, links to close, nodes] each)."""
    job = parse_job(job_document)
    with _member_model(job) as model:
        return isolate_member(model, job, segments, SegmentSettings.parse(settings))


# The hydraulics of the last contamination member this process solved, by its model, run and settings: the tasks of
# one member come one after another (``cloudburst.plan.studies.study_tasks``), so each member's hydraulics are
# solved once per worker process.
_shared: dict[str, SharedHydraulics] = {}


def _hydraulics_of(job: Job, settings: dict[str, Any]) -> SharedHydraulics:
    key = json.dumps([str(job.input.sha256), job.run.model_dump(mode="json"), settings], sort_keys=True)
    if key not in _shared:
        for old in _shared.values():
            old.project.close()
        _shared.clear()
        path = environment.model_file(str(job.input.sha256))
        model = OpenModel(path, parse_inp(path, str(job.input.url)), toolkit.Project(path))
        try:
            changes = Changes(model)  # never put back: the project is this member's for good
            apply_settings(job.run, model, changes)
            apply_alterations(job.run, model, changes)
            wanted = {key: value for key, value in settings.items() if key != "sensors"}
            sensors = settings["sensors"]
            shared = SharedHydraulics(model.project, ContaminationSettings(**wanted),
                                      list(model.wn.junction_name_list) if sensors == "*" else sensors)
        except BaseException:
            model.project.close()
            raise
        _shared[key] = shared
    return _shared[key]


def run_contamination(job_document: dict[str, Any], injections: list[list[Any]],
                      settings: dict[str, Any]) -> dict[str, Any]:
    """One member's injections ([node, start_s] each): a quality run each over the member's hydraulics, solved
    once; each injection's impacts per candidate sensor (``cloudburst.schema.impacts``)."""
    job = parse_job(job_document)
    shared = _hydraulics_of(job, settings)
    wanted = [Injection(str(node), int(start)) for node, start in injections]
    return impact_format.encode(task_impacts(shared, job.member, wanted))
