"""Benchmark: site.yml on the test cluster (Molecule's stack scenario: one master and two workers, Docker-in-Docker
bare hosts, build mode): from bare hosts to the converged stack, then a no-op re-run.

Creates the scenario's hosts, times `molecule converge` (site.yml) and `molecule idempotence` (the re-run, which
must change nothing), then destroys them. Images already built on the controller are reused (their tags are
the hashes of their build contexts); the first run on a machine also builds them.

    .venv/bin/python bench/site_converge.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from verdict import verdict

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def molecule(action: str) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0"}
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "molecule"), action, "-s", "stack"], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"molecule {action} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    molecule("destroy")
    try:
        create_s = molecule("create")
        converge_s = molecule("converge")
        rerun_s = molecule("idempotence")
    finally:
        molecule("destroy")
    print("site.yml on the test cluster (1 master + 2 workers, Docker-in-Docker bare hosts, build mode)")
    print(f"  bare hosts -> converged stack: {converge_s:6.1f} s   (creating the hosts: {create_s:.1f} s)")
    print(f"  no-op re-run (changed=0):      {rerun_s:6.1f} s")
    print(verdict("bare hosts to converged", converge_s, 600, at_least=False, unit=" s"))
    print(verdict("no-op re-run", rerun_s, 120, at_least=False, unit=" s"))


if __name__ == "__main__":
    main()
