"""Budget-constrained search with Optuna: sample, count, reject over-budget candidates, train, record.

Optuna does the sampling (TPE, NSGA-II, random), pruning (successive halving, Hyperband) and study
storage (its RDB storage, by default in the same SQLite file as bnextbench's tables). Candidates over
the budget are rejected analytically before any training and recorded as infeasible. A candidate
already trained under the same protocol is not trained again. Re-running with the same study name
continues it: trials left "running" by a killed process are marked failed and not counted.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..complexity import Complexity
from ..data import load_data
from ..errors import BnextbenchError
from ..models import BNEXT_SIZES
from ..profiling import profile_model, profile_spec, uses_small_input
from ..store import Store, pid_alive
from ..train import Recipe, TrainConfig, train
from ..train.loop import StopRun, TrainingDiverged
from .budget import Budget
from .space import Candidate, load_space

SAMPLERS = ("tpe", "nsga2", "random")
PRUNERS = ("sh", "hyperband", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class SearchError(BnextbenchError):
    pass


class PrunedRun(StopRun, optuna.TrialPruned):
    """Stops the training run as "pruned" and tells Optuna the trial was pruned."""

    status = "pruned"


@dataclass
class SearchConfig:
    budgets: list[Budget]
    space: Path
    data: str = "digits"
    trials: int = 10
    epochs: int = 3
    batch_size: int = 64
    train_limit: int | None = None
    resolution: int | None = None
    sampler: str = "tpe"
    pruner: str = "sh"
    study: str | None = None
    storage: str | None = None
    seed: int = 0
    lr: float = 2e-3
    extra_recipe: dict[str, Any] = field(default_factory=dict)


def count_candidate(candidate: Candidate, resolution: int, num_classes: int) -> Complexity:
    if candidate.spec is not None:
        return profile_spec(candidate.spec, resolution)
    return profile_model(candidate.model, resolution, num_classes, width_mult=candidate.width_mult)


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SearchError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def _pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "sh":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=2)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SearchError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")


def _space_signature(path: Path) -> str:
    import yaml

    return json.dumps(yaml.safe_load(path.read_text()), sort_keys=True, separators=(",", ":"))


class Search:
    """A configured search; everything is validated here, before :meth:`run` writes anything."""

    def __init__(self, config: SearchConfig):
        self.config = config
        if config.sampler not in SAMPLERS:
            raise SearchError(f"unknown sampler {config.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if config.trials < 1 or config.epochs < 1:
            raise SearchError("--trials and --epochs must be positive integers")
        self.space = load_space(config.space)
        self.signature = _space_signature(config.space)
        self.data = load_data(config.data, config.resolution, config.train_limit, config.seed)
        self.stem_stride = 1 if uses_small_input(self.data.resolution) else 2
        self.multi_objective = config.sampler == "nsga2"
        self.recipe = Recipe(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                             **config.extra_recipe)
        self.protocol = {"data": self.data.spec, "resolution": self.data.resolution, "train_limit": config.train_limit,
                         "recipe": self.recipe.to_dict()}
        self.name = config.study or f"search-{'-'.join(b.text for b in config.budgets)}"
        self._check_feasible()

    def _fits(self, complexity: Complexity) -> bool:
        return all(budget.allows(complexity) for budget in self.config.budgets)

    def _check_feasible(self) -> None:
        smallest = self.space.suggest(optuna.trial.FixedTrial(self.space.smallest_params()),
                                      self.data.num_classes, self.stem_stride)
        if not self._fits(count_candidate(smallest, self.data.resolution, self.data.num_classes)):
            budgets = ", ".join(str(b) for b in self.config.budgets)
            raise SearchError(f"the space {self.config.space} admits no candidate under {budgets} "
                              f"at {self.data.resolution} px")

    def _open_study(self) -> optuna.Study:
        storage = self.config.storage or self.store.url
        existing = optuna.study.get_all_study_names(storage)
        direction = {"directions": ["maximize", "minimize"]} if self.multi_objective else {"direction": "maximize"}
        if self.name in existing:
            study = optuna.load_study(study_name=self.name, storage=storage,
                                      sampler=_sampler(self.config.sampler, self.config.seed),
                                      pruner=_pruner(self.config.pruner, self.config.epochs))
            if study.user_attrs.get("space") != self.signature or study.user_attrs.get("protocol") != self.protocol:
                raise SearchError(f"study {self.name!r} exists with another space or protocol; choose another --study")
            return study
        study = optuna.create_study(study_name=self.name, storage=storage,
                                    sampler=_sampler(self.config.sampler, self.config.seed),
                                    pruner=_pruner(self.config.pruner, self.config.epochs), **direction)
        study.set_user_attr("space", self.signature)
        study.set_user_attr("protocol", self.protocol)
        study.set_user_attr("budgets", [b.text for b in self.config.budgets])
        self._enqueue_anchor(study)
        return study

    def _enqueue_anchor(self, study: optuna.Study) -> None:
        """Warm start: the largest named BNext size that fits the budget, if the space holds it."""
        for name in reversed(list(BNEXT_SIZES)):
            params = self.space.anchor_params(name)
            if params is None:
                continue
            candidate = self.space.suggest(optuna.trial.FixedTrial(params), self.data.num_classes, self.stem_stride)
            if self._fits(count_candidate(candidate, self.data.resolution, self.data.num_classes)):
                study.enqueue_trial(params)
                return

    def _fail_dead_trials(self, study: optuna.Study) -> None:
        """Trials a killed process left running: mark them failed so they are neither counted nor lost."""
        host = socket.gethostname()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("host") == host and not pid_alive(trial.user_attrs.get("pid", -1)):
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)

    def objective(self, trial: optuna.Trial):
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        candidate = self.space.suggest(trial, self.data.num_classes, self.stem_stride)
        complexity = count_candidate(candidate, self.data.resolution, self.data.num_classes)
        counts = {key: getattr(complexity, key) for key in ("bops", "flops", "ops", "params")}
        trial.set_user_attr("candidate", candidate.to_dict())
        trial.set_user_attr("hash", candidate.hash)
        for key, value in counts.items():
            trial.set_user_attr(key, value)
        record = dict(study=self.name, trial_number=trial.number, candidate_hash=candidate.hash,
                      candidate=candidate.to_dict(), **counts)
        if not self._fits(complexity):
            trial.set_user_attr("infeasible", True)
            self.store.record_trial(state="infeasible", **record)
            raise optuna.TrialPruned("over budget")
        top1, run_id = self._train(trial, candidate, record)
        trial.set_user_attr("run_id", run_id)
        trial.set_user_attr("top1", top1)
        self.store.record_trial(state="complete", run_id=run_id, top1=top1, **record)
        return (top1, complexity.ops) if self.multi_objective else top1

    def _train(self, trial: optuna.Trial, candidate: Candidate, record: dict[str, Any]) -> tuple[float, int]:
        previous = self.store.find_completed_run(candidate.hash, self.protocol)
        if previous is not None:
            trial.set_user_attr("reused_run", previous.id)
            return previous.top1, previous.id

        def report(epoch: int, metrics: dict[str, float]) -> None:
            trial.set_user_attr("run_id", metrics["run_id"])
            trial.set_user_attr("top1", metrics["top1"])  # at the fidelity reached so far
            if self.multi_objective:
                return
            trial.report(metrics["top1"], epoch)
            if epoch < self.config.epochs - 1 and trial.should_prune():  # a finished run is never discarded
                self.store.record_trial(state="pruned", run_id=metrics["run_id"], top1=metrics["top1"], **record)
                raise PrunedRun(f"pruned after epoch {epoch + 1}")

        config = TrainConfig(
            model=candidate.model, data=self.config.data, recipe=self.recipe, spec=candidate.spec,
            width_mult=candidate.width_mult, train_limit=self.config.train_limit, resolution=self.data.resolution,
            out=Path("results") / "checkpoints" / self.name / f"trial-{trial.number}",
            extra={"candidate": candidate.hash, "protocol": self.protocol, "study": self.name},
        )
        started = time.perf_counter()
        try:
            record = train(config, self.store, progress=False, on_epoch=report)
        finally:
            trial.set_user_attr("train_seconds", time.perf_counter() - started)
        return record["top1"], record["run_id"]

    def run(self, store: Store, progress: bool = True) -> dict[str, Any]:
        self.store, self.progress = store, progress
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = self._open_study()
        self._fail_dead_trials(study)
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        remaining = self.config.trials - done
        if remaining > 0:
            study.optimize(self.objective, n_trials=remaining, catch=(TrainingDiverged,),
                           show_progress_bar=self.progress,
                           callbacks=[optuna.study.MaxTrialsCallback(self.config.trials, states=FINISHED)])
        return summarize(study)


def summarize(study: optuna.Study) -> dict[str, Any]:
    """The study as plain data: every trial with its candidate, counts and top-1."""
    trials = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        state = "infeasible" if attrs.get("infeasible") else trial.state.name.lower()
        trials.append({
            "number": trial.number, "state": state, "arch": attrs.get("candidate"), "hash": attrs.get("hash"),
            "bops": attrs.get("bops"), "flops": attrs.get("flops"), "ops": attrs.get("ops"),
            "params": attrs.get("params"), "top1": attrs.get("top1"), "run_id": attrs.get("run_id"),
        })
    return {"study": study.study_name, "budgets": study.user_attrs.get("budgets"),
            "protocol": study.user_attrs.get("protocol"), "trials": trials}


def load_summary(name: str, storage: str) -> dict[str, Any]:
    if name not in optuna.study.get_all_study_names(storage):
        raise SearchError(f"unknown study {name!r} in {storage}")
    return summarize(optuna.load_study(study_name=name, storage=storage))


def _trained(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in trials if t["state"] == "complete" and t["top1"] is not None]


def pareto_front(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trained trials no other trained trial beats on both top-1 (higher) and OPs (lower), by OPs."""
    trained = _trained(trials)
    front = [t for t in trained if not any(
        o["top1"] >= t["top1"] and o["ops"] <= t["ops"] and (o["top1"] > t["top1"] or o["ops"] < t["ops"])
        for o in trained)]
    return sorted(front, key=lambda t: t["ops"])


def best_per_bucket(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The best trained trial in each BOPs bucket [2^k, 2^(k+1))."""
    best: dict[int, dict[str, Any]] = {}
    for trial in _trained(trials):
        k = max(0, int(trial["bops"]).bit_length() - 1)
        if k not in best or trial["top1"] > best[k]["top1"]:
            best[k] = trial
    return [{"bops_from": 2**k, "bops_below": 2 ** (k + 1), "trial": best[k]} for k in sorted(best)]


def run_search(config: SearchConfig, store: Store | None = None, progress: bool = True) -> dict[str, Any]:
    search = Search(config)
    return search.run(store or Store(), progress)
