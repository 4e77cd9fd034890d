"""A design study on the cluster: pymoo's GA (one objective) or NSGA-II (two) searches the pipes' options, each
generation one evaluation round (``cloudburst.api.evaluation``) of every new design under every loading.

    design = client.design("hanoi.inp", "hanoi-design.yml", name="hanoi-1")   # runs (or resumes) to the end
    design.best()          # per pipe: option, diameter, length, cost
    design.convergence()   # evaluations -> best feasible cost
    design.pareto()        # two objectives: the non-dominated designs
    design.pressures()     # the best design's least and greatest pressure per junction and loading

A stopped study resumes from its name to the answers an uninterrupted one gives, running no design twice
(``cloudburst.api.search``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cloudburst.api.search import Generation, Search, evaluations, open_search, study_section
from cloudburst.errors import InputError
from cloudburst.plan.design import DESIGN, DesignStudy, parse_design
from cloudburst.schema import search as fmt

if TYPE_CHECKING:
    from cloudburst.api.services import Services
    from cloudburst.plan.rounds import RoundSettings
    from cloudburst.plan.submission import ModelFile

FAILED_SCORE = 1e12   # what a design whose run failed scores in pymoo: infeasible and worst
Progress = Callable[[dict[str, Any]], None]


def _scores(study: DesignStudy, cost: np.ndarray, shortfall: np.ndarray,
            resilience: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """pymoo's F (objectives, minimised) and G (<= 0 feasible) of designs."""
    failed = ~np.isfinite(shortfall)
    bounded = np.where(failed, FAILED_SCORE, shortfall)
    if study.objectives == ["cost"]:
        return cost.reshape(-1, 1), bounded.reshape(-1, 1)
    if study.objectives[1] == "resilience":
        second = np.where(failed | np.isnan(resilience), FAILED_SCORE, -resilience)
        return np.column_stack([cost, second]), bounded.reshape(-1, 1)
    return np.column_stack([cost, np.clip(bounded, 0.0, None)]), None


def _algorithm(study: DesignStudy) -> Any:
    """pymoo's GA or NSGA-II over option indices: integer sampling, SBX crossover and polynomial mutation rounded
    to integers (pymoo's own recipe for discrete variables), duplicates removed within a generation."""
    from pymoo.algorithms.moo.nsga2 import NSGA2  # type: ignore[import-untyped]  # pymoo ships no type hints
    from pymoo.algorithms.soo.nonconvex.ga import GA  # type: ignore[import-untyped]
    from pymoo.core.sampling import Sampling  # type: ignore[import-untyped]
    from pymoo.operators.crossover.sbx import SBX  # type: ignore[import-untyped]
    from pymoo.operators.mutation.pm import PM  # type: ignore[import-untyped]
    from pymoo.operators.repair.rounding import RoundingRepair  # type: ignore[import-untyped]
    from pymoo.operators.sampling.rnd import IntegerRandomSampling  # type: ignore[import-untyped]

    class WithLargest(Sampling):
        """pymoo's integer sampling, and the design with every pipe at its largest option (known feasible: the
        study checks it first), so the first generation has a feasible design to improve on."""
        def _do(self, problem: Any, n_samples: int, **kwargs: Any) -> np.ndarray:
            drawn = IntegerRandomSampling()._do(problem, n_samples - 1, **kwargs)
            return np.vstack([np.asarray(problem.xu, dtype=drawn.dtype).reshape(1, -1), drawn])

    operators = {"pop_size": study.optimizer.population, "sampling": WithLargest(),
                 "crossover": SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
                 "mutation": PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                 "eliminate_duplicates": True}
    return GA(**operators) if study.optimizer.algorithm == "ga" else NSGA2(**operators)


def _problem(study: DesignStudy) -> Any:
    from pymoo.core.problem import Problem  # type: ignore[import-untyped]
    constrained = study.objectives == ["cost"] or study.objectives[1] == "resilience"
    return Problem(n_var=len(study.pipes), n_obj=len(study.objectives), n_ieq_constr=1 if constrained else 0,
                   xl=np.zeros(len(study.pipes), dtype=np.int64), xu=study.upper, vtype=int)


class Design(Search):
    """A design study: its search (``run``, which resumes a stopped one) and its answers as DataFrames."""
    kind = DESIGN
    score_columns = (fmt.COST, fmt.SHORTFALL, fmt.RESILIENCE)

    def __init__(self, services: Services, name: str, model: ModelFile, content: dict[str, Any],
                 timeout_s: int = 600):
        super().__init__(services, name, model, content, timeout_s)
        self.study = parse_design(study_section(content, DESIGN), model.wn)

    def _round_settings(self) -> tuple[RoundSettings, list[str]]:
        from cloudburst.plan.rounds import RoundSettings
        return (RoundSettings.of(self.model, self.services.model_input(self.model.sha256), self.content.get("run"),
                                 self.study.nodes, self.study.threshold_m), self.study.metrics())

    def evaluate(self, designs: np.ndarray, prechecked: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cost, shortfall and resilience of designs (rows of option indices), every loading run on the cluster in
        one round. The sets are checked one by one only when not ``prechecked``: a design's sets differ from the
        largest design's, which ``check_first`` runs checked, only in the diameters' values."""
        study = self.study
        sets = [alterations for design in designs for alterations in study.sets(design)]
        result = self.session().evaluate(sets, prechecked=prechecked)
        shortfall = study.shortfall(result["node_pressure_min"], result.get("node_pressure_max"))
        loadings = len(study.loadings)
        resilience = (result["resilience"].reshape(-1, loadings).min(axis=1) if "resilience" in result
                      else np.full(len(designs), np.nan))
        return study.costs(designs), shortfall, resilience

    def _score(self, candidates: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.score_columns, self.evaluate(candidates)))

    def check_first(self) -> None:
        """InputError when even every pipe at its largest option misses a pressure limit: no design can meet them."""
        largest = self.study.upper.reshape(1, -1)
        _, shortfall, _ = self.evaluate(largest, prechecked=False)
        if shortfall[0] > 0:
            detail = "its runs fail" if not np.isfinite(shortfall[0]) else f"by {shortfall[0]:.2f} m"
            raise InputError(f"$.study.groups: with every pipe at its largest option the pressure limits are missed "
                             f"({detail}): no design can meet them; add larger options or relax pressure")

    def run(self, on_generation: Progress | None = None) -> Design:
        """Search to the end of the evaluation budget (resuming from the stored generations), then store the
        answers. ``on_generation`` is called after each generation with its progress (generation, evaluations,
        best_cost, seconds, replayed)."""
        stored = self.generations()
        self.started()
        try:
            record = self._search(stored, on_generation)
        finally:
            self.flush()
        self.finished(self._answers_of(record))
        return self

    def _search(self, stored: list[Generation], on_generation: Progress | None) -> list[Generation]:
        """pymoo's ask and tell loop; returns every generation's table."""
        from pymoo.problems.static import StaticProblem  # type: ignore[import-untyped]
        problem = _problem(self.study)
        algorithm = _algorithm(self.study)
        algorithm.setup(problem, termination=("n_eval", self.study.optimizer.evaluations),
                        seed=self.study.optimizer.seed, verbose=False)
        started = time.monotonic()
        evaluations, best = 0, np.inf
        record: list[Generation] = []
        while algorithm.has_next():
            population = algorithm.ask()
            if population is None or len(population) == 0:
                break  # no design left that the search has not asked for: a small space, searched whole
            designs = np.asarray(population.get("X"), dtype=np.int64)
            replayed = len(record) < len(stored)
            scores = self._answered(designs, len(record), stored)
            record.append(scores)
            cost, shortfall = scores[fmt.COST], scores[fmt.SHORTFALL]
            evaluations += int(scores[fmt.EVALUATED].sum())
            feasible = shortfall <= 0
            if feasible.any():
                best = min(best, float(cost[feasible].min()))
            objectives, constraints = _scores(self.study, cost, shortfall, scores[fmt.RESILIENCE])
            static = StaticProblem(problem, F=objectives, **({"G": constraints} if constraints is not None else {}))
            algorithm.evaluator.eval(static, population)  # counts toward the budget: pymoo's termination reads it
            algorithm.tell(infills=population)
            if on_generation is not None:
                on_generation({"generation": len(record), "evaluations": evaluations, "best_cost": best,
                               "seconds": time.monotonic() - started, "replayed": replayed})
        return record

    # The answers -----------------------------------------------------------------------------------------------

    def _answers_of(self, stored: list[Generation]) -> dict[str, pd.DataFrame]:
        tables = {fmt.CONVERGENCE: _convergence(stored), fmt.PARETO: self._pareto(stored)}
        best = self._best_design(stored)
        if best is not None:
            tables[fmt.BEST] = self._best_table(best)
            tables[fmt.PRESSURES] = self._pressure_table(best)
        return tables

    def _best_design(self, stored: list[Generation]) -> np.ndarray | None:
        designs = np.concatenate([generation[fmt.DESIGN] for generation in stored])
        cost = np.concatenate([generation[fmt.COST] for generation in stored])
        feasible = np.concatenate([generation[fmt.SHORTFALL] for generation in stored]) <= 0
        if not feasible.any():
            return None
        return designs[np.flatnonzero(feasible)[np.argmin(cost[feasible])]]

    def _best_table(self, design: np.ndarray) -> pd.DataFrame:
        study = self.study
        modelled = study.diameters_m(design.reshape(1, -1))[0]
        chosen = study.diameter_table[study.group_of, design]   # NaN where the pipe is kept
        costs = study.pipe_costs(design.reshape(1, -1))[0]
        return pd.DataFrame({"pipe": study.pipes, "group": study.group_of, "option": design, "kept": np.isnan(chosen),
                             "duplicate": [study.groups[group].duplicate for group in study.group_of],
                             "diameter_mm": chosen * 1000, "modelled_mm": modelled * 1000,
                             "length_m": study.lengths_m, "cost": costs})

    def _pressure_table(self, design: np.ndarray) -> pd.DataFrame:
        study = self.study
        session = self.session()
        metrics = ["node_pressure_min", "node_pressure_max"]
        result = session.evaluate(study.sets(design), metrics)
        rows = []
        for position, loading in enumerate(study.loadings):
            rows.append(pd.DataFrame({"loading": loading.name, "node": study.nodes,
                                      "pressure_min_m": result["node_pressure_min"][position],
                                      "pressure_max_m": result["node_pressure_max"][position],
                                      "min_m": study.min_m, "max_m": study.max_m}))
        return pd.concat(rows, ignore_index=True)

    def _pareto(self, stored: list[Generation]) -> pd.DataFrame:
        second = self.study.objectives[1] if len(self.study.objectives) > 1 else None
        columns = ["cost", second or "shortfall", "design"]
        if second is None:
            return pd.DataFrame(columns=columns)
        from pymoo.util.nds.non_dominated_sorting import find_non_dominated  # type: ignore[import-untyped]
        designs = np.concatenate([generation[fmt.DESIGN] for generation in stored])
        unique, first = np.unique(designs, axis=0, return_index=True)
        cost = np.concatenate([generation[fmt.COST] for generation in stored])[first]
        shortfall = np.concatenate([generation[fmt.SHORTFALL] for generation in stored])[first]
        resilience = np.concatenate([generation[fmt.RESILIENCE] for generation in stored])[first]
        if second == "resilience":
            keep = (shortfall <= 0) & np.isfinite(resilience)
            value = resilience
            objectives = np.column_stack([cost, -resilience])
        else:
            keep = np.isfinite(shortfall)
            value = np.clip(shortfall, 0.0, None)
            objectives = np.column_stack([cost, value])
        chosen = np.flatnonzero(keep)[find_non_dominated(objectives[keep])] if keep.any() else np.array([], int)
        frame = pd.DataFrame({"cost": cost[chosen], second: value[chosen],
                              "design": [list(map(int, row)) for row in unique[chosen]]})
        return frame.sort_values("cost", kind="stable").reset_index(drop=True)

    def best(self) -> pd.DataFrame:
        """The cheapest feasible design found: per decision pipe its option, diameter (mm), length and cost."""
        return self.answer(fmt.BEST)

    def pressures(self) -> pd.DataFrame:
        """The best design's least and greatest pressure per junction and loading, beside the limits."""
        return self.answer(fmt.PRESSURES)

    def convergence(self) -> pd.DataFrame:
        """Per generation: evaluations so far, the best feasible cost so far (NaN before the first)."""
        return self.answer(fmt.CONVERGENCE)

    def pareto(self) -> pd.DataFrame:
        """Two objectives: the non-dominated designs found (cost and the second objective), cheapest first."""
        return self.answer(fmt.PARETO)

    @staticmethod
    def _convergence_of(stored: list[Generation]) -> pd.DataFrame:
        return _convergence(stored)

    def status(self) -> dict[str, Any]:
        """How far the search is: state, generations, evaluations, best feasible cost."""
        state, convergence = self.progress()
        last = convergence.iloc[-1] if len(convergence) else None
        return {"design": self.name, "state": state, "generations": len(convergence),
                "evaluations": int(last["evaluations"]) if last is not None else 0,
                "budget": self.study.optimizer.evaluations,
                "best_cost": float(last["best_cost"]) if last is not None else float("nan"),
                "objectives": self.study.objectives, "algorithm": self.study.optimizer.algorithm}

    def plot(self, path: str) -> None:
        """The convergence curve (evaluations -> best feasible cost) and, for two objectives, the Pareto front."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        two = len(self.study.objectives) > 1
        figure, axes = plt.subplots(1, 2 if two else 1, figsize=(12 if two else 7, 4.5), squeeze=False)
        convergence = self.convergence()
        axes[0][0].plot(convergence["evaluations"], convergence["best_cost"], drawstyle="steps-post")
        axes[0][0].set_xlabel("evaluations (designs run on the cluster)")
        axes[0][0].set_ylabel("best feasible cost")
        axes[0][0].set_title(f"{self.name}: convergence")
        axes[0][0].grid(alpha=0.3)
        if two:
            pareto = self.pareto()
            second = self.study.objectives[1]
            axes[0][1].plot(pareto["cost"], pareto[second], "o-", markersize=3)
            axes[0][1].set_xlabel("cost")
            axes[0][1].set_ylabel("resilience index" if second == "resilience" else "worst pressure deficit (m)")
            axes[0][1].set_title("Pareto front")
            axes[0][1].grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)


def _convergence(stored: list[Generation]) -> pd.DataFrame:
    best, rows = np.inf, []
    for generation, (scores, run) in enumerate(zip(stored, evaluations(stored)), start=1):
        feasible = scores[fmt.SHORTFALL] <= 0
        if feasible.any():
            best = min(best, float(scores[fmt.COST][feasible].min()))
        rows.append({"generation": generation, "evaluations": int(run),
                     "best_cost": best if np.isfinite(best) else np.nan, "feasible": int(feasible.sum())})
    return pd.DataFrame(rows, columns=["generation", "evaluations", "best_cost", "feasible"])


def open_design(services: Services, name: str, model: ModelFile | None = None,
                content: dict[str, Any] | None = None, timeout_s: int = 600) -> Design:
    """A design study: a new one, or the stored one of that name (``cloudburst.api.search.open_search``)."""
    return open_search(Design, services, name, model, content, timeout_s)
