"""Budget-constrained search with Optuna: configure, create or join the study, hand it to the workers.

Optuna does the sampling (TPE, NSGA-II, random), pruning (successive halving, Hyperband) and study
storage: its RDB storage (by default in the same SQLite file as bnextbench's tables; PostgreSQL for
workers on many machines) or its journal file (``journal:PATH``, many processes on one host).
Candidates over the budget are rejected analytically before any training and recorded as
infeasible. A candidate already trained under the same protocol is not trained again.

The parts, one job each: :mod:`.storage` opens Optuna storages, :mod:`.record` is what a study
records about itself, :mod:`.objective` is the multi-trial strategy (train each candidate),
:mod:`.workers` takes trials and recovers dead ones, :mod:`.progress` shows it, :mod:`.summary`
reads a study back. This module validates a search before anything is written and wires them up.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, StorageInternalError
from sqlalchemy.exc import DatabaseError, OperationalError

from .. import limits
from ..data import ImageData, load_data
from ..models import BNEXT_SIZES
from ..store import Store, database_error
from ..train import Recipe
from ..train.loop import check_device
from ..train.protocol import Protocol
from .budget import Budget
from .objective import TrainEachCandidate, fits_budget
from .oneshot import ScoreWithSupernet
from .progress import SearchProgress
from .record import (StudyRecord, StudySettings, check_study_name, read_study_record, register_worker,
                     stored_settings)
from .space import load_space
from .storage import SearchError, open_storage, release, uses_heartbeats
from .summary import summarize
from .workers import DeadTrials, WorkerLoop

SAMPLERS = ("tpe", "nsga2", "random")
STRATEGIES = {"multi-trial": TrainEachCandidate, "oneshot": ScoreWithSupernet}
PRUNERS = ("sh", "hyperband", "none")
HEARTBEAT_S = 60
TPE_STARTUP_TRIALS = 4
NSGA2_POPULATION = 8


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
    heartbeat: int = HEARTBEAT_S  # seconds between a running trial's heartbeats (database storages, not journals)
    grace: int | None = None  # seconds without a heartbeat before a trial counts as dead (default 2 x heartbeat)
    device: str | None = None


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":  # constant liar: concurrent workers do not all suggest the same candidate
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=TPE_STARTUP_TRIALS, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=NSGA2_POPULATION)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SearchError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "sh":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=2)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SearchError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")


def _check_settings(settings: StudySettings, epochs: int) -> None:
    if settings.strategy not in STRATEGIES:
        raise SearchError(f"unknown strategy {settings.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if settings.sampler not in SAMPLERS:
        raise SearchError(f"unknown sampler {settings.sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if settings.pruner not in PRUNERS:
        raise SearchError(f"unknown pruner {settings.pruner!r}; choose one of {', '.join(PRUNERS)}")
    limits.TRIALS.check(settings.trials)
    limits.EPOCHS.check(epochs)
    limits.HEARTBEAT.check(settings.heartbeat)
    limits.GRACE.check(settings.grace)
    if settings.grace <= settings.heartbeat:
        raise SearchError(f"--grace ({settings.grace} s) must be longer than --heartbeat ({settings.heartbeat} s)")


class Search:
    """A configured search; everything is validated here, before :meth:`run` writes anything."""

    def __init__(self, record: StudyRecord, data: ImageData, storage: str | None = None, joining: bool = False,
                 device: str | None = None, strategy: type | None = None):
        """``strategy(record, data, store, progress, multi_objective, device)`` makes the objective the workers
        run per trial (:class:`~bnextbench.search.objective.Strategy`); by default the one the study's settings
        name (:data:`STRATEGIES`)."""
        _check_settings(record.settings, record.protocol.recipe.epochs)
        self.record, self.data, self.storage_spec, self.joining, self.device = record, data, storage, joining, device
        self.strategy_factory = strategy
        if not fits_budget(record, record.space.smallest_params(), data):
            budgets = ", ".join(str(b) for b in record.budgets)
            raise SearchError(f"the space of study {record.name!r} admits no candidate under {budgets} "
                              f"at {data.resolution} px")

    @classmethod
    def configure(cls, config: SearchConfig) -> Search:
        """A new search (or the continuation of a study of the same name) from command-line settings."""
        settings = StudySettings(config.sampler, config.pruner, config.trials, config.heartbeat,
                                 config.grace if config.grace is not None else 2 * config.heartbeat)
        _check_settings(settings, config.epochs)
        name = check_study_name(config.study or f"search-{'-'.join(b.text for b in config.budgets)}")
        check_device(config.device)
        space = load_space(config.space)
        data = load_data(config.data, config.resolution, config.train_limit, config.seed)
        recipe = Recipe(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed)
        protocol = Protocol(data.spec, data.resolution, config.train_limit, recipe)
        record = StudyRecord(name, tuple(config.budgets), space, protocol, settings)
        return cls(record, data, config.storage, device=config.device)

    @classmethod
    def join(cls, study: str, storage: str, device: str | None = None) -> Search:
        """A worker for an existing study: budgets, space, protocol and settings as the study records them."""
        check_device(device)
        record = read_study_record(study, storage)
        protocol = record.protocol
        data = load_data(protocol.data, protocol.resolution, protocol.train_limit, protocol.seed)
        return cls(record, data, storage, joining=True, device=device)

    @property
    def name(self) -> str:
        return self.record.name

    def _open_study(self, storage: optuna.storages.BaseStorage) -> tuple[StudySettings, int]:
        """Create the study, or check that it is this search, and register this worker; run by one worker at
        a time (Store.exclusive). Returns the study's settings and this worker's sampler seed."""
        record = self.record
        created = record.name not in optuna.study.get_all_study_names(storage)
        if created:
            directions = ["maximize", "minimize"] if self.multi_objective else ["maximize"]
            study = optuna.create_study(study_name=record.name, storage=storage, directions=directions)
            record.write(study)
            settings = record.settings
            self._enqueue_anchor(study)
        else:
            study = optuna.load_study(study_name=record.name, storage=storage)
            settings = stored_settings(study) or record.settings  # none in studies of bnextbench 0.1
            if settings.strategy != record.settings.strategy:
                raise SearchError(f"study {record.name!r} is a {settings.strategy} study; choose another --study")
            if not record.matches(study):
                raise SearchError(f"study {record.name!r} exists with another space, protocol or supernet; choose "
                                  "another --study")
            if not self.joining:  # `search --trials N` sets the study's size
                settings = StudySettings(**{**settings.to_dict(), "trials": record.settings.trials})
        workers = register_worker(study, settings)
        # Each worker draws with its own seed: the creator with --seed; a later one (a continued study, or another
        # process on it) offset by the trials so far and its index, so that it does not repeat the first draws.
        seed = record.protocol.seed + (0 if created else workers + len(study.get_trials(deepcopy=False)))
        return settings, seed

    @property
    def multi_objective(self) -> bool:
        return self.record.settings.sampler == "nsga2"

    def _enqueue_anchor(self, study: optuna.Study) -> None:
        """Warm start: the largest named BNext size that fits the budget, if the space holds it."""
        for name in reversed(list(BNEXT_SIZES)):
            params = self.record.space.anchor_params(name)
            if params is not None and fits_budget(self.record, params, self.data):
                study.enqueue_trial(params)
                return

    def run(self, store: Store, progress: bool = True) -> dict[str, Any]:
        spec = self.storage_spec or store.url
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dead_trials = DeadTrials(self.name, store)
        try:
            with store.exclusive():  # one worker at a time creates tables and the study
                storage = open_storage(spec)
                settings, seed = self._open_study(storage)
            if uses_heartbeats(storage):  # the working storage beats while a trial runs
                release(storage)
                storage = open_storage(spec, (settings.heartbeat, settings.grace), dead_trials)
            study = optuna.load_study(study_name=self.name, storage=storage, sampler=make_sampler(settings.sampler, seed),
                                      pruner=make_pruner(settings.pruner, self.record.protocol.recipe.epochs))
            done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished()
                       and t.state != optuna.trial.TrialState.FAIL)
            record = replace(self.record, settings=settings)  # a continued study's size, a joined one's settings
            with SearchProgress(self.name, settings.trials, min(done, settings.trials), progress) as shown:
                factory = self.strategy_factory or STRATEGIES[settings.strategy]
                strategy = factory(record, self.data, store, shown, self.multi_objective, self.device)
                WorkerLoop(study, strategy, settings.trials, dead_trials, shown, settings.heartbeat).run()
            # A study full before this call trained nothing now: its leaderboard is the stored one.
            return {**summarize(study), "already_complete": done >= settings.trials}
        except (OperationalError, DatabaseError, StorageInternalError) as exc:
            raise database_error(spec, exc.__cause__ or exc, "use", "study storage") from None


def join_search(study: str, storage: str, store: Store | None = None, progress: bool = True,
                device: str | None = None) -> dict[str, Any]:
    """Work on an existing study with the settings it records, until it is full and nothing runs."""
    return Search.join(study, storage, device).run(store or Store(), progress)
