"""Budget-constrained architecture search: budgets, search spaces and the Optuna glue."""

from .budget import Budget, parse_budget, parse_budgets

__all__ = ["Budget", "parse_budget", "parse_budgets"]
