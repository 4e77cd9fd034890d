"""The studies' tasks on a worker (``cloudburst.schema.queues.TASK_FUNCTIONS`` names them): one member's model
fetched (sha256-checked) from the cluster's files, opened in this process's EPANET toolkit, and the study's kernel
(``cloudburst.engine.fireflow``, ``cloudburst.engine.segments``) run on it.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cloudburst.engine import toolkit
from cloudburst.engine.fireflow import FireFlowSettings, search_member
from cloudburst.engine.models import parse_inp
from cloudburst.engine.segments import SegmentSettings, isolate_member
from cloudburst.engine.warm import OpenModel
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
