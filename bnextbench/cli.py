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

OpsRule = enum.Enum("OpsRule", {rule.replace("-", "_"): rule for rule in OPS_RULES}, type=str)


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"


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


@app.command("import-checkpoint")
def import_checkpoint(
    checkpoint: Annotated[Path, typer.Argument(help="State_dict of the reference BNext code (bare, under "
                                               "'state_dict', or with 'module.' prefixes).")],
    model: Annotated[str, typer.Option("--model", help="bnext_tiny, bnext_small, bnext_middle or bnext_large.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the bnextbench checkpoint (.pt).")],
) -> None:
    """Import a checkpoint released with the BNext paper; every tensor is consumed and shape-checked."""
    from .models.checkpoint import import_reference_checkpoint, save_model_checkpoint

    imported = import_reference_checkpoint(checkpoint, model)
    try:
        save_model_checkpoint(out, model, imported, {"num_classes": imported.num_classes})
    except OSError as exc:
        raise BnextbenchError(f"cannot write {out}: {exc.strerror or exc}") from None
    console.print(f"imported {checkpoint} into {model} ({imported.num_classes} classes) -> {out}")


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
