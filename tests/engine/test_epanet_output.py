"""The lean EPANET output reader gives wntr's reader's values exactly, or hands over to it."""
import os
import tempfile
from pathlib import Path

import pytest
import wntr
from cloudburst.engine.epanet_output import (
    LEAN_LINK,
    LEAN_NODE,
    LeanBinFile,
    NotConverged,
    reader_for,
)

NETWORKS = Path(wntr.__file__).parent / "library" / "networks"


def run(wn, reader=None):
    with tempfile.TemporaryDirectory() as workdir:
        return wntr.sim.EpanetSimulator(wn, reader=reader).run_sim(file_prefix=os.path.join(workdir, "run"),
                                                                   convergence_error=True)


@pytest.mark.parametrize("network", ["Net1", "Net3"])  # Net1 in SI-less GPM with a chemical, Net3 with pumps
@pytest.mark.parametrize("quality", ["NONE", "AGE", "CHEMICAL", "TRACE"])
def test_lean_reader_values_equal_wntrs_reader_exactly(network, quality):
    wn = wntr.network.WaterNetworkModel(str(NETWORKS / f"{network}.inp"))
    wn.options.quality.parameter = quality
    if quality == "TRACE":
        wn.options.quality.trace_node = wn.reservoir_name_list[0]
    if quality == "CHEMICAL":
        wn.add_source("injection", wn.junction_name_list[3], "SETPOINT", 2.5)
    expected = run(wn)
    lean = run(wn, LeanBinFile(tuple(LEAN_NODE), tuple(LEAN_LINK)))
    for kind, names in (("node", LEAN_NODE), ("link", LEAN_LINK)):
        for name in names:
            got, want = getattr(lean, kind)[name], getattr(expected, kind)[name]
            assert got.equals(want), f"{kind} {name} differs"
            assert list(got.columns) == list(want.columns) and list(got.index) == list(want.index)
    assert expected.node["pressure"].abs().to_numpy().sum() > 0


def test_result_types_outside_the_lean_set_go_to_wntrs_reader():
    assert isinstance(reader_for({"pressure", "demand"}, {"flowrate"}), LeanBinFile)
    assert reader_for({"pressure"}, {"headloss"}) is None
    assert reader_for({"leak_demand"}, set()) is None
    with pytest.raises(ValueError, match="status"):
        LeanBinFile(link=("status",))


def test_an_unbalanced_network_is_reported_as_not_converged():
    wn = wntr.network.WaterNetworkModel(str(NETWORKS / "Net3.inp"))
    wn.options.hydraulic.trials = 1
    wn.options.hydraulic.unbalanced = "STOP"
    with pytest.raises(NotConverged, match="did not converge at time"):
        run(wn, LeanBinFile(("pressure",)))
    with pytest.raises(RuntimeError, match="did not converge at time"):
        run(wn)
