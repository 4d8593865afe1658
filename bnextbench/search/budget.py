"""Complexity budgets: ``0.3GBOPs``, ``87MOPs``, ``4.5e9bops``, ``2MParams``, ``12MiB``.

A budget is a number, an optional SI prefix (k, M, G, T) and a metric (BOPs, FLOPs, OPs, Params,
MiB), case-insensitive; several budgets combine as "all of them". Counts are compared with the
analytic counter's numbers at the resolution the candidates are trained at.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..complexity import Complexity
from ..errors import BnextbenchError, brief

PREFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
METRICS = {"bops": "bops", "flops": "flops", "ops": "ops", "params": "params", "mib": "size_mib"}
_NUMBER = r"(?P<number>[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)"
_METRIC = r"(?P<metric>bops|flops|ops|params|mib)"
_PATTERN = re.compile(_NUMBER + r"(?P<prefix>[kmgt]?)" + _METRIC, re.IGNORECASE)
_ANY_PREFIX = re.compile(_NUMBER + r"(?P<prefix>[a-z]+?)" + _METRIC, re.IGNORECASE)


class BudgetError(BnextbenchError):
    pass


@dataclass(frozen=True)
class Budget:
    """An upper limit on one complexity metric (``metric`` is a :class:`Complexity` field)."""

    metric: str
    limit: float
    text: str

    def value(self, complexity: Complexity) -> float:
        return float(getattr(complexity, self.metric))

    def allows(self, complexity: Complexity) -> bool:
        return self.value(complexity) <= self.limit

    def __str__(self) -> str:
        return self.text

    @property
    def prefix(self) -> str:
        """The SI prefix the budget was written with (``0.3GBOPs`` -> ``G``), so that tables can show counts in
        the budget's own unit; ``""`` for plain counts."""
        written = _PATTERN.fullmatch(self.text)["prefix"].lower()
        return written if written == "k" else written.upper()


def parse_budget(text: str) -> Budget:
    """One budget string -> :class:`Budget`; a one-line error names what is wrong."""
    compact = text.strip().replace(" ", "")
    match = _PATTERN.fullmatch(compact)
    if match is None:
        raise BudgetError(_diagnose(text, compact))
    limit = float(match["number"]) * PREFIXES[match["prefix"].lower()]
    if not math.isfinite(limit):
        raise BudgetError(f"budget {brief(text)} is too large to be a number (at most about 1.8e308 counts)")
    if limit <= 0:
        raise BudgetError(f"budget {brief(text)} must be a positive number")
    return Budget(METRICS[match["metric"].lower()], limit, compact)


def _diagnose(text: str, compact: str) -> str:
    if compact.startswith("-"):
        return f"budget {brief(text)} must be a positive number"
    if not re.match(r"[0-9.]", compact):
        return f"budget {brief(text)} has no number; write e.g. 0.3GBOPs"
    if not re.search(r"(bops|flops|ops|params|mib)$", compact, re.IGNORECASE):
        return f"budget {brief(text)} names no metric; end it with BOPs, FLOPs, OPs, Params or MiB"
    unknown = _ANY_PREFIX.fullmatch(compact)
    if unknown:
        return f"budget {brief(text)}: unknown prefix {brief(unknown['prefix'])}; use k, M, G or T"
    return f"budget {brief(text)} is not NUMBER[k|M|G|T]METRIC, e.g. 0.3GBOPs or 2MParams"


def parse_budgets(texts: list[str]) -> list[Budget]:
    if not texts:
        raise BudgetError("give at least one --budget, e.g. --budget 0.3GBOPs")
    return [parse_budget(text) for text in texts]
