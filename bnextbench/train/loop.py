"""The training loop: data -> model -> recipe (+ teachers) -> epochs, with every run kept in the store.

Each epoch reseeds every random generator from (seed, epoch), so a run resumed from its last
checkpoint repeats exactly what the uninterrupted run would have done. Per epoch: BatchNorm
statistics are re-estimated for the weights as trained (:func:`recalibrate_batch_norm`), the test
split is scored, metrics go to the store first, then the checkpoint (model, optimizer, scheduler,
tau, RNG states) is written atomically; a resume drops metrics of epochs after its checkpoint.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import timm
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader

from ..complexity import count_model
from .. import limits
from ..data import ImageData, ImageSource, default_holdout, hold_out, load_data, normalize
from ..errors import BnextbenchError, brief
from ..io import atomic_torch_save, check_writable, read_checkpoint
from ..models import BNext, BNextSpec, create_model, list_models
from ..models.candidate import Candidate
from ..nn import apply_constraints
from ..oneshot.supernet import SUPERNET_MODEL, BNextSupernet, build_supernet
from ..oneshot.training import SandwichStep, supernet_name
from ..profiling import profile_spec, uses_small_input
from ..provenance import git_commit, package_versions
from ..store import Store
from .distill import TeacherCurriculum, kd_loss, load_teacher
from .fast import BATCHED_AUGMENTATIONS, BatchPreparer, DeviceImages, autocast, check_compile_works, sync_steps, \
    training_forward
from .protocol import Protocol
from .recipe import Recipe, clip_gradients, optimizer_for, scheduler_for, set_tau

TRAIN_CHECKPOINT_FORMAT = "bnextbench-train/1"
LAST_CHECKPOINT = "last.pt"
DEFAULT_CHECKPOINTS = Path("results") / "checkpoints"  # run-ID/ folders of runs given no --out
RESUMED_SETTINGS = ("data", "train_limit", "resolution", "teacher", "assistants", "width_mult", "holdout",
                    "supernet_space", "random_subnets", "data_on_device")
# What a checkpoint written before a setting existed was trained with.
SETTINGS_BEFORE_RECORDED = {"data_on_device": False}


class TrainingDiverged(BnextbenchError):
    pass


def diverged(what: str, out: Path) -> TrainingDiverged:
    """The error of a run whose loss left the finite numbers, saying whether a checkpoint of an earlier epoch
    remains in ``out`` (the diverged weights are never written)."""
    kept = (f"the last good checkpoint, {out / LAST_CHECKPOINT}, is kept" if (out / LAST_CHECKPOINT).is_file()
            else "no checkpoint is kept (no epoch finished before)")
    return TrainingDiverged(f"diverged: {what}; {kept}; try a lower --lr")


class StopRun(Exception):
    """Raised by an ``on_epoch`` callback to end a run early with ``status`` (e.g. pruned by a search)."""

    status = "stopped"


@dataclass
class TrainConfig:
    """What to train on what; ``spec`` (a BNext architecture) replaces ``model`` when given."""

    model: str
    data: str
    recipe: Recipe
    width_mult: float = 1.0
    spec: BNextSpec | None = None
    train_limit: int | None = None
    resolution: int | None = None
    teacher: str | None = None
    assistants: tuple[str, ...] = ()
    out: Path | None = None
    resume: bool = False
    device: str | None = None
    download: bool = False
    eval_batch_size: int = 512
    study: str | None = None  # the search study and trial this run trains a candidate for
    trial_number: int | None = None
    holdout: int | None = None  # training images validated on instead of the test split (data.hold_out)
    supernet_space: dict[str, Any] | None = None  # a bnext space definition: train its supernet instead of `model`
    random_subnets: int = 2  # per supernet step, besides the largest and the smallest
    # The fast step (train.fast): layout, compiled forward, training set on the device (None: on CUDA when it can).
    channels_last: bool = False
    compile: bool = False
    data_on_device: bool | None = None

    def __post_init__(self) -> None:
        limits.WIDTH_MULT.check(self.width_mult)
        limits.RANDOM_SUBNETS.check(self.random_subnets)
        limits.EVAL_BATCH_SIZE.check(self.eval_batch_size)
        for limit, value in ((limits.TRAIN_LIMIT, self.train_limit), (limits.RESOLUTION, self.resolution),
                             (limits.HOLDOUT, self.holdout)):
            limit.check(value, optional=True)
        check_device(self.device)
        if self.supernet_space is not None and (self.compile or self.recipe.precision != "fp32"):
            raise BnextbenchError("--compile and --precision bf16 apply to plain training, not to supernets")

    def protocol(self, data: ImageSource) -> Protocol:
        """What this run trains under, on ``data`` as loaded for it."""
        teacher = " + ".join([*self.assistants, self.teacher]) if self.teacher else None
        return Protocol(data.spec, data.resolution, self.train_limit, self.recipe, teacher, self.holdout)


DEVICE_TYPES = ("cpu", "cuda")


def check_device(name: str | None) -> str | None:
    """``name`` if it is a device this machine has (cpu, cuda, cuda:N), else a one-line error; None = automatic."""
    if name is None:
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise BnextbenchError(f"--device must be cpu, cuda or cuda:N, got {brief(name)}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BnextbenchError(f"device {name} requested but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BnextbenchError(f"device {name} requested but this machine has {torch.cuda.device_count()} GPU(s)")
    return name


def pick_device(name: str | None) -> torch.device:
    """The device to run on: ``name`` once checked, else cuda where present."""
    if check_device(name):
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_recipe(config: TrainConfig, num_classes: int, resolution: int) -> dict[str, Any]:
    """How to rebuild the model: registry name and keyword arguments, a BNext spec, or a supernet's space."""
    if config.supernet_space is not None:
        return {"model": SUPERNET_MODEL, "arch_spec": None, "space": config.supernet_space,
                "model_kwargs": {"num_classes": num_classes, "stem_stride": 1 if uses_small_input(resolution) else 2}}
    if config.spec is not None:
        spec = replace(config.spec, num_classes=num_classes, stem_stride=1 if uses_small_input(resolution) else 2)
        return {"model": "bnext_spec", "arch_spec": spec.to_dict(), "model_kwargs": {}}
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if config.model in list_models():
        kwargs["small_input"] = uses_small_input(resolution)
        if config.width_mult != 1.0:
            kwargs["width_mult"] = config.width_mult
    return {"model": config.model, "arch_spec": None, "model_kwargs": kwargs}


def build_model(description: dict[str, Any]) -> nn.Module:
    """A model from :func:`model_recipe`'s description (registry names, BNext specs, supernets, timm teachers)."""
    if description["model"] == SUPERNET_MODEL:
        return build_supernet(description)
    if description.get("arch_spec"):
        return BNext(BNextSpec.from_dict(description["arch_spec"]))
    if description["model"] in list_models():
        return create_model(description["model"], **description["model_kwargs"])
    try:
        return timm.create_model(description["model"], **description["model_kwargs"])
    except RuntimeError as exc:
        raise BnextbenchError(f"cannot build model {description['model']!r}: {exc}") from None


def seed_everything(seed: int, epoch: int) -> torch.Generator:
    """Reseed python, numpy and torch for one epoch; returns the generator for data order."""
    mixed = seed * 1_000_003 + epoch
    random.seed(mixed)
    np.random.seed(mixed % 2**32)
    torch.manual_seed(mixed)
    return torch.Generator().manual_seed(mixed)


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSource, device: torch.device, batch_size: int = 512) -> dict[str, float]:
    """Top-1 / top-5 accuracy (%) and mean cross-entropy on the test split."""
    model.eval()
    correct1 = correct5 = total = 0
    loss_sum = 0.0
    for images, labels in data.test_batches(batch_size):
        images = normalize(images.to(device), data.mean, data.std)
        labels = labels.to(device)
        logits = model(images)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == labels).sum().item()
        correct5 += (top == labels[:, None]).any(dim=1).sum().item()
        total += len(labels)
    return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total, "loss": loss_sum / total}


BATCH_NORM_CALIBRATION_IMAGES = 1024


def recalibrate_batch_norm(model: nn.Module, data: ImageSource, device: torch.device, batch_size: int,
                           seed: int, images: int = BATCH_NORM_CALIBRATION_IMAGES) -> None:
    """Set every BatchNorm's running statistics to those of the current weights, measured on up to
    ``images`` training images, un-augmented like the test images (each statistic the plain average over
    the batches, which are of near-equal size).

    The running averages (momentum 0.1) trail the weights by about ten steps and still hold 0.9^steps
    of their initial variance 1. Early in training a binary conv's latent weights (init std 1e-3) move
    by about their own size per step, so after bnext_tiny's 15 steps on 2000 CIFAR-10 images some
    running variances are 10^3 times the true ones and the eval-mode network sits at chance. Late in a
    long run both estimates agree. The draw depends on ``seed`` only, so a resumed run recalibrates alike.
    """
    # Near-equal batches, as the cumulative average update_bn keeps weighs every batch alike.
    batches = (normalize(batch.to(device), data.mean, data.std)
               for batch in data.calibration_batches(images, batch_size, seed))
    update_bn(batches, model)


STDERR = Console(stderr=True)


def _progress(enabled: bool) -> Progress:
    """Live bars on a terminal; elsewhere (logs, pipes) :meth:`Trainer._epochs` prints a line per epoch."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(), console=STDERR, disable=not (enabled and STDERR.is_terminal), transient=False,
    )


class Trainer:
    """One training run; :meth:`run` returns the final record (``run_id``, ``top1``, ``top5``, ...)."""

    def __init__(self, config: TrainConfig, store: Store | str | Path | None, progress: bool = True,
                 on_epoch: Callable[[int, dict[str, float]], None] | None = None):
        """``store``: a Store, or the location of one (None: the default), opened only once data, teachers and
        checkpoint are read, so that refused input leaves no database behind. ``on_epoch(epoch, test_metrics |
        {"run_id"})`` runs after each epoch's checkpoint; raising stops the run."""
        self.config, self.show_progress, self.on_epoch = config, progress, on_epoch
        self.store_location = store
        self.last_result: dict[str, float] = {}
        self.recipe = config.recipe
        self.device = pick_device(config.device)

    def _resume_state(self) -> dict[str, Any] | None:
        if not self.config.resume:
            return None
        if self.config.out is None:
            raise BnextbenchError("--resume needs --out DIR, the folder of the run to continue")
        path = self.config.out / LAST_CHECKPOINT
        state = read_checkpoint(path, "checkpoint to resume")
        if not isinstance(state, dict) or state.get("format") != TRAIN_CHECKPOINT_FORMAT:
            raise BnextbenchError(f"{path} is not a bnextbench training checkpoint")
        return state

    def run(self) -> dict[str, Any]:
        check_writable(self.config.out or DEFAULT_CHECKPOINTS, "checkpoint folder", folder=True)
        resumed = self._resume_state()
        if resumed:  # continue exactly as started: the stored settings win over new flags
            self.recipe = Recipe(**resumed["recipe"])
            self.config = replace(self.config, recipe=self.recipe,
                                  **{**SETTINGS_BEFORE_RECORDED, **resumed["settings"]})
        config, recipe = self.config, self.recipe
        data = load_data(config.data, config.resolution, config.train_limit, recipe.seed, config.download)
        if config.supernet_space is not None and config.holdout is None:  # a supernet always validates held out
            self.config = config = replace(config, holdout=default_holdout(data.train_size))
        if config.holdout is not None:
            data = hold_out(data, config.holdout, recipe.seed)
        self.config = config = replace(config, data_on_device=self._data_on_device(data))
        if config.compile:
            check_compile_works(self.device)
        curriculum = None
        if config.teacher:
            main = load_teacher(config.teacher, data.num_classes, self.device)
            assistants = [load_teacher(p, data.num_classes, self.device) for p in config.assistants]
            curriculum = TeacherCurriculum(main, assistants, recipe.epochs)
        elif config.assistants:
            raise BnextbenchError("assistant teachers need a main --teacher")

        description = resumed["model_description"] if resumed else model_recipe(config, data.num_classes,
                                                                                  data.resolution)
        self.store = self.store_location if isinstance(self.store_location, Store) else Store(self.store_location)
        torch.manual_seed(recipe.seed)
        model = build_model(description).to(self.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.step = (SandwichStep(model, config.random_subnets, recipe.seed, recipe.kd_weighting)
                     if isinstance(model, BNextSupernet) else plain_step)
        self.forward = training_forward(model, recipe.precision, self.device, config.compile)
        self.prepare = BatchPreparer(data.mean, data.std, self.device, config.channels_last)
        optimizer = optimizer_for(model, recipe)
        scheduler = scheduler_for(optimizer, recipe)
        start_epoch = 0
        if resumed:
            model.load_state_dict(resumed["model"])
            optimizer.load_state_dict(resumed["optimizer"])
            scheduler.load_state_dict(resumed["scheduler"])
            start_epoch = resumed["epoch"] + 1
            run_id = resumed["run_id"]
            self.store.discard_epochs_after(run_id, resumed["epoch"])
            self.store.update_run(run_id, status="running", message=None, epochs_done=start_epoch)
        else:
            run_id = self._create_run(model, description, data)
        out = config.out or DEFAULT_CHECKPOINTS / f"run-{run_id}"
        self.store.update_run(run_id, checkpoint=str(out / LAST_CHECKPOINT))
        try:
            record = self._epochs(run_id, model, optimizer, scheduler, data, curriculum, start_epoch, out,
                                  description)
        except TrainingDiverged as exc:
            self.store.update_run(run_id, status="diverged", message=str(exc))
            raise
        except StopRun as exc:
            last = self.last_result
            self.store.update_run(run_id, status=exc.status, message=str(exc), top1=last.get("top1"),
                                  top5=last.get("top5"))
            raise
        except KeyboardInterrupt:
            self.store.update_run(run_id, status="interrupted", message="stopped by the user")
            raise
        except torch.OutOfMemoryError:
            message = (f"out of memory at batch size {recipe.batch_size}; "
                       f"try --batch-size {max(1, recipe.batch_size // 2)}")
            self.store.update_run(run_id, status="failed", message=message)
            raise BnextbenchError(message) from None
        except BaseException as exc:
            self.store.update_run(run_id, status="failed", message=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        return record

    def _data_on_device(self, data: ImageSource) -> bool:
        """Whether the training set goes to the device: as configured, else on CUDA when it is in memory and its
        augmentation has a batched form; a one-line error when asked for data that cannot."""
        possible = isinstance(data, ImageData) and self.recipe.augment in BATCHED_AUGMENTATIONS
        if self.config.data_on_device is None:
            return possible and self.device.type == "cuda"
        if self.config.data_on_device and not possible:
            raise BnextbenchError(f"--data-on-device needs an in-memory data set and --augment "
                                  f"{' / '.join(BATCHED_AUGMENTATIONS)}")
        return self.config.data_on_device

    def _create_run(self, model: nn.Module, description: dict[str, Any], data: ImageSource) -> int:
        config = self.config
        complexity = None
        if isinstance(model, BNextSupernet):  # the counts of its largest subnet
            complexity = profile_spec(model.largest, data.resolution).to_dict()
        elif hasattr(model, "layer_sites"):
            complexity = count_model(model, data.resolution).to_dict()
        spec = BNextSpec.from_dict(description["arch_spec"]) if description["arch_spec"] else None
        candidate = Candidate.of_spec(spec) if spec is not None else Candidate(config.model,
                                                                               width_mult=config.width_mult)
        name = supernet_name(model.space) if isinstance(model, BNextSupernet) else candidate.name
        return self.store.create_run(
            config.protocol(data),
            kind="supernet" if isinstance(model, BNextSupernet) else "train",
            model=candidate.name if spec is not None else description["model"],
            candidate=name,
            width_mult=config.width_mult,
            arch_spec=description["arch_spec"],
            arch_hash=spec.hash if spec is not None else None,
            num_classes=data.num_classes,
            study=config.study,
            trial_number=config.trial_number,
            device=str(self.device),
            versions=package_versions(),
            git_commit=git_commit(),
            epochs_planned=self.recipe.epochs,
            complexity=complexity,
        )

    def _epochs(self, run_id, model, optimizer, scheduler, data, curriculum, start_epoch, out, description):
        recipe = self.recipe
        device_images = (DeviceImages(data.train_images, data.train_labels, recipe.augment, self.device)
                         if self.config.data_on_device else None)
        train_set = None if device_images is not None else data.train_set(recipe.augment)
        on_gpu = self.device.type == "cuda"
        # On a GPU the test tensors live on the device; so does the training set where data_on_device, else
        # its augmentation runs in CPU workers beside it.
        workers = min(8, (os.cpu_count() or 2) - 1) if on_gpu else 0
        if on_gpu:
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
            data.test_images, data.test_labels = data.test_images.to(self.device), data.test_labels.to(self.device)
        speeds: list[float] = []
        result: dict[str, float] = {}
        with _progress(self.show_progress) as progress:
            epochs_task = progress.add_task(f"run {run_id}", total=recipe.epochs, completed=start_epoch, status="")
            for epoch in range(start_epoch, recipe.epochs):
                generator = seed_everything(recipe.seed, epoch)
                tau = recipe.tau(epoch)
                set_tau(model, tau)
                scheduler.step(epoch)
                drop_last = data.train_size > recipe.batch_size
                if device_images is not None:
                    loader = device_images.batches(recipe.batch_size, drop_last, generator.initial_seed())
                else:
                    loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, generator=generator,
                                        drop_last=drop_last, num_workers=workers, pin_memory=on_gpu,
                                        persistent_workers=False)
                started = time.perf_counter()
                train = self._train_epoch(model, optimizer, loader, data, curriculum, epoch, progress, out)
                seconds = time.perf_counter() - started
                speeds.append(train["images"] / seconds)
                with autocast(self.device, recipe.precision):
                    recalibrate_batch_norm(model, data, self.device, self.config.eval_batch_size, recipe.seed)
                    result = self.last_result = evaluate(model, data, self.device, self.config.eval_batch_size)
                if not math.isfinite(result["loss"]):  # weights gone to inf/nan: nothing worth a checkpoint
                    raise diverged(f"test loss became {result['loss']} after epoch {epoch + 1}", out)
                self.store.record_epoch(
                    run_id, epoch + 1, epoch=epoch, train_loss=train["loss"], train_top1=train["top1"],
                    test_loss=result["loss"], test_top1=result["top1"], test_top5=result["top5"],
                    lr=optimizer.param_groups[0]["lr"], tau=tau, seconds=seconds, images_per_s=speeds[-1],
                )
                atomic_torch_save(
                    {
                        "format": TRAIN_CHECKPOINT_FORMAT, "run_id": run_id, "epoch": epoch,
                        "model_description": description, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "data": data.spec, "resolution": data.resolution, "classes": data.classes,
                        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
                        "recipe": recipe.to_dict(),
                        "settings": {key: getattr(self.config, key) for key in RESUMED_SETTINGS},
                    },
                    out / LAST_CHECKPOINT,
                )
                status = (f"top-1 {result['top1']:.2f} %  loss {train['loss']:.3f}  tau {tau:.2g}  "
                          f"{speeds[-1]:.0f} img/s")
                progress.update(epochs_task, advance=1, status=status)
                if self.show_progress and not STDERR.is_terminal:
                    STDERR.print(f"run {run_id} epoch {epoch + 1}/{recipe.epochs}: {status}", highlight=False)
                if self.on_epoch is not None:
                    self.on_epoch(epoch, {**result, "run_id": run_id})
        record = {
            "run_id": run_id, "top1": result.get("top1"), "top5": result.get("top5"), "epochs": recipe.epochs,
            "train_images_per_s": sum(speeds) / len(speeds) if speeds else None, "checkpoint": str(out / LAST_CHECKPOINT),
        }
        self.store.update_run(run_id, status="completed", top1=record["top1"], top5=record["top5"],
                              train_images_per_s=record["train_images_per_s"])
        return record

    def _train_epoch(self, model, optimizer, loader, data, curriculum, epoch, progress, out) -> dict[str, float]:
        recipe = self.recipe
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        batches = progress.add_task(f"epoch {epoch + 1}/{recipe.epochs}", total=len(loader), status="")
        # Loss and hits add up on the device; the host reads them every `every` steps (each read waits for the
        # device), then checks the loss is finite: at once on the CPU, so that no step follows a diverged one.
        # On a GPU a few more steps may run first; their weights are never checkpointed (the caller raises).
        every = sync_steps(self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        for index, (images, labels) in enumerate(loader):
            images = self.prepare(images)
            labels = labels.to(self.device, non_blocking=True)

            def supervised_loss(logits: torch.Tensor) -> torch.Tensor:
                logits = logits.float()  # the loss of bf16 logits in fp32; a no-op in fp32
                if curriculum is not None:
                    return kd_loss(logits, curriculum.logits(epoch, images), recipe.kd_weighting)
                return F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)

            optimizer.zero_grad(set_to_none=True)
            value, logits = self.step(self.forward, images, supervised_loss, (epoch, index))
            loss_sum += torch.as_tensor(value, dtype=torch.float64, device=self.device) * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum()
            seen += len(labels)
            if (index + 1) % every == 0 or index + 1 == len(loader):
                mean_loss = float(loss_sum) / seen
                if not math.isfinite(mean_loss):  # raised before the step: on the CPU the last good weights stay
                    raise diverged(f"training loss became {mean_loss} in epoch {epoch + 1}", out)
                progress.update(batches, status=f"loss {mean_loss:.3f}")
            clip_gradients(trainable, recipe.grad_clip)
            optimizer.step()
            apply_constraints(model)
            progress.update(batches, advance=1)
        progress.remove_task(batches)
        return {"loss": float(loss_sum) / max(seen, 1), "top1": 100.0 * int(correct) / max(seen, 1), "images": seen}


def plain_step(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
               loss_of: Callable[[torch.Tensor], torch.Tensor],
               _position: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss and backward of one batch: (loss, detached, still on the device; logits). The trainer then
    clips and steps."""
    logits = model(images)
    loss = loss_of(logits)
    loss.backward()
    return loss.detach(), logits


def train(config: TrainConfig, store: Store | str | Path | None = None, progress: bool = True,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train (or resume) one run and return its final record; ``store`` as :class:`Trainer` takes it."""
    return Trainer(config, store, progress, on_epoch).run()


def load_checkpoint_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A model from a bnextbench training or model checkpoint, with the checkpoint's metadata; a file that is
    not one, records too little, or holds weights of another shape is one short error naming what is wrong."""
    path = Path(path)
    payload = read_checkpoint(path)
    if not isinstance(payload, dict) or "format" not in payload:
        raise BnextbenchError(f"{path} is not a bnextbench checkpoint")
    if payload["format"] == TRAIN_CHECKPOINT_FORMAT:
        description, state = payload.get("model_description"), payload.get("model")
    else:
        # Rebuilt from the recorded arguments only: registry defaults may not be what the file holds.
        if "model_kwargs" not in payload:
            raise BnextbenchError(f"{path} does not record the model's constructor arguments (model_kwargs)")
        description = {"model": payload.get("model"), "model_kwargs": payload["model_kwargs"],
                       "arch_spec": payload.get("arch_spec")}
        state = payload.get("state_dict")
    if not (isinstance(description, dict) and isinstance(description.get("model"), str)
            and isinstance(description.get("model_kwargs", {}), dict)):
        raise BnextbenchError(f"{path} does not record which model it holds (model and model_kwargs)")
    try:
        model = build_model(description)
    except BnextbenchError as exc:
        raise BnextbenchError(f"{path}: {exc}") from None
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:  # arguments the constructor does not take
        raise BnextbenchError(f"{path}: cannot build {description['model']} from the recorded arguments: "
                              f"{brief(str(exc))}") from None
    _load_weights(model, state, f"{path} ({description['model']})")
    return model, payload


def _load_weights(model: nn.Module, state: Any, where: str) -> None:
    """``model.load_state_dict(state)`` once every tensor is known to fit; else how many are missing, unexpected
    or of another shape, with the first name of each."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BnextbenchError(f"{where} holds no state_dict of tensors")
    expected = model.state_dict()
    misfits = {
        "missing": [name for name in expected if name not in state],
        "unexpected": [name for name in state if name not in expected],
        "of another shape": [name for name in expected if name in state and state[name].shape != expected[name].shape],
    }
    found = [f"{len(names)} {what} (first {brief(names[0])})" for what, names in misfits.items() if names]
    if found:
        raise BnextbenchError(f"{where}: the weights do not fit the model: {'; '.join(found)}")
    model.load_state_dict(state)


def evaluate_checkpoint(path: str | Path, data: str, resolution: int | None = None, device: str | None = None,
                        batch_size: int = 512) -> dict[str, Any]:
    """Top-1 / top-5 (%) and loss of a checkpoint on the test split of ``data``, at its training resolution
    unless ``resolution`` is given."""
    limits.EVAL_BATCH_SIZE.check(batch_size)
    limits.RESOLUTION.check(resolution, optional=True)
    check_device(device)
    model, payload = load_checkpoint_model(path)
    images = load_data(data, resolution or payload.get("resolution"))
    if getattr(model, "num_classes", images.num_classes) != images.num_classes:
        raise BnextbenchError(f"{path} predicts {model.num_classes} classes but {data} has {images.num_classes}")
    target = pick_device(device)
    result = evaluate(model.to(target), images, target, batch_size)
    return {"checkpoint": str(path), "data": images.spec, "resolution": images.resolution, **result}
