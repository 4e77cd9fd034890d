"""A lean reader of EPANET's binary output: only the node and link results a job uses.

wntr's ``BinFile`` builds every result type through a MultiIndex DataFrame, about 40% of a Net3 run.
This reader takes the same float32 block from the file and applies wntr's own unit conversions to
the result types asked for, so every value is bit-for-bit what wntr's reader gives (tested). Result
types it does not cover (link headloss, status, setting, friction factor, reaction rate) go through
wntr's reader: see ``LEAN_NODE`` and ``LEAN_LINK``.

File layout (EPANET 2.2 toolkit manual, "Output File Format"): a prolog of 15 int32 (counts, flags,
units, report timing), titles and file names (884 bytes from the start), then node and link IDs
(32 bytes each); energy; the dynamic results, per reporting period 4 node blocks (demand, head,
pressure, quality) and 8 link blocks (flow, velocity, headloss, quality, status, setting, reaction
rate, friction factor) of float32; an epilog of 4 float32 and 3 int32 (periods, warning flag, magic).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import wntr
from wntr.epanet.util import FlowUnits, HydParam, MassUnits, QualParam, QualType

LEAN_NODE = {"demand": 0, "head": 1, "pressure": 2, "quality": 3}
LEAN_LINK = {"flowrate": 0, "velocity": 1, "quality": 3}
_HYDRAULIC = {"demand": HydParam.Demand, "head": HydParam.HydraulicHead, "pressure": HydParam.Pressure,
              "flowrate": HydParam.Flow, "velocity": HydParam.Velocity}
_PROLOG_BYTES, _ID_BYTES, _EPILOG_BYTES = 884, 32, 28


class NotConverged(RuntimeError):
    pass


class LeanBinFile:
    """A reader for ``wntr.sim.EpanetSimulator(wn, reader=...)`` that keeps only the named result types."""

    def __init__(self, node: tuple[str, ...] = (), link: tuple[str, ...] = ()):
        unknown = set(node) - LEAN_NODE.keys() | set(link) - LEAN_LINK.keys()
        if unknown:
            raise ValueError(f"the lean reader does not read {sorted(unknown)}")
        self.node, self.link = node, link

    def read(self, filename: str, convergence_error: bool = False, darcy_weisbach: bool = False,
             convert: bool = True) -> wntr.sim.SimulationResults:
        raw = np.fromfile(filename, dtype=np.uint8)
        prolog = raw[:60].view(np.int32)
        nnodes, nlinks = int(prolog[2]), int(prolog[4])
        quality, flow_units = QualType(int(prolog[7])), FlowUnits(int(prolog[9]))
        report_start, report_step, duration = int(prolog[12]), int(prolog[13]), int(prolog[14])
        mass = bytes(raw[_PROLOG_BYTES - _ID_BYTES:_PROLOG_BYTES]).split(b"/", 1)[0].decode()
        mass_units = MassUnits[mass] if mass in ("mg", "ug") else MassUnits.mg
        names_end = _PROLOG_BYTES + _ID_BYTES * (nnodes + nlinks)
        names = [bytes(raw[at:at + _ID_BYTES]).rstrip(b"\0").decode()
                 for at in range(_PROLOG_BYTES, names_end, _ID_BYTES)]
        node_names, link_names = names[:nnodes], names[nnodes:]

        periods = int(raw[-_EPILOG_BYTES + 16:-_EPILOG_BYTES + 20].view(np.int32)[0])
        times = np.arange(report_start, duration + report_step - (duration % report_step), report_step)
        if periods < len(times):
            # EPANET saves the step that did not balance, then stops (wntr's reader names the next report time).
            message = f"Simulation did not converge at time {_clock(int(times[max(periods - 1, 0)]))}."
            if convergence_error:
                raise NotConverged(message)
        times = times[:periods]
        period_values = 4 * nnodes + 8 * nlinks
        end = len(raw) - _EPILOG_BYTES
        data = raw[end - periods * period_values * 4:end].view(np.float32).reshape(periods, period_values)

        results = wntr.sim.SimulationResults()
        results.node, results.link = {}, {}
        for name in self.node:
            block = data[:, LEAN_NODE[name] * nnodes:(LEAN_NODE[name] + 1) * nnodes]
            results.node[name] = to_si(name, pd.DataFrame(block, index=times, columns=node_names),
                                          flow_units, quality, mass_units)
        links_at = 4 * nnodes
        for name in self.link:
            start = links_at + LEAN_LINK[name] * nlinks
            block = data[:, start:start + nlinks]
            results.link[name] = to_si(name, pd.DataFrame(block, index=times, columns=link_names),
                                          flow_units, quality, mass_units)
        return results


def to_si(name: str, frame: Any, flow_units: FlowUnits, quality: QualType, mass_units: MassUnits) -> Any:
    """wntr's own conversions to SI, as its reader applies them (to a DataFrame or a numpy array alike: wntr
    converts a DataFrame's numpy values)."""
    if name in _HYDRAULIC:
        return _HYDRAULIC[name]._to_si(flow_units, frame)
    if quality is QualType.Chem:
        return QualParam.Concentration._to_si(flow_units, frame, mass_units=mass_units)
    if quality is QualType.Age:
        return QualParam.WaterAge._to_si(flow_units, frame, mass_units=mass_units)
    return frame


def _clock(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def reader_for(node: set[str], link: set[str]) -> Any:
    """The lean reader when it covers every result type asked for, else wntr's own reader."""
    if node <= LEAN_NODE.keys() and link <= LEAN_LINK.keys():
        return LeanBinFile(tuple(sorted(node)), tuple(sorted(link)))
    return None
