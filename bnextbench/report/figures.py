"""The leaderboard's figure: top-1 against cost per section, the searched Pareto front drawn (matplotlib, no display).

Figures of one run or checkpoint (training curves, feature maps) are :mod:`.plots`.
"""

from __future__ import annotations

import io
from typing import Any

from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

from ..search.budget import Budget, parse_budget
from .board import Leaderboard, Section


def _plain(text: str) -> str:
    """Text matplotlib draws literally (no mathtext)."""
    return text.replace("$", r"\$")


def pareto_figure(board: Leaderboard) -> tuple[bytes, str]:
    """:func:`draw_figure` as (PNG bytes, SVG text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.hashsalt": "bnextbench", "svg.fonttype": "path"}):
        figure = draw_figure(board)
        png, svg = io.BytesIO(), io.StringIO()
        figure.savefig(png, format="png", dpi=120, metadata={"Software": None})
        figure.savefig(svg, format="svg", metadata={"Date": None})
        plt.close(figure)
    return png.getvalue(), svg.getvalue()


def draw_figure(board: Leaderboard):
    """Top-1 against cost per section (a matplotlib Figure, log x): searched points, their Pareto front,
    labelled baselines; a study's panel also shows its pruned trials and those over budget in grey, against
    the metric of its budget with the budget as a dashed line; the published panel labels the models
    bnextbench implements or the BNext README compares. Labels are placed by adjustText so none overlap."""
    import matplotlib.pyplot as plt

    panels = [s for s in board.sections if any(r["ops"] and r["top1"] is not None for r in s.rows)]
    figure, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.8), squeeze=False)
    for axis, section in zip(axes[0], panels):
        rows = [r for r in section.rows if r["ops"] and r["top1"] is not None]
        budget = _study_budget(board, section)
        _draw_panel(axis, section, rows, board.trials if budget is not None else None, budget)
    figure.tight_layout()
    return figure


def _study_budget(board: Leaderboard, section: Section) -> Budget | None:
    """The budget a study's local panel is drawn against (its first), if this section is that study's."""
    if board.trials is None or section.kind != "local" or not board.provenance.get("budgets"):
        return None
    return parse_budget(board.provenance["budgets"][0])


METRIC_LABELS = {"bops": "BOPs", "flops": "FLOPs", "ops": "OPs (BOPs/64 + FLOPs)", "params": "params",
                 "size_mib": "size (MiB)"}


def _draw_panel(axis, section: Section, rows: list[dict[str, Any]], trials: list[dict[str, Any]] | None,
                budget: Budget | None) -> None:
    metric = budget.metric if budget is not None and budget.metric in METRIC_LABELS else "ops"

    def points(selected):
        return [r[metric] for r in selected], [r["top1"] for r in selected]

    labelled: list[dict[str, Any]]
    if section.kind == "published":
        labelled = [r for r in rows if r["implemented_as"] or r["design_name"]]
        full_precision = [r for r in rows if r["family"] == "FP reference"]
        others = [r for r in rows if r not in labelled and r not in full_precision]
        axis.scatter(*points(others), s=16, color="0.65", label="published BNN")
        axis.scatter(*points(full_precision), s=24, color="0.3", marker="x", label="full precision")
        axis.scatter(*points(labelled), s=30, color="C3", marker="D", label="implemented here / in BNext table")
    else:
        if trials is not None:
            _draw_unranked_trials(axis, trials, metric)
        searched = [r for r in rows if r["kind"] == "searched"]
        front = sorted((r for r in searched if r["on_front"]), key=lambda r: r[metric])
        if searched:
            axis.scatter(*points(searched), s=18, color="C0", alpha=0.6, label="searched, complete")
        if front:
            axis.plot(*points(front), drawstyle="steps-post", marker="o", color="C0", label="searched Pareto front")
        labelled = [r for r in rows if r["kind"] != "searched"]
        for kind, marker, colour in (("baseline", "s", "C1"), ("run", "^", "C2")):
            chosen = [r for r in labelled if r["kind"] == kind]
            if chosen:
                axis.scatter(*points(chosen), s=34, marker=marker, color=colour, label=kind)
        if budget is not None and metric == budget.metric:
            axis.axvline(budget.limit, color="C3", linestyle="--", linewidth=1, label=f"budget {budget.text}")
    axis.set_xscale("log")
    # Labelled ticks at 1, 2, (3,) 5 x 10^k in engineering units (300M, 1G): a narrow range still gets several.
    low, high = axis.get_xlim()
    narrow = high / low < 30
    axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0) if narrow else (1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(EngFormatter(sep=""))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set(xlabel=f"{METRIC_LABELS[metric]} at {section.resolution} px, log scale", ylabel="top-1 (%)",
             title=_plain(f"{section.data} at {section.resolution} px"))  # the table's caption says the rest
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    texts = [axis.text(row[metric], row["top1"], _plain(row["model"].split(" (")[0]), fontsize=7)
             for row in labelled]  # published names without their parenthetical detail
    if texts:
        from adjustText import adjust_text

        adjust_text(texts, ax=axis, arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5})


def _draw_unranked_trials(axis, trials: list[dict[str, Any]], metric: str) -> None:
    """A study's trials that are not ranked runs, in grey: pruned ones at their early top-1, and those over
    budget (never trained, so no top-1) as marks along the bottom edge."""
    pruned = [t for t in trials if t["state"] == "pruned" and t["top1"] is not None and t.get(metric)]
    over = [t for t in trials if t["state"] == "infeasible" and t.get(metric)]
    if pruned:
        axis.scatter([t[metric] for t in pruned], [t["top1"] for t in pruned], s=18, facecolors="none",
                     edgecolors="0.55", label="pruned (top-1 after fewer epochs)")
    if over:
        axis.scatter([t[metric] for t in over], [0.0] * len(over), s=22, marker="|", color="0.55",
                     transform=axis.get_xaxis_transform(), clip_on=False, label="over budget, not trained")
