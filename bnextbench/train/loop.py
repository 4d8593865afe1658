"""The training loop: data -> model -> recipe (+ teachers) -> epochs, with every run kept in the store.

Each epoch reseeds every random generator from (seed, epoch), so a run resumed from its last
checkpoint repeats exactly what the uninterrupted run would have done. Per epoch: BatchNorm
statistics are re-estimated for the weights as trained (:func:`recalibrate_batch_norm`), the test
split is scored, metrics go to the store first, then the checkpoint (model, optimizer, scheduler,
tau, RNG states) is written atomically; a resume drops metrics of epochs after its checkpoint.
"""

from __future__ import annotations

import math
import random
import sys
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
from torch.utils.data import DataLoader, DistributedSampler

from ..complexity import count_model
from .. import limits
from ..data import (
    DataError,
    ImageData,
    ImageSource,
    check_data_mode,
    default_holdout,
    hold_out,
    normalize,
    open_data,
    parse_data_spec,
)
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
from .distributed import PeerLost, Terminated, World
from .fast import BATCHED_AUGMENTATIONS, BatchPreparer, DeviceImages, autocast, check_compile_works, sync_steps, \
    training_forward
from .protocol import Protocol
from .recipe import Recipe, clip_gradients, optimizer_for, scheduler_for, set_tau

TRAIN_CHECKPOINT_FORMAT = "bnextbench-train/1"
LAST_CHECKPOINT = "last.pt"
DEFAULT_CHECKPOINTS = Path("results") / "checkpoints"  # run-ID/ folders of runs given no --out
RESUMED_SETTINGS = ("data", "train_limit", "resolution", "teacher", "assistants", "width_mult", "holdout",
                    "supernet_space", "random_subnets", "data_mode", "skip_bad_images", "data_on_device")
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


def failure_message(exc: BaseException) -> str:
    """What a failed run records: a user-facing error's own line, else the exception's type and text."""
    text = str(exc) if isinstance(exc, BnextbenchError) else f"{type(exc).__name__}: {exc}"
    return text[:2000]


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
    data_mode: str = "auto"  # an image folder in memory or streamed from its files (data.open_data)
    skip_bad_images: bool = False  # pass unreadable files of a streamed folder over, counted in the run
    # The fast step (train.fast): layout, compiled forward, training set on the device (None: on CUDA when it can).
    channels_last: bool = False
    compile: bool = False
    data_on_device: bool | None = None

    def __post_init__(self) -> None:
        check_data_mode(self.data_mode)
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


RANK_SEED_STRIDE = 2**48 + 1  # beyond every seed * 1_000_003 + epoch; odd, so numpy's 32-bit seeds differ too


def seed_everything(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """Reseed python, numpy and torch for one epoch of one process (under torchrun each rank draws its own
    augmentations; rank 0 draws what a single process draws); returns the generator for data order."""
    mixed = seed * 1_000_003 + epoch + rank * RANK_SEED_STRIDE
    random.seed(mixed)
    np.random.seed(mixed % 2**32)
    torch.manual_seed(mixed)
    return torch.Generator().manual_seed(mixed)


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSource, device: torch.device, batch_size: int = 512,
             world: World = World()) -> dict[str, float]:
    """Top-1 / top-5 accuracy (%), mean cross-entropy and the number of images scored on the test split; under
    torchrun each process scores every size-th batch and the sums are all-reduced, so every process returns the
    same metrics."""
    model.eval()
    correct1 = correct5 = total = 0
    loss_sum = 0.0
    for images, labels in world.mine(data.test_batches(batch_size)):
        images = normalize(images.to(device), data.mean, data.std)
        labels = labels.to(device)
        logits = model(images)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == labels).sum().item()
        correct5 += (top == labels[:, None]).any(dim=1).sum().item()
        total += len(labels)
    correct1, correct5, total, loss_sum = world.sum([correct1, correct5, total, loss_sum])
    if not total:
        raise DataError(f"no readable images in the test split of {data.spec}")
    return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total, "loss": loss_sum / total,
            "images": int(total)}


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
                 on_epoch: Callable[[int, dict[str, float]], None] | None = None, world: World = World()):
        """``store``: a Store, or the location of one (None: the default), opened only once data, teachers and
        checkpoint are read, so that refused input leaves no database behind. ``on_epoch(epoch, test_metrics |
        {"run_id"})`` runs after each epoch's checkpoint; raising stops the run. ``world``: the processes that
        train together under torchrun (:mod:`.distributed`); rank 0 alone writes store, checkpoints, progress."""
        self.config, self.on_epoch, self.world = config, on_epoch, world
        self.show_progress = progress and world.is_main
        self.store_location = store
        self.store: Store | None = None
        self.last_result: dict[str, float] = {}
        self.recipe = config.recipe
        self.device = world.device(pick_device(config.device))

    def _update_run(self, run_id: int, **fields: Any) -> None:
        """Record ``fields`` of the run: every process calls this alike, rank 0 alone writes."""
        if self.world.is_main:
            self.store.update_run(run_id, **fields)

    def _check_world(self, data: ImageSource) -> None:
        """Refuse a torchrun world the run cannot be split over: --batch-size is the global batch (BNext's
        reference splits its 512 over the node's GPUs), so it must split evenly, and every process needs
        at least one full batch of its share of the training images."""
        world, batch = self.world, self.recipe.batch_size
        if not world.launched:
            return
        if self.config.supernet_space is not None:
            raise BnextbenchError("supernet training does not run under torchrun; start it as one process")
        if batch % world.size:
            raise BnextbenchError(f"--batch-size {batch} is the global batch and must split evenly over the "
                                  f"{world.size} processes torchrun started")
        if data.train_size // world.size < batch // world.size:
            raise BnextbenchError(f"{data.train_size} training images cannot give each of {world.size} processes "
                                  f"one batch of {batch // world.size} (--batch-size {batch} over "
                                  f"{world.size}); use fewer processes or a smaller --batch-size")

    def run(self) -> dict[str, Any]:
        with self.world.group(self.device):
            return self._run()

    def _resume_state(self) -> dict[str, Any] | None:
        if not self.config.resume:
            return None
        if self.config.out is None:
            raise BnextbenchError("--resume needs --out DIR, the folder of the run to continue")
        path = self.config.out / LAST_CHECKPOINT
        state = read_checkpoint(path, "checkpoint to resume")
        if not isinstance(state, dict) or state.get("format") != TRAIN_CHECKPOINT_FORMAT:
            raise BnextbenchError(f"{path} is not a bnextbench training checkpoint")
        # Another number of processes would shard the data otherwise: the run would not continue as started.
        if state.get("world_size", 1) != self.world.size:
            raise BnextbenchError(f"{path} was trained by {state.get('world_size', 1)} process(es), not "
                                  f"{self.world.size}; resume it with as many (torchrun --nproc-per-node)")
        return state

    def _run(self) -> dict[str, Any]:
        if self.world.is_main:
            check_writable(self.config.out or DEFAULT_CHECKPOINTS, "checkpoint folder", folder=True)
        resumed = self._resume_state()
        if resumed:  # continue exactly as started: the stored settings win over new flags
            self.recipe = Recipe(**resumed["recipe"])
            self.config = replace(self.config, recipe=self.recipe,
                                  **{**SETTINGS_BEFORE_RECORDED, **resumed["settings"]})
        config, recipe = self.config, self.recipe
        # Holding images out moves tensors between the splits: in memory, unless streaming is asked for.
        needs_tensors = config.holdout is not None or config.supernet_space is not None
        mode = "memory" if needs_tensors and config.data_mode == "auto" else config.data_mode
        data = open_data(config.data, config.resolution, config.train_limit, recipe.seed, config.download, mode,
                         config.skip_bad_images)
        # Recorded as resolved: a resumed run (and evaluate on this data) reads it as it started, whatever "auto"
        # would choose for the folder by then.
        self.config = config = replace(config, data_mode="memory" if isinstance(data, ImageData) else "stream")
        if config.supernet_space is not None and config.holdout is None:  # a supernet always validates held out
            self.config = config = replace(config, holdout=default_holdout(data.train_size))
        if config.holdout is not None:
            data = hold_out(data, config.holdout, recipe.seed)
        self._check_world(data)
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
        if self.world.is_main:
            self.store = self.store_location if isinstance(self.store_location, Store) else Store(self.store_location)
        torch.manual_seed(recipe.seed)
        model = build_model(description).to(self.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.step = (SandwichStep(model, config.random_subnets, recipe.seed, recipe.kd_weighting)
                     if isinstance(model, BNextSupernet) else plain_step)
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
            # Every process must have read the same checkpoint (on several nodes: a shared or copied --out).
            self.world.check_replicas(model, f"after reading {config.out / LAST_CHECKPOINT}")
            if self.world.is_main:
                self.store.discard_epochs_after(run_id, resumed["epoch"])
            self._update_run(run_id, status="running", message=None, epochs_done=start_epoch)
        else:
            run_id = self.world.share(self._create_run(model, description, data) if self.world.is_main else None)
        out = config.out or DEFAULT_CHECKPOINTS / f"run-{run_id}"
        self._update_run(run_id, checkpoint=str(out / LAST_CHECKPOINT))
        try:
            record = self._epochs(run_id, model, optimizer, scheduler, data, curriculum, start_epoch, out,
                                  description)
        except TrainingDiverged as exc:
            self._update_run(run_id, status="diverged", message=str(exc))
            raise
        except StopRun as exc:
            last = self.last_result
            self._update_run(run_id, status=exc.status, message=str(exc), top1=last.get("top1"),
                             top5=last.get("top5"))
            raise
        except KeyboardInterrupt:
            self._update_run(run_id, status="interrupted", message="stopped by the user")
            raise
        except (Terminated, PeerLost) as exc:  # torchrun's group came apart; the last checkpoint stays
            self._update_run(run_id, status="interrupted", message=str(exc))
            raise
        except torch.OutOfMemoryError:
            message = (f"out of memory at batch size {recipe.batch_size}; "
                       f"try --batch-size {max(1, recipe.batch_size // 2)}")
            self._update_run(run_id, status="failed", message=message)
            raise BnextbenchError(message) from None
        except BaseException as exc:
            self._update_run(run_id, status="failed", message=failure_message(exc), skipped_images=data.skipped_images)
            raise
        return record

    def _data_on_device(self, data: ImageSource) -> bool:
        """Whether the training set goes to the device: as configured, else on CUDA when it is in memory, its
        augmentation has a batched form and one process trains (the device batches are not sharded over
        torchrun's processes); a one-line error when asked for data that cannot."""
        possible = (isinstance(data, ImageData) and self.recipe.augment in BATCHED_AUGMENTATIONS
                    and not self.world.launched)
        if self.config.data_on_device is None:
            return possible and self.device.type == "cuda"
        if self.config.data_on_device and not possible:
            raise BnextbenchError(f"--data-on-device needs one process, an in-memory data set and --augment "
                                  f"{' / '.join(BATCHED_AUGMENTATIONS)}")
        return self.config.data_on_device

    def _create_run(self, model: nn.Module, description: dict[str, Any], data: ImageSource) -> int:
        config = self.config
        return self.store.create_run(
            config.protocol(data),
            kind="supernet" if isinstance(model, BNextSupernet) else "train",
            **model_columns(model, description, config.width_mult, data.resolution),
            num_classes=data.num_classes,
            study=config.study,
            trial_number=config.trial_number,
            device=str(self.device),
            world_size=self.world.size,
            versions=package_versions(),
            git_commit=git_commit(),
            epochs_planned=self.recipe.epochs,
        )

    def _epochs(self, run_id, model, optimizer, scheduler, data, curriculum, start_epoch, out, description):
        recipe, world = self.recipe, self.world
        device_images = (DeviceImages(data.train_images, data.train_labels, recipe.augment, self.device)
                         if self.config.data_on_device else None)
        train_set = None if device_images is not None else data.train_set(recipe.augment)
        trained = world.wrap(model, self.device)
        self.forward = training_forward(trained, recipe.precision, self.device, self.config.compile)
        # Under torchrun each process takes its own shard of a (seed, epoch) permutation (set_epoch below), so a
        # resumed run draws what the uninterrupted one drew; equal shards give every process as many steps.
        sampler = (DistributedSampler(train_set, world.size, world.rank, shuffle=True, seed=recipe.seed,
                                      drop_last=True) if world.launched else None)
        batch_size = recipe.batch_size // world.size
        images_per_process = len(sampler) if sampler is not None else data.train_size
        on_gpu = self.device.type == "cuda"
        workers = data.loader_workers(on_gpu)
        if workers:  # the node's cores shared among its torchrun processes
            workers = max(1, workers // world.local_size)
        if on_gpu:
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
            data.keep_test_split_on(self.device)
        speeds: list[float] = []
        result: dict[str, float] = {}
        with _progress(self.show_progress) as progress:
            epochs_task = progress.add_task(f"run {run_id}", total=recipe.epochs, completed=start_epoch, status="")
            for epoch in range(start_epoch, recipe.epochs):
                generator = seed_everything(recipe.seed, epoch, world.rank)
                tau = recipe.tau(epoch)
                set_tau(model, tau)
                scheduler.step(epoch)
                drop_last = images_per_process > batch_size
                if device_images is not None:  # one process (Trainer._data_on_device)
                    loader = device_images.batches(batch_size, drop_last, generator.initial_seed())
                else:
                    if sampler is not None:
                        sampler.set_epoch(epoch)
                    loader = DataLoader(train_set, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                                        generator=generator, drop_last=drop_last, num_workers=workers,
                                        collate_fn=data.collate, pin_memory=on_gpu, persistent_workers=False)
                started = time.perf_counter()
                train = self._train_epoch(model, optimizer, loader, data, curriculum, epoch, progress, out)
                seconds = time.perf_counter() - started
                speeds.append(train["images"] / seconds)
                with autocast(self.device, recipe.precision):
                    recalibrate_batch_norm(model, data, self.device, self.config.eval_batch_size, recipe.seed)
                # Every process recalibrates on the same images (SyncBatchNorm's forward is a collective, so all
                # must take part); rank 0's statistics then replace the others', as GPU kernels of different
                # devices may round differently. The check proves the replicas bitwise equal before scoring.
                world.align_buffers(model)
                digest = world.check_replicas(model, f"after epoch {epoch + 1}")
                if digest is not None:  # each process says what it holds, for whoever compares the ranks
                    # One write per line: the processes share torchrun's stderr.
                    sys.stderr.write(f"rank {world.rank}/{world.size} epoch {epoch + 1}/{recipe.epochs} "
                                     f"weights sha256 {digest}\n")
                    sys.stderr.flush()
                with autocast(self.device, recipe.precision):
                    result = self.last_result = evaluate(model, data, self.device, self.config.eval_batch_size,
                                                         world)
                if not math.isfinite(result["loss"]):  # weights gone to inf/nan: nothing worth a checkpoint
                    raise diverged(f"test loss became {result['loss']} after epoch {epoch + 1}", out)
                if not world.is_main:
                    if self.on_epoch is not None:
                        self.on_epoch(epoch, {**result, "run_id": run_id})
                    continue
                self.store.record_epoch(
                    run_id, epoch + 1, epoch=epoch, train_loss=train["loss"], train_top1=train["top1"],
                    test_loss=result["loss"], test_top1=result["top1"], test_top5=result["top5"],
                    lr=optimizer.param_groups[0]["lr"], tau=tau, seconds=seconds, images_per_s=speeds[-1],
                )
                if data.skipped_images:
                    self.store.update_run(run_id, skipped_images=data.skipped_images)
                atomic_torch_save(
                    {
                        "format": TRAIN_CHECKPOINT_FORMAT, "run_id": run_id, "epoch": epoch,
                        "model_description": description, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "data": data.spec, "resolution": data.resolution, "classes": data.classes,
                        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
                        "recipe": recipe.to_dict(),
                        "settings": {key: getattr(self.config, key) for key in RESUMED_SETTINGS},
                        "world_size": world.size,
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
        self._update_run(run_id, status="completed", top1=record["top1"], top5=record["top5"],
                         train_images_per_s=record["train_images_per_s"], skipped_images=data.skipped_images)
        return record

    def _train_epoch(self, model, optimizer, loader, data, curriculum, epoch, progress, out) -> dict[str, float]:
        """One epoch of steps through ``self.forward`` (``model``, or DistributedDataParallel around it, which
        averages the gradients of all processes; under autocast or compiled where asked); loss and accuracy are
        those of all processes together."""
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
            if not len(labels):  # every file of the batch skipped as unreadable
                continue
            images = self.prepare(images)
            labels = labels.to(self.device, non_blocking=True)

            def supervised_loss(logits: torch.Tensor) -> torch.Tensor:
                logits = logits.float()  # the loss of bf16 logits in fp32; a no-op in fp32
                if curriculum is not None:
                    return kd_loss(logits, curriculum.logits(epoch, images), recipe.kd_weighting)
                return F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)

            optimizer.zero_grad(set_to_none=True)
            with self.world.stepping():
                value, logits = self.step(self.forward, images, supervised_loss, (epoch, index))
            loss_sum += torch.as_tensor(value, dtype=torch.float64, device=self.device) * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum()
            seen += len(labels)
            if (index + 1) % every == 0 or index + 1 == len(loader):
                # every process sees a divergence at the same step and stops alike
                mean_loss = self.world.mean(float(loss_sum) / seen)
                if not math.isfinite(mean_loss):  # raised before the step: on the CPU the last good weights stay
                    raise diverged(f"training loss became {mean_loss} in epoch {epoch + 1}", out)
                progress.update(batches, status=f"loss {mean_loss:.3f}")
            clip_gradients(trainable, recipe.grad_clip)
            optimizer.step()
            apply_constraints(model)
            progress.update(batches, advance=1)
        progress.remove_task(batches)
        loss_sum, correct, seen = self.world.sum([float(loss_sum), int(correct), seen])
        return {"loss": loss_sum / max(seen, 1), "top1": 100.0 * correct / max(seen, 1), "images": seen}


def model_columns(model: nn.Module, description: dict[str, Any], width_mult: float,
                  resolution: int) -> dict[str, Any]:
    """The run columns that say which model ran: registry or spec name, candidate name, width, BNext spec and its
    hash, and the counter's figures at ``resolution`` (a supernet's largest subnet; None for timm teachers)."""
    complexity = None
    if isinstance(model, BNextSupernet):
        complexity = profile_spec(model.largest, resolution).to_dict()
    elif hasattr(model, "layer_sites"):
        complexity = count_model(model, resolution).to_dict()
    spec = BNextSpec.from_dict(description["arch_spec"]) if description.get("arch_spec") else None
    if isinstance(model, BNextSupernet):
        name = supernet_name(model.space)
    elif spec is not None:
        name = Candidate.of_spec(spec).name
    else:
        name = Candidate(description["model"], width_mult=width_mult).name
    return {"model": name if spec is not None else description["model"], "candidate": name,
            "width_mult": width_mult, "arch_spec": description.get("arch_spec"),
            "arch_hash": spec.hash if spec is not None else None, "complexity": complexity}


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
          on_epoch: Callable[[int, dict[str, float]], None] | None = None, world: World = World()) -> dict[str, Any]:
    """Train (or resume) one run and return its final record; ``store`` and ``world`` as :class:`Trainer` takes
    them."""
    return Trainer(config, store, progress, on_epoch, world).run()


def load_checkpoint_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A model from a bnextbench training or model checkpoint, with the checkpoint's metadata; a file that is
    not one, records too little, or holds weights of another shape is one short error naming what is wrong."""
    path = Path(path)
    payload = read_checkpoint(path)
    if not isinstance(payload, dict) or "format" not in payload:
        raise BnextbenchError(f"{path} is not a bnextbench checkpoint")
    trained = payload["format"] == TRAIN_CHECKPOINT_FORMAT
    # Rebuilt from the recorded arguments only: registry defaults may not be what the file holds.
    if not trained and "model_kwargs" not in payload:
        raise BnextbenchError(f"{path} does not record the model's constructor arguments (model_kwargs)")
    description = checkpoint_description(payload)
    state = payload.get("model" if trained else "state_dict")
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
    load_weights(model, state, f"{path} ({description['model']})")
    return model, payload


def load_weights(model: nn.Module, state: Any, where: str, assign: bool = False) -> None:
    """``model.load_state_dict(state, assign=assign)`` once every tensor is known to fit; else how many are missing,
    unexpected or of another shape, with the first name of each. Tensors that are ``assign``-ed (in place of a
    model built on the meta device) are kept as they are, so they must also have the model's dtypes."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BnextbenchError(f"{where} holds no state_dict of tensors")
    expected = model.state_dict()
    fitting = [name for name in expected if name in state]
    misfits = {
        "missing": [name for name in expected if name not in state],
        "unexpected": [name for name in state if name not in expected],
        "of another shape": [name for name in fitting if state[name].shape != expected[name].shape],
        "of another dtype": [name for name in fitting if assign and state[name].dtype != expected[name].dtype],
    }
    found = [f"{len(names)} {what} (first {brief(names[0])})" for what, names in misfits.items() if names]
    if found:
        raise BnextbenchError(f"{where}: the weights do not fit the model: {'; '.join(found)}")
    model.load_state_dict(state, assign=assign)


def checkpoint_description(payload: dict[str, Any]) -> dict[str, Any]:
    """How the model of a bnextbench checkpoint is built, in :func:`model_recipe`'s form (unchecked)."""
    if payload["format"] == TRAIN_CHECKPOINT_FORMAT:
        return payload.get("model_description")
    return {"model": payload.get("model"), "model_kwargs": payload["model_kwargs"],
            "arch_spec": payload.get("arch_spec")}


def evaluate_checkpoint(path: str | Path, data: str, resolution: int | None = None, device: str | None = None,
                        batch_size: int = 512, data_mode: str = "auto", skip_bad_images: bool = False,
                        store: Store | str | Path | None = None) -> dict[str, Any]:
    """Top-1 / top-5 (%), loss and throughput (images/s) of a checkpoint on the test split of ``data`` (read
    as :func:`~bnextbench.data.open_data` reads it; ``auto`` on the checkpoint's own training data: as training
    read it), at its training resolution unless ``resolution`` is given;
    kept in the store (a Store or its location, opened once model and data are read) as a run of kind
    "evaluate" with the checkpoint's recipe, or the default recipe where it records none."""
    check_evaluation_options(resolution, batch_size, data_mode, device)
    model, payload = load_checkpoint_model(path)
    return evaluate_and_record(model, payload, model, path, data, resolution, pick_device(device), batch_size,
                               data_mode, skip_bad_images, store)


def check_evaluation_options(resolution: int | None, batch_size: int, data_mode: str, device: str | None) -> None:
    limits.EVAL_BATCH_SIZE.check(batch_size)
    limits.RESOLUTION.check(resolution, optional=True)
    check_data_mode(data_mode)
    check_device(device)


def evaluate_and_record(model: nn.Module, payload: dict[str, Any], counted: nn.Module, path: str | Path, data: str,
                        resolution: int | None, target: torch.device, batch_size: int, data_mode: str,
                        skip_bad_images: bool, store: Store | str | Path | None) -> dict[str, Any]:
    """:func:`evaluate_checkpoint` once the model is loaded: ``payload`` is what its file records (data,
    resolution, recipe, how the model is built) and ``counted`` the model the counter reads for the run's
    figures (the model itself, or for a packed file its architecture with float layers)."""
    if data_mode == "auto" and payload.get("data") == str(parse_data_spec(data)):
        # Its own data, read as training read it: the same pixels for the same files.
        data_mode = payload.get("settings", {}).get("data_mode", "auto")
    images = open_data(data, resolution or payload.get("resolution"), mode=data_mode,
                       skip_bad_images=skip_bad_images)
    if getattr(model, "num_classes", images.num_classes) != images.num_classes:
        raise BnextbenchError(f"{path} predicts {model.num_classes} classes but {data} has {images.num_classes}")
    # An imported checkpoint records no recipe: the library's defaults (one epoch, the least a recipe has).
    recipe = Recipe.from_dict(payload["recipe"]) if "recipe" in payload else Recipe(epochs=1)
    description = checkpoint_description(payload)
    store = store if isinstance(store, Store) else Store(store)
    run_id = store.create_run(
        Protocol(images.spec, images.resolution, None, recipe), kind="evaluate",
        **model_columns(counted, description, description["model_kwargs"].get("width_mult", 1.0), images.resolution),
        num_classes=images.num_classes, device=str(target), versions=package_versions(), git_commit=git_commit(),
        epochs_planned=0, checkpoint=str(Path(path).resolve()),
    )
    try:
        started = time.perf_counter()
        result = evaluate(model.to(target), images, target, batch_size)
        images_per_s = result["images"] / (time.perf_counter() - started)
    except KeyboardInterrupt:
        store.update_run(run_id, status="interrupted", message="stopped by the user")
        raise
    except BaseException as exc:
        store.update_run(run_id, status="failed", message=failure_message(exc), skipped_images=images.skipped_images)
        raise
    store.update_run(run_id, status="completed", top1=result["top1"], top5=result["top5"],
                     eval_images_per_s=images_per_s, skipped_images=images.skipped_images)
    return {"run_id": run_id, "checkpoint": str(path), "data": images.spec, "resolution": images.resolution,
            **result, "eval_images_per_s": images_per_s, "skipped_images": images.skipped_images}
