"""The ``bnextbench`` command: a thin Typer shell over the library, printing with rich."""

from __future__ import annotations

import csv
import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .complexity import OPS_RULES, Complexity
from .data import AUGMENTATIONS
from .errors import BnextbenchError
from .models import DEFAULT_RESOLUTION, list_models

app = typer.Typer(
    name="bnextbench",
    help="Build, count, train and search binary neural networks around BNext. "
    "Counts: bops = binary MACs, flops = non-binary MACs weighted by the ops rule, ops = bops/64 + flops, "
    "params = parameters, size in MiB (binary weights 1 bit, the rest 32 bits).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
if not console.is_terminal:  # files and pipes get whole tables, not an 80-column squeeze
    console = Console(width=200)


def _choices(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """A str enum of ``values`` for Typer (member names with '-' turned into '_')."""
    return enum.Enum(name, {value.replace("-", "_"): value for value in values}, type=str)


OpsRule = _choices("OpsRule", OPS_RULES)
OutputFormat = _choices("OutputFormat", ("table", "json", "csv"))


SUMMARY_FIELDS = (
    "model", "resolution", "num_classes", "ops_rule", "params", "binary_params",
    "bops", "flops", "ops", "binarization_degree", "size_mib",
)
LAYER_FIELDS = (
    "name", "kind", "weight_bits", "input_bits", "in_channels", "out_channels", "kernel_size",
    "stride", "in_size", "out_size", "params", "macs", "bops", "flops",
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


def _giga(value: float) -> str:
    return f"{value / 1e9:.4f}"


def _mega(value: float) -> str:
    return f"{value / 1e6:.3f}"


def _write_csv(rows: list[dict], fields: tuple[str, ...]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _summary_table(reports: list[Complexity], title: str) -> Table:
    table = Table(title=title)
    for header in ("model", "params (M)", "binary params (M)", "BOPs (G)", "FLOPs (M)", "OPs (M)", "degree (%)",
                   "size (MiB)"):
        table.add_column(header, justify="left" if header == "model" else "right", no_wrap=header == "model")
    for report in reports:
        table.add_row(
            report.model,
            _mega(report.params),
            _mega(report.binary_params),
            _giga(report.bops),
            _mega(report.flops),
            _mega(report.ops),
            f"{100 * report.binarization_degree:.2f}",
            f"{report.size_mib:.2f}",
        )
    return table


@app.command()
def models(
    ops_rule: OpsRuleOption = OpsRule.bits,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List every registered model with params, BOPs, OPs and binarization degree at 224x224, 1000 classes."""
    from .profiling import profile_model

    reports = [profile_model(name, DEFAULT_RESOLUTION, 1000, ops_rule.value) for name in list_models()]
    if output is OutputFormat.json:
        print(json.dumps([report.to_dict() for report in reports], indent=2))
    elif output is OutputFormat.csv:
        _write_csv([report.to_dict() for report in reports], SUMMARY_FIELDS)
    else:
        console.print(_summary_table(reports, f"Registered models at {DEFAULT_RESOLUTION}x{DEFAULT_RESOLUTION}, "
                                              f"1000 classes, ops rule '{ops_rule.value}'"))


@app.command()
def profile(
    model: Annotated[Optional[str], typer.Argument(help="Registered model name (see `bnextbench models`).")] = None,
    spec: Annotated[Optional[Path], typer.Option("--spec", help="A BNext architecture spec (JSON) to count "
                                                 "instead of a registered model.")] = None,
    resolution: Annotated[int, typer.Option("--resolution", help="Input side in pixels (square input). Inputs "
                                            "up to 64 px use the stride-1 small-input stem.")] = DEFAULT_RESOLUTION,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs (ignored with --spec).")] = 1000,
    ops_rule: OpsRuleOption = OpsRule.bits,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="Also list every conv/linear layer.")] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Count BOPs, FLOPs, OPs (absolute counts), binarization degree, params and size of one model."""
    from .profiling import load_spec, profile_model, profile_spec

    if (model is None) == (spec is None):
        raise BnextbenchError("give either a MODEL name or --spec FILE.json")
    if spec is not None:
        report = profile_spec(load_spec(spec), resolution, ops_rule.value, per_layer)
    else:
        report = profile_model(model, resolution, num_classes, ops_rule.value, per_layer=per_layer)
    data = report.to_dict(per_layer=per_layer)
    if output is OutputFormat.json:
        print(json.dumps(data))
    elif output is OutputFormat.csv:
        if per_layer:
            _write_csv(data["layers"], LAYER_FIELDS)
        else:
            _write_csv([data], SUMMARY_FIELDS)
    else:
        title = f"{report.model} at {resolution}x{resolution}, {report.num_classes} classes, ops rule '{report.ops_rule}'"
        console.print(_summary_table([report], title))
        if per_layer:
            console.print(_layer_table(report))


def _layer_table(report: Complexity) -> Table:
    table = Table(title="Layers (MACs, BOPs and FLOPs as absolute counts)")
    for header in LAYER_FIELDS:
        table.add_column(header, justify="left" if header in ("name", "kind") else "right", no_wrap=header == "name")
    for layer in report.layers:
        table.add_row(*(f"{getattr(layer, f):g}" if f == "flops" else str(getattr(layer, f)) for f in LAYER_FIELDS))
    return table


# Imported beside its one user: the variant names live in the checkpoint module, where they are checked.
from .models.checkpoint import REFERENCE_VARIANTS  # noqa: E402

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
    try:
        save_model_checkpoint(out, imported.name, imported.model, imported.model_kwargs)
    except OSError as exc:
        raise BnextbenchError(f"cannot write {out}: {exc.strerror or exc}") from None
    bits = imported.model_kwargs["aux_bits"]
    precision = "float" if bits >= FLOAT_BITS else f"{bits}-bit"
    console.print(f"imported {checkpoint} into {model} ({precision} stem/SE/FC, "
                  f"{imported.model_kwargs['num_classes']} classes) -> {out}")


DataOption = Annotated[str, typer.Option("--data", help="digits | imagefolder:PATH | cifar10:PATH | cifar100:PATH.")]
DbOption = Annotated[Optional[str], typer.Option("--db", help="Results database: a file path (SQLite) or an "
                                                 "SQLAlchemy URL. Default $BNEXTBENCH_DB or results/bnextbench.db.")]
RunFormatOption = Annotated[OutputFormat, typer.Option("--format", help="table, or json (the last stdout line).")]


Augment = _choices("Augment", AUGMENTATIONS)
KdWeighting = _choices("KdWeighting", ("sample", "batch"))


def _train_config(
    model: str, data: str, epochs: int, batch_size: int, width_mult: float, train_limit: Optional[int],
    resolution: Optional[int], teacher: Optional[Path], assistant: list[Path], kd_weighting: KdWeighting,
    lr: float, sign_at: float, tau_decay: Optional[float], label_smoothing: float, augment: Augment, seed: int,
    out: Optional[Path], resume: bool, device: Optional[str], download: bool,
):
    from .train import Recipe, TrainConfig

    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr, sign_at=sign_at, tau_decay=tau_decay,
                    label_smoothing=label_smoothing, augment=augment.value, kd_weighting=kd_weighting.value,
                    seed=seed)
    if width_mult <= 0:
        raise BnextbenchError(f"--width-mult must be positive, got {width_mult}")
    if train_limit is not None and train_limit < 1:
        raise BnextbenchError(f"--train-limit must be a positive integer, got {train_limit}")
    if resolution is not None and resolution < 1:
        raise BnextbenchError(f"--resolution must be a positive integer, got {resolution}")
    return TrainConfig(model=model, data=data, recipe=recipe, width_mult=width_mult, train_limit=train_limit,
                       resolution=resolution, teacher=str(teacher) if teacher else None,
                       assistants=tuple(str(p) for p in assistant), out=out, resume=resume, device=device,
                       download=download)


def _print_record(record: dict, output: OutputFormat, title: str) -> None:
    if output is OutputFormat.json:
        print(json.dumps(record))
        return
    table = Table(title=title)
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in record.items():
        table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    console.print(table)


EpochsOption = Annotated[int, typer.Option("--epochs", help="Training epochs.")]
BatchOption = Annotated[int, typer.Option("--batch-size", help="Images per step.")]
WidthOption = Annotated[float, typer.Option("--width-mult", help="Scale every channel (multiples of 8).")]
LimitOption = Annotated[Optional[int], typer.Option("--train-limit", help="Class-balanced, seeded subset of N "
                                                    "training images.")]
ResolutionOption = Annotated[Optional[int], typer.Option("--resolution", help="Input side in pixels (default: "
                                                         "the data's natural size; digits 16).")]
TeacherOption = Annotated[Optional[Path], typer.Option("--teacher", help="Main teacher (from `bnextbench teacher "
                                                       "train`); enables distillation.")]
AssistantOption = Annotated[list[Path], typer.Option("--assistant", help="Assistant teacher per phase, in order "
                                                     "(repeatable).")]
KdOption = Annotated[KdWeighting, typer.Option("--kd-weighting", help="Teacher weights per sample (paper) or "
                                               "per batch (reference code).")]
LrOption = Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate.")]
SignAtOption = Annotated[float, typer.Option("--sign-at", help="Fraction of training after which weights are "
                                             "pure sign (tau < 1e-7).")]
TauOption = Annotated[Optional[float], typer.Option("--tau-decay", help="tau multiplier per epoch (0.9 = the "
                                                    "512-epoch recipe); overrides --sign-at.")]
SmoothingOption = Annotated[float, typer.Option("--label-smoothing", help="Label smoothing without a teacher.")]
AugmentOption = Annotated[Augment, typer.Option("--augment", help="cifar (pad-crop + flip), flip (only), bnext (RandAugment "
                                                "m7 + random-resized crop + flip, timm), none.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of initialisation, data order and augmentation.")]
OutOption = Annotated[Optional[Path], typer.Option("--out", help="Checkpoint folder (default "
                                                   "results/checkpoints/run-ID).")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue the run whose last.pt is in --out.")]
DeviceOption = Annotated[Optional[str], typer.Option("--device", help="cpu or cuda (default: cuda if present).")]
DownloadOption = Annotated[bool, typer.Option("--download", help="Let torchvision download CIFAR if missing.")]


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    data: DataOption = "digits",
    epochs: EpochsOption = 10,
    batch_size: BatchOption = 128,
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
    db: DbOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Train (or distil) a binary network with the BNext recipe; every run is kept in the results database."""
    from .models import check_model_name
    from .store import Store
    from .train import train as train_run

    check_model_name(model)
    config = _train_config(model, data, epochs, batch_size, width_mult, train_limit, resolution, teacher, assistant,
                           kd_weighting, lr, sign_at, tau_decay, label_smoothing, augment, seed, out, resume, device,
                           download)
    record = train_run(config, Store(db), progress=output is not OutputFormat.json or console.is_terminal)
    _print_record(record, output, f"{model} on {data}")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by train or import-checkpoint.")],
    data: DataOption = "digits",
    resolution: ResolutionOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Top-1 / top-5 accuracy (%) of a checkpoint on the test split of --data."""
    from .data import load_data
    from .train import evaluate as evaluate_model
    from .train import load_checkpoint_model
    from .train.loop import pick_device

    model, payload = load_checkpoint_model(checkpoint)
    images = load_data(data, resolution or payload.get("resolution"))
    if getattr(model, "num_classes", images.num_classes) != images.num_classes:
        raise BnextbenchError(f"{checkpoint} predicts {model.num_classes} classes but {data} has {images.num_classes}")
    device = pick_device(None)
    result = evaluate_model(model.to(device), images, device)
    _print_record({"checkpoint": str(checkpoint), "data": images.spec, "resolution": images.resolution, **result},
                  output, f"{checkpoint.name} on {images.spec}")


EPOCH_FIELDS = ("epoch", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "lr", "tau", "seconds",
                "images_per_s")


@app.command()
def runs(
    db: DbOption = None,
    run_id: Annotated[Optional[int], typer.Option("--run", help="Show one run's per-epoch metrics.")] = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """List the runs in the results database (accuracies in %, speed in training images per second)."""
    from .store import Store, run_summary

    if run_id is not None:
        run = Store(db).get_run(run_id)
        epochs = [{key: getattr(m, key) for key in EPOCH_FIELDS} for m in run.epochs]
        if output is OutputFormat.json:
            print(json.dumps({**run_summary(run), "recipe": run.recipe, "complexity": run.complexity,
                              "versions": run.versions, "git_commit": run.git_commit, "epochs": epochs}))
            return
        table = Table(title=f"run {run.id}: {run.model} on {run.data} ({run.status})")
        for header in EPOCH_FIELDS:
            table.add_column(header, justify="right")
        for row in epochs:
            table.add_row(*(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in EPOCH_FIELDS))
        console.print(table)
        return
    rows = [run_summary(run) for run in Store(db).runs()]
    if output is OutputFormat.json:
        print(json.dumps(rows))
        return
    table = Table(title="Runs")
    for header in ("id", "status", "model", "data", "resolution", "epochs", "top-1 (%)", "top-5 (%)", "img/s",
                   "teacher"):
        table.add_column(header, justify="right" if header not in ("status", "model", "data", "teacher") else "left")
    for row in rows:
        table.add_row(str(row["id"]), row["status"], row["model"], row["data"], str(row["resolution"]),
                      f"{row['epochs_done']}/{row['epochs_planned']}", _maybe(row["top1"]), _maybe(row["top5"]),
                      _maybe(row["train_images_per_s"], ".0f"), row["teacher"] or "")
    console.print(table)


def _maybe(value, spec: str = ".2f") -> str:
    return "" if value is None else format(value, spec)


Sampler = _choices("Sampler", ("tpe", "nsga2", "random"))
Pruner = _choices("Pruner", ("sh", "hyperband", "none"))


def _default_space() -> Path:
    """search_spaces/bnext.yaml of this checkout (source and editable installs) or of the installed wheel."""
    beside_package = Path(__file__).resolve().parents[1] / "search_spaces" / "bnext.yaml"
    if beside_package.is_file():
        return beside_package
    from importlib.resources import files

    return Path(str(files("bnextbench.search_spaces") / "bnext.yaml"))


StorageOption = Annotated[Optional[str], typer.Option("--storage", help="Optuna storage shared by the workers: "
                                                      "postgresql://USER@HOST/DB (many machines), journal:PATH (many "
                                                      "processes on one host) or any SQLAlchemy URL (default: the "
                                                      "results database).")]
HeartbeatOption = Annotated[int, typer.Option("--heartbeat", help="Seconds between heartbeats of a running trial on "
                                              "a database storage; fixed when the study is created.")]
GraceOption = Annotated[Optional[int], typer.Option("--grace", help="Seconds without a heartbeat after which a trial "
                                                    "counts as dead and is retried once (default 2 x --heartbeat).")]


@app.command()
def search(
    budget: Annotated[list[str], typer.Option("--budget", help="Upper limit, NUMBER[k|M|G|T]METRIC with METRIC in "
                                              "BOPs, FLOPs, OPs, Params, MiB (e.g. 0.3GBOPs, 87MOPs, 2MParams); "
                                              "repeat to combine. Counted at the training resolution.")],
    space: Annotated[Optional[Path], typer.Option("--space", help="Search space YAML (default "
                                                  "search_spaces/bnext.yaml).")] = None,
    data: DataOption = "digits",
    trials: Annotated[int, typer.Option("--trials", help="Finished trials the study should hold (trained, pruned "
                                        "or infeasible).")] = 10,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs per candidate (the fidelity).")] = 3,
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
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Search architectures under a complexity budget with Optuna; every trial is kept in the results database.

    Start it on any number of processes or machines with the same --study and --storage (and a shared --db) to
    split the trials; `bnextbench worker` joins an existing study with its own settings."""
    from .search import parse_budgets
    from .search.study import Search, SearchConfig
    from .store import Store

    config = SearchConfig(budgets=parse_budgets(budget), space=space or _default_space(), data=data, trials=trials,
                          epochs=epochs, batch_size=batch_size, train_limit=train_limit, resolution=resolution,
                          sampler=sampler.value, pruner=pruner.value, study=study, storage=storage, seed=seed,
                          heartbeat=heartbeat, grace=grace)
    configured = Search(config)  # validates budgets, space, data and feasibility before anything is written
    result = configured.run(Store(db), progress=output is OutputFormat.table and console.is_terminal)
    if output is OutputFormat.json:
        print(json.dumps(result))
        return
    console.print(_leaderboard(result))


def _leaderboard(result: dict, heading: str = "leaderboard") -> Table:
    protocol = result["protocol"] or {}
    table = Table(title=f"{heading} of study {result['study']}: budget {', '.join(result['budgets'] or [])}, "
                        f"{protocol.get('data')} at {protocol.get('resolution')} px, "
                        f"{protocol.get('recipe', {}).get('epochs')} epochs")
    for header in ("rank", "trial", "state", "top-1 (%)", "BOPs (M)", "OPs (M)", "params (M)", "run", "candidate"):
        table.add_column(header, justify="left" if header in ("state", "candidate") else "right")
    ranked = sorted(result["trials"], key=lambda t: (t["top1"] is None, -(t["top1"] or 0.0)))
    for rank, trial in enumerate(ranked, 1):
        table.add_row(str(rank), str(trial["number"]), trial["state"], _maybe(trial["top1"]),
                      _maybe(trial["bops"] and trial["bops"] / 1e6, ".1f"), _maybe(trial["ops"] and trial["ops"] / 1e6,
                                                                                 ".2f"),
                      _maybe(trial["params"] and trial["params"] / 1e6, ".3f"), str(trial["run_id"] or ""),
                      (trial["hash"] or ""))
    return table


@app.command()
def show(
    study: Annotated[str, typer.Argument(help="Study name (see the search output).")],
    db: DbOption = None,
    storage: Annotated[Optional[str], typer.Option("--storage", help="Optuna storage URL.")] = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """The Pareto front (top-1 against OPs) and the best candidate per BOPs bucket (powers of two) of a study."""
    from .search.study import best_per_bucket, load_summary, pareto_front
    from .store import Store

    result = load_summary(study, storage or Store(db).url)
    front, buckets = pareto_front(result["trials"]), best_per_bucket(result["trials"])
    if output is OutputFormat.json:
        print(json.dumps({**result, "pareto_front": front, "best_per_bucket": buckets}))
        return
    console.print(_leaderboard({**result, "trials": front}, "Pareto front, top-1 against OPs"))
    console.print(_leaderboard({**result, "trials": [bucket["trial"] for bucket in buckets]},
                               "best candidate per BOPs bucket [2^k, 2^(k+1))"))


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
    try:
        plot_training_curves(Store(db).get_run(run_id), target)
    except OSError as exc:
        raise BnextbenchError(f"cannot write {target}: {exc.strerror or exc}") from None
    console.print(f"wrote {target}")


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
    from .store import Store
    from .teachers import train_teacher

    config = _train_config(name, data, epochs, batch_size, 1.0, train_limit, resolution, None, [],
                           KdWeighting.sample, lr, 0.3, None, label_smoothing, augment, seed, None, False, device,
                           download)
    store = Store(db)
    target = out or Path("results") / "teachers" / f"{name}-{Path(data.replace(':', '-')).name}-seed{seed}.pt"
    record = train_teacher(config, target, store, progress=output is not OutputFormat.json or console.is_terminal)
    _print_record(record, output, f"teacher {name} on {data}")


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
    try:
        features = plot_feature_maps(checkpoint, image, block, target, after_sign, maps)
    except OSError as exc:
        raise BnextbenchError(f"cannot write {target}: {exc.strerror or exc}") from None
    console.print(f"wrote {target} ({features.layer}, {len(features.activations)} channels of "
                  f"{features.activations.shape[1]}x{features.activations.shape[2]} px)")


ReportFormat = _choices("ReportFormat", ("md", "csv", "json", "html"))
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
    epochs: Annotated[int | None, typer.Option("--epochs", help="Training epochs (default: the search's, "
                                                  "3).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per step (default: the "
                                                      "search's, 64).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak AdamW learning rate (default: the search's, "
                                                "2e-3).")] = None,
    train_limit: LimitOption = None,
    resolution: ResolutionOption = None,
    seed: Annotated[list[int] | None, typer.Option("--seed", help="Seed; repeat to train several (top-1 mean ± std in "
                                            "compare). Default: the study's, or 0.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="Baseline to train; repeatable (default "
                                             "xnor_resnet18, birealnet18, reactnet_a).")] = None,
    device: DeviceOption = None,
    db: DbOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Train XNOR-Net, Bi-Real and ReActNet-A width-scaled to a budget under one protocol, stored as ordinary runs."""
    from .report.leaderboard import study_budgets, study_protocol
    from .search import parse_budgets
    from .search.baselines import BASELINE_MODELS, flag_protocol, run_baselines
    from .search.study import SearchConfig
    from .store import Store

    unknown = [m for m in model or [] if m not in BASELINE_MODELS]
    if unknown:
        raise BnextbenchError(f"unknown baseline {', '.join(unknown)}; choose from {', '.join(BASELINE_MODELS)}")
    if study is not None:
        given = [flag for flag, value in (("--data", data), ("--epochs", epochs), ("--batch-size", batch_size),
                                          ("--lr", lr), ("--train-limit", train_limit),
                                          ("--resolution", resolution)) if value is not None]
        if given:
            raise BnextbenchError(f"--study fixes the protocol; drop {', '.join(given)}")
        store = Store(db)
        protocol, num_classes = study_protocol(store, study)
        budgets = parse_budgets(budget or study_budgets(store, study))
    else:
        budgets = parse_budgets(budget)
        protocol, num_classes = flag_protocol(data or "digits", epochs or SearchConfig.epochs,
                                              batch_size or SearchConfig.batch_size, lr or SearchConfig.lr,
                                              seed[0] if seed else 0, train_limit, resolution)
        store = Store(db)
    records = run_baselines(store, budgets, protocol, num_classes, model or BASELINE_MODELS, seed or None,
                            device=device, progress=output is not OutputFormat.json or console.is_terminal)
    if output is OutputFormat.json:
        print(json.dumps(records))
        return
    if output is OutputFormat.csv:
        _write_csv(records, ("model", "width_mult", "seed", "run_id", "top1", "reused"))
        return
    table = Table(title=f"baselines under {', '.join(b.text for b in budgets)}: {protocol['data']} at "
                        f"{protocol['resolution']} px, {protocol['recipe']['epochs']} epochs")
    for header in ("model", "width", "seed", "run", "top-1 (%)", "trained"):
        table.add_column(header, justify="left" if header == "model" else "right")
    for record in records:
        table.add_row(record["model"], f"{record['width_mult']:g}", str(record["seed"]), str(record["run_id"]),
                      _maybe(record["top1"]), "reused" if record["reused"] else "now")
    console.print(table)


def _columns_table(title: str, columns, rows: list[dict]) -> Table:
    from .report.leaderboard import cell_text

    table = Table(title=title)
    columns = [c for c in columns if any(cell_text(row, c) for row in rows)]  # no column empty in every row
    for column in columns:
        wraps = column.key in ("model", "teacher", "source", "prior", "tag")
        table.add_column(column.header, justify="left" if wraps or column.key in ("kind", "figure") else "right",
                         no_wrap=not wraps, overflow="fold")
    for row in rows:
        table.add_row(*(cell_text(row, column) for column in columns))
    return table


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
    published ImageNet rows apart. Counts: BOPs, FLOPs, OPs and params in millions at each row's resolution."""
    from .report.leaderboard import (
        COUNTED_COLUMNS,
        DESIGN_COLUMNS,
        LEADERBOARD_COLUMNS,
        build_leaderboard,
        counted_csv,
        counted_rows,
        open_store,
        to_csv,
        to_json,
    )

    if counted:  # needs no results database
        rows = counted_rows()
        if output is OutputFormat.json:
            print(json.dumps(rows))
        elif output is OutputFormat.csv:
            sys.stdout.write(counted_csv(rows))
        else:
            console.print(_columns_table("published against counted at 224 px, 1000 classes (difference = "
                                         "counted / published - 1)", COUNTED_COLUMNS, rows))
        return
    board = build_leaderboard(open_store(db), study, data)
    if output is OutputFormat.json:
        print(json.dumps(to_json(board)))
    elif output is OutputFormat.csv:
        sys.stdout.write(to_csv(board))
    else:
        for section in board.sections:
            shown = tuple(c for c in LEADERBOARD_COLUMNS if c.key not in ("data", "resolution"))  # in the title
            shown += DESIGN_COLUMNS if design and section.kind == "published" else ()
            console.print(_columns_table(section.title, shown, section.rows))


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
    from .report.leaderboard import (
        build_leaderboard,
        open_store,
        write_model_cards,
        write_report,
    )

    store = open_store(db)
    if model_card:
        written = write_model_cards(store, model_card, out)
    else:
        written = write_report(build_leaderboard(store, study, data), out,
                               [f.value for f in formats or ReportFormat])
    console.print(f"wrote {', '.join(path.name for path in written)} to {out}")


@app.command()
def worker(
    study: Annotated[str, typer.Option("--study", help="The study to work on (created by `bnextbench search`).")],
    storage: Annotated[str, typer.Option("--storage", help="Its Optuna storage: postgresql://USER@HOST/DB, "
                                         "journal:PATH or another SQLAlchemy URL.")],
    db: DbOption = None,
    output: RunFormatOption = OutputFormat.table,
) -> None:
    """Join a search study with the budget, space, data and recipe it records; run trials until it is full."""
    from .search.study import join_search
    from .store import Store

    result = join_search(study, storage, Store(db), progress=output is OutputFormat.table and console.is_terminal)
    if output is OutputFormat.json:
        print(json.dumps(result))
        return
    console.print(_leaderboard(result))


@app.command()
def version() -> None:
    """Print the bnextbench version."""
    print(__version__)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app(args=sys.argv[1:] or ["--help"], standalone_mode=False)
    except BnextbenchError as exc:
        _fail(str(exc))
    except typer.TyperException as exc:  # usage errors raised by Typer's click
        _fail(exc.format_message())
    except typer.Abort:
        _fail("aborted", code=130)


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)
