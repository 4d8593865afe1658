"""The leaderboard read from the results store: searched candidates against same-protocol baselines.

Local runs are ranked per (data, resolution): figures from different data sets or resolutions never
share a ranking. Runs that differ only in their seed form one row (top-1 mean and sample std over
seeds). Published ImageNet rows (:mod:`.priors`) form their own section. :mod:`.formats` renders
a :class:`Leaderboard`, :mod:`.figures` draws it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from .. import __version__
from ..errors import BnextbenchError
from ..provenance import git_commit
from ..search.baselines import BASELINE_MODELS
from ..search.record import StudyRecord, read_study_record
from ..search.summary import pareto_front
from ..store import Run, Store
from .priors import (
    BNEXT_README_URL,
    MISMATCH_THRESHOLD,
    PUBLISHED_DATA,
    PUBLISHED_RESOLUTION,
    load_priors,
)
from .priors import published_vs_counted as count_priors

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
PUBLISHED_BOPS = Column("BOPs (G)", "bops", 1e9, 3)
DESIGN_COLUMNS = (
    Column("with BN", "with_bn"),
    Column("with PReLU", "with_prelu"),
    Column("with SE", "with_se"),
    Column("quantization", "quantization"),
    Column("KD (BNext README)", "design_kd"),
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
        if self.kind == "local":
            return LEADERBOARD_COLUMNS
        # ImageNet-sized BNNs have BOPs in the billions: in millions they read 52150.000
        return tuple(PUBLISHED_BOPS if c.key == "bops" else c for c in LEADERBOARD_COLUMNS) + DESIGN_COLUMNS


@dataclass
class Leaderboard:
    """The sections of one report, how it was made (:func:`provenance`) and the study it ranks, if any."""

    sections: list[Section]
    provenance: dict[str, Any]
    study: str | None = None
    trials: list[dict[str, Any]] | None = None  # every trial of the study (search.summary), drawn beside its runs

    @property
    def counted(self) -> list[dict[str, Any]]:
        """The published-against-counted rows (counted once per process)."""
        return counted_rows()


def _study_run_ids(store: Store, study: str) -> set[int]:
    trials = store.trials(study)
    if not trials:
        raise ReportError(f"unknown study {study!r} in {store.url}")
    run_ids = {t.run_id for t in trials if t.state == "complete" and t.run_id is not None}
    if not run_ids:
        raise ReportError(f"study {study!r} has no trained candidate yet")
    return run_ids


def study_record(store: Store, study: str) -> StudyRecord:
    """The budgets, space and protocol a study records (kept by Optuna in the results database)."""
    if not store.trials(study):
        raise ReportError(f"unknown study {study!r} in {store.url}")
    return read_study_record(study, store.url)


def _completed_bnn_runs(store: Store, protocol_group: str | None = None) -> list[Run]:
    """Completed runs with a complexity count (teachers, full-precision timm models, have none)."""
    runs = [r for r in store.completed_runs(protocol_group) if r.counts is not None]
    if not runs and protocol_group is None:
        raise ReportError(f"no completed runs in {store.url}; train, search or run baselines first")
    return runs


def _entry(runs: list[Run], kind: str) -> dict[str, Any]:
    """One row from runs that differ only in their seed."""
    first = runs[0]
    top1 = [r.top1 for r in runs]
    counts = first.counts
    ids = sorted(r.id for r in runs)
    return {
        "model": first.candidate, "kind": kind, "top1": statistics.fmean(top1),
        "top1_std": statistics.stdev(top1) if len(top1) > 1 else None, "n_seeds": len(runs),
        "seeds": sorted(r.seed for r in runs), "run_ids": ids,
        "bops": counts.bops, "flops": counts.flops, "ops": counts.ops,
        "binarization_degree": counts.binarization_degree, "params": counts.params,
        "size_mib": counts.size_mib, "ops_rule": counts.ops_rule, "data": first.data,
        "resolution": first.resolution, "epochs": first.epochs_done, "teacher": first.teacher,
        "source": ("run " if len(ids) == 1 else "runs ") + ", ".join(map(str, ids)), "source_url": None,
        "registry_model": None if first.arch_spec else first.model,
        "width_mult": None if first.arch_spec else first.width_mult,
        "arch_hash": first.arch_hash, "study": first.study,
    }


def _group_key(run: Run) -> tuple:
    """Runs of one candidate under one protocol (any seed) that reached the same epoch form one row."""
    return run.candidate, run.protocol_group, run.epochs_done


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
        group = study_record(store, study).protocol.group_key
        runs = [r for r in runs if r.id in searched] + [
            r for r in _completed_bnn_runs(store, group) if r.model in BASELINE_MODELS and r.study is None]
    else:
        searched = {r.id for r in runs if r.study is not None}
    if data is not None:
        from ..data import parse_data_spec

        spec = str(parse_data_spec(data))
        runs = [r for r in runs if r.data == spec]
        if not runs:
            raise ReportError(f"no completed runs on {spec}" + (f" in study {study!r}" if study else ""))
    groups: dict[tuple, list[Run]] = {}
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
        rules = " and ".join(sorted({row["ops_rule"] for row in ranked}))
        sections.append(Section(f"{spec} at {resolution} px; OPs and degree by the {rules} ops rule", "local", spec,
                                resolution, ranked))
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
    return Section(f"published, {PUBLISHED_DATA} at {PUBLISHED_RESOLUTION} px; OPs and degree {PUBLISHED_OPS_RULE}",
                   "published", PUBLISHED_DATA, PUBLISHED_RESOLUTION, ranked)


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
        "budgets": study_record(store, study).budget_texts if study else None,
        "epochs": sorted({row["epochs"] for row in local}),
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


def headline(provenance: dict[str, Any]) -> str:
    """One line under a report's title: which study, budget, data, resolution and epochs it ranks."""
    study, budgets = provenance.get("study"), provenance.get("budgets") or []
    parts = [(f"study {study}" + (f", budget {', '.join(budgets)}" if budgets else "")) if study
             else "every completed run"]
    parts.append("; ".join(provenance.get("data") or []) or "no local runs")
    epochs = provenance.get("epochs") or []
    if epochs:
        parts.append(f"{'/'.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''}")
    parts.append(f"bnextbench {provenance.get('bnextbench_version', 'unknown')}, commit "
                 f"{provenance.get('git_commit') or 'unknown'}")
    return " · ".join(parts)


def build_leaderboard(store: Store, study: str | None = None, data: str | None = None) -> Leaderboard:
    sections = local_sections(store, study, data)
    sections.append(published_section())
    trials = None
    if study is not None:
        from ..search.summary import load_summary

        trials = load_summary(study, store.url)["trials"]
    return Leaderboard(sections, provenance(store, sections, study, data), study, trials)
