"""One check path: the client's verdict on a member (scenarios.generate, before anything is uploaded) equals the
worker's (engine.run_member, running the member on real EPANET), because both call checks.job_problems after the
run settings apply. The three cases users hit when the client checked the model's own times instead."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cloudburst.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def test_a_model_file_that_is_not_a_model_is_named_without_wntr_templates(tmp_path):
    from cloudburst.engine.models import read_model_file
    csv = tmp_path / "pressures.csv"
    csv.write_text("node,pressure\n10,42.0\n")
    with pytest.raises(InputError) as refused:
        read_model_file(csv)
    assert refused.value.problems == [f"{csv} is not an EPANET .inp file: it has no [JUNCTIONS], [PIPES], "
                                      "[RESERVOIRS] or [TANKS] section"]
    broken = tmp_path / "broken.inp"
    broken.write_text("[JUNCTIONS]\n J1 10 oops\n[END]\n")
    with pytest.raises(InputError) as refused:
        read_model_file(broken)
    assert "(%s)" not in str(refused.value) and str(refused.value).startswith(f"{broken} is not a valid EPANET")
    scenario = tmp_path / "scenario.yml"
    shutil.copy(REPO / "files" / "scenarios" / "net3-demand-roughness.yml", scenario)
    with pytest.raises(InputError, match="looks like a scenario file, not a model: give the model"):
        read_model_file(scenario)
