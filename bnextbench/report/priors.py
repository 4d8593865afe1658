"""Published prior BNNs (package data ``prior_bnns.csv``) and their figures against bnextbench's own count.

The registry is ``prior-bnns.csv`` of the project docs, row for row, checked against ``prior-bnns.md``
(``note`` holds every discrepancy found), plus what the BNext README's tables add: the binarization
degree (``degree_pct``), the column the README labels "BOPs (G)" (``readme_bops_g``, really OPs in
units of 1e9), and the design columns of its comparison table (with BN, PReLU, SE, quantization, KD;
empty where the README does not list the model). Those README fields are (read) from
https://github.com/hpi-xnor/BNext. Two README-only rows (BNext-18, "MeiliusNet-18") carry no top-1.

Units in the CSV follow the docs (BOPs e9, FLOPs e8, OPs e8, params e6); :class:`PriorBNN` holds
absolute counts. All published figures are ImageNet (ILSVRC-2012 val) at 224 x 224.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from ..errors import BnextbenchError

PUBLISHED_DATA = "ImageNet (ILSVRC-2012 val)"
PUBLISHED_RESOLUTION = 224
PUBLISHED_CLASSES = 1000
BNEXT_README_URL = "https://github.com/hpi-xnor/BNext"
MISMATCH_THRESHOLD = 0.03
DESIGN_COLUMNS = ("with_bn", "with_prelu", "with_se", "quantization", "design_kd")
FIELDS = ("top1", "top5", "bops", "flops", "ops", "params", "kd")  # the fields the doc's tags speak of
_SCALES = {"bops_e9": 1e9, "flops_e8": 1e8, "ops_e8": 1e8, "params_m": 1e6}


@dataclass(frozen=True)
class PriorBNN:
    """One published model; counts are absolute (MACs, parameters) at 224 px, ``None`` where unknown."""

    model: str
    family: str
    top1: float | None
    top5: float | None
    bops: float | None
    flops: float | None
    ops: float | None
    params: float | None
    kd: str
    source: str
    source_url: str
    tag: str
    degree: float | None  # binarization degree, a fraction (BNext README)
    readme_bops_column: float | None  # the README's "BOPs (G)" value times 1e9 (really OPs)
    design: dict[str, bool] | None  # the BNext README comparison table's columns
    design_name: str
    implemented_as: str
    ops_rule: str
    note: str
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "family": self.family, "top1": self.top1, "top5": self.top5, "bops": self.bops,
            "flops": self.flops, "ops": self.ops, "params": self.params, "binarization_degree": self.degree,
            "readme_bops_column": self.readme_bops_column, "resolution": PUBLISHED_RESOLUTION,
            "data": PUBLISHED_DATA, "kd": self.kd, "source": self.source, "source_url": self.source_url or None,
            "tag": self.tag, "tags": self.tags, "design": self.design, "design_name": self.design_name or None,
            "implemented_as": self.implemented_as or None, "ops_rule": self.ops_rule or None, "note": self.note,
        }


def parse_tag(tag: str, filled: set[str]) -> dict[str, str]:
    """How sure each filled field is, from the doc's tag (``acc=read; bops,flops=unverified; rest=derived``).

    ``acc`` means top-1 and top-5, ``all`` every filled field, ``rest`` every filled field not named before.
    A segment without ``=`` (``bops,flops as ReActNet-A``) keeps its words as the tag.
    """
    tags: dict[str, str] = {}
    for segment in filter(None, (part.strip() for part in tag.split(";"))):
        names, sep, value = segment.partition("=")
        if not sep:
            names, _, value = segment.partition(" ")
        for name in (n.strip() for n in names.split(",")):
            if name == "acc":
                chosen = {"top1", "top5"} & filled
            elif name == "all":
                chosen = filled
            elif name == "rest":
                chosen = filled - set(tags)
            elif name in FIELDS:
                chosen = {name}
            else:
                raise BnextbenchError(f"prior-BNN tag {tag!r} names an unknown field {name!r}")
            tags.update(dict.fromkeys(chosen, value.strip()))
    return tags


def _number(text: str, scale: float = 1.0) -> float | None:
    return float(text) * scale if text.strip() else None


def _prior(row: dict[str, str]) -> PriorBNN:
    counts = {key.split("_")[0]: _number(row[key], scale) for key, scale in _SCALES.items()}
    filled = {name for name in FIELDS if (counts[name] is not None if name in counts else row[name].strip())}
    design = {key: row[key] == "yes" for key in DESIGN_COLUMNS} if row["design_name"] else None
    readme = _number(row["readme_bops_g"], 1e9)
    return PriorBNN(
        model=row["model"], family=row["family"], top1=_number(row["top1"]), top5=_number(row["top5"]),
        bops=counts["bops"], flops=counts["flops"], ops=counts["ops"], params=counts["params"], kd=row["kd"],
        source=row["source"], source_url=row["source_url"], tag=row["tag"],
        degree=_number(row["degree_pct"], 0.01), readme_bops_column=readme, design=design,
        design_name=row["design_name"], implemented_as=row["implemented_as"], ops_rule=row["ops_rule"],
        note=row["note"], tags=parse_tag(row["tag"], filled),
    )


@cache
def load_priors() -> tuple[PriorBNN, ...]:
    """Every row of the packaged registry, in the docs' order."""
    text = (files("bnextbench.report") / "prior_bnns.csv").read_text(encoding="utf-8")
    return tuple(_prior(row) for row in csv.DictReader(io.StringIO(text)))


# Published figure -> (field of PriorBNN, Complexity field counted against, unit label, scale of the unit)
FIGURES = (
    ("BOPs", "bops", "bops", "1e9", 1e9),
    ("FLOPs", "flops", "flops", "1e8", 1e8),
    ("OPs", "ops", "ops", "1e8", 1e8),
    ("params", "params", "params", "1e6", 1e6),
    ("binarization degree", "degree", "binarization_degree", "%", 0.01),
    ('README "BOPs (G)"', "readme_bops_column", "bops", "1e9", 1e9),
    ('README "BOPs (G)"', "readme_bops_column", "ops", "1e9", 1e9),
)


def _figure_tag(prior: PriorBNN, attribute: str) -> str:
    if attribute in ("degree", "readme_bops_column"):
        return "read (BNext README)"
    return prior.tags.get(attribute, "")


def published_vs_counted(threshold: float = MISMATCH_THRESHOLD) -> list[dict[str, Any]]:
    """Each published count of a model bnextbench implements next to bnextbench's count at 224 px, 1000 classes.

    Rows: prior model, bnextbench model, ops rule, figure (as the source labels it), published and counted
    values (absolute; degree a fraction), the counted metric, the relative difference (counted / published
    - 1) and whether it exceeds ``threshold``. The README's "BOPs (G)" column is compared with both BOPs
    and OPs, so its unit problem shows as a flag against BOPs and a match against OPs.
    """
    return [dict(row) for row in _published_vs_counted(threshold)]


@cache
def _published_vs_counted(threshold: float) -> tuple[dict[str, Any], ...]:
    from ..profiling import profile_model

    counts: dict[tuple[str, str], Any] = {}
    rows = []
    for prior in load_priors():
        if not prior.implemented_as:
            continue
        key = (prior.implemented_as, prior.ops_rule)
        if key not in counts:
            counts[key] = profile_model(prior.implemented_as, PUBLISHED_RESOLUTION, PUBLISHED_CLASSES, prior.ops_rule)
        complexity = counts[key]
        for figure, attribute, metric, unit, scale in FIGURES:
            published = getattr(prior, attribute)
            if published is None:
                continue
            counted = float(getattr(complexity, metric))
            difference = counted / published - 1
            rows.append({
                "prior": prior.model, "model": prior.implemented_as, "ops_rule": prior.ops_rule,
                "resolution": PUBLISHED_RESOLUTION, "figure": figure, "published": published,
                "counted_metric": metric, "counted": counted, "unit": unit, "scale": scale,
                "difference": difference, "flagged": abs(difference) > threshold,
                "tag": _figure_tag(prior, attribute), "source_url": prior.source_url or BNEXT_README_URL,
            })
    return tuple(rows)
