"""A calibration study on the cluster: scipy's ``differential_evolution`` fits a factor per unknown (roughness per
pipe group, demand per zone or pattern) to observed pressures, heads, tank levels and flows, its population's
candidates each generation one evaluation round (scipy's vectorised evaluation: the cluster is the vector).

    fit = client.calibrate("net3.inp", "net3-calibration.yml", name="net3-fit")
    fit.fitted()       # per unknown: the factor found, and whether the observations can tell it (identifiable)
    fit.residuals()    # per observation: observed, simulated, residual
    fit.plot("fit.png")

A stopped study resumes from its name to the answers an uninterrupted one gives (``cloudburst.api.search``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cloudburst.api.search import Generation, Search, evaluations, open_search, study_section
from cloudburst.errors import InputError
from cloudburst.plan.calibration import ATTRIBUTES, CALIBRATION, FLAT, CalibrationStudy, parse_calibration
from cloudburst.schema import evaluation as rounds
from cloudburst.schema import search as fmt

if TYPE_CHECKING:
    from cloudburst.api.services import Services
    from cloudburst.plan.rounds import RoundSettings
    from cloudburst.plan.submission import ModelFile

Progress = Callable[[dict[str, Any]], None]
PROBE = 0.05   # identifiability: each unknown moved by this fraction either way from the fitted value


class Calibration(Search):
    """A calibration study: its search (``run``, which resumes a stopped one) and its answers as DataFrames."""
    kind = CALIBRATION
    score_columns = (fmt.OBJECTIVE,)

    def __init__(self, services: Services, name: str, model: ModelFile, content: dict[str, Any],
                 timeout_s: int = 600):
        super().__init__(services, name, model, content, timeout_s)
        self.study: CalibrationStudy = parse_calibration(study_section(content, CALIBRATION), model.wn,
                                                         content.get("run"))

    def _round_settings(self) -> tuple[RoundSettings, list[str]]:
        from cloudburst.plan.rounds import RoundSettings
        return (RoundSettings.of(self.model, self.services.model_input(self.model.sha256), self.content.get("run"),
                                 [], 20.0, self.study.observe), [rounds.OBSERVED])

    def simulate(self, candidates: np.ndarray, prechecked: bool = True) -> np.ndarray:
        """Each candidate's simulated observations (SI), one round."""
        result = self.session().evaluate([self.study.sets(candidate) for candidate in candidates],
                                         prechecked=prechecked)
        return result[rounds.OBSERVED]

    def _score(self, candidates: np.ndarray) -> dict[str, np.ndarray]:
        return {fmt.OBJECTIVE: self.study.objectives(self.simulate(candidates))}

    def check_first(self) -> None:
        """Every unknown at 1 (the model as it is) run once, checked set by set: the observations exist in the run."""
        simulated = self.simulate(np.ones((1, len(self.study.unknowns))), prechecked=False)
        if np.isnan(simulated).any():
            missing = [self.study.labels[index] for index in np.flatnonzero(np.isnan(simulated[0]))[:3]]
            raise InputError(f"$.study.observations: the model as it is does not run to {missing}: its run fails or "
                             "stops before those times")

    def run(self, on_generation: Progress | None = None) -> Calibration:
        """Fit to the end of the evaluation budget (resuming from the stored generations), then store the answers.
        ``on_generation`` is called after each generation (generation, evaluations, best_objective, seconds,
        replayed)."""
        from scipy.optimize import differential_evolution

        stored = self.generations()
        self.started()
        study = self.study
        record: list[Generation] = []
        started = time.monotonic()
        best = [np.inf]

        def objective(population: np.ndarray) -> np.ndarray | float:
            # scipy's vectorised call: one column per candidate (its final polish asks for one candidate at a time)
            candidates = np.ascontiguousarray(np.atleast_2d(population.T))
            replayed = len(record) < len(stored)
            scores = self._answered(candidates, len(record), stored)
            record.append(scores)
            best[0] = min(best[0], float(scores[fmt.OBJECTIVE].min()))
            if on_generation is not None:
                on_generation({"generation": len(record), "evaluations": int(evaluations(record)[-1]),
                               "best_objective": best[0], "seconds": time.monotonic() - started,
                               "replayed": replayed})
            return np.asarray(scores[fmt.OBJECTIVE]) if population.ndim == 2 else float(scores[fmt.OBJECTIVE][0])

        per_generation = study.optimizer.population * len(study.unknowns)
        try:
            differential_evolution(objective, study.bounds, popsize=study.optimizer.population,
                                   maxiter=max(study.optimizer.evaluations // per_generation - 1, 1),
                                   seed=study.optimizer.seed, vectorized=True, updating="deferred",
                                   polish=study.optimizer.polish,
                                   tol=0.0, atol=0.0, init="latinhypercube")
        finally:
            self.flush()
        self.finished(self._answers_of(record))
        return self

    def _answers_of(self, stored: list[Generation]) -> dict[str, pd.DataFrame]:
        study = self.study
        candidates = np.concatenate([generation[fmt.DESIGN] for generation in stored])
        scores = np.concatenate([generation[fmt.OBJECTIVE] for generation in stored])
        fitted = candidates[int(np.argmin(scores))]
        count = len(study.unknowns)
        probes = np.repeat(fitted.reshape(1, -1), 2 * count + 1, axis=0)
        for index in range(count):
            probes[1 + 2 * index, index] *= 1 + PROBE
            probes[2 + 2 * index, index] *= 1 - PROBE
        simulated = self.simulate(probes)
        sensitivity = np.array([np.nanmax(np.abs(simulated[1 + 2 * index] - simulated[2 + 2 * index]))
                                for index in range(count)])
        fitted_table = pd.DataFrame({
            "unknown": [unknown.label for unknown in study.unknowns],
            "kind": [unknown.kind for unknown in study.unknowns],
            "group": [unknown.group for unknown in study.unknowns],
            "low": [unknown.low for unknown in study.unknowns], "high": [unknown.high for unknown in study.unknowns],
            "value": fitted, "identifiable": sensitivity > FLAT, "sensitivity": sensitivity,
            "objective": float(scores.min())})
        to_si = np.array([ATTRIBUTES[attribute][2] for _, attribute, _ in study.labels])
        residuals = pd.DataFrame({
            "element": [element for element, _, _ in study.labels],
            "attribute": [attribute for _, attribute, _ in study.labels],
            "time_s": [time_s for _, _, time_s in study.labels],
            "observed": study.observed / to_si, "simulated": simulated[0] / to_si,
            "residual": (simulated[0] - study.observed) / to_si, "weight": study.weights})
        return {fmt.FITTED: fitted_table, fmt.RESIDUALS: residuals, fmt.CONVERGENCE: _convergence(stored)}

    def fitted(self) -> pd.DataFrame:
        """Per unknown: its range, the fitted factor, whether the observations can tell it (``identifiable``: moving
        it 5 % either way moves some simulated observation by more than 1e-6), that movement, and the objective."""
        return self.answer(fmt.FITTED)

    def residuals(self) -> pd.DataFrame:
        """Per observation (units as given: m, or L/s for flows): observed, simulated with the fitted factors,
        residual, weight."""
        return self.answer(fmt.RESIDUALS)

    def convergence(self) -> pd.DataFrame:
        """Per generation: evaluations so far, the best objective so far."""
        return self.answer(fmt.CONVERGENCE)

    @staticmethod
    def _convergence_of(stored: list[Generation]) -> pd.DataFrame:
        return _convergence(stored)

    def status(self) -> dict[str, Any]:
        """How far the fit is: state, generations, evaluations, best objective."""
        state, convergence = self.progress()
        last = convergence.iloc[-1] if len(convergence) else None
        best = float(last["best_objective"]) if last is not None else float("nan")
        return {"calibration": self.name, "state": state, "generations": len(convergence),
                "evaluations": int(last["evaluations"]) if last is not None else 0,
                "budget": self.study.optimizer.evaluations, "best_objective": best,
                "unknowns": [unknown.label for unknown in self.study.unknowns]}

    def plot(self, path: str) -> None:
        """Observed against simulated over time, one panel per observed element and attribute."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        residuals = self.residuals()
        series = list(residuals.groupby(["element", "attribute"], sort=False))
        columns = min(3, len(series))
        rows = -(-len(series) // columns)
        figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
        for axis, ((element, attribute), table) in zip(axes.flat, series):
            hours = table["time_s"] / 3600
            axis.plot(hours, table["observed"], "o", label="observed")
            axis.plot(hours, table["simulated"], "-x", label="simulated (fitted)")
            axis.set_title(f"{attribute} at {element}")
            axis.set_xlabel("hours")
            axis.set_ylabel("L/s" if attribute == "flow" else "m")
            axis.grid(alpha=0.3)
        for axis in list(axes.flat)[len(series):]:
            axis.set_visible(False)
        axes.flat[0].legend()
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)


def open_calibration(services: Services, name: str, model: ModelFile | None = None,
                     content: dict[str, Any] | None = None, timeout_s: int = 600) -> Calibration:
    """A calibration study: a new one, or the stored one of that name (``cloudburst.api.search.open_search``)."""
    return open_search(Calibration, services, name, model, content, timeout_s)


def _convergence(stored: list[Generation]) -> pd.DataFrame:
    """Per generation: evaluations so far, the best objective so far."""
    best, rows = np.inf, []
    for generation, (scores, run) in enumerate(zip(stored, evaluations(stored)), start=1):
        best = min(best, float(scores[fmt.OBJECTIVE].min()))
        rows.append({"generation": generation, "evaluations": int(run), "best_objective": best})
    return pd.DataFrame(rows, columns=["generation", "evaluations", "best_objective"])
