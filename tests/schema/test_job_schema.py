"""The job schema: every problem reported with its JSON path; the original format translated."""
import pytest
from cloudburst.errors import InputError
from cloudburst.schema.job import from_original, parse_job

SHA = "a" * 64


def minimal(**changes) -> dict:
    return {"schema": "cloudburst.job/1", "ensemble": "e1", "member": 0,
            "input": {"url": "http://nginx/models/net3.inp", "sha256": SHA}, **changes}


def problems(document) -> list[str]:
    with pytest.raises(InputError) as error:
        parse_job(document)
    return error.value.problems


def test_a_minimal_job_gets_sensible_defaults():
    job = parse_job(minimal())
    assert job.run.simulator == "epanet"
    assert job.run.quality.mode == "none"
    assert job.output.db == "cloudburst"
    assert job.output.series == []


def test_every_problem_is_reported_at_once_with_its_json_path():
    found = problems(minimal(member=-1, run={"simulator": "swmm", "alterations": [
        {"type": "demand_scale", "factor": -2}, {"type": "teleport"}]}, output={"colour": "red"}))
    assert "$.member: Input should be greater than or equal to 0" in found
    assert any(p.startswith("$.run.simulator: Input should be 'epanet' or 'wntr'") for p in found)
    assert "$.run.alterations[0].factor: Input should be greater than or equal to 0" in found
    assert any(p.startswith("$.run.alterations[1]: unknown alteration type 'teleport'; known types: 'demand_scale'") for p in found)
    assert "$.output.colour: is not a known field" in found
    assert len(found) == 5


def test_missing_fields_and_wrong_shapes_name_their_path():
    assert problems({"schema": "cloudburst.job/1"}) == [
        "$.ensemble: is required", "$.member: is required", "$.input: is required"]
    assert problems([1, 2]) == ["$: a job must be a JSON object, not list"]


def test_model_source_rules():
    assert problems(minimal(input={"url": "http://x/m.inp"})) == ["$.input: a model url needs its sha256"]
    assert problems(minimal(input={"url": "http://x/m.inp", "sha256": "xyz"}))[0].startswith(
        "$.input.sha256: String should match pattern")
    assert problems(minimal(input={"url": "http://x", "sha256": SHA, "inline": {}})) == [
        "$.input: give exactly one of url (with sha256) or inline (a wntr model dict)"]
    assert problems(minimal(input={"url": "http://x", "sha256": SHA, "start_time_utc": "2024-01-01T00:00:00"})) == [
        "$.input: start_time_utc needs a time zone, e.g. 2024-01-01T00:00:00Z"]


def test_unknown_schema_version_is_named():
    assert problems(minimal(schema="cloudburst.job/2")) == [
        "$.schema: unknown schema version 'cloudburst.job/2'; this worker understands 'cloudburst.job/1'"]


def test_original_format_jobs_are_translated():
    original = {"input": {"url": "http://fs/model.inp", "startTimeUtc": "2017-01-01T00:00:00"},
                "run": {},
                "output": {"host": "influx", "db": "sims", "dbTag": "simulation_id", "dbTagValue": "sim-123",
                           "node": ["*"], "link": [["flow", 3600]]}}
    assert problems(original)[0].startswith("$.schema: is required (jobs in the original CloudBurst format")
    job = parse_job(from_original(original, ensemble="unused", member=4, sha256=SHA))
    assert job.ensemble == "sim-123" and job.member == 4
    assert job.input.start_time_utc.isoformat() == "2017-01-01T00:00:00+00:00"
    assert job.output.db == "sims"
    assert [(s.element, s.attributes, s.ids, s.step_s) for s in job.output.series] == [
        ("node", ["pressure"], "*", None), ("link", ["flowrate"], "*", 3600)]


@pytest.mark.parametrize("kind, target", [("link_status", {"link": "1"}), ("pump_outage", {"pump": "1"}),
                                          ("fire_flow", {"node": "1", "flow_m3s": 0.1}),
                                          ("leak", {"node": "1", "area_m2": 0.01}),
                                          ("contaminant_source", {"node": "1", "strength": 1.0})])
def test_every_timed_alteration_must_end_after_it_starts(kind, target):
    change = {"type": kind, **target, "start_s": 7200, "end_s": 3600}
    assert problems(minimal(run={"alterations": [change]})) == [
        "$.run.alterations[0]: end_s (3600) must be after start_s (7200)"]
    assert parse_job(minimal(run={"alterations": [{**change, "end_s": 10800}]})).run.alterations[0].end_s == 10800
