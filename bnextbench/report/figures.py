"""The leaderboard's figure: top-1 against OPs per section, the searched Pareto front drawn (matplotlib, no display).

Figures of one run or checkpoint (training curves, feature maps) are :mod:`.plots`.
"""

from __future__ import annotations

import io
from typing import Any

from .board import Leaderboard, Section


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
             title=_plain(f"{section.data} at {section.resolution} px"))  # the table's caption says the rest
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="best")
