"""A stormwater ensemble with SWMM (pyswmm): a design storm scaled by uncertain factors, one member per task.

Runs as a CloudBurst task set (``cloudburst tasks submit stormwater:run_member members.jsonl``, or
``Client.map("stormwater:run_member", ...)``): each task names the model by the sha256 ``cloudburst upload`` printed,
and its own rainfall and imperviousness factors. A member returns its peak flows and flooding as a JSON object,
a row of the task set's results.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from pyswmm import Nodes, Simulation, Subcatchments

from cloudburst import worker as cloudburst_worker

_SECTION = re.compile(r"^\s*\[([A-Z_]+)\]")


def scaled_model(text: str, rain_factor: float, impervious_factor: float) -> str:
    """The model's text with every rainfall time series value times ``rain_factor`` and every subcatchment's
    impervious share times ``impervious_factor`` (at most 100 %)."""
    lines, section = [], ""
    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
        fields = line.split()
        data = fields and not line.lstrip().startswith(";") and not header
        if data and section == "TIMESERIES" and len(fields) >= 3:
            fields[-1] = f"{float(fields[-1]) * rain_factor:.6g}"
            line = "  ".join(fields)
        elif data and section == "SUBCATCHMENTS" and len(fields) >= 5:
            fields[4] = f"{min(float(fields[4]) * impervious_factor, 100.0):.6g}"
            line = "  ".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"


def run_member(model: str, rain_factor: float, impervious_factor: float = 1.0, member: int | None = None,
               outfall: str = "O1") -> dict:
    """One member: the model (an uploaded file's sha256, or a path on the worker) under the scaled storm.

    Returns the outfall's peak flow, each subcatchment's total runoff summed, and flooding: the volume over all
    nodes, how many nodes flooded, and the worst node.
    """
    if rain_factor < 0 or impervious_factor < 0:
        raise ValueError(f"factors are >= 0, not rain {rain_factor} and impervious {impervious_factor}")
    source = cloudburst_worker.model_file(model) if re.fullmatch(r"[0-9a-f]{64}", model) else Path(model)
    scratch = Path(tempfile.mkdtemp(prefix="swmm-member-"))  # SWMM writes .rpt and .out beside its input
    try:
        path = scratch / "model.inp"
        path.write_text(scaled_model(source.read_text(), rain_factor, impervious_factor))
        with Simulation(str(path)) as simulation:
            for _ in simulation:
                pass
            nodes = {node.nodeid: node for node in Nodes(simulation)}
            flooding = {name: node.statistics["flooding_volume"] for name, node in nodes.items()
                        if name != outfall}
            peak = nodes[outfall].outfall_statistics["peak_flowrate"]
            runoff = sum(subcatchment.statistics["runoff"] for subcatchment in Subcatchments(simulation))
        worst = max(flooding, key=flooding.get)
        return {"member": member, "rain_factor": rain_factor, "impervious_factor": impervious_factor,
                "peak_outfall_flow_cms": peak, "runoff_m3": runoff,
                "flooding_m3": sum(flooding.values()), "flooded_nodes": sum(volume > 0 for volume in flooding.values()),
                "worst_node": worst if flooding[worst] > 0 else None}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
