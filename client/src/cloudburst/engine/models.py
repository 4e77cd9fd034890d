"""Reading a network model: on a worker, a fresh model object per job from the verified file
(``cloudburst.state.models``); on the client, the user's file, with a sentence for every way it can be wrong.

Parsing a cached .inp is cheaper than deep-copying a parsed model (Net3: 4 ms vs 10 ms; Net6: 0.10 s vs
0.34 s, measured with wntr 1.5.0), so the cache keeps the verified file and every job parses its own
model object, which its alterations may then change freely.
"""
from __future__ import annotations

import logging
import re
import tempfile
import warnings
from pathlib import Path

import wntr

from cloudburst.errors import EpanetError, InputError
from cloudburst.schema.job import ModelInput
from cloudburst.state.models import ModelCache

log = logging.getLogger(__name__)
# Sections every EPANET model has at least one of; a file with none is not a model.
_NETWORK_SECTIONS = re.compile(rb"^\s*\[(JUNCTIONS|PIPES|RESERVOIRS|TANKS)\]", re.MULTILINE | re.IGNORECASE)


def load_model(source: ModelInput, cache: ModelCache) -> wntr.network.WaterNetworkModel:
    """A fresh model object for one job."""
    if source.inline is not None:
        try:
            return wntr.network.from_dict(source.inline)
        except Exception as error:  # wntr raises many types for a malformed dict
            raise InputError([f"$.input.inline: not a valid wntr model dict: {error}"]) from None
    assert source.url is not None and source.sha256 is not None
    path = cache.path_for(source.url, source.sha256)
    try:
        return parse_inp(path, source.url)
    except InputError as error:
        raise InputError([f"$.input.url: {problem}" for problem in error.problems]) from None


# wntr 1.5's .inp reader does not cover all of EPANET's syntax (e.g. `IF SYSTEM CLOCKTIME >= 6 AM` in a rule, or a
# chemical's units other than mg/L and ug/L: BWSN network 1 says `Quality Chemical TIME`). CloudBurst's checks look
# up elements, patterns and curves, never rules or the chemical's units: where EPANET itself opens a model that wntr
# cannot read, the checks read it without its [RULES] and with such units as mg/L (the members run the file as it
# is, on EPANET's toolkit).
_RULES_SECTION = re.compile(r"^\s*\[RULES\].*?(?=^\s*\[)", re.MULTILINE | re.IGNORECASE | re.DOTALL)
_CHEMICAL_UNITS = re.compile(r"^(\s*QUALITY\s+(?!NONE\b|AGE\b|TRACE\b|TIMESTEP\b)\S+\s+)(?!mg/L\b|ug/L\b)\S+",
                             re.MULTILINE | re.IGNORECASE)
UNREAD_RULES = "cloudburst_unread_rules"  # set on a model read without its rules: what wntr could not read


def parse_inp(path: Path, shown_as: str) -> wntr.network.WaterNetworkModel:
    """Parse an .inp file; wntr's load warnings go to the log (visible with -v), its errors into one sentence that
    says whether EPANET reads the file (then it is wntr's parser that cannot, and what to do)."""
    try:
        return _wntr_model(path, shown_as)
    except _WntrCannot as cannot:
        reason = str(cannot)
    epanet_says = _epanet_refusal(path)
    if epanet_says is not None:
        raise InputError(f"{shown_as} is not a valid EPANET .inp file: {epanet_says} (wntr: {reason})")
    with tempfile.TemporaryDirectory() as scratch:
        without_rules = Path(scratch) / path.name
        without_rules.write_text(_CHEMICAL_UNITS.sub(r"\1mg/L", _RULES_SECTION.sub("[RULES]\n\n",
                                                                                   path.read_text(errors="replace"))))
        try:
            model = _wntr_model(without_rules, shown_as)
        except _WntrCannot:
            raise InputError(
                f"{shown_as}: EPANET reads this model, but wntr's .inp parser (CloudBurst checks scenarios against "
                f"the model with it) cannot: {reason}. Rewrite what it names in a form wntr 1.5 reads, or report it "
                "to wntr") from None
    setattr(model, UNREAD_RULES, reason)
    log.warning("%s: wntr's .inp parser cannot read all of it (%s); the checks read the model without its [RULES] "
                "(and a chemical's units as mg/L), and the members run it as it is on EPANET's toolkit",
                shown_as, reason)
    return model


def unread_rules(wn: wntr.network.WaterNetworkModel) -> str | None:
    """What wntr could not read of the model's [RULES] when it was read without them (``parse_inp``); None when
    wntr read the whole model. Such a model cannot run on wntr's file path: its rules would be lost."""
    return getattr(wn, UNREAD_RULES, None)


def file_path_refusal(wn: wntr.network.WaterNetworkModel, file_path_reason: str | None) -> str | None:
    """Why a job that runs on wntr's file path (for ``file_path_reason``) cannot on this model; None when it can."""
    unread = unread_rules(wn)
    if file_path_reason is None or unread is None:
        return None
    return (f"these members run on wntr's file path ({file_path_reason}), and wntr's .inp parser cannot read the "
            f"model's [RULES] ({unread}): they would run without them. Run them on EPANET 2.3.5 (`run: {{epanet: "
            '"2.3.5"}`, the default: the warm engine runs the model as EPANET reads it), or rewrite the rules in a '
            "form wntr 1.5 reads")


class _WntrCannot(Exception):
    """wntr's .inp reader refused the file."""


def _wntr_model(path: Path, shown_as: str) -> wntr.network.WaterNetworkModel:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = wntr.network.WaterNetworkModel(str(path))
        except Exception as error:  # wntr's .inp reader raises ENxxx errors of several types
            raise _WntrCannot(re.sub(r"\s*\(%s\)", "", str(error)).strip()) from None  # unfilled templates
    for warning in caught:
        log.info("wntr, reading %s: %s", shown_as, warning.message)
    return model


def _epanet_refusal(path: Path) -> str | None:
    """EPANET 2.3's own word on the file (owa-epanet's library): None when it opens it."""
    from cloudburst.engine import toolkit  # the EPANET library: loaded only for a model wntr cannot read
    try:
        toolkit.Project(path).close()
    except EpanetError as refused:
        return str(refused)
    return None


def read_model_file(path: Path) -> tuple[bytes, wntr.network.WaterNetworkModel]:
    """The user's model: its bytes (uploaded as they are) and the parsed model (to check members against)."""
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    data = path.read_bytes()
    if path.suffix.lower() in (".yml", ".yaml") or re.match(rb"\s*(---|ensemble:|members:)", data):
        raise InputError(f"{path} looks like a scenario file, not a model: give the model (.inp) first, "
                         "then the scenario")
    if not _NETWORK_SECTIONS.search(data):
        raise InputError(f"{path} is not an EPANET .inp file: it has no [JUNCTIONS], [PIPES], [RESERVOIRS] "
                         "or [TANKS] section")
    return data, parse_inp(path, str(path))
