"""The ``bnextbench`` command: a thin Typer shell over the library, printing with rich."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import math
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__, limits
from .choices import AUGMENTATIONS, DATA_MODES, MODEL_RESOLUTION, OPS_RULES, PRECISIONS, REFERENCE_VARIANTS, REPORT_FORMATS
from .errors import BnextbenchError, BnextbenchWarning
from .limits import help_with
from .output import FORMATS, Field, console, emit, emit_record, fixed, percent, say, table

app = typer.Typer(
    name="bnextbench",
    help="Build, count, train and search binary neural networks around BNext. "
    "Counts: bops = binary MACs, flops = non-binary MACs weighted by the ops rule, ops = bops/64 + flops, "
    "params = parameters, size in MiB (binary weights 1 bit, the rest 32 bits).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _choices(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """A str enum of ``values`` for Typer (member names with '-' turned into '_')."""
    return enum.Enum(name, {value.replace("-", "_"): value for value in values}, type=str)


OpsRule = _choices("OpsRule", OPS_RULES)
OutputFormat = _choices("OutputFormat", FORMATS)


SUMMARY_FIELDS = (
    "model", "resolution", "num_classes", "ops_rule", "params", "binary_params",
    "bops", "flops", "ops", "binarization_degree", "size_mib",
)
SUMMARY_COLUMNS = (
    Field("model", "model", left=True), Field("params", "params (M)", fixed(".3f", 1e6)),
    Field("binary_params", "binary params (M)", fixed(".3f", 1e6)), Field("bops", "BOPs (G)", fixed(".4f", 1e9)),
    Field("flops", "FLOPs (M)", fixed(".3f", 1e6)), Field("ops", "OPs (M)", fixed(".3f", 1e6)),
    Field("binarization_degree", "degree (%)", percent), Field("size_mib", "size (MiB)", fixed(".2f")),
)
LAYER_COLUMNS = tuple(
    Field(key, key, (lambda value: f"{value:g}") if key == "flops" else str, left=key in ("name", "kind"))
    for key in ("name", "kind", "weight_bits", "input_bits", "in_channels", "out_channels", "kernel_size",
                "stride", "in_size", "out_size", "params", "macs", "bops", "flops")
)

OpsRuleOption = Annotated[
    OpsRule,
    typer.Option(
        "--ops-rule",
        help="How non-binary MACs count: 'bits' (m-bit x n-bit MAC = m*n/64 FLOP, float MAC = 1) or "
        "'bnext-paper' (8-bit MAC = 1/8 FLOP, the BNext README's rule).",
    ),
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]


@app.command()
def models(
    ops_rule: OpsRuleOption = OpsRule.bits,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List every registered model with params, BOPs, OPs and binarization degree at 224x224, 1000 classes."""
    from .models import list_models
    from .profiling import profile_model

    reports = [profile_model(name, MODEL_RESOLUTION, 1000, ops_rule.value).to_dict() for name in list_models()]
    emit(reports, SUMMARY_COLUMNS, output.value, f"Registered models at {MODEL_RESOLUTION}x{MODEL_RESOLUTION}, "
         f"1000 classes, ops rule '{ops_rule.value}'", csv_keys=SUMMARY_FIELDS)


@app.command()
def profile(
    model: Annotated[Optional[str], typer.Argument(help="Registered model name (see `bnextbench models`), or a "
                                                   "packed model file from `bnextbench export`.")] = None,
    spec: Annotated[Optional[Path], typer.Option("--spec", help="A JSON file to count instead of a registered "
                                                 "model: a BNext spec, or the 'arch' object `search --format json` "
                                                 "prints for a trial.")] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", help=f"Input side in pixels (square input; "
                                                      f"default {MODEL_RESOLUTION}, or a packed model's own). Inputs "
                                                      "up to 64 px use the stride-1 small-input stem.")] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs (a BNext spec has its "
                                             "own).")] = 1000,
    ops_rule: OpsRuleOption = OpsRule.bits,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="Also list every conv/linear layer.")] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Count BOPs, FLOPs, OPs (absolute counts), binarization degree, params and size of one model."""
    from .deploy import profile_packed
    from .profiling import load_candidate, profile_candidate, profile_model

    if (model is None) == (spec is None):
        raise BnextbenchError("give either a MODEL name or --spec FILE.json")
    columns, keys = SUMMARY_COLUMNS, SUMMARY_FIELDS
    side = MODEL_RESOLUTION if resolution is None else resolution
    if spec is not None:
        report = profile_candidate(load_candidate(spec), side, num_classes, ops_rule.value, per_layer)
        data = report.to_dict(per_layer=per_layer)
    elif Path(model).is_file():
        report, file_bytes = profile_packed(model, resolution, ops_rule.value, per_layer)
        data = {**report.to_dict(per_layer=per_layer), "file": model, "file_mib": file_bytes / 2**20}
        columns, keys = (*SUMMARY_COLUMNS, Field("file_mib", "file (MiB)", fixed(".2f"))), (*SUMMARY_FIELDS, "file_mib")
    else:
        report = profile_model(model, side, num_classes, ops_rule.value, per_layer=per_layer)
        data = report.to_dict(per_layer=per_layer)
    title = (f"{report.model} at {report.resolution}x{report.resolution}, {report.num_classes} classes, ops rule "
             f"'{report.ops_rule}'")
    if per_layer and output is OutputFormat.csv:
        emit(data["layers"], LAYER_COLUMNS, output.value)
        return
    emit([data], columns, output.value, title, document=data, csv_keys=keys)
    if per_layer and output is OutputFormat.table:
        console.print(table(data["layers"], LAYER_COLUMNS, "Layers (MACs, BOPs and FLOPs as absolute counts)"))


CheckpointVariant = _choices("CheckpointVariant", REFERENCE_VARIANTS)


@app.command("import-checkpoint")
def import_checkpoint(
    checkpoint: Annotated[Path, typer.Argument(help="State_dict of the reference BNext code (bare, under "
                                               "'state_dict', or with 'module.' prefixes).")],
    model: Annotated[str, typer.Option("--model", help="bnext_tiny, bnext_small, bnext_middle or bnext_large.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the bnextbench checkpoint (.pt).")],
    variant: Annotated[CheckpointVariant, typer.Option(
        "--variant", help="The reference code to run the checkpoint as: float = src/bnext.py (full-precision stem, "
        "SE and FC; the file the reference training script imports), quant = src/bnext_quant.py with quant=True, "
        "se_bits=8 (aux_bits 8: 8-bit stem, SE and FC).")] = CheckpointVariant.float,
) -> None:
    """Import a checkpoint released with the BNext paper; every tensor is consumed and shape-checked."""
    from .models.checkpoint import import_reference_checkpoint, save_model_checkpoint
    from .nn.quantizers import FLOAT_BITS

    imported = import_reference_checkpoint(checkpoint, model, variant.value)
    save_model_checkpoint(out, imported.name, imported.model, imported.model_kwargs)
    bits = imported.model_kwargs["aux_bits"]
    precision = "float" if bits >= FLOAT_BITS else f"{bits}-bit"
    say(f"imported {checkpoint} into {model} ({precision} stem/SE/FC, {imported.model_kwargs['num_classes']} "
        f"classes) -> {out}")


DataOption = Annotated[str, typer.Option("--data", help="digits | imagefolder:PATH | cifar10:PATH | cifar100:PATH.")]
DbOption = Annotated[Optional[str], typer.Option("--db", help="Results database: a file path (SQLite) or an "
                                                 "SQLAlchemy URL. Default $BNEXTBENCH_DB or results/bnextbench.db.")]
RunFormatOption = Annotated[OutputFormat, typer.Option("--format", help="table, or json (the last stdout line).")]


Augment = _choices("Augment", AUGMENTATIONS)
DataMode = _choices("DataMode", DATA_MODES)
Precision = _choices("Precision", PRECISIONS)
KdWeighting = _choices("KdWeighting", ("sample", "batch"))


def _train_config(
    model: str, data: str, epochs: int, batch_size: int, width_mult: float, train_limit: Optional[int],
    resolution: Optional[int], teacher: Optional[Path], assistant: list[Path], kd_weighting: KdWeighting,
    lr: float, sign_at: float, tau_decay: Optional[float], label_smoothing: float, augment: Augment, seed: int,
    out: Optional[Path], resume: bool, device: Optional[str], download: bool, data_mode: DataMode = DataMode.auto,
    skip_bad_images: bool = False, precision: str = "fp32", channels_last: bool = False,
    compile_model: bool = False, data_on_device: Optional[bool] = None,
):
    from .train import Recipe, TrainConfig

    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr, sign_at=sign_at, tau_decay=tau_decay,
                    label_smoothing=label_smoothing, augment=augment.value, kd_weighting=kd_weighting.value,
                    seed=seed, precision=precision)
    return TrainConfig(model=model, data=data, recipe=recipe, width_mult=width_mult, train_limit=train_limit,
                       resolution=resolution, teacher=str(teacher) if teacher else None,
                       assistants=tuple(str(p) for p in assistant), out=out, resume=resume, device=device,
                       download=download, data_mode=data_mode.value, skip_bad_images=skip_bad_images,
                       channels_last=channels_last, compile=compile_model, data_on_device=data_on_device)


EpochsOption = Annotated[int, typer.Option("--epochs", help=help_with(limits.EPOCHS, "Training epochs"))]
BatchOption = Annotated[int, typer.Option("--batch-size", help=help_with(limits.BATCH_SIZE, "Images per step"))]
GlobalBatchOption = Annotated[int, typer.Option("--batch-size", help=help_with(
    limits.BATCH_SIZE, "Images per step, over all processes: under torchrun each takes an even share (BNext's "
    "512 on 8 GPUs: 64 each)"))]
WidthOption = Annotated[float, typer.Option("--width-mult", help=help_with(
    limits.WIDTH_MULT, "Scale every channel (multiples of 8)"))]
LimitOption = Annotated[Optional[int], typer.Option("--train-limit", help=help_with(
    limits.TRAIN_LIMIT, "Class-balanced, seeded subset of N training images"))]
ResolutionOption = Annotated[Optional[int], typer.Option("--resolution", help=help_with(
    limits.RESOLUTION, "Input side in pixels (default: the data's natural size; digits 16)"))]
TeacherOption = Annotated[Optional[Path], typer.Option("--teacher", help="Main teacher (from `bnextbench teacher "
                                                       "train`); enables distillation.")]
AssistantOption = Annotated[list[Path], typer.Option("--assistant", help="Assistant teacher per phase, in order "
                                                     "(repeatable).")]
KdOption = Annotated[KdWeighting, typer.Option("--kd-weighting", help="Teacher weights per sample (paper) or "
                                               "per batch (reference code).")]
LrOption = Annotated[float, typer.Option("--lr", help=help_with(limits.LR, "Peak AdamW learning rate"))]
SignAtOption = Annotated[float, typer.Option("--sign-at", help=help_with(
    limits.SIGN_AT, "Fraction of training after which weights are pure sign (tau < 1e-7)"))]
TauOption = Annotated[Optional[float], typer.Option("--tau-decay", help=help_with(
    limits.TAU_DECAY, "tau multiplier per epoch (0.9 = the 512-epoch recipe); overrides --sign-at"))]
SmoothingOption = Annotated[float, typer.Option("--label-smoothing", help=help_with(
    limits.LABEL_SMOOTHING, "Label smoothing without a teacher"))]
AugmentOption = Annotated[Augment, typer.Option("--augment", help="cifar (pad-crop + flip), flip (only), bnext (RandAugment "
                                                "m7 + random-resized crop + flip, timm), none.")]
SeedOption = Annotated[int, typer.Option("--seed", help=help_with(
    limits.SEED, "Seed of initialisation, data order and augmentation"))]
OutOption = Annotated[Optional[Path], typer.Option("--out", help="Checkpoint folder (default "
                                                   "results/checkpoints/run-ID).")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue the run whose last.pt is in --out.")]
DeviceOption = Annotated[Optional[str], typer.Option("--device", help="cpu or cuda (default: cuda if present).")]
DownloadOption = Annotated[bool, typer.Option("--download", help="Let torchvision download CIFAR if missing.")]
DataModeOption = Annotated[DataMode, typer.Option("--data-mode", help="An image folder decoded once into memory, or "
                                                  "streamed: each file decoded when read, in worker processes, "
                                                  "with the BNext ImageNet transforms (timm). auto streams past 4 "
                                                  "GiB decoded and with --skip-bad-images.")]
SkipBadOption = Annotated[bool, typer.Option("--skip-bad-images", help="Pass unreadable image files of a streamed "
                                             "folder over and count them in the run (default: stop, naming the "
                                             "file).")]
PrecisionOption = Annotated[Precision, typer.Option("--precision", help=f"Arithmetic of the forward passes: "
                                                    f"{' or '.join(PRECISIONS)} (bf16: autocast on CUDA or CPU; "
                                                    f"weights and optimizer stay fp32; part of the protocol).")]
ChannelsLastOption = Annotated[bool, typer.Option("--channels-last", help="Model and batches in channels-last "
                                                  "memory (faster bf16 convolutions; off unless given).")]
CompileOption = Annotated[bool, typer.Option("--compile", help="torch.compile the model for training (refused in "
                                             "one line where this machine cannot compile).")]
DataOnDeviceOption = Annotated[Optional[bool], typer.Option(
    "--data-on-device/--data-in-workers", help="Keep an in-memory training set on the device and augment it "
    "there in batches (cifar, flip, none), or per image in DataLoader workers (default: on the device on CUDA).",
    show_default=False)]


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    data: DataOption = "digits",
    epochs: EpochsOption = 10,
    batch_size: GlobalBatchOption = 128,
    width_mult: WidthOption = 1.0,
    train_limit: LimitOption = None,
    resolution: ResolutionOption = None,
    teacher: TeacherOption = None,
    assistant: AssistantOption = [],
    kd_weighting: KdOption = KdWeighting.sample,
    lr: LrOption = 1e-3,
    sign_at: SignAtOption = 0.3,
    tau_decay: TauOption = None,
    label_smoothing: SmoothingOption = 0.0,
    augment: AugmentOption = Augment.cifar,
    seed: SeedOption = 0,
    out: OutOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = None,
    download: DownloadOption = False,
    data_mode: DataModeOption = DataMode.auto,
    skip_bad_images: SkipBadOption = False,
    precision: PrecisionOption = Precision.fp32,
    channels_last: ChannelsLastOption = False,
    compile_model: CompileOption = False,
    data_on_device: DataOnDeviceOption = None,
    db: DbOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Train (or distil) a binary network with the BNext recipe; every run is kept in the results database.

    Under torchrun (torchrun --nproc-per-node N -m bnextbench train ...) the N processes train one run
    data-parallel; rank 0 alone writes the database, checkpoints and output."""
    from .models import check_model_name
    from .train import train as train_run
    from .train.distributed import World

    check_model_name(model)
    config = _train_config(model, data, epochs, batch_size, width_mult, train_limit, resolution, teacher, assistant,
                           kd_weighting, lr, sign_at, tau_decay, label_smoothing, augment, seed, out, resume, device,
                           download, data_mode, skip_bad_images, precision.value, channels_last, compile_model,
                           data_on_device)
    world = World.from_environment()
    record = train_run(config, db, progress=output is not OutputFormat.json or console.is_terminal, world=world)
    if world.is_main:
        emit_record(record, output.value, f"{model} on {data}")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by train or import-checkpoint, or a "
                                               "packed model from export (run by the XNOR-popcount engine on the "
                                               "CPU).")],
    data: DataOption = "digits",
    resolution: ResolutionOption = None,
    device: DeviceOption = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help=help_with(
        limits.EVAL_BATCH_SIZE, "Test images per forward pass"))] = 512,
    data_mode: DataModeOption = DataMode.auto,
    skip_bad_images: SkipBadOption = False,
    db: DbOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Top-1 / top-5 accuracy (%) and throughput (images/s) of a checkpoint on the test split of --data (a
    streamed folder: shorter side resized to resolution / 0.95, centre crop); kept as a run of kind evaluate."""
    from .deploy import evaluate_packed, is_packed_file
    from .train.loop import evaluate_checkpoint

    run = evaluate_packed if is_packed_file(checkpoint) else evaluate_checkpoint
    result = run(checkpoint, data, resolution, device, batch_size, data_mode.value, skip_bad_images, db)
    emit_record(result, output.value, f"{checkpoint.name} on {result['data']}")


PackedFileArgument = Annotated[Path, typer.Argument(help="A packed model written by `bnextbench export`.")]
ThreadsOption = Annotated[Optional[int], typer.Option("--threads", help=help_with(
    limits.THREADS, "CPU threads of the engine (default: every CPU)"))]
EXPORT_COLUMNS = (
    Field("part", "part", left=True), Field("tensors", "tensors"), Field("bytes", "bytes"),
    Field("mib", "MiB", fixed(".3f")),
)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by train or import-checkpoint.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the packed model (.safetensors).")],
    classes: Annotated[Optional[Path], typer.Option("--classes", help="Text file of class names, one per line "
                                                    "(default: the checkpoint's own, else class indices).")] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Write a checkpoint as a packed binary network (safetensors, no pickle): binary weights 1 bit each, 64 to a
    uint64 word; k-bit layers as integer codes with their scales; the rest at its precision. Prints the file's
    size in MiB part by part beside the counter's size_mib (binary weights 1 bit, every other parameter 32)."""
    from .deploy import export_checkpoint
    from .io import read_text

    names = None
    if classes is not None:
        names = [line.strip() for line in read_text(classes, "class names").splitlines() if line.strip()]
    result = export_checkpoint(checkpoint, out, names)
    counter = result["counter"]
    title = (f"{out}: {result['file_mib']:.3f} MiB ({result['bytes']} bytes); the counter's size_mib "
             f"{counter['size_mib']:.3f} MiB at {result['resolution']} px")
    emit(result["parts"], EXPORT_COLUMNS, output.value, title, document=result)


INFER_COLUMNS = (
    Field("image", "image", left=True), Field("rank", "rank"), Field("class", "class", left=True),
    Field("probability", "probability (%)", fixed(".2f")),
)


@app.command()
def infer(
    model_file: PackedFileArgument,
    images: Annotated[list[Path], typer.Argument(help="Image files (RGB) at the model's resolution, or any size "
                                                 "with --resize.")],
    top: Annotated[int, typer.Option("--top", help=help_with(limits.TOP, "Classes listed per image"))] = 5,
    resize: Annotated[bool, typer.Option("--resize", help="Resize each image's shorter side to resolution / 0.95 "
                                         "and centre-crop, as evaluation does.")] = False,
    threads: ThreadsOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Classify images with a packed model through the XNOR-popcount engine: the top classes of each with their
    softmax probabilities (%)."""
    from .deploy import load_packed, set_threads
    from .deploy.engine import classify

    limits.TOP.check(top)
    if limits.THREADS.check(threads, optional=True) is not None:
        set_threads(threads)
    packed = load_packed(model_file)
    rows = classify(packed, images, top, resize)
    emit(rows, INFER_COLUMNS, output.value, f"{model_file.name} ({packed.metadata['model']['model']}, "
         f"{packed.resolution}x{packed.resolution} px, XNOR-popcount engine)")


EPOCH_FIELDS = ("epoch", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "lr", "tau", "seconds",
                "images_per_s")
EPOCH_COLUMNS = tuple(Field(key, key, lambda value: f"{value:.4g}" if isinstance(value, float) else str(value))
                      for key in EPOCH_FIELDS)
RUN_COLUMNS = (
    Field("id", "id"), Field("status", "status", left=True), Field("candidate", "candidate", left=True),
    Field("data", "data", left=True), Field("resolution", "resolution"), Field("epochs", "epochs"),
    Field("top1", "top-1 (%)", fixed(".2f")), Field("top5", "top-5 (%)", fixed(".2f")),
    Field("train_images_per_s", "img/s", fixed(".0f")), Field("teacher", "teacher", left=True),
)


@app.command()
def runs(
    db: DbOption = None,
    run_id: Annotated[Optional[int], typer.Option("--run", help="Show one run's per-epoch metrics.")] = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """List the runs in the results database (accuracies in %, speed in training images per second)."""
    from .store import Store, run_summary

    store = Store.existing(db)
    if run_id is not None:
        run = store.get_run(run_id)
        epochs = [{key: getattr(m, key) for key in EPOCH_FIELDS} for m in run.epochs]
        document = {**run_summary(run), "recipe": run.recipe, "complexity": run.complexity,
                    "versions": run.versions, "git_commit": run.git_commit, "epochs": epochs}
        emit(epochs, EPOCH_COLUMNS, output.value, f"run {run.id}: {run.candidate} on {run.data} ({run.status})",
             document=document)
        return
    summaries = [run_summary(run) for run in store.runs()]
    shown = [{**row, "epochs": f"{row['epochs_done']}/{row['epochs_planned']}"} for row in summaries]
    emit(shown, RUN_COLUMNS, output.value, "Runs", document=summaries)


Sampler = _choices("Sampler", ("tpe", "nsga2", "random"))
Pruner = _choices("Pruner", ("sh", "hyperband", "none"))
Strategy = _choices("Strategy", ("multi-trial", "oneshot"))
HoldoutOption = Annotated[Optional[int], typer.Option("--holdout", help=help_with(
    limits.HOLDOUT, "Training images (class-balanced, seeded) held out from the supernet to score candidates on; "
    "default a fifth, at most 5000"))]


StorageOption = Annotated[Optional[str], typer.Option("--storage", help="Optuna storage shared by the workers: "
                                                      "postgresql://USER@HOST/DB (many machines), journal:PATH (many "
                                                      "processes on one host) or any SQLAlchemy URL (default: the "
                                                      "results database).")]
HeartbeatOption = Annotated[int, typer.Option("--heartbeat", help=help_with(
    limits.HEARTBEAT, "Seconds between heartbeats of a running trial on a database storage; fixed when the study is "
    "created"))]
GraceOption = Annotated[Optional[int], typer.Option("--grace", help=help_with(
    limits.GRACE, "Seconds without a heartbeat after which a trial counts as dead and is retried once (default 2 x "
    "--heartbeat)"))]


@app.command()
def search(
    budget: Annotated[list[str], typer.Option("--budget", help="Upper limit, NUMBER[k|M|G|T]METRIC with METRIC in "
                                              "BOPs, FLOPs, OPs, Params, MiB (e.g. 0.3GBOPs, 87MOPs, 2MParams); "
                                              "repeat to combine. Counted at the training resolution.")],
    space: Annotated[Optional[Path], typer.Option("--space", help="Search space YAML (default "
                                                  "search_spaces/bnext.yaml).")] = None,
    data: DataOption = "digits",
    trials: Annotated[int, typer.Option("--trials", help=help_with(
        limits.TRIALS, "Finished trials the study should hold (trained, pruned or infeasible)"))] = 10,
    epochs: Annotated[int, typer.Option("--epochs", help=help_with(
        limits.EPOCHS, "Training epochs per candidate (the fidelity)"))] = 3,
    batch_size: BatchOption = 64,
    train_limit: LimitOption = None,
    resolution: ResolutionOption = None,
    sampler: Annotated[Sampler, typer.Option("--sampler", help="tpe (top-1 under the budget), nsga2 (top-1 vs OPs), "
                                             "random (control).")] = Sampler.tpe,
    pruner: Annotated[Pruner, typer.Option("--pruner", help="Stop weak candidates early by epoch (not with "
                                           "nsga2).")] = Pruner.sh,
    study: Annotated[Optional[str], typer.Option("--study", help="Study name; re-running continues it.")] = None,
    db: DbOption = None,
    storage: StorageOption = None,
    heartbeat: HeartbeatOption = 60,
    grace: GraceOption = None,
    seed: SeedOption = 0,
    noise_seeds: Annotated[int, typer.Option("--noise-seeds", help=help_with(
        limits.NOISE_SEEDS,
        "Then train the winner with N more seeds and print its top-1 spread over seeds (0: skip)"))] = 2,
    strategy: Annotated[Strategy, typer.Option("--strategy", help="multi-trial: train every candidate for --epochs; "
                                               "oneshot: score every candidate in seconds with a supernet's "
                                               "weights, then retrain the best --retrain.")] = Strategy.multi_trial,
    supernet: Annotated[Optional[int], typer.Option("--supernet", help="oneshot: the run id of a trained supernet "
                                                    "(`bnextbench supernet train`); default: train one first.")] = None,
    supernet_epochs: Annotated[Optional[int], typer.Option("--supernet-epochs", help=help_with(
        limits.SUPERNET_EPOCHS, "oneshot: epochs of the supernet it trains (default --epochs)"))] = None,
    holdout: HoldoutOption = None,
    retrain: Annotated[int, typer.Option("--retrain", help=help_with(
        limits.RETRAIN, "oneshot: best candidates then trained stand-alone for --epochs; their top-1 against the "
        "scores is the proxy's fidelity"))] = 3,
    device: DeviceOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Search architectures under a complexity budget with Optuna; every trial is kept in the results database.
    Progress (trials done, the current trial's epoch and top-1, the best so far) goes to stderr; the winner's
    spread over seeds says how far apart two trials must be to differ by more than the seed. A oneshot study's
    top-1 is the score on held-out training images with inherited weights; `show` prints its fidelity.

    Start it on any number of processes or machines with the same --study and --storage (and a shared --db) to
    split the trials; `bnextbench worker` joins an existing study with its own settings."""
    from .search import parse_budgets
    from .search.noise import spread_text, winner_spread
    from .search.oneshot import OneShotConfig, run_oneshot
    from .search.space import default_space
    from .search.study import Search, SearchConfig
    from .store import Store

    limits.NOISE_SEEDS.check(noise_seeds)
    config = SearchConfig(budgets=parse_budgets(budget), space=space or default_space(), data=data, trials=trials,
                          epochs=epochs, batch_size=batch_size, train_limit=train_limit, resolution=resolution,
                          sampler=sampler.value, pruner=pruner.value, study=study, storage=storage, seed=seed,
                          heartbeat=heartbeat, grace=grace, device=device)
    oneshot = OneShotConfig(supernet, supernet_epochs, holdout, retrain=retrain)
    configured = Search.configure(config)  # validates budgets, space, data and feasibility before any write
    store = Store(db)
    if strategy is Strategy.oneshot:
        result = run_oneshot(configured, oneshot, store)
        _emit_leaderboard(result, output)
        if output is OutputFormat.table:
            _say_fidelity(result)
        return
    result = configured.run(store)
    if result["already_complete"]:
        warnings.warn(f"study {result['study']} already held its {trials} trials, so nothing was trained; this is "
                      "its stored leaderboard (a larger --trials continues it, another --study starts anew)",
                      BnextbenchWarning)
    spread = winner_spread(configured.record, result["trials"], store, noise_seeds, device)
    _emit_leaderboard(result, output, document={**result, "winner_seeds": spread})
    if spread is not None and output is OutputFormat.table:
        say(spread_text(spread))


def count_field(budgets: list[str] | None, key: str, header: str, decimals_in_millions: int) -> Field:
    """A column of counts (``bops``, ``ops``, ``params``) in the unit of the study's budget on that metric (a budget
    of 0.3GBOPs shows BOPs in G), else in millions; the decimals follow the unit."""
    from .search.budget import PREFIXES, parse_budget

    prefix = next((b.prefix for b in map(parse_budget, budgets or []) if b.metric == key), "M")
    scale = PREFIXES[prefix.lower()]
    decimals = max(0, decimals_in_millions + round(math.log10(scale / 1e6)))
    return Field(key, f"{header} ({prefix or 'count'})", fixed(f".{decimals}f", scale))


def trial_columns(budgets: list[str] | None, bucket: bool = False) -> tuple[Field, ...]:
    """A study's trial table, ranked; with ``bucket``, each row's BOPs bucket (in the BOPs column's unit) instead
    of a rank."""
    bops = count_field(budgets, "bops", "BOPs", 1)
    first = (Field("bucket", bops.header.replace("BOPs", "BOPs bucket"), left=True) if bucket
             else Field("rank", "rank"))
    return (first, Field("number", "trial"), Field("state", "state", left=True),
            Field("top1", "top-1 (%)", fixed(".2f")), bops, Field("budget_share", "of budget (%)", fixed(".0f", 0.01)),
            count_field(budgets, "ops", "OPs", 2), count_field(budgets, "params", "params", 3),
            Field("epochs", "epochs"), Field("run_id", "run"), Field("candidate", "candidate", left=True))


def _say_fidelity(result: dict) -> None:
    """The fidelity of a study's cheap score, one line."""
    from .search.fidelity import describe

    fidelity = result.get("fidelity")
    if result.get("strategy") == "oneshot":
        retrained = ", ".join(f"trial {p['trial']} {p['score']:.2f} -> {p['top1']:.2f} %"
                              for p in (fidelity or {}).get("retrained", []))
        say(f"one-shot proxy (held-out top-1, inherited weights) against stand-alone top-1: {describe(fidelity)}"
            + (f"; score -> retrained: {retrained}" if retrained else ""))
    else:
        say(f"low-fidelity proxy (top-1 after epoch 1) against the final top-1: {describe(fidelity)}")


def _emit_trials(result: dict, rows: list[dict], output: OutputFormat, heading: str = "leaderboard",
                 document: dict | None = None, bucket: bool = False) -> None:
    """Rows of a study's trials under a title naming its protocol."""
    protocol = result["protocol"] or {}
    title = (f"{heading} of study {result['study']}: budget {', '.join(result['budgets'] or [])}, "
             f"{protocol.get('data')} at {protocol.get('resolution')} px, {protocol.get('recipe', {}).get('epochs')} "
             "epochs")
    if result.get("strategy") == "oneshot":
        title += " (one-shot: top-1 is the score on held-out training images with the supernet's weights)"
    elif any(row["state"] == "pruned" for row in rows):
        title += "; pruned trials stopped early (see epochs) and are not ranked"
    emit(rows, trial_columns(result["budgets"], bucket), output.value, title,
         document=result if document is None else document)


def _emit_leaderboard(result: dict, output: OutputFormat, document: dict | None = None) -> None:
    """A study's leaderboard (complete trials ranked, pruned ones apart; search.summary.leaderboard)."""
    from .search.summary import leaderboard

    rows = leaderboard(result["trials"])
    _emit_trials(result, rows, output, document={**(result if document is None else document), "leaderboard": rows})


@app.command()
def show(
    study: Annotated[str, typer.Argument(help="Study name (see the search output).")],
    db: DbOption = None,
    storage: Annotated[Optional[str], typer.Option("--storage", help="Optuna storage URL.")] = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """The Pareto front (top-1 against OPs) and the best candidate per BOPs bucket (powers of two) of a study."""
    from .search.summary import best_per_bucket, leaderboard, load_summary, pareto_front
    from .store import Store

    result = load_summary(study, storage or Store.existing(db).url)
    front, buckets = pareto_front(result["trials"]), best_per_bucket(result["trials"])
    document = {**result, "pareto_front": front, "best_per_bucket": buckets}
    if output is not OutputFormat.table:
        emit(leaderboard(front), trial_columns(result["budgets"]), output.value, document=document)
        return
    _emit_trials(result, leaderboard(front), output, "Pareto front, top-1 against OPs")
    bops = count_field(result["budgets"], "bops", "BOPs", 1).text
    _emit_trials(result, [{**b["trial"], "bucket": f"[{bops(b['bops_from'])}, {bops(b['bops_below'])})"}
                          for b in buckets], output, "best candidate per BOPs bucket [2^k, 2^(k+1))", bucket=True)
    _say_fidelity(result)


@app.command("proxy-check")
def proxy_check(
    study: Annotated[str, typer.Argument(help="A one-shot study (`bnextbench search --strategy oneshot`).")],
    candidates: Annotated[int, typer.Option("--candidates", help=help_with(
        limits.PROXY_CANDIDATES, "Scored candidates to retrain, spread evenly over the study's BOPs range"))] = 8,
    db: DbOption = None,
    storage: StorageOption = None,
    device: DeviceOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Measure how well a one-shot study's scores rank candidates: retrain M of them stand-alone under the study's
    protocol and print Kendall tau and Spearman rho of score against top-1 (stored with the study)."""
    from .search.oneshot import proxy_check as check
    from .search.record import read_study_record
    from .store import Store

    store = Store.existing(db)
    spec = storage or store.url
    fidelity = check(read_study_record(study, spec), spec, store, candidates, device)
    rows = [{**pair, "number": pair["trial"]} for pair in fidelity["retrained"]]
    emit(rows, PROXY_COLUMNS, output.value, f"proxy check of study {study}", document=fidelity)
    if output is OutputFormat.table:
        _say_fidelity({"strategy": "oneshot", "fidelity": fidelity})


PROXY_COLUMNS = (
    Field("number", "trial"), Field("score", "score (%)", fixed(".2f")), Field("top1", "stand-alone top-1 (%)",
                                                                               fixed(".2f")),
    Field("bops", "BOPs (M)", fixed(".1f", 1e6)), Field("run_id", "run"), Field("candidate", "candidate", left=True),
)


plot_app = typer.Typer(help="Figures of runs.", no_args_is_help=True)
app.add_typer(plot_app, name="plot")


@plot_app.command("curves")
def plot_curves(
    run_id: Annotated[int, typer.Argument(help="Run id (see `bnextbench runs`).")],
    out: Annotated[Optional[Path], typer.Option("--out", help="PNG path (default results/run-ID-curves.png).")] = None,
    db: DbOption = None,
) -> None:
    """Loss, top-1 and weight-binarization tau against epoch for one run (PNG)."""
    from .report.plots import plot_training_curves
    from .store import Store

    target = out or Path("results") / f"run-{run_id}-curves.png"
    plot_training_curves(Store.existing(db).get_run(run_id), target)
    say(f"wrote {target}")


supernet_app = typer.Typer(help="Weight-sharing BNext supernets for one-shot search.", no_args_is_help=True)
app.add_typer(supernet_app, name="supernet")


@supernet_app.command("train")
def supernet_train(
    space: Annotated[Optional[Path], typer.Option("--space", help="bnext search space YAML (default "
                                                  "search_spaces/bnext.yaml); every candidate is a subnet.")] = None,
    data: DataOption = "digits",
    epochs: EpochsOption = 10,
    batch_size: BatchOption = 128,
    train_limit: LimitOption = None,
    resolution: ResolutionOption = None,
    holdout: HoldoutOption = None,
    random_subnets: Annotated[int, typer.Option("--random-subnets", help=help_with(
        limits.RANDOM_SUBNETS, "Random subnets per step besides the largest and the smallest (sandwich rule)"))] = 2,
    teacher: TeacherOption = None,
    lr: LrOption = 2e-3,
    sign_at: SignAtOption = 0.3,
    augment: AugmentOption = Augment.cifar,
    seed: SeedOption = 0,
    out: OutOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = None,
    db: DbOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Train a supernet by the sandwich rule (largest, smallest and random subnets per step, the others distilled
    from the largest) with the BNext recipe; recorded as a run of kind "supernet". Its top-1 is the largest
    subnet's on the held-out training images; use the run id with `search --strategy oneshot --supernet ID`."""
    from .oneshot.supernet import SUPERNET_MODEL
    from .search.space import BNextSpace, SpaceError, default_space, load_space
    from .train import train as train_run

    loaded = load_space(space or default_space())
    if not isinstance(loaded, BNextSpace):
        raise SpaceError(f"{space}: a supernet needs a bnext space, not {loaded.family}")
    config = _train_config(SUPERNET_MODEL, data, epochs, batch_size, 1.0, train_limit, resolution, teacher, [],
                           KdWeighting.sample, lr, sign_at, None, 0.0, augment, seed, out, resume, device, False)
    config = dataclasses.replace(config, supernet_space=loaded.definition, holdout=holdout,
                                 random_subnets=random_subnets)
    record = train_run(config, db, progress=output is not OutputFormat.json or console.is_terminal)
    emit_record(record, output.value, f"supernet on {data} (top-1: the largest subnet's on held-out training images)")


teacher_app = typer.Typer(help="Full-precision timm teachers for distillation.", no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")


@teacher_app.command("train")
def teacher_train(
    name: Annotated[str, typer.Argument(help="A timm model name, e.g. resnet18.")],
    data: DataOption = "digits",
    epochs: EpochsOption = 10,
    batch_size: BatchOption = 128,
    train_limit: LimitOption = None,
    resolution: ResolutionOption = None,
    lr: LrOption = 1e-3,
    label_smoothing: SmoothingOption = 0.0,
    augment: AugmentOption = Augment.cifar,
    seed: SeedOption = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="Teacher file (default results/teachers/NAME-run-ID.pt)."
                                                )] = None,
    device: DeviceOption = None,
    download: DownloadOption = False,
    db: DbOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Train a full-precision timm model on --data and keep it as a teacher checkpoint."""
    from .teachers import train_teacher

    config = _train_config(name, data, epochs, batch_size, 1.0, train_limit, resolution, None, [],
                           KdWeighting.sample, lr, 0.3, None, label_smoothing, augment, seed, None, False, device,
                           download)
    target = out or Path("results") / "teachers" / f"{name}-{Path(data.replace(':', '-')).name}-seed{seed}.pt"
    record = train_teacher(config, target, db, progress=output is not OutputFormat.json or console.is_terminal)
    emit_record(record, output.value, f"teacher {name} on {data}")


@plot_app.command("features")
def plot_features(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by train or import-checkpoint.")],
    image: Annotated[Path, typer.Argument(help="An image file (PNG, JPEG, ...), resized to the checkpoint's "
                                          "training resolution in pixels (224 if the checkpoint has none).")],
    block: Annotated[int, typer.Option("--block", help="Block index, 0 = the first block after the stem.")],
    after_sign: Annotated[bool, typer.Option("--after-sign/--before-sign", help="Maps after the activation "
                                             "binarizer (exactly -1/+1) or its real-valued input.")] = True,
    maps: Annotated[int, typer.Option("--maps", help="Draw the first N channels.")] = 64,
    out: Annotated[Path | None, typer.Option("--out", help="PNG path (default results/CHECKPOINT-blockN-"
                                             "features.png).")] = None,
) -> None:
    """Feature maps of one image at the activation binarizer of block N's first binary conv: a PNG grid, one
    125 x 125 px cell per channel."""
    from .report.plots import plot_feature_maps

    target = out or Path("results") / f"{checkpoint.parent.name}-{checkpoint.stem}-block{block}-features.png"
    features = plot_feature_maps(checkpoint, image, block, target, after_sign, maps)
    say(f"wrote {target} ({features.layer}, {len(features.activations)} channels of "
        f"{features.activations.shape[1]}x{features.activations.shape[2]} px)")


ReportFormat = _choices("ReportFormat", REPORT_FORMATS)
StudyOption = Annotated[str | None, typer.Option("--study", help="A search study (see `bnextbench search`).")]


@app.command()
def baselines(
    budget: Annotated[list[str] | None, typer.Option("--budget", help="Upper limit the width is fitted to: a "
                                              "number, optional k/M/G/T and BOPs, FLOPs, OPs, Params or MiB (e.g. "
                                              "0.3GBOPs), counted at the training resolution; repeatable. Default: "
                                              "the study's.")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Train under this study's protocol (data, "
                                                 "resolution, train limit, recipe, epochs) and budgets.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="digits | imagefolder:PATH | cifar10:PATH | "
                                                "cifar100:PATH (default digits; not with --study).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help=help_with(
        limits.EPOCHS, "Training epochs (default: the search's, 3)"))] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help=help_with(
        limits.BATCH_SIZE, "Images per step (default: the search's, 64)"))] = None,
    lr: Annotated[float | None, typer.Option("--lr", help=help_with(
        limits.LR, "Peak AdamW learning rate (default: the search's, 2e-3)"))] = None,
    train_limit: LimitOption = None,
    resolution: ResolutionOption = None,
    seed: Annotated[list[int] | None, typer.Option("--seed", help=help_with(
        limits.SEED,
        "Seed; repeat to train several (top-1 mean ± std in compare). Default: the study's, or 0"))] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="Baseline to train; repeatable (default "
                                             "xnor_resnet18, birealnet18, reactnet_a; bnext_tiny too).")] = None,
    device: DeviceOption = None,
    db: DbOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Train XNOR-Net, Bi-Real and ReActNet-A width-scaled to a budget under one protocol, stored as ordinary runs."""
    from .search import parse_budgets
    from .search.baselines import BASELINE_MODELS, baseline_protocol, run_baselines
    from .store import Store

    store = Store(db)
    protocol, num_classes, study_budgets = baseline_protocol(store, study, data, epochs, batch_size, lr,
                                                             seed[0] if seed else 0, train_limit, resolution)
    budgets = parse_budgets(budget) if budget or not study_budgets else list(study_budgets)
    records = run_baselines(store, budgets, protocol, num_classes, model or BASELINE_MODELS, seed or None,
                            device=device, progress=output is not OutputFormat.json or console.is_terminal)
    rows = [{**record, "trained": "reused" if record["reused"] else "now"} for record in records]
    emit(rows, BASELINE_COLUMNS, output.value, f"baselines under {', '.join(b.text for b in budgets)}: "
         f"{protocol.data} at {protocol.resolution} px, {protocol.recipe.epochs} epochs", document=records,
         csv_keys=("model", "width_mult", "seed", "run_id", "top1", "reused"))


BASELINE_COLUMNS = (
    Field("model", "model", left=True), Field("width_mult", "width", lambda value: f"{value:g}"),
    Field("seed", "seed"), Field("run_id", "run"), Field("top1", "top-1 (%)", fixed(".2f")),
    Field("trained", "trained"),
)
# Board columns of names and notes wrap; the others never do (numbers).
_WRAPPED_COLUMNS = ("model", "teacher", "source", "prior", "tag")


def _board_fields(columns) -> list[Field]:
    """Fields for the emitter from the report's columns (the same cell texts as the Markdown report)."""
    from .report import cell_text

    return [Field(c.key, c.header, lambda value, c=c: cell_text({c.key: value}, c),
                  left=c.key in _WRAPPED_COLUMNS or c.key in ("kind", "figure"), wrap=c.key in _WRAPPED_COLUMNS)
            for c in columns]


@app.command()
def compare(
    study: StudyOption = None,
    data: Annotated[str | None, typer.Option("--data", help="Only local runs on this data spec.")] = None,
    design: Annotated[bool, typer.Option("--design", help="Show the BNext comparison table's design columns "
                                         "(BN, PReLU, SE, quantization, KD) of the published rows.")] = False,
    counted: Annotated[bool, typer.Option("--published-vs-counted", help="Instead: each published count of a "
                                          "model bnextbench implements against its own count at 224 px, "
                                          "flagged when off by more than 3 %.")] = False,
    db: DbOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Searched candidates against same-protocol baselines, one ranking per data set and resolution, and the
    published ImageNet rows apart. Counts at each row's resolution: FLOPs, OPs and params in millions, BOPs in
    millions (local rows) or billions (published rows); each title names the ops rule of its OPs and degrees."""
    from .report import (
        COUNTED_COLUMNS,
        DESIGN_COLUMNS,
        build_leaderboard,
        counted_csv,
        counted_rows,
        to_csv,
        to_json,
    )
    from .store import Store

    if counted:  # needs no results database
        rows = counted_rows()
        if output is OutputFormat.csv:
            sys.stdout.write(counted_csv(rows))
        elif output is OutputFormat.json:
            emit(rows, (), output.value)
        else:
            console.print(table(rows, _board_fields(COUNTED_COLUMNS), "published against counted at 224 px, 1000 "
                                "classes (difference = counted / published - 1)", drop_empty=True))
        return
    board = build_leaderboard(Store.existing(db), study, data)
    if output is OutputFormat.json:
        emit([], (), output.value, document=to_json(board))
    elif output is OutputFormat.csv:
        sys.stdout.write(to_csv(board))
    else:
        for section in board.sections:
            shown = tuple(c for c in section.columns if c.key not in ("data", "resolution")  # in the title
                          and (design or c not in DESIGN_COLUMNS))
            console.print(table(section.rows, _board_fields(shown), section.title, drop_empty=True))
        if not any(row["kind"] == "baseline" for section in board.sections for row in section.rows):
            say("no baselines yet: `bnextbench baselines --study STUDY` trains XNOR-ResNet-18, Bi-Real-18 and "
                "ReActNet-A width-fitted to a study's budget under its protocol, to rank beside its candidates")


@app.command()
def report(
    formats: Annotated[list[ReportFormat] | None, typer.Option("--format", help="md, csv, json or html; repeatable "
                                                        "(default all four).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder; written all or nothing.")] = Path("results") /
    "report",
    study: StudyOption = None,
    data: Annotated[str | None, typer.Option("--data", help="Only local runs on this data spec.")] = None,
    model_card: Annotated[list[int] | None, typer.Option("--model-card", help="Instead: a Hugging Face model card "
                                                  "(model-index YAML) for this run id; repeatable.")] = None,
    db: DbOption = None,
) -> None:
    """Write the leaderboard (Markdown, CSV, JSON, self-contained HTML), a Pareto plot of top-1 (%) against OPs
    (BOPs/64 + FLOPs, log scale; PNG and SVG) and the report's provenance; or model cards of chosen runs. Tables
    give BOPs, FLOPs, OPs and params in millions at each row's resolution; JSON gives absolute counts."""
    from .report import build_leaderboard, write_model_cards, write_report
    from .store import Store

    store = Store.existing(db)
    if model_card:
        written = write_model_cards(store, model_card, out)
    else:
        written = write_report(build_leaderboard(store, study, data), out,
                               [f.value for f in formats or ReportFormat])
    say(f"wrote {', '.join(path.name for path in written)} to {out}")


@app.command()
def worker(
    study: Annotated[str, typer.Option("--study", help="The study to work on (created by `bnextbench search`).")],
    storage: Annotated[str, typer.Option("--storage", help="Its Optuna storage: postgresql://USER@HOST/DB, "
                                         "journal:PATH or another SQLAlchemy URL.")],
    db: DbOption = None,
    device: DeviceOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Join a search study with the budget, space, data and recipe it records; run trials until it is full."""
    from .search.study import join_search
    from .store import Store

    result = join_search(study, storage, Store(db), device=device)
    _emit_leaderboard(result, output)


@app.command()
def version() -> None:
    """Print the bnextbench version."""
    print(__version__)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback.

    Process-wide settings belong here, not in library calls: glibc keeps freed memory for reuse, which
    CPU training needs (``keep_freed_memory``) and which a program importing bnextbench may not want.
    """
    args = sys.argv[1:] or ["--help"]
    try:
        from .allocator import keep_freed_memory

        keep_freed_memory()
        warnings.showwarning = _show_warning
        if "WORLD_SIZE" in os.environ and args[0] != "train" and not _asks_for_text(args):
            # Any other command would run once per process, each writing the same results alone.
            raise BnextbenchError(f"only `bnextbench train` runs under torchrun, not `{args[0]}`; run it as one "
                                  "process")
        if not _asks_for_text(args):
            _import_uninterrupted("torch", "timm")
        # Without standalone mode Typer returns the exit code of a command it ended: 130 for Ctrl-C.
        code = app(args=args, standalone_mode=False)
    except BnextbenchError as exc:
        _fail(str(exc))
    except typer.TyperException as exc:  # usage errors raised by Typer's click
        _fail(exc.format_message())
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C outside a command's body
        code = INTERRUPTED
    if code == INTERRUPTED:  # the records are already kept (runs and trials marked interrupted)
        _fail("interrupted", code=INTERRUPTED)
    if isinstance(code, int) and code:
        sys.exit(code)


INTERRUPTED = 130  # the shell's exit status for SIGINT


def _asks_for_text(args: list[str]) -> bool:
    """Whether the command line only asks for help or the version, which need no torch."""
    return "--help" in args or args == ["version"]


def _import_uninterrupted(*modules: str) -> None:
    """Import ``modules`` with Ctrl-C held until they are loaded, then act on it.

    An interrupt inside torch's C++ initialisation does not unwind: pybind11 turns the KeyboardInterrupt
    into std::terminate and the process aborts with a C++ message. Every command that runs a model
    imports torch, so the command line loads it first, under this guard.
    """
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: interrupted.append(number))
    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """bnextbench's own warnings as one line, ``warning: ...``; others as Python shows them."""
    if issubclass(category, BnextbenchWarning):
        print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _fail(message: str, code: int = 2) -> None:
    # Under torchrun every process reads the same input and meets the same error: rank 0 alone says it (a
    # process that fails alone is named, with its exit status, in torchrun's own summary).
    if os.environ.get("RANK", "0") == "0":
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)
