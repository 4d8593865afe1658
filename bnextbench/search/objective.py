"""The multi-trial strategy: each trial samples a candidate, counts it, and trains it unless over budget.

A strategy is any callable ``objective(trial) -> value`` that the worker loop
(:mod:`bnextbench.search.workers`) hands to Optuna. :class:`CandidateObjective` is what every strategy
shares (the study's size, the worker, the candidate, its counts, rejection over budget);
:class:`TrainEachCandidate` trains every feasible candidate from scratch under the study's protocol,
reports top-1 per epoch so Optuna's pruner can stop it, and reuses a run of the same candidate under
the same protocol instead of training it again. The one-shot strategy is :mod:`.oneshot`.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Protocol

import optuna

from ..complexity import Complexity
from ..data import ImageData
from ..models.candidate import Candidate
from ..profiling import profile_candidate, uses_small_input
from ..store import Store, worker_identity
from ..train.loop import StopRun, TrainingDiverged
from .progress import SearchProgress
from .record import StudyRecord
from .retrain import train_or_reuse
from .summary import ARCH_ATTR, INFEASIBLE_ATTR, NAME_ATTR, SURPLUS_ATTR

COUNTS = ("bops", "flops", "ops", "params")
CHECKPOINT_ROOT = Path("results") / "checkpoints"


class Strategy(Protocol):
    """What the worker loop runs for each trial."""

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]: ...


class PrunedRun(StopRun, optuna.TrialPruned):
    """Stops the training run as "pruned" and tells Optuna the trial was pruned."""

    status = "pruned"


class SurplusTrial(Exception):
    """A worker asked for a trial after the study was full (another worker took the last one)."""


def counted_trials(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that count toward the study's size: all but failed ones (a dead trial's retry counts instead)."""
    return sum(1 for trial in trials if trial.state != optuna.trial.TrialState.FAIL)


def fits(record: StudyRecord, complexity: Complexity) -> bool:
    return all(budget.allows(complexity) for budget in record.budgets)


def suggest_candidate(record: StudyRecord, trial: optuna.Trial | optuna.trial.FixedTrial, data: ImageData) -> Candidate:
    """The candidate ``trial`` picks from the study's space, with the data's classes and input stem."""
    return record.space.suggest(trial, data.num_classes, 1 if uses_small_input(data.resolution) else 2)


def fits_budget(record: StudyRecord, params: dict[str, Any], data: ImageData) -> bool:
    """Whether the candidate of fixed trial parameters ``params`` fits every budget of the study."""
    candidate = suggest_candidate(record, optuna.trial.FixedTrial(params), data)
    return fits(record, profile_candidate(candidate, data.resolution, data.num_classes))


class CandidateObjective:
    """A strategy's common part: the value (and OPs for a two-objective sampler) of each feasible candidate,
    as :meth:`evaluate` of the strategy gives it."""

    action = "training"  # what the progress display says a trial is doing

    def __init__(self, record: StudyRecord, data: ImageData, store: Store, progress: SearchProgress,
                 multi_objective: bool, device: str | None = None):
        self.record, self.data, self.store, self.progress = record, data, store, progress
        self.multi_objective, self.device = multi_objective, device

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        record, study = self.record, trial.study
        trials = study.get_trials(deepcopy=False)
        if counted_trials([t for t in trials if t.number < trial.number]) >= record.settings.trials:
            trial.set_user_attr(SURPLUS_ATTR, True)
            study.stop()
            raise SurplusTrial(f"study {record.name} already holds {record.settings.trials} trials")
        retry_of = next(t for t in trials if t.number == trial.number).system_attrs.get("failed_trial")
        for key, value in (("pid", os.getpid()), ("host", socket.gethostname()), ("worker", worker_identity())):
            trial.set_user_attr(key, value)
        for inherited in ("run_id", "top1", "epochs", "reused_run", "train_seconds"):  # a retry starts afresh
            if inherited in trial.user_attrs:
                trial.set_user_attr(inherited, None)
        candidate = suggest_candidate(record, trial, self.data)
        complexity = profile_candidate(candidate, self.data.resolution, self.data.num_classes)
        counts = {key: getattr(complexity, key) for key in COUNTS}
        trial.set_user_attr(ARCH_ATTR, candidate.to_dict())
        trial.set_user_attr(NAME_ATTR, candidate.name)
        for key, value in counts.items():
            trial.set_user_attr(key, value)
        row = dict(study=record.name, trial_number=trial.number, candidate_name=candidate.name,
                   candidate=candidate.to_dict(), retry_of=retry_of, **counts)
        if not fits(record, complexity):
            trial.set_user_attr(INFEASIBLE_ATTR, True)
            self.store.record_trial(state="infeasible", **row)
            raise optuna.TrialPruned("over budget")
        self.progress.trial_started(trial.number, candidate.name, self.action)
        try:
            top1, run_id = self.evaluate(trial, candidate, row)
        except (KeyboardInterrupt, TrainingDiverged) as stopped:  # the trial keeps its row, with the run it left
            state = "interrupted" if isinstance(stopped, KeyboardInterrupt) else "diverged"
            trial.set_user_attr(state, True)
            run_id = trial.user_attrs.get("run_id")
            if run_id is None:  # stopped before an epoch was reported back, perhaps after one was stored
                started = self.store.trial_run(record.name, trial.number)
                run_id = None if started is None else started.id
            self.store.record_trial(state=state, run_id=run_id, top1=trial.user_attrs.get("top1"), **row)
            raise
        trial.set_user_attr("run_id", run_id)
        trial.set_user_attr("top1", top1)
        self.store.record_trial(state="complete", run_id=run_id, top1=top1, **row)
        return (top1, complexity.ops) if self.multi_objective else top1

    def evaluate(self, trial: optuna.Trial, candidate: Candidate, row: dict[str, Any]) -> tuple[float, int | None]:
        """(top-1 %, the run that measured it, if any) of a feasible candidate."""
        raise NotImplementedError


class TrainEachCandidate(CandidateObjective):
    """The multi-trial objective: each candidate trained from scratch, its top-1 on the test split."""

    def evaluate(self, trial: optuna.Trial, candidate: Candidate, row: dict[str, Any]) -> tuple[float, int]:
        protocol, epochs = self.record.protocol, self.record.protocol.recipe.epochs

        def report(epoch: int, metrics: dict[str, float]) -> None:
            trial.set_user_attr("run_id", metrics["run_id"])
            trial.set_user_attr("top1", metrics["top1"])  # at the fidelity reached so far
            trial.set_user_attr("epochs", epoch + 1)
            self.progress.epoch_done(trial.number, epoch, epochs, metrics["top1"])
            if self.multi_objective:
                return
            trial.report(metrics["top1"], epoch)
            if epoch < epochs - 1 and trial.should_prune():  # a finished run is never discarded
                self.store.record_trial(state="pruned", run_id=metrics["run_id"], top1=metrics["top1"], **row)
                raise PrunedRun(f"pruned after epoch {epoch + 1}")

        started = time.perf_counter()
        try:
            result = train_or_reuse(candidate, protocol, self.store,
                                    CHECKPOINT_ROOT / self.record.name / f"trial-{trial.number}", self.device,
                                    self.record.name, trial.number, progress=False, on_epoch=report)
        finally:
            trial.set_user_attr("train_seconds", time.perf_counter() - started)
        if result.reused:
            trial.set_user_attr("reused_run", result.run_id)
            trial.set_user_attr("epochs", epochs)
        return result.top1, result.run_id
