"""Alternatives (cloudburst.alternatives): a base scenario and named variants submitted together as ensembles on a
real Redis, Nginx and runner processes; `cloudburst compare` puts their summaries and bands side by side."""

from __future__ import annotations

import pytest
from cloudburst.errors import InputError
from cloudburst.plan.alternatives import variants

SCENARIO = {
    "ensemble": "options", "members": 12, "seed": 3,
    "alterations": [{"type": "demand_scale", "factor": {"distribution": "uniform", "low": 0.8, "high": 1.2}}],
    "output": {"series": [{"element": "node", "attributes": ["pressure"], "ids": ["123"]}]},
    "alternatives": {
        "base": {},
        "more-demand": {"add_alterations": [{"type": "demand_scale", "factor": 1.3}]},
    },
}


def test_variants_keep_the_base_and_its_seed_and_refuse_unknown_changes():
    found = variants(SCENARIO, "options")
    assert list(found) == ["options.base", "options.more-demand"]
    assert found["options.more-demand"]["alterations"][-1] == {"type": "demand_scale", "factor": 1.3}
    assert found["options.base"]["seed"] == found["options.more-demand"]["seed"] == 3
    with pytest.raises(InputError, match=r"\$.alternatives.x: ensemble cannot vary"):
        variants({**SCENARIO, "alternatives": {"x": {"ensemble": "other"}}}, "options")
