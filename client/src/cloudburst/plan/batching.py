"""Members per queue job: the scenario's ``batch`` setting, or enough members for a few seconds of work each, going
by one timed run here of the model with the scenario's run settings on the engine the members will run on."""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import wntr

from cloudburst.engine import alterations, warm
from cloudburst.engine import batch as engine
from cloudburst.errors import EpanetError, InputError, MemberFailed
from cloudburst.schema import batch as batching
from cloudburst.schema.job import parse_job


def batch_members(setting: Any, data: bytes, wn: wntr.network.WaterNetworkModel, members: int,
                  member: dict[str, Any]) -> int:
    """Members per batch: the scenario's ``batch: {members: N}``, or enough for ``batch: {seconds: S}`` (default
    3 s) going by one run here of the model with the scenario's run settings (its duration, steps, quality) on the
    engine the members will run on (``member``: one of them), without their alterations."""
    setting = setting if setting is not None else {}
    if not isinstance(setting, dict) or set(setting) - {"members", "seconds"} or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in setting.values()):
        raise InputError("$.batch: give members (a whole number > 0) or seconds (> 0), e.g. {seconds: 3}")
    if "members" in setting:
        return min(int(setting["members"]), batching.MAX_BATCH_MEMBERS)
    job = parse_job(member)
    settings = job.run.model_copy(update={"alterations": []})
    seconds = None
    if warm.file_path_reason(job) is None:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.inp"
            path.write_bytes(data)
            try:
                seconds = warm.solve_seconds(path, wn, settings)
            except EpanetError:
                pass  # EPANET 2.3.5 does not open it: the plan refuses the ensemble, saying so
    if seconds is None:
        timed = copy.deepcopy(wn)
        alterations.apply_run(settings, timed)
        started = time.perf_counter()
        try:
            engine.simulate(settings, timed)
        except MemberFailed:
            pass  # the unaltered model does not run; its members' failures will say why, and timing it still tells
        seconds = time.perf_counter() - started
    return batching.batch_size(seconds, float(setting.get("seconds", batching.DEFAULT_BATCH_S)), members,
                               workers=batching.SPREAD_OVER)
