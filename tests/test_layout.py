"""Rules of the code's layout that a reviewer would otherwise check by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bnextbench"
SOURCES = sorted(PACKAGE.rglob("*.py"))

# Optuna's private attributes (study._storage, trial._trial_id, ...) and private modules (optuna.study._optimize).
OPTUNA_PRIVATE = re.compile(r"\b(study|trial|storage|sampler|pruner)\._[a-z]\w*|\boptuna(\.\w+)*\._\w+")
# A run record's JSON columns read by key: run.recipe["seed"], run.complexity.get("bops"), ...
RUN_JSON_BY_KEY = re.compile(r"\.(recipe|complexity|versions|arch_spec)(\[|\.get\()")


STRING = re.compile(r"\"[^\"]*\"|'[^']*'")


def _code(line: str) -> str:
    """A line without its string literals (a logger's name is no use of a module)."""
    return STRING.sub('""', line)


def _hits(pattern: re.Pattern, path: Path) -> list[str]:
    return [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
            for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(_code(line))]


def test_the_rules_see_what_they_look_for():
    assert OPTUNA_PRIVATE.search("study._storage.get_trial(trial._trial_id)")
    assert OPTUNA_PRIVATE.search("from optuna.study._optimize import _run_trial")
    assert not OPTUNA_PRIVATE.search(_code('logging.getLogger("optuna.study._optimize")'))  # a name, not code
    assert RUN_JSON_BY_KEY.search(_code('run.recipe["protocol"]'))
    assert RUN_JSON_BY_KEY.search(_code("run.complexity.get('bops')"))
    assert not RUN_JSON_BY_KEY.search("recipe.to_dict()")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_optuna_attribute_is_used(path):
    assert _hits(OPTUNA_PRIVATE, path) == []


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "store.py" and "migrations" not in p.parts],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_store_reads_run_records_by_key(path):
    assert _hits(RUN_JSON_BY_KEY, path) == []
