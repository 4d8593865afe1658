"""Budget-constrained search with Optuna: sample, count, reject over-budget candidates, train, record.

Optuna does the sampling (TPE, NSGA-II, random), pruning (successive halving, Hyperband) and study
storage: its RDB storage (by default in the same SQLite file as bnextbench's tables; PostgreSQL for
workers on many machines) or its journal file (``journal:PATH``, many processes on one host).
Candidates over the budget are rejected analytically before any training and recorded as
infeasible. A candidate already trained under the same protocol is not trained again.

Any number of workers can run one study: each takes the next trial until the study holds
``trials`` trials that count (complete, pruned, infeasible, running or queued), so the count is
exact however many join. A trial whose worker died (its process is gone on this host, or its
Optuna heartbeat stopped on a server storage) is kept as failed and retried once, by Optuna's
retry callback, as a new trial; workers stay until no trial is running, so they can take over.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import (
    ExperimentalWarning,
    StorageInternalError,
    UpdateFinishedTrialError,
)
from optuna.storages import (
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
    fail_stale_trials,
)
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError

from ..complexity import Complexity
from ..data import ImageData, load_data
from ..errors import BnextbenchError
from ..models import BNEXT_SIZES
from ..profiling import profile_model, profile_spec, uses_small_input
from ..store import (
    Store,
    database_error,
    engine_options,
    pid_alive,
    shown,
    sqlite_path,
    use_sqlite_wal,
    worker_identity,
)
from ..train import Recipe, TrainConfig, train
from ..train.loop import StopRun, TrainingDiverged
from .budget import Budget, parse_budgets
from .space import Candidate, load_space

SAMPLERS = ("tpe", "nsga2", "random")
PRUNERS = ("sh", "hyperband", "none")
JOURNAL_PREFIX = "journal:"
HEARTBEAT_S = 60
MAX_RETRY = 1


class SearchError(BnextbenchError):
    pass


class PrunedRun(StopRun, optuna.TrialPruned):
    """Stops the training run as "pruned" and tells Optuna the trial was pruned."""

    status = "pruned"


class SurplusTrial(Exception):
    """A worker asked for a trial after the study was full (another worker took the last one)."""


class _SurplusTrialLog(logging.Filter):
    """Optuna logs a failed trial as a traceback plus a "failed with value None" line; a surplus trial never
    ran, so it gets one plain line instead."""

    def __init__(self):
        super().__init__()
        self.surplus: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        number = re.match(r"Trial (\d+) ", record.getMessage())
        error = record.exc_info[1] if record.exc_info else None
        if number and isinstance(error, SurplusTrial):
            self.surplus.add(number[1])
            record.msg, record.args, record.exc_info, record.exc_text = f"Trial {number[1]} not run: {error}", (), None, None
            return True
        return not (number and number[1] in self.surplus and "failed with value" in record.getMessage())


logging.getLogger("optuna.study._optimize").addFilter(_SurplusTrialLog())


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
    heartbeat: int = HEARTBEAT_S  # seconds between a running trial's heartbeats (database storages, not journals)
    grace: int | None = None  # seconds without a heartbeat before a trial counts as dead (default 2 x heartbeat)


def open_storage(spec: str, heartbeat: tuple[int, int] | None = None, on_dead_trial=None,
                 create: bool = True) -> optuna.storages.BaseStorage:
    """``journal:PATH`` -> Optuna's journal file; an SQLAlchemy URL -> its RDB storage, with the
    heartbeat ``(interval, grace)`` in seconds and ``on_dead_trial(study, trial)`` when given.
    Without ``create`` a journal file must exist already."""
    if spec.startswith(JOURNAL_PREFIX):
        path = Path(spec[len(JOURNAL_PREFIX):])
        if not create and not path.is_file():
            raise SearchError(f"no journal {path}; a search with --storage {spec} creates it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise SearchError(f"cannot use journal {path}: {exc.strerror or exc}") from None
    if "://" not in spec:
        raise SearchError(f"unknown storage {spec!r}: give an SQLAlchemy URL (sqlite:///PATH, "
                          "postgresql://USER@HOST/DB) or journal:PATH")
    database = sqlite_path(spec)
    if not create and database is not None and not database.is_file():
        raise SearchError(f"no database {database}; a search with --storage {spec} creates it")
    options: dict[str, Any] = {}
    if heartbeat is not None:
        options = {"heartbeat_interval": heartbeat[0], "grace_period": heartbeat[1],
                   "heartbeat_stale_trial_callback": on_dead_trial}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats: experimental since Optuna 2.9
            storage = RDBStorage(spec, engine_kwargs=engine_options(spec), **options)
    except (OperationalError, DatabaseError, StorageInternalError) as exc:
        raise database_error(spec, exc.__cause__ or exc, "open", "study storage") from None
    except (ImportError, ValueError, ArgumentError) as exc:  # driver not installed, malformed URL
        raise SearchError(f"cannot use study storage {shown(spec)}: {exc}") from None
    use_sqlite_wal(storage.engine)
    storage.engine.dispose()  # new connections get the pragmas
    return storage


def protocol_of(data: ImageData, train_limit: int | None, recipe: Recipe) -> dict[str, Any]:
    """What every candidate of a study trains under: data spec, resolution, train limit and recipe."""
    return {"data": data.spec, "resolution": data.resolution, "train_limit": train_limit, "recipe": recipe.to_dict()}


def count_candidate(candidate: Candidate, resolution: int, num_classes: int) -> Complexity:
    if candidate.spec is not None:
        return profile_spec(candidate.spec, resolution)
    return profile_model(candidate.model, resolution, num_classes, width_mult=candidate.width_mult)


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":  # constant liar: concurrent workers do not all suggest the same candidate
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4, constant_liar=True)
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


def _taken(trials: list[FrozenTrial]) -> int:
    """Trials that count toward the study's size: all but failed ones (a dead trial's retry counts instead)."""
    return sum(1 for trial in trials if trial.state != TrialState.FAIL)


class Search:
    """A configured search; everything is validated here, before :meth:`run` writes anything."""

    def __init__(self, config: SearchConfig):
        self.config = config
        if config.sampler not in SAMPLERS:
            raise SearchError(f"unknown sampler {config.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if config.trials < 1 or config.epochs < 1:
            raise SearchError("--trials and --epochs must be positive integers")
        if config.heartbeat < 1 or (config.grace is not None and config.grace <= config.heartbeat):
            raise SearchError("--heartbeat must be at least 1 s and --grace longer than --heartbeat")
        self.space = load_space(config.space)
        self.signature = _space_signature(config.space)
        self.data = load_data(config.data, config.resolution, config.train_limit, config.seed)
        self.stem_stride = 1 if uses_small_input(self.data.resolution) else 2
        self.multi_objective = config.sampler == "nsga2"
        self.recipe = Recipe(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                             **config.extra_recipe)
        self.protocol = protocol_of(self.data, config.train_limit, self.recipe)
        self.name = config.study or f"search-{'-'.join(b.text for b in config.budgets)}"
        self.storage_spec = config.storage
        self.joining = False  # a worker takes the study's size; `search` sets it
        self.failed_by_error = 0
        self._check_feasible()

    @classmethod
    def join(cls, study: str, storage: str) -> Search:
        """A worker for an existing study: budgets, space, data, recipe and sampler as the study records them."""
        opened = open_storage(storage, create=False)
        if study not in optuna.study.get_all_study_names(opened):
            raise SearchError(f"unknown study {study!r} in {shown(storage)}; create it with "
                              f"`bnextbench search --study {study} --storage URL`")
        attrs = optuna.load_study(study_name=study, storage=opened).user_attrs
        if "search" not in attrs:
            raise SearchError(f"study {study!r} was made by an older bnextbench; continue it with `bnextbench search` "
                              "and its original options")
        protocol, settings = attrs["protocol"], attrs["search"]
        recipe = dict(protocol["recipe"])
        with tempfile.TemporaryDirectory() as folder:
            space = Path(folder) / "space.yaml"
            space.write_text(attrs["space"])  # JSON is YAML
            search = cls(SearchConfig(
                budgets=parse_budgets(attrs["budgets"]), space=space, data=protocol["data"],
                trials=settings["trials"], epochs=recipe.pop("epochs"), batch_size=recipe.pop("batch_size"),
                train_limit=protocol["train_limit"], resolution=protocol["resolution"], sampler=settings["sampler"],
                pruner=settings["pruner"], study=study, storage=storage, seed=recipe.pop("seed"), lr=recipe.pop("lr"),
                extra_recipe=recipe, heartbeat=settings["heartbeat"], grace=settings["grace"],
            ))
        search.joining = True
        return search

    def _fits(self, complexity: Complexity) -> bool:
        return all(budget.allows(complexity) for budget in self.config.budgets)

    def _check_feasible(self) -> None:
        smallest = self.space.suggest(optuna.trial.FixedTrial(self.space.smallest_params()),
                                      self.data.num_classes, self.stem_stride)
        if not self._fits(count_candidate(smallest, self.data.resolution, self.data.num_classes)):
            budgets = ", ".join(str(b) for b in self.config.budgets)
            raise SearchError(f"the space {self.config.space} admits no candidate under {budgets} "
                              f"at {self.data.resolution} px")

    def _open_study(self, storage: optuna.storages.BaseStorage) -> dict[str, Any]:
        """Create the study, or check that it is this search, and register this worker; run by one worker at
        a time (Store.exclusive). Returns the study's settings and this worker's sampler seed."""
        created = self.name not in optuna.study.get_all_study_names(storage)
        if not created:
            study = optuna.load_study(study_name=self.name, storage=storage)
            if study.user_attrs.get("space") != self.signature or study.user_attrs.get("protocol") != self.protocol:
                raise SearchError(f"study {self.name!r} exists with another space or protocol; choose another --study")
            settings = study.user_attrs.get("search") or self._settings()  # none in studies of bnextbench 0.1
            if not self.joining:  # `search --trials N` sets the study's size
                settings = {**settings, "trials": self.config.trials}
        else:
            direction = {"directions": ["maximize", "minimize"]} if self.multi_objective else {"direction": "maximize"}
            study = optuna.create_study(study_name=self.name, storage=storage, **direction)
            study.set_user_attr("space", self.signature)
            study.set_user_attr("protocol", self.protocol)
            study.set_user_attr("budgets", [b.text for b in self.config.budgets])
            settings = self._settings()
            self._enqueue_anchor(study)
        worker = settings.get("workers", 0)
        study.set_user_attr("search", {**settings, "workers": worker + 1})
        # Each worker draws with its own seed: the creator with --seed; a later one (a continued study, or another
        # process on it) offset by the trials so far and its index, so that it does not repeat the first draws.
        seed = self.config.seed + (0 if created else worker + len(study.get_trials(deepcopy=False)))
        return {**settings, "seed": seed}

    def _settings(self) -> dict[str, Any]:
        """What a joining worker needs beyond space and protocol; the heartbeat is the study's, not the worker's."""
        return {"sampler": self.config.sampler, "pruner": self.config.pruner, "trials": self.config.trials,
                "heartbeat": self.config.heartbeat, "grace": self.config.grace or 2 * self.config.heartbeat}

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

    def _recover_dead_trials(self, study: optuna.Study) -> None:
        """Trials whose worker died: on this host its process is gone; anywhere its heartbeat stopped."""
        host = socket.gethostname()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = trial.user_attrs.get("pid")
            if trial.user_attrs.get("host") != host or pid is None or pid_alive(pid):
                continue
            try:
                failed = study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            except UpdateFinishedTrialError:  # another worker got there first
                continue
            if failed:
                self._on_dead_trial(study, copy.deepcopy(study._storage.get_trial(trial._trial_id)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            fail_stale_trials(study)  # heartbeat storages; calls _on_dead_trial for each

    def _on_dead_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Keep the dead attempt (Optuna keeps it as FAIL; its run is marked interrupted and its row failed),
        then let Optuna's retry callback queue it again as a new trial, once."""
        attrs = trial.user_attrs
        run = self.store.trial_run(self.name, trial.number)
        if run is not None and run.status == "running":
            self.store.update_run(run.id, status="interrupted",
                                  message=f"worker {attrs.get('worker', '?')} died during trial {trial.number}")
        if "hash" in attrs:  # counted before it died
            self.store.record_failed_trial(
                study=self.name, trial_number=trial.number, candidate_hash=attrs["hash"],
                candidate=attrs["candidate"], run_id=run.id if run else None, worker=attrs.get("worker"),
                retry_of=trial.system_attrs.get("failed_trial"),
                **{key: attrs[key] for key in ("bops", "flops", "ops", "params")})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)

    def objective(self, trial: optuna.Trial):
        trials = trial.study.get_trials(deepcopy=False)
        if _taken([t for t in trials if t.number < trial.number]) >= self.config.trials:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise SurplusTrial(f"study {self.name} already holds {self.config.trials} trials")
        retry_of = next(t for t in trials if t.number == trial.number).system_attrs.get("failed_trial")
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("worker", worker_identity())
        for inherited in ("run_id", "top1", "reused_run", "train_seconds"):  # a retry starts with its attempt's
            if inherited in trial.user_attrs:
                trial.set_user_attr(inherited, None)
        candidate = self.space.suggest(trial, self.data.num_classes, self.stem_stride)
        complexity = count_candidate(candidate, self.data.resolution, self.data.num_classes)
        counts = {key: getattr(complexity, key) for key in ("bops", "flops", "ops", "params")}
        trial.set_user_attr("candidate", candidate.to_dict())
        trial.set_user_attr("hash", candidate.hash)
        for key, value in counts.items():
            trial.set_user_attr(key, value)
        record = dict(study=self.name, trial_number=trial.number, candidate_hash=candidate.hash,
                      candidate=candidate.to_dict(), retry_of=retry_of, **counts)
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
            extra={"candidate": candidate.hash, "protocol": self.protocol, "study": self.name,
                   "trial": trial.number},
        )
        started = time.perf_counter()
        try:
            record = train(config, self.store, progress=False, on_epoch=report)
        finally:
            trial.set_user_attr("train_seconds", time.perf_counter() - started)
        return record["top1"], record["run_id"]

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Stop asking for trials once the study is full, or after as many errors as it has trials."""
        if trial.state == TrialState.FAIL and not trial.user_attrs.get("surplus"):
            self.failed_by_error += 1
        self._recover_dead_trials(study)
        if _taken(study.get_trials(deepcopy=False)) >= self.config.trials or self.failed_by_error >= self.config.trials:
            study.stop()

    def _work(self, study: optuna.Study) -> None:
        """Take trials until the study is full; then stay while others' trials run, to retry them if they die."""
        while self.failed_by_error < self.config.trials:
            self._recover_dead_trials(study)
            trials = study.get_trials(deepcopy=False)
            waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
            wanted = max(self.config.trials - _taken(trials), 0) + waiting
            if wanted:
                study.optimize(self.objective, n_trials=wanted, catch=(TrainingDiverged, SurplusTrial),
                               callbacks=[self._after_trial], show_progress_bar=self.progress)
            elif any(t.state == TrialState.RUNNING for t in trials):
                time.sleep(self.poll)
            else:
                return

    def run(self, store: Store, progress: bool = True) -> dict[str, Any]:
        self.store, self.progress = store, progress
        spec = self.storage_spec or store.url
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            with store.exclusive():  # one worker at a time creates tables and the study
                storage = open_storage(spec)
                settings = self._open_study(storage)
            if isinstance(storage, RDBStorage):  # the working storage beats while a trial runs
                storage.engine.dispose()
                storage = open_storage(spec, (settings["heartbeat"], settings["grace"]), self._on_dead_trial)
            study = optuna.load_study(study_name=self.name, storage=storage,
                                      sampler=_sampler(self.config.sampler, settings["seed"]),
                                      pruner=_pruner(self.config.pruner, self.config.epochs))
            self.config.trials = settings["trials"]
            self.poll = min(settings["heartbeat"], 10)  # seconds between looks at others' running trials
            self._work(study)
            return summarize(study)
        except (OperationalError, DatabaseError, StorageInternalError) as exc:
            raise database_error(spec, exc.__cause__ or exc, "use", "study storage") from None


def summarize(study: optuna.Study) -> dict[str, Any]:
    """The study as plain data: every trial with its candidate, counts, top-1, worker and retried trial.

    States: complete, pruned, infeasible (over budget), fail (its worker died, or an error), surplus
    (asked for after the study was full, never run), running, waiting.
    """
    trials = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        state = next((name for name in ("infeasible", "surplus") if attrs.get(name)), trial.state.name.lower())
        trials.append({
            "number": trial.number, "state": state, "arch": attrs.get("candidate"), "hash": attrs.get("hash"),
            "bops": attrs.get("bops"), "flops": attrs.get("flops"), "ops": attrs.get("ops"),
            "params": attrs.get("params"), "top1": attrs.get("top1"), "run_id": attrs.get("run_id"),
            "worker": attrs.get("worker"), "retry_of": trial.system_attrs.get("failed_trial"),
        })
    return {"study": study.study_name, "budgets": study.user_attrs.get("budgets"),
            "protocol": study.user_attrs.get("protocol"), "trials": trials}


def load_summary(name: str, storage: str) -> dict[str, Any]:
    """:func:`summarize` of a stored study; ``storage`` is an SQLAlchemy URL or journal:PATH."""
    opened = open_storage(storage, create=False)
    if name not in optuna.study.get_all_study_names(opened):
        raise SearchError(f"unknown study {name!r} in {shown(storage)}")
    return summarize(optuna.load_study(study_name=name, storage=opened))


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


def join_search(study: str, storage: str, store: Store | None = None, progress: bool = True) -> dict[str, Any]:
    """Work on an existing study with the settings it records, until it is full and nothing runs."""
    return Search.join(study, storage).run(store or Store(), progress)
