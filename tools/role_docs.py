#!/usr/bin/env python3
"""Role variables documented once: each default's own comment in ``defaults/main.yml`` is its description in
``meta/argument_specs.yml``, and each role README's variable table is generated from the specs.

    tools/role_docs.py            # copy the comments into the specs, rewrite the tables in roles/*/README.md
    tools/role_docs.py --check    # change nothing; exit 1 naming each default, spec or README that differs

A table row per option of the role's entry points (``main`` first): the default as written in
``defaults/main.yml`` (else the spec's ``default``, else "required" or "none"), and the spec's description.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[1] / "roles"
HEADER = ["| variable | default | meaning |", "| --- | --- | --- |"]
_KEY = re.compile(r"^([a-z][a-z0-9_]*):(.*)$")


def defaults_text(role: Path) -> dict[str, str]:
    """Each top-level default as written (a one-line value; a block value as its YAML in flow style)."""
    path = role / "defaults" / "main.yml"
    if not path.exists():
        return {}
    loaded = yaml.safe_load(path.read_text()) or {}
    written = {}
    for line in path.read_text().splitlines():
        match = _KEY.match(line)
        if match:
            value = match.group(2).strip()
            if not value or value[0] in ">|":  # a block value: shown as its content
                loaded_value = loaded[match.group(1)]
                value = loaded_value.strip() if isinstance(loaded_value, str) else yaml.safe_dump(
                    loaded_value, default_flow_style=True).strip()
            written[match.group(1)] = value
    return written


def default_comments(role: Path) -> dict[str, str]:
    """Each default's comment: the comment lines directly above it, joined."""
    path = role / "defaults" / "main.yml"
    comments: dict[str, str] = {}
    block: list[str] = []
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("#"):
            block.append(line.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if match and block:
            comments[match.group(1)] = " ".join(block)
        if line.strip() and not line.startswith((" ", "-")):
            block = []
    return comments


def specs_with_comments(role: Path) -> str:
    """The role's argument_specs.yml text with each described option's description set to its default's comment
    (a text edit: anchors, order and every other line stay as written)."""
    comments = default_comments(role)
    lines = (role / "meta" / "argument_specs.yml").read_text().splitlines()
    result: list[str] = []
    index = 0
    current: str | None = None
    option_indent = None
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        key = re.match(r"([a-z][a-z0-9_]*):\s*$", stripped)
        if key and key.group(1) in comments:
            current, option_indent = key.group(1), indent
        elif current is not None and indent <= (option_indent or 0) and stripped:
            current = None
        if current is not None and stripped.startswith("description:"):
            dumped = yaml.safe_dump({"description": comments[current]}, width=110, sort_keys=False).splitlines()
            result += [" " * indent + dumped[0]] + [" " * indent + "  " + rest.strip() for rest in dumped[1:]]
            index += 1
            while index < len(lines) and lines[index].strip() and \
                    len(lines[index]) - len(lines[index].lstrip()) > indent:
                index += 1
            continue
        result.append(line)
        index += 1
    return "\n".join(result) + "\n"


def uncommented_defaults(role: Path) -> list[str]:
    """Defaults without a comment line of their own directly above them."""
    path = role / "defaults" / "main.yml"
    if not path.exists():
        return []
    problems, previous = [], ""
    for line in path.read_text().splitlines():
        match = _KEY.match(line)
        if match and not previous.lstrip().startswith("#"):
            problems.append(f"roles/{role.name}/defaults/main.yml: {match.group(1)} has no comment of its own above it")
        if line.strip() and not line.startswith((" ", "-")):
            previous = line
    return problems


def options(role: Path) -> dict[str, dict]:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    found: dict[str, dict] = {}
    for entry in sorted(specs, key=lambda name: name != "main"):
        for name, spec in (specs[entry].get("options") or {}).items():
            found.setdefault(name, spec)
    return found


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def table(role: Path) -> list[str]:
    written = defaults_text(role)
    specs = options(role)
    order = [name for name in written if name in specs] + [name for name in specs if name not in written]
    rows = []
    for name in order:
        spec = specs[name]
        if name in written:
            value = written[name]
            if len(value) > 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]  # a quoted string (a template), shown as its content
            default = f"`{_cell(value)}`"
        elif "default" in spec:
            default = f"`{_cell(yaml.safe_dump(spec['default'], default_flow_style=True).strip())}`"
        else:
            default = "required" if spec.get("required") else "none"
        description = spec.get("description", "")
        description = " ".join(description) if isinstance(description, list) else description
        rows.append(f"| `{name}` | {default} | {_cell(description)} |")
    return HEADER + rows


def rewritten(role: Path) -> tuple[str, str]:
    """The README as it is and as it should be."""
    readme = (role / "README.md").read_text()
    lines = readme.splitlines()
    start = lines.index("## Variables")
    first = next(index for index in range(start + 1, len(lines)) if lines[index].startswith("|"))
    last = first
    while last < len(lines) and lines[last].startswith("|"):
        last += 1
    return readme, "\n".join(lines[:first] + table(role) + lines[last:]) + "\n"


def undescribed(role: Path) -> list[str]:
    specs, written = options(role), defaults_text(role)
    problems = [f"roles/{role.name}: {name} has no description in meta/argument_specs.yml"
                for name, spec in specs.items() if not spec.get("description")]
    problems += [f"roles/{role.name}: default {name} is not in meta/argument_specs.yml" for name in written
                 if name not in specs]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when anything differs")
    parser.add_argument("--roles", type=Path, default=ROLES, help="the roles directory (default: the repository's)")
    args = parser.parse_args(argv)
    problems = []
    for role in sorted(path for path in args.roles.iterdir() if (path / "meta" / "argument_specs.yml").exists()):
        problems += uncommented_defaults(role) + undescribed(role)
        specs_path = role / "meta" / "argument_specs.yml"
        specs_wanted = specs_with_comments(role)
        if specs_path.read_text() != specs_wanted:
            if args.check:
                problems.append(f"roles/{role.name}/meta/argument_specs.yml: a description differs from its default's "
                                "comment (run tools/role_docs.py)")
            else:
                specs_path.write_text(specs_wanted)
        current, wanted = rewritten(role)
        if current != wanted:
            if args.check:
                problems.append(f"roles/{role.name}/README.md: its variable table differs from the argument specs "
                                "(run tools/role_docs.py)")
            else:
                (role / "README.md").write_text(wanted)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
