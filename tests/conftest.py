"""Shared fixtures."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bnextbench.cli import main
from bnextbench.models import create_model, list_models

from .helpers import NUM_CLASSES


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


# --- a private PostgreSQL server -------------------------------------------------------------------------------

def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))), None)
    return Path(found).resolve().parent if found else None  # /usr/local/bin/pg_ctl -> the server's bin folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A server URL without database; initdb and pg_ctl run as ``nobody`` when we are root (postgres refuses root)."""
    if os.environ.get("BNEXTBENCH_TEST_POSTGRES"):
        yield os.environ["BNEXTBENCH_TEST_POSTGRES"].rstrip("/")
        return
    bin_dir = _postgres_bin()
    if bin_dir is None:
        if os.environ.get("BNEXTBENCH_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required (BNEXTBENCH_REQUIRE_POSTGRES) but initdb/pg_ctl are not installed")
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed; .ci/run installs Debian's postgresql")
    folder = Path(tempfile.mkdtemp(prefix="bnextbench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    port = _free_port()
    data = folder / "data"
    subprocess.run([*as_user, bin_dir / "initdb", "-D", data, "-U", "bnextbench", "--auth=trust", "--no-sync",
                    "--no-locale", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://bnextbench@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres(postgres_server, request):
    """A fresh database on the server for one test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    engine = create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{postgres_server}/{name}"
