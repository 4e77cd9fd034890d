"""Pictures of results: the fan chart of an element's percentile bands (matplotlib, written to a file)."""
from __future__ import annotations

import pandas as pd

UNITS = {"pressure": "pressure (m)", "head": "head (m)", "demand": "demand (m³/s)", "flowrate": "flow (m³/s)",
         "velocity": "velocity (m/s)", "headloss": "headloss", "quality": "quality"}


def plot_fan(table: pd.DataFrame, title: str, attribute: str, path: str) -> None:
    """Min-max and p5-p95 bands and the median over hours since the start (``Ensemble.percentiles``' table)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(10, 5))
    hours = table["elapsed_s"] / 3600
    axes.fill_between(hours, table["min"], table["max"], color="tab:blue", alpha=0.15, label="min-max")
    axes.fill_between(hours, table["p5"], table["p95"], color="tab:blue", alpha=0.35, label="p5-p95")
    axes.plot(hours, table["p50"], color="tab:blue", label="median")
    axes.set_xlabel("hours from the start of the run")
    axes.set_ylabel(UNITS.get(attribute, attribute))
    axes.set_title(f"{title} ({int(table['count'].max())} members)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
