"""A 10,000+ node model for the benchmarks: three copies of wntr's Net6 (3,356 nodes) joined into one network.

wntr's largest model is Net6. Each copy's node and link IDs get a prefix (``a.``, ``b.``, ``c.``) in every
section that names them (junctions to coordinates, controls and rules included); patterns and curves are shared.
Three short pipes join the same junction of neighbouring copies, so the copies are one network with one
hydraulic solution (10,068 nodes, 11,682 links). Written as plain EPANET .inp text: the same bytes every time.

    .venv/bin/python bench/big_model.py OUT.inp
"""
from __future__ import annotations

import sys
from pathlib import Path

import wntr

NET6 = Path(wntr.__file__).parent / "library" / "networks" / "Net6.inp"
COPIES = ("a", "b", "c")
# Sections naming nodes or links (each copy's lines, prefixed); the rest appear once, from the first copy.
PER_COPY = {"[JUNCTIONS]", "[RESERVOIRS]", "[TANKS]", "[PIPES]", "[PUMPS]", "[VALVES]", "[TAGS]", "[DEMANDS]",
            "[STATUS]", "[CONTROLS]", "[RULES]", "[EMITTERS]", "[QUALITY]", "[SOURCES]", "[MIXING]",
            "[COORDINATES]", "[VERTICES]", "[LABELS]"}
JOINED_AT = ("JUNCTION-1", "JUNCTION-1000", "JUNCTION-2000")  # junctions joined between neighbouring copies


def _sections(text: str) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.strip().startswith("["):
            sections.append((line.strip().upper(), []))
        elif sections:
            sections[-1][1].append(line)
    return sections


def build() -> str:
    text = NET6.read_text()
    wn = wntr.network.WaterNetworkModel(str(NET6))
    names = set(wn.node_name_list) | set(wn.link_name_list)
    shared = set(wn.pattern_name_list) | set(wn.curve_name_list)
    assert not names & shared, f"IDs that are both an element and a pattern or curve: {sorted(names & shared)[:5]}"
    out: list[str] = []
    for header, lines in _sections(text):
        if header == "[END]":
            continue
        out.append(header)
        if header in PER_COPY:
            for copy in COPIES:
                for line in lines:
                    body, _, comment = line.partition(";")
                    tokens = body.split()
                    if not tokens:
                        continue
                    out.append("\t".join(f"{copy}.{token}" if token in names else token for token in tokens))
            if header == "[PIPES]":
                for left, right in zip(COPIES, COPIES[1:]):
                    for junction in JOINED_AT:
                        out.append(f"join.{left}{right}.{junction}\t{left}.{junction}\t{right}.{junction}"
                                   "\t10\t300\t100\t0\tOpen")
        else:
            out.extend(lines)
        out.append("")
    out.append("[END]")
    return "\n".join(out) + "\n"


def write(path: Path) -> Path:
    path.write_text(build())
    return path


if __name__ == "__main__":
    target = write(Path(sys.argv[1]))
    model = wntr.network.WaterNetworkModel(str(target))
    print(f"{target}: {model.num_nodes} nodes, {model.num_links} links")
