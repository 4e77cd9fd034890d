"""EPANET's toolkit in this process: OpenWaterAnalytics' EPANET 2.3 library as the owa-epanet wheel ships it.

owa-epanet's own (SWIG) wrapper hands EPANET 2.3's whole-array getters out through a C array read one element per
Python call; the same library called through ctypes fills a numpy row in one call (Net6: 3,356 pressures per
call instead of 3,356 calls). The enum values come from owa-epanet's wrapper, so they are the library's own.

A ``Project`` is one model opened from its .inp file. Every call that EPANET answers with an error code above
100 raises ``EpanetError`` with EPANET's own message; codes 1-6 are warnings, which ``run`` collects.
"""
from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import epanet
import epanet.toolkit as en
import numpy as np

from cloudburst.errors import EpanetError

LIBRARY = Path(epanet.__file__).with_name("libepanet2.so")
_lib = ctypes.CDLL(str(LIBRARY))

_P, _I, _L, _D, _S = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_double, ctypes.c_char_p
_PI, _PL, _PD = ctypes.POINTER(_I), ctypes.POINTER(_L), ctypes.POINTER(_D)
# Every function used, with its C signature: ctypes would pass a Python float as an int without it.
_SIGNATURES: dict[str, list[type]] = {
    "EN_createproject": [ctypes.POINTER(_P)], "EN_deleteproject": [_P],
    "EN_open": [_P, _S, _S, _S], "EN_close": [_P], "EN_setstatusreport": [_P, _I],
    "EN_getversion": [_PI], "EN_geterror": [_I, _S, _I], "EN_getcount": [_P, _I, _PI],
    "EN_getnodeid": [_P, _I, _S], "EN_getlinkid": [_P, _I, _S], "EN_getpatternid": [_P, _I, _S],
    "EN_getpatternindex": [_P, _S, _PI],
    "EN_getnodetype": [_P, _I, _PI], "EN_getlinktype": [_P, _I, _PI], "EN_setlinktype": [_P, _PI, _I, _I],
    "EN_getnodevalue": [_P, _I, _I, _PD], "EN_setnodevalue": [_P, _I, _I, _D],
    "EN_getlinkvalue": [_P, _I, _I, _PD], "EN_setlinkvalue": [_P, _I, _I, _D],
    "EN_getnodevalues": [_P, _I, _P],  # the row's address: numpy rows are filled without a ctypes cast each
    "EN_getlinkvalues": [_P, _I, _P], "EN_getlinknodes": [_P, _I, _PI, _PI],
    "EN_gettimeparam": [_P, _I, _PL], "EN_settimeparam": [_P, _I, _L],
    "EN_getoption": [_P, _I, _PD], "EN_setoption": [_P, _I, _D], "EN_getflowunits": [_P, _PI],
    "EN_getdemandmodel": [_P, _PI, _PD, _PD, _PD], "EN_setdemandmodel": [_P, _I, _D, _D, _D],
    "EN_setqualtype": [_P, _I, _S, _S, _S],
    "EN_getnumdemands": [_P, _I, _PI], "EN_getbasedemand": [_P, _I, _I, _PD],
    "EN_setbasedemand": [_P, _I, _I, _D], "EN_getdemandpattern": [_P, _I, _I, _PI],
    "EN_adddemand": [_P, _I, _D, _S, _S],
    "EN_addpattern": [_P, _S], "EN_getpatternlen": [_P, _I, _PI], "EN_getpatternvalue": [_P, _I, _I, _PD],
    "EN_setpattern": [_P, _I, _PD, _I],
    "EN_getcontrol": [_P, _I, _PI, _PI, _PD, _PI, _PD], "EN_setcontrolenabled": [_P, _I, _I],
    "EN_addcontrol": [_P, _I, _I, _D, _I, _D, _PI],
    "EN_getrule": [_P, _I, _PI, _PI, _PI, _PD], "EN_setruleenabled": [_P, _I, _I],
    "EN_getthenaction": [_P, _I, _I, _PI, _PI, _PD], "EN_getelseaction": [_P, _I, _I, _PI, _PI, _PD],
    "EN_openH": [_P], "EN_initH": [_P, _I], "EN_runH": [_P, _PL], "EN_nextH": [_P, _PL], "EN_closeH": [_P],
    "EN_openQ": [_P], "EN_initQ": [_P, _I], "EN_runQ": [_P, _PL], "EN_nextQ": [_P, _PL], "EN_closeQ": [_P],
    "EN_solveH": [_P], "EN_solveQ": [_P], "EN_report": [_P],
}
for _name, _arguments in _SIGNATURES.items():
    getattr(_lib, _name).argtypes = _arguments
    getattr(_lib, _name).restype = _I

# EPANET 2.3.5 reads an .inp file with state shared by every project of the process: two threads opening models
# at once get "Error 200: one or more errors in input file" (two clients submitting in one process did).
_OPENING = threading.Lock()

WARNINGS = {1: "system hydraulically unbalanced", 2: "system may be hydraulically unstable",
            3: "system disconnected", 4: "pumps cannot deliver enough flow or head",
            5: "valves cannot deliver enough flow", 6: "system has negative pressures"}
_ID_BYTES = 32  # EN_MAXID + 1


def _message(code: int) -> str:
    buffer = ctypes.create_string_buffer(256)
    _lib.EN_geterror(code, buffer, 255)
    return buffer.value.decode(errors="replace").strip()


def _check(code: int, doing: str) -> int:
    """Raise EpanetError for an error code; pass warnings (1-6) back to the caller."""
    if code > 100:
        raise EpanetError(code, f"EPANET {doing}: {_message(code)}")
    return code


def version() -> str:
    """The library's EPANET version, e.g. "2.3.5"."""
    number = _I()
    _lib.EN_getversion(ctypes.byref(number))
    major, rest = divmod(number.value, 10000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


VERSION = version()


def clock(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass
class Capture:
    """Node results at each report time: values[property] is (times, nodes) float32 in the model's units,
    rounded once from the toolkit's doubles exactly as EPANET's output file rounds them."""
    times: list[int] = field(default_factory=list)
    values: dict[int, np.ndarray] = field(default_factory=dict)
    warnings: list[tuple[int, int]] = field(default_factory=list)  # (time s, warning code), first of each code
    halted_at: int | None = None  # time the run stopped early (UNBALANCED STOP), None when it ran to the end

    def warning_text(self) -> str:
        """EPANET's warnings in a sentence, each with the first time it was raised; empty without any."""
        return "; ".join(f"{WARNINGS.get(code, f'warning {code}')} from {clock(at)}" for at, code in self.warnings)


@dataclass
class SavedHydraulics:
    """What ``Project.saved_hydraulics`` read while saving the run's hydraulics: each report time, every node's
    demand and every link's flow then (model units), and whether every solution balanced."""
    times: np.ndarray
    demand: np.ndarray
    flow: np.ndarray
    balanced: bool = True


class Project:
    """One model opened in the toolkit; ``close`` frees it."""

    def __init__(self, inp_path: str | os.PathLike[str], output_path: str | os.PathLike[str] | None = None):
        """``output_path``: where ``run(..., save_output=True)`` has EPANET write its binary output file."""
        self.path = Path(inp_path)
        self._handle = _P()
        with _OPENING:
            _check(_lib.EN_createproject(ctypes.byref(self._handle)), "creating a project")
            try:
                _check(_lib.EN_open(self._handle, str(self.path).encode(), os.devnull.encode(),
                                       str(output_path or "").encode()),
                       f"opening {self.path.name}")
            except EpanetError:
                _lib.EN_deleteproject(self._handle)
                raise
        _lib.EN_setstatusreport(self._handle, 0)
        self.node_count = self.count(en.NODECOUNT)
        self.link_count = self.count(en.LINKCOUNT)
        self.node_ids = [self._id(_lib.EN_getnodeid, index) for index in range(1, self.node_count + 1)]
        self.link_ids = [self._id(_lib.EN_getlinkid, index) for index in range(1, self.link_count + 1)]
        self.junction_count = sum(1 for index in range(1, self.node_count + 1)
                                  if self.node_type(index) == en.JUNCTION)

    def close(self) -> None:
        if self._handle:
            _lib.EN_close(self._handle)
            _lib.EN_deleteproject(self._handle)
            self._handle = _P()

    def _id(self, getter: object, index: int) -> str:
        buffer = ctypes.create_string_buffer(_ID_BYTES)
        _check(getter(self._handle, index, buffer), "reading an ID")  # type: ignore[operator]
        return buffer.value.decode()

    def count(self, what: int) -> int:
        value = _I()
        _check(_lib.EN_getcount(self._handle, what, ctypes.byref(value)), "counting")
        return value.value

    def pattern_index(self, pattern_id: str) -> int:
        index = _I()
        _check(_lib.EN_getpatternindex(self._handle, pattern_id.encode(), ctypes.byref(index)),
               f"finding pattern {pattern_id}")
        return index.value

    def pattern_id(self, index: int) -> str:
        return self._id(_lib.EN_getpatternid, index)

    def node_type(self, index: int) -> int:
        value = _I()
        _check(_lib.EN_getnodetype(self._handle, index, ctypes.byref(value)), "reading a node type")
        return value.value

    def link_type(self, index: int) -> int:
        value = _I()
        _check(_lib.EN_getlinktype(self._handle, index, ctypes.byref(value)), "reading a link type")
        return value.value

    def make_plain_pipe(self, index: int) -> None:
        """A check-valve pipe becomes a plain pipe, in place (EPANET keeps a pipe's index and properties when only
        its pipe type changes): EPANET refuses to set a CV's status (error 207)."""
        inout = _I(index)
        _check(_lib.EN_setlinktype(self._handle, ctypes.byref(inout), en.PIPE, en.UNCONDITIONAL),
               f"making link {self.link_ids[index - 1]} a plain pipe")
        if inout.value != index:  # not expected for a pipe; a re-numbered network would break every cached index
            raise EpanetError(0, f"EPANET re-numbered link {self.link_ids[index - 1]} when its check valve was removed")

    def node_value(self, index: int, what: int) -> float:
        value = _D()
        _check(_lib.EN_getnodevalue(self._handle, index, what, ctypes.byref(value)), "reading a node value")
        return value.value

    def set_node_value(self, index: int, what: int, value: float) -> None:
        _check(_lib.EN_setnodevalue(self._handle, index, what, value), f"setting node {self.node_ids[index - 1]}")

    def link_value(self, index: int, what: int) -> float:
        value = _D()
        _check(_lib.EN_getlinkvalue(self._handle, index, what, ctypes.byref(value)), "reading a link value")
        return value.value

    def set_link_value(self, index: int, what: int, value: float) -> None:
        _check(_lib.EN_setlinkvalue(self._handle, index, what, value), f"setting link {self.link_ids[index - 1]}")

    def time(self, what: int) -> int:
        value = _L()
        _check(_lib.EN_gettimeparam(self._handle, what, ctypes.byref(value)), "reading a time parameter")
        return value.value

    def set_time(self, what: int, seconds: int) -> None:
        _check(_lib.EN_settimeparam(self._handle, what, seconds), "setting a time parameter")

    def option(self, what: int) -> float:
        value = _D()
        _check(_lib.EN_getoption(self._handle, what, ctypes.byref(value)), "reading an option")
        return value.value

    def set_option(self, what: int, value: float) -> None:
        _check(_lib.EN_setoption(self._handle, what, value), "setting an option")

    def flow_units(self) -> int:
        value = _I()
        _check(_lib.EN_getflowunits(self._handle, ctypes.byref(value)), "reading the flow units")
        return value.value

    def demand_model(self) -> tuple[int, float, float, float]:
        kind, minimum, required, exponent = _I(), _D(), _D(), _D()
        _check(_lib.EN_getdemandmodel(self._handle, ctypes.byref(kind), ctypes.byref(minimum),
                                      ctypes.byref(required), ctypes.byref(exponent)), "reading the demand model")
        return kind.value, minimum.value, required.value, exponent.value

    def set_demand_model(self, kind: int, minimum: float, required: float, exponent: float) -> None:
        _check(_lib.EN_setdemandmodel(self._handle, kind, minimum, required, exponent), "setting the demand model")

    def set_quality(self, kind: int, trace_node: str = "", chemical: str = "Chemical", units: str = "mg/L") -> None:
        _check(_lib.EN_setqualtype(self._handle, kind, chemical.encode(), units.encode(), trace_node.encode()),
               "setting the quality type")

    def demands(self, node: int) -> list[tuple[float, int]]:
        """A node's demand categories: (base demand, pattern index) each."""
        count, base, pattern = _I(), _D(), _I()
        _check(_lib.EN_getnumdemands(self._handle, node, ctypes.byref(count)), "counting demands")
        categories = []
        for category in range(1, count.value + 1):
            _check(_lib.EN_getbasedemand(self._handle, node, category, ctypes.byref(base)), "reading a demand")
            _check(_lib.EN_getdemandpattern(self._handle, node, category, ctypes.byref(pattern)), "reading a demand")
            categories.append((base.value, pattern.value))
        return categories

    def set_base_demand(self, node: int, category: int, value: float) -> None:
        _check(_lib.EN_setbasedemand(self._handle, node, category, value), "setting a base demand")

    def add_demand(self, node: int, base: float, pattern_id: str, name: str) -> None:
        _check(_lib.EN_adddemand(self._handle, node, base, pattern_id.encode(), name.encode()), "adding a demand")

    def pattern(self, index: int) -> list[float]:
        length, value = _I(), _D()
        _check(_lib.EN_getpatternlen(self._handle, index, ctypes.byref(length)), "reading a pattern")
        values = []
        for period in range(1, length.value + 1):
            _check(_lib.EN_getpatternvalue(self._handle, index, period, ctypes.byref(value)), "reading a pattern")
            values.append(value.value)
        return values

    def set_pattern(self, index: int, multipliers: Iterable[float]) -> None:
        values = np.ascontiguousarray(list(multipliers), dtype=np.float64)
        _check(_lib.EN_setpattern(self._handle, index, values.ctypes.data_as(_PD), len(values)),
               f"setting pattern {self.pattern_id(index)}")

    def add_pattern(self, pattern_id: str, multipliers: Iterable[float]) -> int:
        _check(_lib.EN_addpattern(self._handle, pattern_id.encode()), f"adding pattern {pattern_id}")
        index = self.pattern_index(pattern_id)
        self.set_pattern(index, multipliers)
        return index

    def controls(self) -> list[tuple[int, int]]:
        """(control index, link index) of every simple control."""
        kind, link, node, setting, level = _I(), _I(), _I(), _D(), _D()
        found = []
        for index in range(1, self.count(en.CONTROLCOUNT) + 1):
            _check(_lib.EN_getcontrol(self._handle, index, ctypes.byref(kind), ctypes.byref(link),
                                      ctypes.byref(setting), ctypes.byref(node), ctypes.byref(level)),
                   "reading a control")
            found.append((index, link.value))
        return found

    def set_control_enabled(self, index: int, enabled: bool) -> None:
        _check(_lib.EN_setcontrolenabled(self._handle, index, int(enabled)), "enabling a control")

    def add_timer_control(self, link: int, setting: float, at_s: int) -> None:
        index = _I()
        _check(_lib.EN_addcontrol(self._handle, en.TIMER, link, setting, 0, float(at_s), ctypes.byref(index)),
               "adding a control")

    def rule_links(self) -> list[tuple[int, set[int]]]:
        """(rule index, links its THEN and ELSE actions set) of every rule."""
        premises, thens, elses, priority = _I(), _I(), _I(), _D()
        link, status, setting = _I(), _I(), _D()
        found = []
        for rule in range(1, self.count(en.RULECOUNT) + 1):
            _check(_lib.EN_getrule(self._handle, rule, ctypes.byref(premises), ctypes.byref(thens),
                                   ctypes.byref(elses), ctypes.byref(priority)), "reading a rule")
            links = set()
            for getter, actions in ((_lib.EN_getthenaction, thens.value), (_lib.EN_getelseaction, elses.value)):
                for action in range(1, actions + 1):
                    _check(getter(self._handle, rule, action, ctypes.byref(link), ctypes.byref(status),
                                  ctypes.byref(setting)), "reading a rule action")
                    links.add(link.value)
            found.append((rule, links))
        return found

    def set_rule_enabled(self, index: int, enabled: bool) -> None:
        _check(_lib.EN_setruleenabled(self._handle, index, int(enabled)), "enabling a rule")

    def _solutions(self, until_s: int | None = None) -> Iterator[tuple[int, int]]:
        """Each hydraulic solution in turn (report times and the intermediate ones): its time and EPANET's warning
        code, its node values readable until the next is asked for; none after until_s. Opens and closes the
        hydraulics solver."""
        now, advance = _L(), _L()
        handle = self._handle
        _check(_lib.EN_openH(handle), "opening hydraulics")
        try:
            _check(_lib.EN_initH(handle, en.NOSAVE), "starting hydraulics")
            while True:
                warning = _check(_lib.EN_runH(handle, ctypes.byref(now)), "solving hydraulics")
                yield now.value, warning
                if until_s is not None and now.value >= until_s:
                    break
                _check(_lib.EN_nextH(handle, ctypes.byref(advance)), "advancing hydraulics")
                if advance.value <= 0:
                    break
        finally:
            _lib.EN_closeH(handle)

    def _read(self, what: int, row: np.ndarray) -> None:
        _check(_lib.EN_getnodevalues(self._handle, what, row.ctypes.data), "reading node results")

    def lowest_pressures(self, start_s: int, end_s: int) -> tuple[np.ndarray, bool]:
        """Each node's lowest pressure (model units) over the report times from start_s to end_s (EPANET's report
        times: report start + k * report step, as its output file holds them), solving nothing after end_s; and
        whether every solution up to end_s balanced. A solver failure raises ``EpanetError``."""
        first, step = self.time(en.REPORTSTART), self.time(en.REPORTSTEP)
        report_at = first + max(0, -(-(start_s - first) // step)) * step
        lowest = np.full(self.node_count, np.inf)
        row = np.empty(self.node_count, dtype=np.float64)
        balanced = True
        for now, warning in self._solutions(until_s=end_s):
            balanced = balanced and warning != 1
            if now >= report_at and report_at <= end_s:
                self._read(en.PRESSURE, row)
                np.minimum(lowest, row, out=lowest)
                report_at += step
        return lowest, balanced

    def demand_volumes(self, short_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Per node over the whole run, each hydraulic solution weighted by how long it holds: the volume
        delivered and the volume asked for (model flow units x seconds; they differ under a pressure-driven
        demand model), and the seconds the node got less than ``short_fraction`` of what it asked for; and whether
        every solution balanced."""
        delivered, asked, short_s = (np.zeros(self.node_count) for _ in range(3))
        demand, full = np.empty(self.node_count), np.empty(self.node_count)
        balanced, previous = True, None
        for now, warning in self._solutions():
            if previous is not None:  # the previous solution held until now
                held = now - previous
                delivered += np.clip(demand, 0, None) * held
                asked += np.clip(full, 0, None) * held
                short_s += np.where((full > 0) & (demand < short_fraction * full), held, 0)
            balanced = balanced and warning != 1
            self._read(en.DEMAND, demand)
            self._read(en.FULLDEMAND, full)
            previous = now
        return delivered, asked, short_s, balanced

    def link_nodes(self, index: int) -> tuple[int, int]:
        start, end = _I(), _I()
        _check(_lib.EN_getlinknodes(self._handle, index, ctypes.byref(start), ctypes.byref(end)), "reading a link")
        return start.value, end.value

    def saved_hydraulics(self) -> SavedHydraulics:
        """Solve hydraulics over the whole run once, saved for any number of quality runs over them
        (``quality_samples``), as EPANET's own command line does before its quality run; node demands and link
        flows (model units) at every report time (report start + k x report step, the times quality is sampled
        at). A solver failure raises ``EpanetError``."""
        start, step, duration = self.time(en.REPORTSTART), self.time(en.REPORTSTEP), self.time(en.DURATION)
        expected = 0 if start > duration else (duration - start) // step + 1
        saved = SavedHydraulics(times=np.arange(expected, dtype=np.int64) * step + start,
                                demand=np.empty((expected, self.node_count)),
                                flow=np.empty((expected, self.link_count)))
        now, advance = _L(), _L()
        handle, row = self._handle, 0
        _check(_lib.EN_openH(handle), "opening hydraulics")
        try:
            _check(_lib.EN_initH(handle, en.SAVE), "starting hydraulics")
            while True:
                warning = _check(_lib.EN_runH(handle, ctypes.byref(now)), "solving hydraulics")
                saved.balanced = saved.balanced and warning != 1
                if row < expected and now.value >= saved.times[row]:
                    _check(_lib.EN_getnodevalues(handle, en.DEMAND, saved.demand[row].ctypes.data), "reading demands")
                    _check(_lib.EN_getlinkvalues(handle, en.FLOW, saved.flow[row].ctypes.data), "reading flows")
                    row += 1
                _check(_lib.EN_nextH(handle, ctypes.byref(advance)), "advancing hydraulics")
                if advance.value <= 0:
                    break
        finally:
            _lib.EN_closeH(handle)
        if row < expected:
            why = f"{WARNINGS[1]} (the model's UNBALANCED STOP)" if not saved.balanced else "before the run's end"
            raise EpanetError(0, f"EPANET stopped the hydraulics at {clock(int(now.value))} of {clock(duration)}: "
                                 f"{why}; a shorter run (run.duration_s) that ends before it, or run.unbalanced: "
                                 "continue (the solutions after it are not balanced)")
        return saved

    def quality_samples(self, out: np.ndarray, source: tuple[int, int, int, float] | None = None) -> None:
        """One quality run over the hydraulics ``saved_hydraulics`` saved: every node's quality at each report
        time into ``out`` (report times x nodes). ``source``: (node, start, end, strength): the node's source quality
        set to ``strength`` at ``start`` and back to 0 at ``end`` (report times both: the run stops at each)."""
        now, advance = _L(), _L()
        handle = self._handle
        report_at, step, row = self.time(en.REPORTSTART), self.time(en.REPORTSTEP), 0
        row_bytes = self.node_count * 8
        address = out.ctypes.data
        _check(_lib.EN_openQ(handle), "opening quality")
        try:
            _check(_lib.EN_initQ(handle, en.NOSAVE), "starting quality")
            while True:
                _check(_lib.EN_runQ(handle, ctypes.byref(now)), "solving quality")
                if source is not None and now.value in (source[1], source[2]):
                    strength = source[3] if now.value == source[1] else 0.0
                    _check(_lib.EN_setnodevalue(handle, source[0], en.SOURCEQUAL, strength), "setting a source")
                if row < len(out) and now.value >= report_at:
                    _check(_lib.EN_getnodevalues(handle, en.QUALITY, address + row * row_bytes), "reading quality")
                    report_at += step
                    row += 1
                _check(_lib.EN_nextQ(handle, ctypes.byref(advance)), "advancing quality")
                if advance.value <= 0:
                    break
        finally:
            _lib.EN_closeQ(handle)
            if source is not None:
                _lib.EN_setnodevalue(handle, source[0], en.SOURCEQUAL, 0.0)

    def run(self, properties: Iterable[int], with_quality: bool, save_output: bool = False) -> Capture:
        """Solve hydraulics (and quality, when asked) in memory; node ``properties`` at every report time.

        Report times are EPANET's: the first hydraulic time at or after each of report start + k * report step,
        as its output writer picks them. With quality the two run step by step together. ``save_output`` has
        EPANET write its own binary output file (the project's ``output_path``) from the state read here.
        """
        with_quality = with_quality or save_output
        wanted = list(properties)
        start, step, duration = self.time(en.REPORTSTART), self.time(en.REPORTSTEP), self.time(en.DURATION)
        expected = 0 if start > duration else (duration - start) // step + 1
        rows = {what: np.empty((expected, self.node_count), dtype=np.float64) for what in wanted}
        addresses = {what: array.ctypes.data for what, array in rows.items()}
        row_bytes = self.node_count * 8
        capture = Capture()
        now, advance = _L(), _L()
        report_at, row = start, 0
        handle = self._handle
        _check(_lib.EN_openH(handle), "opening hydraulics")
        try:
            # Saving the output file with hydraulics not saved too crashes EPANET 2.3.5 at the last step.
            _check(_lib.EN_initH(handle, en.SAVE if save_output else en.NOSAVE), "starting hydraulics")
            if with_quality:
                _check(_lib.EN_openQ(handle), "opening quality")
                _check(_lib.EN_initQ(handle, en.SAVE if save_output else en.NOSAVE), "starting quality")
            seen: set[int] = set()
            while True:
                warning = _check(_lib.EN_runH(handle, ctypes.byref(now)), "solving hydraulics")
                if warning and warning not in seen:
                    seen.add(warning)
                    capture.warnings.append((now.value, warning))
                if with_quality:
                    _check(_lib.EN_runQ(handle, ctypes.byref(now)), "solving quality")
                if now.value >= report_at and row < expected:
                    for what in wanted:
                        _check(_lib.EN_getnodevalues(handle, what, addresses[what] + row * row_bytes),
                               "reading node results")
                    capture.times.append(report_at)
                    report_at += step
                    row += 1
                halted = now.value
                _check(_lib.EN_nextH(handle, ctypes.byref(advance)), "advancing hydraulics")
                if with_quality:
                    _check(_lib.EN_nextQ(handle, ctypes.byref(advance)), "advancing quality")
                if advance.value <= 0:
                    break
        finally:
            if with_quality:
                _lib.EN_closeQ(handle)
            _lib.EN_closeH(handle)
        if row < expected:
            capture.halted_at = halted
        capture.values = {what: rows[what][:row].astype(np.float32) for what in wanted}
        return capture
