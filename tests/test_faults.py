"""Faults and bad input around the results database, checkpoints and reports: each is one clear error, and
what was there before is intact (``PRAGMA integrity_check`` ok, rows unchanged, files unchanged)."""

from __future__ import annotations

import os
import pickle
import resource
import shutil
import signal
import sqlite3
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import torch
from sqlalchemy import event

from bnextbench.errors import BnextbenchError
from bnextbench.io import atomic_torch_save, atomic_write_bytes
from bnextbench.store import VERSION_TABLE, Run, Store, StoreError
from bnextbench.train import Recipe, TrainConfig, train

TABLES = ("runs", "epoch_metrics", "search_trials")
TRAIN_ARGS = ["train", "bnext_tiny", "--width-mult", "0.125", "--data", "digits", "--resolution", "16",
              "--epochs", "1", "--batch-size", "40", "--train-limit", "80"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A results database and a checkpoint from one real (tiny) training run."""
    folder = tmp_path_factory.mktemp("trained")
    store = Store(folder / "results.db")
    train(TrainConfig(model="bnext_tiny", data="digits", recipe=Recipe(epochs=1, batch_size=40, seed=0),
                      width_mult=0.125, train_limit=80, resolution=16, out=folder / "run"), store, progress=False)
    store.engine.dispose()  # the last connection closes: the WAL is folded into the file
    return folder


@pytest.fixture
def results(trained, tmp_path, monkeypatch):
    """This test's copy of the trained database (results.db) and checkpoint folder (run/last.pt)."""
    shutil.copy(trained / "results.db", tmp_path / "results.db")
    shutil.copytree(trained / "run", tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "results.db"


def rows(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as connection:
        return {table: connection.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() for table in TABLES}


def integrity(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute("PRAGMA integrity_check").fetchall()




@contextmanager
def file_size_limit(limit: int):
    """RLIMIT_FSIZE: writes past ``limit`` bytes of any file fail with EFBIG, as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the default action kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


# Columns that create_run fills from the protocol, or that the store sets itself.
_FROM_PROTOCOL = ("data", "resolution", "train_limit", "holdout", "recipe", "seed", "teacher", "protocol_key",
                  "protocol_group")


def _run_settings(store: Store) -> dict:
    """The protocol and other settings of the trained run, to register it again (what a new training run writes
    first)."""
    run = next(store.runs())
    return {"protocol": run.protocol, **{column.key: getattr(run, column.key) for column in Run.__table__.columns
                                          if column.key not in ("id", "host", "pid", "created_at", "updated_at",
                                                                *_FROM_PROTOCOL)}}


@pytest.mark.parametrize("fault, reason", [
    ("file size limit", "disk I/O error (the disk may be full, the file size limited or the device failing)"),
    ("page limit", "database or disk is full (free some disk space)"),
    ("read-only", "attempt to write a readonly database (the file or its folder is read-only)"),
])
def test_full_disk_is_one_error_and_the_database_stays_whole(results, fault, reason):
    before = rows(results)
    store = Store(f"sqlite:///file:{results}?mode=ro&uri=true" if fault == "read-only" else results)
    settings = _run_settings(store)
    if fault == "page limit":  # SQLite's own size cap: SQLITE_FULL, as when the disk fills
        pages = len(results.read_bytes()) // 4096
        event.listen(store.engine, "connect", lambda connection, _: connection.execute(
            f"PRAGMA max_page_count={pages}"))
        store.engine.dispose()
    written = 0
    limit = file_size_limit(64 * 1024) if fault == "file size limit" else nullcontext()
    with limit, pytest.raises(StoreError) as caught:
        for _ in range(1000):
            store.create_run(**settings)
            written += 1
    message = str(caught.value)
    assert "\n" not in message and message.startswith("cannot write to results database") and message.endswith(reason)
    store.engine.dispose()

    assert integrity(results) == [("ok",)]
    after = rows(results)
    assert after["runs"][:len(before["runs"])] == before["runs"] and len(after["runs"]) == len(before["runs"]) + written
    assert after["epoch_metrics"] == before["epoch_metrics"] and after["search_trials"] == before["search_trials"]
    if fault != "read-only":  # the fault gone, the same database takes writes again
        Store(results).create_run(**settings)
        assert len(rows(results)["runs"]) == len(after["runs"]) + 1


def test_training_on_a_read_only_database_exits_2_and_writes_nothing(results, run_cli):
    before = rows(results)
    read_only = f"sqlite:///file:{results}?mode=ro&uri=true"
    code, _, err = run_cli(*TRAIN_ARGS, "--db", read_only, "--out", "new-run")
    assert code == 2 and err.count("\n") == 1 and "readonly database" in err
    assert not Path("new-run").exists() and rows(results) == before and integrity(results) == [("ok",)]


def _truncated_copy(db: Path, target: Path) -> None:
    data = db.read_bytes()
    target.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("damage, reason", [
    ("garbage", "file is not a database"),
    ("truncated", "database disk image is malformed"),
])
def test_corrupt_database_is_one_error_and_left_as_it_was(results, tmp_path, damage, reason, run_cli):
    bad = tmp_path / "bad" / "results.db"
    bad.parent.mkdir()
    if damage == "garbage":
        bad.write_bytes(b"these are not the pages of an SQLite database\n" * 200)
    else:
        _truncated_copy(results, bad)
    original = bad.read_bytes()
    for command in (["runs"], TRAIN_ARGS):
        code, out, err = run_cli(*command, "--db", str(bad))
        assert code == 2 and err.count("\n") == 1 and out == ""
        assert err.startswith(f"error: cannot open results database {bad}: {reason}")
    assert bad.read_bytes() == original and sorted(p.name for p in bad.parent.iterdir()) == ["results.db"]


def test_truncated_checkpoint_is_refused_and_the_store_stays_clean(results, run_cli):
    before = rows(results)
    checkpoint = Path("run") / "last.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[:len(data) // 2])  # cut mid-write, as a copy or a non-atomic writer would leave it
    code, _, err = run_cli(*TRAIN_ARGS, "--db", str(results), "--resume", "--out", "run")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cannot read checkpoint to resume {checkpoint}")
    code, _, err = run_cli("evaluate", str(checkpoint))
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: cannot read checkpoint {checkpoint}")
    assert rows(results) == before and integrity(results) == [("ok",)]


class Interrupting:
    """Pickling it raises: a save that fails after part of the file was written."""

    def __reduce__(self):
        raise RuntimeError("interrupted mid-write")


def test_interrupted_checkpoint_write_keeps_the_previous_checkpoint(results):
    checkpoint = Path("run") / "last.pt"
    previous = checkpoint.read_bytes()
    state = torch.load(checkpoint, weights_only=True)
    with pytest.raises(BnextbenchError, match="cannot write run/last.pt: torch.save failed: interrupted mid-write"):
        atomic_torch_save({**state, "zz_last": Interrupting()}, checkpoint)
    assert checkpoint.read_bytes() == previous and sorted(os.listdir("run")) == ["last.pt"]


class Payload:
    """A pickle that runs a shell command when unpickled without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_in_a_checkpoint_is_refused(results, tmp_path, run_cli):
    before = rows(results)
    marker = tmp_path / "pwned"
    evil = Path("run") / "last.pt"
    torch.save({"format": "bnextbench-train/1", "model": {}, "payload": Payload(marker)}, evil)
    for command in (["evaluate", str(evil)], [*TRAIN_ARGS, "--db", str(results), "--resume", "--out", "run"]):
        code, _, err = run_cli(*command)
        assert code == 2 and err.count("\n") == 1 and "weights-only loading refuses" in err
        assert not marker.exists()
    assert rows(results) == before and integrity(results) == [("ok",)]
    pickle.loads(pickle.dumps(Payload(marker)))  # the payload is live: plain unpickling runs the command
    assert marker.exists()


@pytest.mark.parametrize(("name", "save", "small", "large"), [
    ("leaderboard.md", atomic_write_bytes, b"| rank | model |\n| 1 | bnext_tiny |\n", b"| rank | model |\n" * 100_000),
    ("last.pt", atomic_torch_save, {"weight": torch.zeros(10)}, {"weight": torch.zeros(500_000)}),
])
def test_write_cut_off_by_a_full_disk_is_one_error_and_keeps_the_previous_file(tmp_path, name, save, small, large):
    path = tmp_path / name
    save(small, path)
    previous = path.read_bytes()
    with file_size_limit(64 * 1024), pytest.raises(BnextbenchError, match=f"cannot write {path}: (File too large|torch.save failed)"):
        save(large, path)  # 1.7 MB report / 2 MB checkpoint, cut off at 64 KiB
    assert path.read_bytes() == previous and sorted(os.listdir(tmp_path)) == [name]


def test_database_from_a_newer_bnextbench_is_refused(results):
    with sqlite3.connect(results) as connection:
        connection.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    before = rows(results)
    with pytest.raises(StoreError, match="has schema 9999, newer than this bnextbench knows"):
        Store(results)
    assert rows(results) == before and integrity(results) == [("ok",)]
