"""The leaderboard: searched candidates against same-protocol baselines, published ImageNet rows apart.

Local runs are ranked per (data, resolution): figures from different data sets or resolutions never
share a ranking. Runs that differ only in their seed form one row (top-1 mean and sample std over
seeds). Published rows (:mod:`.priors`) form their own section. Everything here reads the results
store; :func:`write_report` writes Markdown, CSV, JSON and HTML, a Pareto plot (PNG and SVG) and the
provenance, all or nothing. :func:`model_card` writes a Hugging Face model card (model-index YAML).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import statistics
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from .. import __version__
from ..errors import BnextbenchError
from ..search.baselines import BASELINE_MODELS
from ..search.study import load_summary, pareto_front
from ..store import DEFAULT_DB, Run, Store
from ..train import Recipe
from ..train.loop import git_commit
from .priors import (
    BNEXT_README_URL,
    MISMATCH_THRESHOLD,
    PUBLISHED_DATA,
    PUBLISHED_RESOLUTION,
    load_priors,
)
from .priors import published_vs_counted as count_priors

REPORT_FORMATS = ("md", "csv", "json", "html")
PUBLISHED_OPS_RULE = "as published (BNext rows: 8-bit MAC = 1/8 FLOP, our bnext-paper rule)"


class ReportError(BnextbenchError):
    pass


class Column(NamedTuple):
    """A shown column: ``key`` of the row it reads, divided by ``scale`` and shown with ``decimals``."""

    header: str
    key: str
    scale: float | None = None
    decimals: int = 0


LEADERBOARD_COLUMNS = (
    Column("rank", "rank"),
    Column("model", "model"),
    Column("kind", "kind"),
    Column("top-1 (%)", "top1", 1, 2),
    Column("top-1 std (pp)", "top1_std", 1, 2),
    Column("seeds", "n_seeds"),
    Column("BOPs (M)", "bops", 1e6, 3),
    Column("FLOPs (M)", "flops", 1e6, 3),
    Column("OPs (M)", "ops", 1e6, 3),
    Column("degree (%)", "binarization_degree", 0.01, 2),
    Column("params (M)", "params", 1e6, 3),
    Column("size (MiB)", "size_mib", 1, 3),
    Column("data", "data"),
    Column("resolution (px)", "resolution"),
    Column("epochs", "epochs"),
    Column("teacher", "teacher"),
    Column("source", "source"),
)
DESIGN_COLUMNS = (
    Column("with BN", "with_bn"),
    Column("with PReLU", "with_prelu"),
    Column("with SE", "with_se"),
    Column("quantization", "quantization"),
    Column("KD (BNext README)", "design_kd"),
)
NOTE_COLUMNS = (
    Column("prior model", "model"),
    Column("tag", "tag"),
    Column("note", "note"),
)
CSV_COLUMNS = LEADERBOARD_COLUMNS + DESIGN_COLUMNS + NOTE_COLUMNS[1:]
NOTES_TITLE = "published figures: how sure each is (tag) and where sources disagree"
COUNTED_COLUMNS = (
    Column("prior model", "prior"),
    Column("bnextbench model", "model"),
    Column("ops rule", "ops_rule"),
    Column("figure", "figure"),
    Column("unit", "unit"),
    Column("published", "published_in_unit", 1, 4),
    Column("counted metric", "counted_metric"),
    Column("counted", "counted_in_unit", 1, 4),
    Column("difference (%)", "difference", 0.01, 2),
    Column("over 3 %", "flagged"),
    Column("tag", "tag"),
)


@dataclass
class Section:
    """One ranking: local runs on one data set at one resolution, or the published ImageNet rows."""

    title: str
    kind: str  # "local" or "published"
    data: str
    resolution: int
    rows: list[dict[str, Any]]

    @property
    def columns(self) -> tuple[Column, ...]:
        return LEADERBOARD_COLUMNS + (DESIGN_COLUMNS if self.kind == "published" else ())


@dataclass
class Leaderboard:
    sections: list[Section]
    provenance: dict[str, Any]
    study: str | None = None

    @property
    def counted(self) -> list[dict[str, Any]]:
        """The published-against-counted rows (counted once per process)."""
        return counted_rows()


# --- reading the store -------------------------------------------------------------------------------------

def open_store(db: str | None) -> Store:
    """The results database ``db`` (as :class:`Store` resolves it); a missing SQLite file is an error, not created."""
    location = str(db or os.environ.get("BNEXTBENCH_DB") or DEFAULT_DB)
    if "://" not in location and not Path(location).is_file():
        raise ReportError(f"no results database at {location}; train or search first")
    return Store(location)


def _recipe_core(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe settings that define a protocol: every :class:`Recipe` field except the seed."""
    return {f.name: recipe.get(f.name) for f in fields(Recipe) if f.name != "seed"}


def same_protocol(run: Run, protocol: dict[str, Any]) -> bool:
    """Whether ``run`` was trained on the protocol's data, resolution, train limit and recipe (any seed)."""
    return (run.data == protocol["data"] and run.resolution == protocol["resolution"]
            and run.recipe.get("train_limit") == protocol["train_limit"]
            and _recipe_core(run.recipe) == _recipe_core(protocol["recipe"]))


def _study_run_ids(store: Store, study: str) -> set[int]:
    trials = store.trials(study)
    if not trials:
        raise ReportError(f"unknown study {study!r} in {store.url}")
    run_ids = {t.run_id for t in trials if t.state == "complete" and t.run_id is not None}
    if not run_ids:
        raise ReportError(f"study {study!r} has no trained candidate yet")
    return run_ids


def study_protocol(store: Store, study: str) -> tuple[dict[str, Any], int]:
    """The protocol (data, resolution, train limit, recipe) and number of classes of a study's trained runs."""
    run = store.get_run(min(_study_run_ids(store, study)))
    return run.recipe["protocol"], run.num_classes


def study_budgets(store: Store, study: str) -> list[str]:
    """The budgets a study was searched under (kept by Optuna in the results database)."""
    return list(load_summary(study, store.url)["budgets"] or [])


def _completed_bnn_runs(store: Store) -> list[Run]:
    """Completed runs with a complexity count (teachers, full-precision timm models, have none)."""
    runs = [r for r in store.runs() if r.status == "completed" and r.top1 is not None and r.complexity]
    if not runs:
        raise ReportError(f"no completed runs in {store.url}; train, search or run baselines first")
    return runs


def _label(run: Run) -> str:
    width = run.recipe.get("width_mult", 1.0)
    return run.model if run.arch_spec or width == 1.0 else f"{run.model} x{width:g}"


def _entry(runs: list[Run], kind: str) -> dict[str, Any]:
    """One row from runs that differ only in their seed."""
    first = runs[0]
    top1 = [r.top1 for r in runs]
    complexity = first.complexity
    ids = sorted(r.id for r in runs)
    return {
        "model": _label(first), "kind": kind, "top1": statistics.fmean(top1),
        "top1_std": statistics.stdev(top1) if len(top1) > 1 else None, "n_seeds": len(runs),
        "seeds": sorted(r.seed for r in runs), "run_ids": ids,
        "bops": complexity["bops"], "flops": complexity["flops"], "ops": complexity["ops"],
        "binarization_degree": complexity["binarization_degree"], "params": complexity["params"],
        "size_mib": complexity["size_mib"], "ops_rule": complexity["ops_rule"], "data": first.data,
        "resolution": first.resolution, "epochs": first.epochs_done, "teacher": first.teacher,
        "source": ("run " if len(ids) == 1 else "runs ") + ", ".join(map(str, ids)), "source_url": None,
        "registry_model": None if first.arch_spec else first.model,
        "width_mult": None if first.arch_spec else first.recipe.get("width_mult", 1.0),
        "arch_hash": first.arch_hash, "study": first.recipe.get("study"),
    }


def _group_key(run: Run) -> str:
    return json.dumps([run.model, run.arch_hash, run.data, run.resolution, run.teacher, run.epochs_done,
                       run.recipe.get("train_limit"), run.recipe.get("width_mult"), _recipe_core(run.recipe)],
                      sort_keys=True, default=str)


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = sorted(rows, key=lambda r: (r["top1"] is None, -(r["top1"] or 0.0), r["ops"] or 0.0, r["model"]))
    return [{"rank": rank, **row} for rank, row in enumerate(rows, 1)]


def _mark_front(rows: list[dict[str, Any]]) -> None:
    """``on_front``: searched rows that no other searched row beats on both top-1 and OPs."""
    searched = [{"state": "complete", "top1": r["top1"], "ops": r["ops"], "index": i}
                for i, r in enumerate(rows) if r["kind"] == "searched"]
    front = {t["index"] for t in pareto_front(searched)}
    for i, row in enumerate(rows):
        row["on_front"] = i in front


def local_sections(store: Store, study: str | None = None, data: str | None = None) -> list[Section]:
    """Local rows per (data, resolution): a study's candidates and the baselines on its protocol, or every run."""
    runs = _completed_bnn_runs(store)
    if study is not None:
        searched = _study_run_ids(store, study)
        protocol, _ = study_protocol(store, study)
        runs = [r for r in runs if r.id in searched
                or (r.model in BASELINE_MODELS and not r.recipe.get("study") and same_protocol(r, protocol))]
    else:
        searched = {r.id for r in runs if r.recipe.get("study")}
    if data is not None:
        from ..data import parse_data_spec

        spec = str(parse_data_spec(data))
        runs = [r for r in runs if r.data == spec]
        if not runs:
            raise ReportError(f"no completed runs on {spec}" + (f" in study {study!r}" if study else ""))
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(_group_key(run), []).append(run)
    by_data: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for members in groups.values():
        first = members[0]
        kind = "searched" if first.id in searched else "baseline" if first.model in BASELINE_MODELS else "run"
        by_data.setdefault((first.data, first.resolution), []).append(_entry(members, kind))
    sections = []
    for (spec, resolution), rows in sorted(by_data.items()):
        ranked = _ranked(rows)
        _mark_front(ranked)
        sections.append(Section(f"{spec} at {resolution} px", "local", spec, resolution, ranked))
    return sections


def published_section() -> Section:
    """The published ImageNet rows with a top-1, ranked by it."""
    rows = []
    for prior in load_priors():
        if prior.top1 is None:
            continue
        degree = prior.degree
        if degree is None and prior.bops is not None and prior.ops:
            degree = prior.bops / (64 * prior.ops)  # arithmetic on the published figures
        rows.append({
            "model": prior.model, "kind": "published", "family": prior.family, "top1": prior.top1, "top1_std": None,
            "n_seeds": None, "bops": prior.bops, "flops": prior.flops, "ops": prior.ops,
            "binarization_degree": degree, "params": prior.params, "size_mib": None, "ops_rule": PUBLISHED_OPS_RULE,
            "data": PUBLISHED_DATA, "resolution": PUBLISHED_RESOLUTION, "epochs": None, "teacher": prior.kd or None,
            "source": prior.source_url or prior.source, "source_url": prior.source_url or None,
            "tag": prior.tag, "tags": prior.tags, "note": prior.note, "implemented_as": prior.implemented_as or None,
            "design_name": prior.design_name or None,
            **{key: (None if prior.design is None else ("yes" if prior.design[key] else "no"))
               for key in (c.key for c in DESIGN_COLUMNS)},
        })
    ranked = _ranked(rows)
    for row in ranked:
        row["on_front"] = False
    return Section(f"published, {PUBLISHED_DATA} at {PUBLISHED_RESOLUTION} px", "published", PUBLISHED_DATA,
                   PUBLISHED_RESOLUTION, ranked)


def counted_rows(threshold: float = MISMATCH_THRESHOLD) -> list[dict[str, Any]]:
    """Published figures against bnextbench's count at 224 px, with the values also in the figure's unit."""
    return [{**row, "published_in_unit": row["published"] / row["scale"], "counted_in_unit": row["counted"] /
             row["scale"]} for row in count_priors(threshold)]


def provenance(store: Store, sections: list[Section], study: str | None, data: str | None) -> dict[str, Any]:
    """How a report was made: bnextbench version, git commit, ops rules, data, seeds and runs."""
    local = [row for s in sections if s.kind == "local" for row in s.rows]
    return {
        "bnextbench_version": __version__,
        "git_commit": git_commit(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": store.url,
        "study": study,
        "data_filter": data,
        "ops_rule": {"local": sorted({row["ops_rule"] for row in local}), "published": PUBLISHED_OPS_RULE},
        "data": sorted({f"{row['data']} at {row['resolution']} px" for row in local}),
        "seeds": sorted({seed for row in local for seed in row["seeds"]}),
        "run_ids": sorted(i for row in local for i in row["run_ids"]),
        "published_registry": f"bnextbench/report/prior_bnns.csv ({len(load_priors())} rows); "
                              f"design columns and degrees from {BNEXT_README_URL}",
        "counted_at": f"{PUBLISHED_RESOLUTION} px, 1000 classes; flagged when off by more than "
                      f"{100 * MISMATCH_THRESHOLD:g} %",
    }


def build_leaderboard(store: Store, study: str | None = None, data: str | None = None) -> Leaderboard:
    sections = local_sections(store, study, data)
    sections.append(published_section())
    return Leaderboard(sections, provenance(store, sections, study, data), study)


# --- formats ---------------------------------------------------------------------------------------------------

def shown_value(row: dict[str, Any], column: Column) -> Any:
    """The value a table shows: scaled and rounded numbers, ``yes``/``no`` for flags, text as is."""
    value = row.get(column.key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column.scale is not None:
        return round(value / column.scale, column.decimals)
    return value


def cell_text(row: dict[str, Any], column: Column) -> str:
    value = shown_value(row, column)
    if value is None:
        return ""
    if column.scale is not None:
        return f"{value:.{column.decimals}f}"
    return str(value)


def shown_rows(rows: list[dict[str, Any]], columns: Iterable[Column]) -> list[dict[str, Any]]:
    columns = tuple(columns)
    return [{c.header: shown_value(row, c) for c in columns} for row in rows]


def _markdown_table(rows: list[dict[str, Any]], columns: tuple[Column, ...]) -> str:
    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"

    out = [line(c.header for c in columns), "|" + "|".join("---" for _ in columns) + "|"]
    out += [line(cell_text(row, c) for c in columns) for row in rows]
    return "\n".join(out)


LEADERBOARD_INTRO = (
    "Rankings never mix data sets or resolutions. Counts are at the section's resolution (BOPs: binary MACs; "
    "FLOPs: other MACs under the ops rule; OPs = BOPs/64 + FLOPs); top-1 is the mean over seeds, its std the "
    "sample standard deviation in percentage points."
)
TAGS_INTRO = (
    "Tags (per field, from prior-bnns.md): read = read in a public source; derived = computed from the released "
    "architecture; arith = arithmetic on read values; unverified = recalled from a paper table, not read."
)
COUNTED_INTRO = (
    "Each published figure of a model bnextbench implements, next to bnextbench's own count; difference = "
    'counted / published - 1. The BNext README\'s "BOPs (G)" column is compared with both BOPs and OPs.'
)


def noted_rows(board: Leaderboard) -> list[dict[str, Any]]:
    """Published rows with a provenance tag or a note on disagreeing sources."""
    return [row for s in board.sections if s.kind == "published" for row in s.rows if row["tag"] or row["note"]]


def to_markdown(board: Leaderboard) -> str:
    parts = ["# bnextbench leaderboard", "", LEADERBOARD_INTRO, ""]
    for section in board.sections:
        parts += [f"## {section.title}", "", _markdown_table(section.rows, section.columns), ""]
    parts += [f"## {NOTES_TITLE}", "", TAGS_INTRO, "", _markdown_table(noted_rows(board), NOTE_COLUMNS), ""]
    parts += [f"## Published against counted ({PUBLISHED_RESOLUTION} px, 1000 classes)", "", COUNTED_INTRO, "",
              _markdown_table(board.counted, COUNTED_COLUMNS), "", "## Provenance", ""]
    parts += [f"- **{key}**: {_provenance_text(value)}" for key, value in board.provenance.items()]
    return "\n".join(parts) + "\n"


def _provenance_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def to_csv(board: Leaderboard) -> str:
    """Every section in one CSV; the ``section`` column keeps rankings apart."""
    columns = CSV_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", *(c.header for c in columns)])
    for section in board.sections:
        writer.writerows([section.title, *(cell_text(row, c) for c in columns)] for row in section.rows)
    return buffer.getvalue()


def counted_csv(rows: list[dict[str, Any]]) -> str:
    """The published-against-counted rows (:func:`counted_rows`) as CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(c.header for c in COUNTED_COLUMNS)
    writer.writerows([cell_text(row, c) for c in COUNTED_COLUMNS] for row in rows)
    return buffer.getvalue()


def html_tables(board: Leaderboard) -> list:
    from .html import HtmlTable

    tables = [HtmlTable(s.title, [c.header for c in s.columns], shown_rows(s.rows, s.columns))
              for s in board.sections]
    tables.append(HtmlTable(NOTES_TITLE, [c.header for c in NOTE_COLUMNS], shown_rows(noted_rows(board),
                                                                                      NOTE_COLUMNS)))
    tables.append(HtmlTable(f"published against counted at {PUBLISHED_RESOLUTION} px (over 3 % flagged)",
                            [c.header for c in COUNTED_COLUMNS], shown_rows(board.counted, COUNTED_COLUMNS)))
    return tables


def to_json(board: Leaderboard) -> dict[str, Any]:
    """Machine rows (absolute counts, degree a fraction) per section, and the tables exactly as shown."""
    return {
        "provenance": board.provenance,
        "sections": [{"title": s.title, "kind": s.kind, "data": s.data, "resolution": s.resolution, "rows": s.rows}
                     for s in board.sections],
        "published_vs_counted": board.counted,
        "tables": [table._asdict() for table in html_tables(board)],
    }


def to_html(board: Leaderboard, figure_svg: str) -> str:
    from .html import render_html

    title = "bnextbench leaderboard" + (f": study {board.study}" if board.study else "")
    return render_html(title, html_tables(board), figure_svg, board.provenance)


# --- Pareto plot -------------------------------------------------------------------------------------------------

def _plain(text: str) -> str:
    """Text matplotlib draws literally (no mathtext)."""
    return text.replace("$", r"\$")


def pareto_figure(board: Leaderboard) -> tuple[bytes, str]:
    """Top-1 against OPs (log x) per section, as (PNG bytes, SVG text): searched points, their Pareto
    front, labelled baselines; the published panel labels the models bnextbench implements or the BNext
    README compares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [s for s in board.sections if any(r["ops"] and r["top1"] is not None for r in s.rows)]
    with matplotlib.rc_context({"svg.hashsalt": "bnextbench", "svg.fonttype": "path"}):
        figure, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.8), squeeze=False)
        for axis, section in zip(axes[0], panels):
            rows = [r for r in section.rows if r["ops"] and r["top1"] is not None]
            _draw_panel(axis, section, rows)
        figure.tight_layout()
        png, svg = io.BytesIO(), io.StringIO()
        figure.savefig(png, format="png", dpi=120, metadata={"Software": None})
        figure.savefig(svg, format="svg", metadata={"Date": None})
        plt.close(figure)
    return png.getvalue(), svg.getvalue()


def _draw_panel(axis, section: Section, rows: list[dict[str, Any]]) -> None:
    def points(selected):
        return [r["ops"] for r in selected], [r["top1"] for r in selected]

    labelled: list[dict[str, Any]]
    if section.kind == "published":
        labelled = [r for r in rows if r["implemented_as"] or r["design_name"]]
        full_precision = [r for r in rows if r["family"] == "FP reference"]
        others = [r for r in rows if r not in labelled and r not in full_precision]
        axis.scatter(*points(others), s=16, color="0.65", label="published BNN")
        axis.scatter(*points(full_precision), s=24, color="0.3", marker="x", label="full precision")
        axis.scatter(*points(labelled), s=30, color="C3", marker="D", label="implemented here / in BNext table")
    else:
        searched = [r for r in rows if r["kind"] == "searched"]
        front = sorted((r for r in searched if r["on_front"]), key=lambda r: r["ops"])
        if searched:
            axis.scatter(*points(searched), s=18, color="0.6", label="searched")
        if front:
            axis.plot(*points(front), drawstyle="steps-post", marker="o", color="C0", label="searched Pareto front")
        labelled = [r for r in rows if r["kind"] != "searched"]
        for kind, marker, colour in (("baseline", "s", "C1"), ("run", "^", "C2")):
            chosen = [r for r in labelled if r["kind"] == kind]
            if chosen:
                axis.scatter(*points(chosen), s=34, marker=marker, color=colour, label=kind)
    for row in labelled:
        name = row["model"].split(" (")[0]  # published names without their parenthetical detail
        axis.annotate(_plain(name), (row["ops"], row["top1"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axis.set_xscale("log")
    axis.set(xlabel=f"OPs at {section.resolution} px (BOPs/64 + FLOPs), log scale", ylabel="top-1 (%)",
             title=_plain(section.title))
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="best")


# --- writing -----------------------------------------------------------------------------------------------------

def write_files(out_dir: str | Path, payloads: dict[str, bytes]) -> list[Path]:
    """Write every payload into ``out_dir`` or none: staged in a temporary folder there, then renamed."""
    out_dir = Path(out_dir)
    created = next((p for p in reversed([out_dir, *out_dir.parents]) if not p.exists()), None)
    staging, moved = None, []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".bnextbench-report-", dir=out_dir))
        for name, data in payloads.items():
            (staging / name).write_bytes(data)
        for name in payloads:
            os.replace(staging / name, out_dir / name)
            moved.append(out_dir / name)
    except OSError as exc:
        for path in moved:  # a report is whole or absent, never a mix of two
            path.unlink(missing_ok=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise ReportError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in payloads]


def report_payloads(board: Leaderboard, formats: Iterable[str]) -> dict[str, bytes]:
    """File name -> contents: each requested format, the Pareto plot (PNG, SVG) and the provenance."""
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in REPORT_FORMATS]
    if unknown:
        raise ReportError(f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(REPORT_FORMATS)}")
    png, svg = pareto_figure(board)
    payloads = {"pareto.png": png, "pareto.svg": svg.encode()}
    if "md" in formats:
        payloads["leaderboard.md"] = to_markdown(board).encode()
    if "csv" in formats:
        payloads["leaderboard.csv"] = to_csv(board).encode()
        payloads["published-vs-counted.csv"] = counted_csv(board.counted).encode()
    if "json" in formats:
        payloads["leaderboard.json"] = json.dumps(to_json(board), indent=1).encode()
    if "html" in formats:
        payloads["leaderboard.html"] = to_html(board, svg).encode()
    payloads["provenance.json"] = json.dumps(board.provenance, indent=1).encode()
    return payloads


def write_report(board: Leaderboard, out_dir: str | Path, formats: Iterable[str] = REPORT_FORMATS) -> list[Path]:
    return write_files(out_dir, report_payloads(board, formats))


# --- model card --------------------------------------------------------------------------------------------------

def model_card(store: Store, run_id: int) -> str:
    """A Hugging Face model card (README.md): model-index YAML with the test accuracy, then the run's facts."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    run = store.get_run(run_id)
    if run.status != "completed" or run.top1 is None:
        raise ReportError(f"run {run_id} is {run.status}; a model card needs a completed run")
    dataset = {"dataset_type": run.data.partition(":")[0], "dataset_name": f"{run.data} at {run.resolution} px",
               "dataset_split": "test", "task_type": "image-classification", "task_name": "Image Classification"}
    results = [EvalResult(metric_type="accuracy", metric_name="top-1 accuracy (%)", metric_value=round(run.top1, 4),
                          **dataset)]
    if run.top5 is not None:
        results.append(EvalResult(metric_type="top-5-accuracy", metric_name="top-5 accuracy (%)",
                                  metric_value=round(run.top5, 4), **dataset))
    name = f"bnextbench-run-{run.id}-{_label(run).replace(' ', '-')}"
    complexity = run.complexity or {}
    data = ModelCardData(
        model_name=name, library_name="bnextbench", license="mit", metrics=["accuracy"],
        tags=["binary-neural-network", "bnn", "image-classification", "bnextbench"], eval_results=results,
        bnextbench={"run_id": run.id, "model": run.model, "arch_hash": run.arch_hash, "seed": run.seed,
                    "epochs": run.epochs_done, "teacher": run.teacher, "complexity": complexity,
                    "recipe": run.recipe, "git_commit": run.git_commit, "versions": run.versions},
    )
    rows = [("model", _label(run)), ("architecture hash", run.arch_hash or ""), ("data", run.data),
            ("resolution", f"{run.resolution} px"), ("classes", run.num_classes),
            ("epochs", f"{run.epochs_done} of {run.epochs_planned}"), ("seed", run.seed),
            ("teacher", run.teacher or "none"), ("top-1", f"{run.top1:.2f} %"),
            ("top-5", "" if run.top5 is None else f"{run.top5:.2f} %")]
    if complexity:
        rows += [("BOPs", f"{complexity['bops']:,}"), ("FLOPs", f"{complexity['flops']:,.0f}"),
                 ("OPs", f"{complexity['ops']:,.0f}"),
                 ("binarization degree", f"{100 * complexity['binarization_degree']:.2f} %"),
                 ("params", f"{complexity['params']:,}"), ("size", f"{complexity['size_mib']:.3f} MiB"),
                 ("ops rule", complexity["ops_rule"])]
    rows += [("checkpoint", run.checkpoint or ""), ("device", run.device), ("git commit", run.git_commit or ""),
             ("bnextbench", (run.versions or {}).get("bnextbench", "")),
             ("card made by", f"bnextbench {__version__} at commit {git_commit() or 'unknown'}")]
    table = "\n".join(f"| {key} | {str(value).replace('|', '/')} |" for key, value in rows)
    body = (f"# {name}\n\nA binary neural network trained by bnextbench; counts are at {run.resolution} px "
            f"(BOPs: binary MACs, OPs = BOPs/64 + FLOPs).\n\n| field | value |\n|---|---|\n{table}\n\n"
            f"Evaluate the checkpoint: `bnextbench evaluate {run.checkpoint or 'CHECKPOINT'} --data {run.data}`.\n")
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def write_model_cards(store: Store, run_ids: Iterable[int], out_dir: str | Path) -> list[Path]:
    payloads = {f"model-card-run-{run_id}.md": model_card(store, run_id).encode() for run_id in run_ids}
    return write_files(out_dir, payloads)

