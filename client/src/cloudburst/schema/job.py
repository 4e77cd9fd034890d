"""The job description a client enqueues and a worker runs: schema ``cloudburst.job/1``.

A job has three parts, as in the original CloudBurst format: ``input`` (the model), ``run`` (simulator
settings and alterations to the network) and ``output`` (what to write to InfluxDB). Values in a job
are plain numbers: random draws happen in the client, and ``seed`` travels along for provenance.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from cloudburst.errors import InputError
from cloudburst.schema.defaults import DEFAULT_START, ENSEMBLE_PATTERN  # noqa: F401 (part of the schema's face)

SCHEMA = "cloudburst.job/1"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ElementIds = Literal["*"] | list[str]
NonNegativeSeconds = Annotated[int, Field(ge=0)]


class ModelInput(_Strict):
    url: str | None = None
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    inline: dict[str, Any] | None = None
    start_time_utc: datetime = DEFAULT_START

    @model_validator(mode="after")
    def _one_source(self) -> "ModelInput":
        if (self.url is None) == (self.inline is None):
            raise ValueError("give exactly one of url (with sha256) or inline (a wntr model dict)")
        if self.url is not None and self.sha256 is None:
            raise ValueError("a model url needs its sha256")
        if self.start_time_utc.tzinfo is None:
            raise ValueError("start_time_utc needs a time zone, e.g. 2024-01-01T00:00:00Z")
        return self


# --- alterations: each one wntr call on the loaded model -----------------------------------------

class _Window(_Strict):
    """An alteration in force from start_s (seconds into the run) until end_s, or to the end."""
    start_s: NonNegativeSeconds = 0
    end_s: NonNegativeSeconds | None = None

    @model_validator(mode="after")
    def _end_after_start(self) -> "_Window":
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


class DemandScale(_Strict):
    type: Literal["demand_scale"]
    factor: float = Field(ge=0)
    nodes: ElementIds = "*"
    pattern: str | None = None  # only demands that follow this pattern


class PatternReplace(_Strict):
    type: Literal["pattern_replace"]
    pattern: str
    multipliers: list[float] = Field(min_length=1)


class PipeProperty(_Strict):
    type: Literal["pipe_property"]
    property: Literal["roughness", "diameter", "length"]
    pipes: ElementIds = "*"
    value: float | None = Field(default=None, gt=0)  # SI: m for diameter and length
    factor: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _value_or_factor(self) -> "PipeProperty":
        if (self.value is None) == (self.factor is None):
            raise ValueError("give exactly one of value or factor")
        return self


class LinkStatus(_Window):
    type: Literal["link_status"]
    link: str
    status: Literal["closed", "open"] = "closed"


class PumpOutage(_Window):
    type: Literal["pump_outage"]
    pump: str


class TankLevel(_Strict):
    type: Literal["tank_level"]
    tank: str
    init_level_m: float = Field(ge=0)


class FireFlow(_Window):
    type: Literal["fire_flow"]
    node: str
    flow_m3s: float = Field(gt=0)


class Leak(_Window):
    type: Literal["leak"]
    node: str
    area_m2: float = Field(gt=0)
    discharge_coeff: float = Field(default=0.75, gt=0)


class ContaminantSource(_Window):
    type: Literal["contaminant_source"]
    node: str
    source_type: Literal["CONCEN", "MASS", "SETPOINT", "FLOWPACED"] = "SETPOINT"
    strength: float = Field(gt=0)  # SI, as wntr takes it: kg/m³ (= g/L; 0.001 is 1 mg/L), or kg/s for MASS


Alteration = Annotated[
    DemandScale | PatternReplace | PipeProperty | LinkStatus | PumpOutage | TankLevel | FireFlow | Leak
    | ContaminantSource,
    Field(discriminator="type"),
]


class Quality(_Strict):
    mode: Literal["none", "age", "trace", "chemical"] = "none"
    trace_node: str | None = None
    # Concentration (mg/L, converted to the results' kg/m³ in resultformat) above which a node counts as reached by a
    # contaminant; percent for trace.
    threshold: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _trace_node(self) -> "Quality":
        if (self.mode == "trace") != (self.trace_node is not None):
            raise ValueError("trace_node is required with mode trace, and only then")
        return self


# The EPANET versions a scenario may choose (``run.epanet``): every member of an ensemble runs on the one chosen.
# 2.3.5 is owa-epanet's library on the warm engine; 2.2 is the library wntr ships, run on wntr's file path, for
# models that solve on 2.2 only.
EPANET_WARM: Literal["2.3.5"] = "2.3.5"
EPANET_FILE: Literal["2.2"] = "2.2"
EpanetVersion = Literal["2.3.5", "2.2"]


class Run(_Strict):
    simulator: Literal["epanet", "wntr"] = "epanet"
    epanet: EpanetVersion = EPANET_WARM  # which EPANET runs every member (with simulator "epanet")
    duration_s: NonNegativeSeconds | None = None
    hydraulic_timestep_s: Annotated[int, Field(gt=0)] | None = None
    report_timestep_s: Annotated[int, Field(gt=0)] | None = None
    demand_model: Literal["DD", "PDD"] | None = None
    required_pressure_m: float | None = Field(default=None, gt=0)
    minimum_pressure_m: float | None = Field(default=None, ge=0)
    quality: Quality = Field(default_factory=lambda: _DEFAULT_QUALITY)
    # What EPANET does when the hydraulics stop balancing: the model's own UNBALANCED option (None), stop the
    # member there (an "unbalanced" member, left out of the statistics) or continue with the last trial's state.
    unbalanced: Literal["stop", "continue"] | None = None
    # The model's clock at the run's start (seconds after midnight; a dated member's time of day): its pattern
    # start and start clock time move there from the model's own (``windows.clock_shift``). None: the model's clock.
    clock_start_s: Annotated[int, Field(ge=0, lt=86400)] | None = None
    alterations: list[Alteration] = []


ElementKind = Literal["node", "link"]
# Element types of each kind; wntr lists each type's names as <type>_name_list.
ELEMENT_TYPES: dict[str, tuple[str, ...]] = {"node": ("junction", "tank", "reservoir"),
                                             "link": ("pipe", "pump", "valve")}


class SeriesRequest(_Strict):
    element: ElementKind
    attributes: list[str] = Field(min_length=1)
    ids: ElementIds = "*"
    # Restrict "*" to element types, e.g. ["junction"] or ["pipe", "pump"].
    types: list[str] | None = None
    # Every how many seconds a value is kept; a multiple of the report step (None: every report step).
    step_s: Annotated[int, Field(gt=0)] | None = None


class Summary(_Strict):
    pressure_threshold_m: float = 20.0


Percentile = Annotated[float, Field(gt=0, le=100)]


class Statistics(_Strict):
    """What the cluster computes across members for every element and time the series hold."""
    percentiles: list[Percentile] = Field(default=[5.0, 50.0, 95.0], min_length=1)
    # attribute -> thresholds: the fraction of members below (above) each, e.g. {"pressure": [20]}
    below: dict[str, list[float]] = {}
    above: dict[str, list[float]] = {}


class Output(_Strict):
    db: str = Field(default="cloudburst", pattern=r"^[A-Za-z0-9_\-]+$")
    series: list[SeriesRequest] = []
    summary: Summary = Field(default_factory=lambda: _DEFAULT_SUMMARY)
    statistics: Statistics = Field(default_factory=lambda: _DEFAULT_STATISTICS)
    # attribute -> resolution (SI, e.g. {"pressure": 0.001}): series values are rounded to the nearest multiple of
    # the largest power of two not above it (0.001 m -> 2**-10 m), which empties their low bits and shrinks the
    # store by about a third; absent, values are EPANET's own, unchanged.
    resolution: dict[str, Annotated[float, Field(gt=0)]] = {}
    # Upper bound on series points (values) one job may write; a request above it is refused before running.
    max_points: Annotated[int, Field(gt=0)] = 2_000_000


# The defaults of a job's parts, one frozen instance each, handed to every job that leaves the part out: pydantic
# deep-copies a default instance at every validation (a tenth of a tiny member's time), a factory's value it does not.
_DEFAULT_QUALITY: Quality = Quality()
_DEFAULT_RUN: Run = Run()
_DEFAULT_SUMMARY: Summary = Summary()
_DEFAULT_STATISTICS: Statistics = Statistics()
_DEFAULT_OUTPUT: Output = Output()


class MemberId(BaseModel):
    """Which ensemble member a job is: readable from a job that is invalid elsewhere, to record its failure."""
    model_config = ConfigDict(extra="ignore", frozen=True)
    ensemble: str = Field(pattern=f"^{ENSEMBLE_PATTERN}$")
    member: Annotated[int, Field(ge=0)]


class Job(MemberId):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: Literal["cloudburst.job/1"] = Field(alias="schema")
    seed: int | None = None
    input: ModelInput
    run: Run = Field(default_factory=lambda: _DEFAULT_RUN)
    output: Output = Field(default_factory=lambda: _DEFAULT_OUTPUT)

    @property
    def start_timestamp(self) -> int:
        """The run's start as a Unix timestamp: every point the member writes is dated from it."""
        return int(self.input.start_time_utc.timestamp())


def _json_path(location: tuple[Any, ...]) -> str:
    path = "$"
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"demand_scale", "pattern_replace", "pipe_property", "link_status", "pump_outage",
                      "tank_level", "fire_flow", "leak", "contaminant_source"}:
            continue  # pydantic names the union member; the path already points at the list item
        else:
            path += f".{'schema' if part == 'schema_' else part}"
    return path


def _sentence(error: Any) -> str:  # pydantic's ErrorDetails
    message = error["msg"]
    if error["type"] == "missing":
        message = "is required"
    elif error["type"] == "extra_forbidden":
        message = "is not a known field"
    elif error["type"] == "literal_error" and error["loc"][-1:] in (("schema",), ("schema_",)):
        message = f"unknown schema version {error['input']!r}; this worker understands {SCHEMA!r}"
    elif error["type"] == "union_tag_invalid":
        message = (f"unknown alteration type {error['ctx']['tag']!r}; known types: "
                   f"{error['ctx']['expected_tags']}")
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return f"{_json_path(error['loc'])}: {message}"


def parse_start(value: Any, path: str = "$.input.start_time_utc") -> datetime:
    """A start time given as an ISO string or datetime, with its time zone; None means the default start."""
    if value is None:
        return DEFAULT_START
    try:
        return TypeAdapter(AwareDatetime).validate_python(value)
    except ValidationError:
        raise InputError(f"{path}: {value!r} is not a date and time with a time zone, e.g. 2024-06-01T00:00:00Z") \
            from None


def parse_job(document: Any) -> Job:
    """Validate a decoded job description; raise InputError listing every problem with its JSON path."""
    if not isinstance(document, dict):
        raise InputError([f"$: a job must be a JSON object, not {type(document).__name__}"])
    if "schema" not in document and "input" in document and "url" in document.get("input", {}):
        raise InputError(["$.schema: is required (jobs in the original CloudBurst format go through "
                        "cloudburst.job.from_original first)"])
    try:
        return Job.model_validate(document)
    except ValidationError as error:
        raise InputError([_sentence(e) for e in error.errors()]) from None


def from_original(document: dict[str, Any], *, ensemble: str, member: int, sha256: str) -> dict[str, Any]:
    """Translate a job in the original CloudBurst format into ``cloudburst.job/1``.

    The original had ``input.url``/``input.startTimeUtc``, no ``run`` (alterations were a to-do), and
    ``output.db``, ``output.dbTag``/``dbTagValue`` (here: the ensemble name), ``output.node`` (element IDs
    or ``['*']``) and ``output.link`` as ``[[attribute, step_s], ...]``. The original carried no model
    hash; the caller supplies it, since CloudBurst verifies every model it runs.
    """
    source = document.get("input", {})
    output = document.get("output", {})
    series: list[dict[str, Any]] = []
    node_ids = output.get("node")
    if node_ids:
        series.append({"element": "node", "attributes": ["pressure"],
                       "ids": "*" if node_ids == ["*"] else list(node_ids)})
    for entry in output.get("link", []):
        attribute, *rest = entry
        series.append({"element": "link", "attributes": ["flowrate" if attribute == "flow" else attribute],
                       "step_s": rest[0] if rest else None})
    start = source.get("startTimeUtc", "2000-01-01T00:00:00")
    if not re.search(r"(Z|[+-]\d\d:?\d\d)$", start):
        start += "Z"
    return {
        "schema": SCHEMA,
        "ensemble": output.get("dbTagValue", ensemble),
        "member": member,
        "input": {"url": source["url"], "sha256": sha256, "start_time_utc": start},
        "run": document.get("run") or {},
        "output": {"db": output.get("db", "cloudburst"), "series": series},
    }
