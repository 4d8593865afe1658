"""A study as plain data, its Pareto front and its best candidate per BOPs bucket."""

from __future__ import annotations

from typing import Any

import optuna

from ..models.candidate import Candidate
from .budget import Budget, parse_budget
from .fidelity import low_fidelity_agreement
from .record import BUDGETS_ATTR, FIDELITY_ATTR, ONESHOT_ATTR, PROTOCOL_ATTR, SETTINGS_ATTR
from .storage import load_existing_study

INFEASIBLE_ATTR, SURPLUS_ATTR = "infeasible", "surplus"
STOPPED_STATES = ("interrupted", "diverged")  # trials stopped by the user, or whose training diverged
ARCH_ATTR, NAME_ATTR = "candidate", "candidate_name"  # the candidate's arch object and its one name


def candidate_name_of(attrs: dict[str, Any]) -> str | None:
    """A trial's candidate name (derived from its arch object in studies written before names were stored)."""
    if attrs.get(NAME_ATTR):
        return attrs[NAME_ATTR]
    return Candidate.from_dict(attrs[ARCH_ATTR]).name if attrs.get(ARCH_ATTR) else None


def trial_state(trial: optuna.trial.FrozenTrial) -> str:
    """complete, pruned, infeasible (over budget), fail (its worker died, or an error), interrupted (by the
    user), diverged, surplus (asked for after the study was full, never run), running or waiting."""
    attrs = trial.user_attrs
    return next((name for name in (INFEASIBLE_ATTR, SURPLUS_ATTR, *STOPPED_STATES) if attrs.get(name)),
                trial.state.name.lower())


def budget_share(counts: dict[str, Any], budgets: list[Budget]) -> float | None:
    """The share of the budget a candidate uses: its count over the limit, for the budget nearest to binding
    (the largest share); None where a budget's metric was not counted (a ``MiB`` budget) or nothing was."""
    if not budgets or any(counts.get(b.metric) is None for b in budgets):
        return None
    return max(counts[b.metric] / b.limit for b in budgets)


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Every trial with its candidate (``arch`` and its name), counts, share of the budget, top-1 (a one-shot
    study's: the score with inherited weights), epochs trained, run, worker and retried trial; the study's
    strategy, supernet and proxy fidelity."""
    budgets = [parse_budget(text) for text in study.user_attrs.get(BUDGETS_ATTR) or []]
    trials = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        trials.append({
            "number": trial.number, "state": trial_state(trial), "arch": attrs.get(ARCH_ATTR),
            "candidate": candidate_name_of(attrs), "bops": attrs.get("bops"), "flops": attrs.get("flops"),
            "ops": attrs.get("ops"), "params": attrs.get("params"), "budget_share": budget_share(attrs, budgets),
            "top1": attrs.get("top1"),
            "epochs": attrs.get("epochs"), "run_id": attrs.get("run_id"), "worker": attrs.get("worker"),
            "retry_of": trial.system_attrs.get("failed_trial"),
        })
    attrs = study.user_attrs
    strategy = (attrs.get(SETTINGS_ATTR) or {}).get("strategy", "multi-trial")
    fidelity = attrs.get(FIDELITY_ATTR) if strategy == "oneshot" else low_fidelity_agreement(
        study.get_trials(deepcopy=False))
    return {"study": study.study_name, "strategy": strategy, "budgets": attrs.get(BUDGETS_ATTR),
            "protocol": attrs.get(PROTOCOL_ATTR), "oneshot": attrs.get(ONESHOT_ATTR), "fidelity": fidelity,
            "trials": trials}


def load_summary(name: str, storage_spec: str) -> dict[str, Any]:
    """:func:`summarize` of a stored study; ``storage_spec`` is an SQLAlchemy URL or journal:PATH."""
    return summarize(load_existing_study(name, storage_spec))


def _trained(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in trials if t["state"] == "complete" and t["top1"] is not None]


def pareto_front(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trained trials no other trained trial beats on both top-1 (higher) and OPs (lower), by OPs."""
    trained = _trained(trials)
    front = [t for t in trained if not any(
        o["top1"] >= t["top1"] and o["ops"] <= t["ops"] and (o["top1"] > t["top1"] or o["ops"] < t["ops"])
        for o in trained)]
    return sorted(front, key=lambda t: t["ops"])


def _better(trial: dict[str, Any]) -> tuple:
    """Sort key, best first: higher top-1; of equal ones the cheaper (fewer BOPs), then the earlier trial."""
    return -trial["top1"], trial["bops"], trial["number"]


def best_per_bucket(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The best trained trial in each BOPs bucket [2^k, 2^(k+1)), with the bucket's bounds."""
    best: dict[int, dict[str, Any]] = {}
    for trial in _trained(trials):
        k = max(0, int(trial["bops"]).bit_length() - 1)
        if k not in best or _better(trial) < _better(best[k]):
            best[k] = trial
    return [{"bops_from": 2**k, "bops_below": 2 ** (k + 1), "trial": best[k]} for k in sorted(best)]


def leaderboard(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials as a leaderboard, one fidelity per ranking: the complete trials (every epoch trained) ranked by
    top-1 (``rank`` 1, 2, ...); after them the pruned ones, whose top-1 is from fewer epochs, by top-1 and
    unranked (``rank`` None); then the trials with no top-1 (over budget, failed, ...) by number."""
    complete = sorted(_trained(trials), key=_better)
    pruned = sorted((t for t in trials if t["state"] == "pruned" and t["top1"] is not None), key=_better)
    listed = {t["number"] for t in complete + pruned}
    rest = sorted((t for t in trials if t["number"] not in listed), key=lambda t: t["number"])
    return ([{**trial, "rank": rank} for rank, trial in enumerate(complete, 1)]
            + [{**trial, "rank": None} for trial in pruned + rest])
