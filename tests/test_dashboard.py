"""Optuna's own dashboard on bnextbench's storage: the results database, or a journal file, opened by
optuna-dashboard's storage loader and served through its API (a WSGI call, no server or browser)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest

from bnextbench.search import parse_budgets
from bnextbench.search.study import Search, SearchConfig
from bnextbench.store import Store

optuna_dashboard = pytest.importorskip("optuna_dashboard")

SMALL_SPACE = Path(__file__).parent / "data" / "small-space.yaml"


def _get(app, path: str) -> dict:
    """The JSON body of GET ``path`` from a WSGI application."""
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    answer: dict = {}
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answer.update(status=status)))
    assert answer["status"].startswith("200"), (path, answer["status"], body[:300])
    return json.loads(body)


@pytest.mark.parametrize("storage", ["results database", "journal"])
def test_optuna_dashboard_reads_a_study_bnextbench_wrote(tmp_path, storage):
    db = tmp_path / "results.db"
    spec = f"journal:{tmp_path / 'study.journal'}" if storage == "journal" else None
    config = SearchConfig(budgets=parse_budgets(["20MBOPs"]), space=SMALL_SPACE, data="digits", trials=2, epochs=1,
                          train_limit=60, batch_size=30, sampler="random", pruner="none", study="dashboard", seed=0,
                          storage=spec)
    result = Search.configure(config).run(Store(db), progress=False)
    # What a user passes on the command line: `optuna-dashboard sqlite:///results/bnextbench.db` or the journal path
    app = optuna_dashboard.wsgi(f"sqlite:///{db}" if spec is None else spec.removeprefix("journal:"))

    studies = _get(app, "/api/studies")["study_summaries"]
    assert [study["study_name"] for study in studies] == ["dashboard"]
    detail = _get(app, f"/api/studies/{studies[0]['study_id']}")
    shown = {trial["number"]: trial for trial in detail["trials"]}
    assert sorted(shown) == [t["number"] for t in result["trials"]]
    for trial in result["trials"]:  # bnextbench's figures, as Optuna's user attributes, reach the dashboard
        attrs = {attr["key"]: attr["value"] for attr in shown[trial["number"]]["user_attrs"]}
        assert attrs["candidate_name"] == trial["candidate"] and float(attrs["bops"]) == trial["bops"]
