"""The one-shot strategy: candidates scored in seconds with the weights they inherit from one supernet.

:func:`run_oneshot` (``bnextbench search --strategy oneshot``): the supernet over the study's space
(given as a run, else found in the store under the same protocol, resumed, or trained first), Optuna
samples candidates under the budget (TPE, or NSGA-II for score against OPs) and each trial is scored
by :class:`~bnextbench.oneshot.scoring.SupernetScorer` on the supernet's held-out training images;
then the K best are retrained stand-alone under the study's protocol (that of the baselines), linked
to the study by trial number, and the proxy's fidelity (Kendall tau, Spearman rho of score against
stand-alone top-1) is stored with the study. :func:`proxy_check` retrains candidates spread over the
budget range to measure it on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import optuna

from .. import limits
from ..data import default_holdout
from ..models.candidate import Candidate
from ..oneshot.scoring import CALIBRATION_IMAGES, SupernetScorer
from ..oneshot.supernet import SUPERNET_MODEL
from ..oneshot.training import supernet_name
from ..store import Store
from ..train import TrainConfig, train
from ..train.loop import LAST_CHECKPOINT
from ..train.protocol import Protocol
from .fidelity import rank_agreement
from .objective import CHECKPOINT_ROOT, CandidateObjective
from .record import FIDELITY_ATTR, StudyRecord
from .retrain import train_or_reuse
from .storage import SearchError, load_existing_study
from .summary import load_summary

@dataclass(frozen=True)
class OneShotConfig:
    """How a one-shot search gets and uses its supernet."""

    supernet: int | None = None  # a completed supernet run; None: find, resume or train one
    supernet_epochs: int | None = None  # default: the study's --epochs
    holdout: int | None = None  # default: a fifth of the training images, at most 5 000
    random_subnets: int = 2
    retrain: int = 3  # best candidates trained stand-alone after the search
    calibration_images: int = CALIBRATION_IMAGES

    def __post_init__(self) -> None:
        limits.RETRAIN.check(self.retrain)
        limits.CALIBRATION_IMAGES.check(self.calibration_images)
        limits.RANDOM_SUBNETS.check(self.random_subnets)
        limits.SUPERNET_EPOCHS.check(self.supernet_epochs, optional=True)
        limits.SUPERNET_RUN.check(self.supernet, optional=True)
        limits.HOLDOUT.check(self.holdout, optional=True)


class ScoreWithSupernet(CandidateObjective):
    """The one-shot objective: each candidate's held-out top-1 with inherited weights (no training)."""

    action = "scoring"

    def __init__(self, record: StudyRecord, data, store: Store, progress, multi_objective: bool,
                 device: str | None = None):
        super().__init__(record, data, store, progress, multi_objective, device)
        if record.oneshot is None:
            raise SearchError(f"study {record.name!r} records no supernet")
        self.scorer = SupernetScorer.from_run(store, record.oneshot["supernet_run"], device,
                                              record.oneshot["calibration_images"])

    def evaluate(self, trial: optuna.Trial, candidate: Candidate, row: dict[str, Any]) -> tuple[float, None]:
        score = self.scorer.score(candidate.spec)
        trial.set_user_attr("score_seconds", score.seconds)
        return score.top1, None


def supernet_protocol(record: StudyRecord, data_size: int, config: OneShotConfig) -> Protocol:
    """The study's protocol for the supernet: its own epochs, and training images held out for scoring."""
    protocol = record.protocol
    holdout = config.holdout or default_holdout(data_size)
    recipe = replace(protocol.recipe, epochs=config.supernet_epochs or protocol.recipe.epochs)
    return replace(protocol, recipe=recipe, holdout=holdout)


def check_supernet(store: Store, run_id: int, record: StudyRecord) -> None:
    """A one-line error unless run ``run_id`` is a supernet over the study's space and data."""
    run = store.get_run(run_id)
    if run.kind != "supernet":
        raise SearchError(f"run {run_id} trained {run.candidate}, not a supernet")
    if run.candidate != supernet_name(record.space):
        raise SearchError(f"supernet run {run_id} was trained over another space than study {record.name!r}'s")
    protocol = record.protocol
    if (run.data, run.resolution, run.train_limit) != (protocol.data, protocol.resolution, protocol.train_limit):
        raise SearchError(f"supernet run {run_id} trained on {run.data} at {run.resolution} px (limit "
                          f"{run.train_limit}); the study uses {protocol.data} at {protocol.resolution} px "
                          f"(limit {protocol.train_limit})")


def obtain_supernet(record: StudyRecord, data_size: int, config: OneShotConfig, store: Store,
                    device: str | None = None, progress: bool = True) -> int:
    """The id of a completed supernet run for the study: the given one, one trained before under the same
    protocol, or one trained now (resuming an interrupted one from its checkpoint folder)."""
    if config.supernet is not None:
        check_supernet(store, config.supernet, record)
        return config.supernet
    protocol = supernet_protocol(record, data_size, config)
    name = supernet_name(record.space)
    previous = store.find_completed_run(name, protocol)
    if previous is not None:
        return previous.id
    out = CHECKPOINT_ROOT / "supernets" / f"{name}-{protocol.key}"
    train_config = TrainConfig(model=SUPERNET_MODEL, data=protocol.data, recipe=protocol.recipe,
                               train_limit=protocol.train_limit, resolution=protocol.resolution,
                               supernet_space=record.space.definition, holdout=protocol.holdout,
                               random_subnets=config.random_subnets, out=out, device=device,
                               resume=(out / LAST_CHECKPOINT).is_file())
    return train(train_config, store, progress=progress)["run_id"]


def configure_oneshot(record: StudyRecord, data_size: int, config: OneShotConfig, store: Store,
                      device: str | None = None, progress: bool = True) -> StudyRecord:
    """The study's record with its supernet (trained first if need be) and the one-shot strategy."""
    run_id = obtain_supernet(record, data_size, config, store, device, progress)
    oneshot = {"supernet_run": run_id, "calibration_images": config.calibration_images}
    return replace(record, oneshot=oneshot, settings=replace(record.settings, strategy="oneshot"))


def retrain(record: StudyRecord, trials: list[dict[str, Any]], store: Store, device: str | None = None,
            progress: bool = True) -> list[dict[str, Any]]:
    """Train ``trials`` (scored ones) stand-alone under the study's protocol, linked to their trial numbers;
    returns score, stand-alone top-1 and run of each."""
    retrained = []
    for trial in trials:
        result = train_or_reuse(Candidate.from_dict(trial["arch"]), record.protocol, store,
                                CHECKPOINT_ROOT / record.name / f"retrain-{trial['number']}", device, record.name,
                                trial["number"], progress, resume=True)
        retrained.append({"trial": trial["number"], "candidate": trial["candidate"], "bops": trial["bops"],
                          "score": trial["top1"], "top1": result.top1, "run_id": result.run_id})
    return retrained


def scored(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scored trials, best first, one per candidate."""
    seen, best = set(), []
    for trial in sorted((t for t in trials if t["state"] == "complete" and t["top1"] is not None),
                        key=lambda t: (-t["top1"], t["number"])):
        if trial["candidate"] not in seen:
            seen.add(trial["candidate"])
            best.append(trial)
    return best


def spread_over_budget(trials: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` scored candidates at evenly spaced ranks of their BOPs, smallest to largest."""
    by_bops = sorted(scored(trials), key=lambda t: (t["bops"], t["number"]))
    if count >= len(by_bops):
        return by_bops
    if count == 1:
        return [by_bops[-1]]
    return [by_bops[round(i * (len(by_bops) - 1) / (count - 1))] for i in range(count)]


def record_fidelity(record: StudyRecord, storage_spec: str, retrained: list[dict[str, Any]]) -> dict[str, Any]:
    """Store the proxy's fidelity over every retrained candidate of the study (this call's and earlier ones)."""
    study = load_existing_study(record.name, storage_spec)
    earlier = (study.user_attrs.get(FIDELITY_ATTR) or {}).get("retrained", [])
    merged = {entry["trial"]: entry for entry in [*earlier, *retrained]}
    pairs = sorted(merged.values(), key=lambda entry: entry["trial"])
    fidelity = {"proxy": "held-out top-1 with inherited weights", "retrained": pairs,
                **rank_agreement([p["score"] for p in pairs], [p["top1"] for p in pairs])}
    study.set_user_attr(FIDELITY_ATTR, fidelity)
    return fidelity


def run_oneshot(search, config: OneShotConfig, store: Store, progress: bool = True) -> dict[str, Any]:
    """A one-shot search end to end: supernet, scored trials, the best ``config.retrain`` retrained, fidelity."""
    record = configure_oneshot(search.record, len(search.data.train_labels), config, store, search.device, progress)
    search.record = record
    summary = search.run(store, progress)
    retrained = retrain(record, scored(summary["trials"])[: config.retrain], store, search.device, progress)
    storage_spec = search.storage_spec or store.url
    fidelity = record_fidelity(record, storage_spec, retrained)
    return {**load_summary(record.name, storage_spec), "fidelity": fidelity}


def proxy_check(record: StudyRecord, storage_spec: str, store: Store, candidates: int, device: str | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Retrain ``candidates`` scored candidates spread over the budget range and store the proxy's fidelity."""
    if record.settings.strategy != "oneshot":
        raise SearchError(f"study {record.name!r} is a {record.settings.strategy} study; its low-fidelity "
                          "agreement is printed by `bnextbench show`")
    limits.PROXY_CANDIDATES.check(candidates)
    summary = load_summary(record.name, storage_spec)
    chosen = spread_over_budget(summary["trials"], candidates)
    return record_fidelity(record, storage_spec, retrain(record, chosen, store, device, progress))
