"""Role variables documented once (tools/role_docs.py): every default has its own comment, each spec's
description is that comment, and each role README's table is generated from the specs."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "role_docs.py"


def check(roles: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), "--check", "--roles", str(roles)], capture_output=True, text=True)


def test_every_roles_defaults_specs_and_readme_agree():
    result = check(REPO / "roles")
    assert result.returncode == 0, result.stderr


def test_a_drifted_readme_a_shared_comment_and_an_undocumented_default_are_each_named(tmp_path):
    roles = tmp_path / "roles"
    shutil.copytree(REPO / "roles" / "swarm", roles / "swarm")
    readme = roles / "swarm" / "README.md"
    readme.write_text(readme.read_text().replace("Seconds a node may take", "Minutes a node may take"))
    defaults = roles / "swarm" / "defaults" / "main.yml"
    text = defaults.read_text().replace("# UDP port of the overlay data path (VXLAN).\n", "")
    defaults.write_text(text + "swarm_new_knob: 1\n")
    result = check(roles)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "roles/swarm/defaults/main.yml: swarm_data_path_port has no comment of its own above it",
        "roles/swarm/defaults/main.yml: swarm_new_knob has no comment of its own above it",
        "roles/swarm: default swarm_new_knob is not in meta/argument_specs.yml",
        "roles/swarm/README.md: its variable table differs from the argument specs (run tools/role_docs.py)",
    ]
    subprocess.run([sys.executable, str(TOOL), "--roles", str(roles)], check=False)
    assert "Seconds a node may take to be listed Ready" in readme.read_text()  # the table is regenerated
