"""Task sets (your own functions) against a real Redis, Nginx (files and the results store), InfluxDB and runner
processes running the SWMM example env and the test probes: map, follow, collect, failures, bad input, cancel,
retry, delete, RQ's own enqueue, and the stormwater ensemble end to end."""

from __future__ import annotations

import pytest
from cloudburst.errors import InputError
from cloudburst.schema import taskpack as taskformat


def test_a_function_is_module_colon_function_and_task_lines_are_json_lists_or_objects():
    assert taskformat.parse_function("stormwater:run_member") == ("stormwater", "run_member")
    assert taskformat.parse_function("a.b.fn") == ("a.b", "fn")
    with pytest.raises(InputError, match="module:function"):
        taskformat.parse_function("worker:")
    tasks = taskformat.read_task_lines(['[1, 2]', '', '{"a": 1}', '3'], "args.jsonl")
    assert tasks == [[1, 2], {"a": 1}, [3]]
    with pytest.raises(InputError) as bad:
        taskformat.read_task_lines(['[1]', '{"a": ', '{"1": 2, "b": NaN}', '[1]'], "args.jsonl")
    assert bad.value.problems == ["args.jsonl line 2: not JSON (Expecting value at column 7)"]


def test_packs_spread_tasks_over_the_listening_workers_and_cap_their_size():
    assert taskformat.pack_size(10, workers=2) == 2
    assert taskformat.pack_size(100_000, workers=4) == taskformat.MAX_PACK_TASKS
    assert taskformat.pack_size(7, workers=0) == 2
    assert taskformat.pack_size(7, workers=4, per_job=3) == 3
    with pytest.raises(InputError, match="tasks per job"):
        taskformat.pack_size(7, workers=4, per_job=0)
