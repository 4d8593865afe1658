"""How well a cheap score ranks candidates: Kendall tau and Spearman rho against stand-alone top-1.

Two cheap scores are measured: a one-shot study's inherited-weight score against the top-1 of the
same candidates retrained stand-alone, and a multi-trial study's low-fidelity score (top-1 after the
first epoch, where successive halving decides) against the top-1 of the completed runs. With fewer
than three pairs, or a constant side, a rank correlation says nothing and is not reported.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from scipy.stats import kendalltau, spearmanr

MIN_PAIRS = 3


def rank_agreement(proxy: list[float], truth: list[float]) -> dict[str, Any]:
    """{"kendall_tau", "spearman_rho", "count"}; the two are None below :data:`MIN_PAIRS` pairs or when a side
    is constant."""
    count = len(proxy)
    if count < MIN_PAIRS or len(set(proxy)) < 2 or len(set(truth)) < 2:
        return {"kendall_tau": None, "spearman_rho": None, "count": count}
    tau = float(kendalltau(proxy, truth).statistic)
    rho = float(spearmanr(proxy, truth).statistic)
    return {"kendall_tau": None if math.isnan(tau) else tau, "spearman_rho": None if math.isnan(rho) else rho,
            "count": count}


def low_fidelity_agreement(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    """A multi-trial study's first-epoch top-1 against the final top-1, over its completed trials."""
    pairs = [(trial.intermediate_values[0], trial.value) for trial in trials
             if trial.state == optuna.trial.TrialState.COMPLETE and 0 in trial.intermediate_values
             and len(trial.intermediate_values) > 1 and trial.value is not None]
    return {"proxy": "top-1 after epoch 1", **rank_agreement([p for p, _ in pairs], [t for _, t in pairs])}


def describe(agreement: dict[str, Any] | None) -> str:
    """One line: "Kendall tau 0.62, Spearman rho 0.78 over 8 candidates"."""
    if not agreement:
        return "not measured"
    if agreement.get("kendall_tau") is None:
        return f"not measurable over {agreement['count']} candidate(s) (needs {MIN_PAIRS}, not all equal)"
    return (f"Kendall tau {agreement['kendall_tau']:.2f}, Spearman rho {agreement['spearman_rho']:.2f} over "
            f"{agreement['count']} candidates")
