"""Optimizers over evaluation rounds: each generation (a population's alteration sets) is one round on the cluster.

    from cloudburst.api.optimize import pymoo_problem
    problem = pymoo_problem(session, n_var=1, xl=0.5, xu=3.0,
                            sets=lambda x: [{"type": "demand_scale", "factor": float(x[0])}],
                            objectives=lambda X, result: -X[:, 0],
                            constraints=lambda X, result: 35.0 - result["pressure_min"])
    pymoo.optimize.minimize(problem, GA(pop_size=50), ("n_gen", 40))

``round_map(session, sets)`` is the same for DEAP or any loop: a ``map(function, individuals)`` that runs the
individuals' sets as one round and calls ``function(individual, row)`` with each one's metrics. pymoo is the
``optimize`` extra (``pip install cloudburst[optimize]``); nothing here imports it before ``pymoo_problem`` runs.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudburst.errors import InputError

if TYPE_CHECKING:
    from cloudburst.api.evaluation import Evaluations, Session

Alterations = list[dict[str, Any]]
# What failed or unbalanced sets score: pymoo takes it as infeasible (constraints) or worst (objectives).
FAILED_SCORE = 1e12


def _columns(values: Any, rows: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    array = array.reshape(rows, -1) if array.size else array.reshape(rows, 0)
    if array.shape[0] != rows:
        raise InputError(f"{what} gave {array.shape[0]} rows for a population of {rows}")
    return array


def pymoo_problem(session: Session, *, n_var: int, xl: Any, xu: Any, sets: Callable[[np.ndarray], Alterations],
                  objectives: Callable[[np.ndarray, Evaluations], Any],
                  constraints: Callable[[np.ndarray, Evaluations], Any] | None = None,
                  n_obj: int = 1, n_ieq_constr: int = 0, vtype: type = float, metrics: list[str] | None = None) -> Any:
    """A pymoo ``Problem`` whose ``_evaluate`` runs the whole population as one round of ``session``: ``sets(x)``
    turns one individual into its alterations; ``objectives(X, result)`` and ``constraints(X, result)`` (<= 0 is
    feasible) read the population ``X`` and the round's ``Evaluations``. Sets that failed or stopped balancing
    score ``FAILED_SCORE`` in every objective and constraint (infeasible, worst)."""
    from pymoo.core.problem import Problem  # type: ignore[import-untyped]  # pymoo ships no type hints

    if constraints is not None and n_ieq_constr == 0:
        n_ieq_constr = 1

    class RoundProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=n_var, n_obj=n_obj, n_ieq_constr=n_ieq_constr, xl=xl, xu=xu, vtype=vtype)
            self.rounds: list[Evaluations] = []  # every generation's answers, in order

        def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            result = session.evaluate([sets(x) for x in X], metrics)
            self.rounds.append(result)
            failed = ~result.finished
            scores = _columns(objectives(X, result), len(X), "objectives")
            scores[failed] = FAILED_SCORE
            out["F"] = scores
            if constraints is not None:
                bounds = _columns(constraints(X, result), len(X), "constraints")
                bounds[failed] = FAILED_SCORE
                out["G"] = bounds

    return RoundProblem()


def round_map(session: Session, sets: Callable[[Any], Alterations],
              metrics: list[str] | None = None) -> Callable[[Callable[[Any, dict[str, Any]], Any], Iterable[Any]],
                                                        list[Any]]:
    """A ``map(function, individuals)`` for DEAP (``toolbox.register("map", round_map(session, sets))``) or any
    loop: one round for all the individuals, then ``function(individual, row)`` for each, ``row`` holding its
    metrics, ``status`` and ``reason``."""
    def mapped(function: Callable[[Any, dict[str, Any]], Any], individuals: Iterable[Any]) -> list[Any]:
        population = list(individuals)
        if not population:
            return []
        result = session.evaluate([sets(individual) for individual in population], metrics)
        return [function(individual, {**{metric: values[position] for metric, values in result.items()},
                                      "status": str(result.status[position]), "reason": result.reasons[position]})
                for position, individual in enumerate(population)]
    return mapped
