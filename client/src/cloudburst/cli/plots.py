"""Pictures of results (matplotlib, written to a file): the fan chart of an element's statistics, and the network map
coloured by the probability of a threshold being passed."""
from __future__ import annotations

from typing import Any

import pandas as pd
import wntr

UNITS = {"pressure": "pressure (m)", "head": "head (m)", "demand": "demand (m³/s)", "flowrate": "flow (m³/s)",
         "velocity": "velocity (m/s)", "headloss": "headloss", "quality": "quality"}


def percentile_columns(table: pd.DataFrame) -> list[str]:
    """The table's percentile columns (``p5``, ``p50``, ``p97.5``...), lowest first: the scenario chose them."""
    found = [column for column in table.columns if column.startswith("p") and column[1:].replace(".", "", 1).isdigit()]
    return sorted(found, key=lambda column: float(column[1:]))


def plot_fan(table: pd.DataFrame, title: str, attribute: str, path: str) -> None:
    """The min-max band, a band between each pair of percentiles the scenario asked for (outermost first) and the
    median when asked for, over hours since the start (``Ensemble.percentiles``' table)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(10, 5))
    hours = table["elapsed_s"] / 3600
    axes.fill_between(hours, table["min"], table["max"], color="tab:blue", alpha=0.15, label="min-max")
    columns = percentile_columns(table)
    lows = [column for column in columns if float(column[1:]) < 50]
    highs = [column for column in reversed(columns) if float(column[1:]) > 50]
    for depth, (low, high) in enumerate(zip(lows, highs)):
        axes.fill_between(hours, table[low], table[high], color="tab:blue", alpha=0.25 + 0.1 * depth,
                          label=f"{low}-{high}")
    if "p50" in table.columns:
        axes.plot(hours, table["p50"], color="tab:blue", label="median")
    axes.set_xlabel("hours from the start of the run")
    axes.set_ylabel(UNITS.get(attribute, attribute))
    axes.set_title(f"{title} ({int(table['count'].max())} members)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_risk_map(wn: wntr.network.WaterNetworkModel, table: pd.DataFrame, title: str, path: str,
                  labelled: int = 5) -> None:
    """The network from the model's coordinates: links as lines, nodes coloured by ``Ensemble.risk``'s
    probability (nodes without one grey), tanks as squares and reservoirs as triangles, the ``labelled`` worst
    elements named."""
    probability = dict(zip(table["element"], table["probability"]))
    figure, axes = _network_figure(wn)
    points = None
    for node_type, marker, size in (("Junction", "o", 18), ("Tank", "s", 60), ("Reservoir", "^", 70)):
        names = [name for name, node in wn.nodes() if node.node_type == node_type]
        known = [name for name in names if name in probability]
        other = [name for name in names if name not in probability]
        label = f"{node_type.lower()}s" if node_type != "Junction" else None
        if other:
            axes.scatter([wn.get_node(n).coordinates[0] for n in other], [wn.get_node(n).coordinates[1] for n in other],
                         s=size / 3 if node_type == "Junction" else size, marker=marker, color="0.6", zorder=2,
                         label=label if not known else None)
        if known:
            points = axes.scatter([wn.get_node(n).coordinates[0] for n in known],
                                  [wn.get_node(n).coordinates[1] for n in known], marker=marker, s=size,
                                  c=[probability[n] for n in known], cmap="YlOrRd", vmin=0, vmax=1, zorder=3,
                                  label=label)
    for name in table["element"].head(labelled):
        if name in wn.node_name_list:
            x, y = wn.get_node(name).coordinates
            axes.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8, zorder=4)
    if points is not None:
        figure.colorbar(points, ax=axes, label="probability")
    if axes.get_legend_handles_labels()[1]:
        axes.legend(loc="best", fontsize=8)
    _save_map(figure, axes, title, path)


def plot_bands(table: pd.DataFrame, title: str, attribute: str, path: str) -> None:
    """Each ensemble's p5-p95 band and median over hours since the start (``Alternatives.bands``' table), one
    colour per ensemble."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(10, 5))
    for index, (name, rows) in enumerate(table.groupby("ensemble", sort=False)):
        colour = f"C{index % 10}"
        hours = rows["elapsed_s"] / 3600
        axes.fill_between(hours, rows["p5"], rows["p95"], color=colour, alpha=0.25)
        axes.plot(hours, rows["p50"], color=colour, label=f"{name} ({int(rows['members'].max())} members)")
    axes.set_xlabel("hours from the start of the run")
    axes.set_ylabel(UNITS.get(attribute, attribute))
    axes.set_title(f"{title}: median and p5-p95")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_sensors(wn: wntr.network.WaterNetworkModel, harm: pd.Series, sensors: list[str], title: str,
                 path: str) -> None:
    """The network from the model's coordinates: links as lines, each injection node coloured by its harm
    (``harm``: node -> value), the chosen sensors as large black-edged stars, named."""
    figure, axes = _network_figure(wn)
    known = [name for name in harm.index if name in wn.node_name_list]
    points = axes.scatter([wn.get_node(n).coordinates[0] for n in known],
                          [wn.get_node(n).coordinates[1] for n in known], c=[harm[n] for n in known], cmap="YlOrRd",
                          s=20, zorder=2)
    figure.colorbar(points, ax=axes, label=str(harm.name or "harm"))
    axes.scatter([wn.get_node(n).coordinates[0] for n in sensors], [wn.get_node(n).coordinates[1] for n in sensors],
                 marker="*", s=260, color="tab:blue", edgecolors="black", zorder=3, label="sensors")
    for name in sensors:
        x, y = wn.get_node(name).coordinates
        axes.annotate(name, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=9, zorder=4)
    axes.legend(loc="best", fontsize=8)
    _save_map(figure, axes, title, path)


def _network_figure(wn: wntr.network.WaterNetworkModel) -> tuple[Any, Any]:
    """A figure with the network's links drawn as grey lines from the model's coordinates."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(9, 8))
    for name in wn.link_name_list:
        link = wn.get_link(name)
        (x1, y1), (x2, y2) = link.start_node.coordinates, link.end_node.coordinates
        axes.plot([x1, x2], [y1, y2], color="0.75", linewidth=0.6, zorder=1)
    return figure, axes


def _save_map(figure: Any, axes: Any, title: str, path: str) -> None:
    import matplotlib.pyplot as plt
    axes.set_title(title)
    axes.set_aspect("equal", adjustable="datalim")
    axes.set_xticks([])
    axes.set_yticks([])
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
