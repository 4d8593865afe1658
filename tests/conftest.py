"""Shared fixtures."""

from __future__ import annotations

import sys

import pytest

from bnextbench.cli import main
from bnextbench.models import create_model, list_models

SMALL_RESOLUTION = 32
NUM_CLASSES = 10


@pytest.fixture(scope="module", params=list_models())
def small_model(request):
    """Every registered model, built once per module for 32-pixel inputs and 10 classes."""
    model = create_model(request.param, num_classes=NUM_CLASSES, small_input=True)
    model.name = request.param
    return model


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decoded-data caches of the tests go to a temporary folder unless BNEXTBENCH_CACHE is set."""
    import os

    if "BNEXTBENCH_CACHE" in os.environ:
        yield
        return
    os.environ["BNEXTBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    del os.environ["BNEXTBENCH_CACHE"]


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """The bnextbench command line, run in-process: ``run_cli(*args) -> (exit code, stdout, stderr)``."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["bnextbench", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return run
