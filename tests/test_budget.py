"""Budget strings."""

from __future__ import annotations

import pytest

from bnextbench.profiling import profile_model
from bnextbench.search import parse_budget, parse_budgets
from bnextbench.search.budget import BudgetError


@pytest.mark.parametrize(
    "text, metric, limit",
    [
        ("0.3GBOPs", "bops", 3e8),
        ("87MOPs", "ops", 87e6),
        ("4.5e9bops", "bops", 4.5e9),
        ("2MParams", "params", 2e6),
        ("12MiB", "size_mib", 12.0),
        ("1.5kflops", "flops", 1500.0),
        (" 0.1 T BOPS ", "bops", 1e11),
    ],
)
def test_budgets_parse(text, metric, limit):
    budget = parse_budget(text)
    assert budget.metric == metric and budget.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("0.3", "names no metric"),
        ("GBOPs", "has no number"),
        ("-1GBOPs", "positive"),
        ("0.3XBOPs", "unknown prefix 'X'"),
        ("abc", "has no number"),
        ("0GBOPs", "positive"),
        ("1e999GBOPs", "too large to be a number"),
    ],
)
def test_bad_budgets_name_the_problem(text, fragment):
    with pytest.raises(BudgetError, match=fragment):
        parse_budget(text)


def test_budgets_check_counted_models():
    tiny = profile_model("bnext_tiny", 32, 10)  # 393.2 M BOPs at 32 px
    assert not parse_budget("0.3GBOPs").allows(tiny)
    assert parse_budget("0.4GBOPs").allows(tiny)
    assert all(b.allows(tiny) for b in parse_budgets(["0.4GBOPs", "31MParams"]))
    with pytest.raises(BudgetError):
        parse_budgets([])
