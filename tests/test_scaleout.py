"""Scale-out: many workers on one study (PostgreSQL, the default SQLite file), a dead worker's trial
retried once, and results databases of bnextbench 0.1 migrated with Alembic.

The PostgreSQL server is a private one started here on loopback from the installed binaries
(Debian's ``postgresql`` package, which ``.ci/run`` installs), or the one ``BNEXTBENCH_TEST_POSTGRES``
names. Workers are real ``python -m bnextbench`` processes, started in parallel.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from optuna.trial import TrialState
from sqlalchemy import create_engine

from bnextbench.cli import main
from bnextbench.search import parse_budgets
from bnextbench.search.storage import open_storage
from bnextbench.search.study import Search, SearchConfig, join_search
from bnextbench.search.summary import load_summary
from bnextbench.store import VERSION_TABLE, Base, Store
from bnextbench.train.protocol import Protocol

V01_SQL = Path(__file__).parent / "data" / "results-v0.1.sql"  # the 0.1 database as SQL text
SPACE = (Path(__file__).parent / "data" / "small-space.yaml").read_text()
TINY = ["--budget", "20MBOPs", "--resolution", "16", "--batch-size", "40", "--sampler", "random", "--pruner", "none",
        "--noise-seeds", "0"]
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


# --- helpers ---------------------------------------------------------------------------------------------------

def _worker(args: list[str], cwd: Path) -> subprocess.Popen:
    """``python -m bnextbench ARGS`` in ``cwd``, one compute thread (several workers share two cores)."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "bnextbench", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _finish(process: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"a worker did not finish in {timeout} s: {err[-800:]}")
    assert process.returncode == 0, err[-800:]
    return out, err


def _space(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def _check_trials_and_rows(study: optuna.Study, store: Store, size: int) -> list:
    """The study holds exactly ``size`` counted trials, each with one row, each trained one with its run."""
    trials = study.get_trials()
    counted = [t for t in trials if t.state in COUNTED]
    assert len(counted) == size
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    rows = {row.trial_number: row for row in store.trials(study.study_name)}
    assert len(rows) == len(store.trials(study.study_name))  # one row per trial number (a unique index)
    for trial in counted:
        row = rows[trial.number]
        assert row.state == ("infeasible" if trial.user_attrs.get("infeasible") else trial.state.name.lower())
        assert row.worker == trial.user_attrs["worker"] and row.candidate_name == trial.user_attrs["candidate_name"]
        if row.state == "complete":
            run = store.get_run(row.run_id)
            assert run.status == "completed" and run.top1 == row.top1 == trial.value
            if "reused_run" not in trial.user_attrs:  # trained by this trial, not reused from an earlier one
                assert run.study == study.study_name and run.trial_number == trial.number
    trained = [rows[t.number].run_id for t in counted if "reused_run" not in t.user_attrs and rows[t.number].run_id]
    assert len(trained) == len(set(trained))  # no run serves two trials
    return trials


# --- many workers, one study -----------------------------------------------------------------------------------

def test_three_workers_share_one_study_on_postgres(postgres, tmp_path, monkeypatch, capsys):
    space = _space(tmp_path)
    args = ["search", *TINY, "--space", str(space), "--trials", "6", "--epochs", "1", "--train-limit", "120",
            "--study", "shared", "--storage", postgres, "--db", postgres, "--seed", "3", "--format", "json"]
    workers = [_worker(args, tmp_path / f"machine-{i}") for i in range(3)]  # three "machines", one server
    outputs = [_finish(worker) for worker in workers]
    for out, err in outputs:
        assert "Traceback" not in err
        assert json.loads(out.strip().splitlines()[-1])["study"] == "shared"

    study = optuna.load_study(study_name="shared", storage=postgres)
    trials = _check_trials_and_rows(study, Store(postgres), 6)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs.get("surplus") for t in failed)  # only trials asked for after the study was full
    assert len({t.user_attrs["worker"] for t in trials if t.state in COUNTED}) >= 2  # the work was shared
    assert study.user_attrs["search"]["workers"] == 3

    monkeypatch.setattr(sys, "argv", ["bnextbench", "show", "shared", "--storage", postgres, "--db", postgres,
                                      "--format", "json"])
    main()  # any one machine sees everyone's trials and runs
    shown = json.loads(capsys.readouterr().out)
    assert len([t for t in shown["trials"] if t["state"] in ("complete", "pruned", "infeasible")]) == 6
    trained = {row.run_id for row in Store(postgres).trials("shared") if row.run_id}
    assert trained <= {run.id for run in Store(postgres).runs()}


def test_killed_worker_trial_is_failed_then_retried_once(postgres, tmp_path, monkeypatch, capsys):
    space = _space(tmp_path)
    common = ["--study", "killed", "--storage", postgres, "--db", postgres]
    # 4 epochs: the kill comes one epoch into a run, with three still to train, so the run cannot finish
    # between the look at the trials and the signal (with 2 epochs it once did, and the run read "completed").
    victim = _worker(["search", *TINY, "--space", str(space), "--trials", "3", "--epochs", "4", "--train-limit",
                      "160", "--seed", "4", "--heartbeat", "1", "--grace", "3", *common], tmp_path / "victim")
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            time.sleep(0.5)
            assert victim.poll() is None, victim.stderr.read()[-800:]
            if "killed" not in optuna.study.get_all_study_names(postgres):
                continue
            trials = optuna.load_study(study_name="killed", storage=postgres).get_trials()
            done = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
            running = [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("run_id")]
            if done and running:  # one trial finished, another one epoch into its run
                victim.send_signal(signal.SIGKILL)
                killed = running[0].number
                break
        else:
            pytest.fail("the victim never had a finished and a running trial at once")
    finally:
        victim.kill()
        victim.communicate()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["bnextbench", "worker", *common, "--format", "json"])
    main()  # a new worker joins with the study's own settings and finishes it
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["study"] == "killed"

    store = Store(postgres)
    study = optuna.load_study(study_name="killed", storage=postgres)
    trials = _check_trials_and_rows(study, store, 3)
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [killed]  # nothing else failed
    dead = trials[killed]
    assert "fail_reason" not in dead.system_attrs  # it died, no error was raised
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == dead.params
    for number, value in done.items():
        assert trials[number].state == TrialState.COMPLETE and trials[number].value == value

    rows = {row.trial_number: row for row in store.trials("killed")}
    assert rows[killed].state == "failed" and rows[killed].worker.endswith(f":{victim.pid}")
    assert rows[retries[0].number].retry_of == killed and rows[retries[0].number].state == "complete"
    dead_run = store.get_run(dead.user_attrs["run_id"])
    assert rows[killed].run_id == dead_run.id and dead_run.status == "interrupted"
    assert dead_run.trial_number == killed and len(dead_run.epochs) == dead_run.epochs_done >= 1


def _plant_dead_trial(storage, study: str, host: str, pid: int):
    """A running trial as a worker leaves it when it dies after sampling its first parameter."""
    trial = optuna.load_study(study_name=study, storage=storage).ask()
    for key, value in {"host": host, "pid": pid, "worker": f"{host}:{pid}"}.items():
        trial.set_user_attr(key, value)
    trial.suggest_categorical("stem_width", [8, 16])
    return trial


def _search_config(tmp_path: Path, study: str, trials: int = 1, **settings) -> SearchConfig:
    return SearchConfig(budgets=parse_budgets(["20MBOPs"]), space=_space(tmp_path), trials=trials, epochs=1,
                        train_limit=60, batch_size=30, sampler="random", pruner="none", study=study, seed=5, **settings)


def _check_retried(result: dict, dead: optuna.Trial, size: int) -> None:
    trials = {t["number"]: t for t in result["trials"]}
    assert trials[dead.number]["state"] == "fail"
    retries = [t for t in result["trials"] if t["retry_of"] == dead.number]
    assert len(retries) == 1 and retries[0]["state"] == "complete"
    assert retries[0]["arch"]["spec"]["stem_width"] == dead.params["stem_width"]  # the same draw, tried again
    assert sum(t["state"] in ("complete", "pruned", "infeasible") for t in result["trials"]) == size


def test_heartbeat_retries_a_trial_whose_remote_worker_went_silent(tmp_path, monkeypatch):
    """A worker on another machine stops beating: after the grace period a local worker fails its trial
    (Optuna's heartbeat) and runs the retry."""
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "r.db")
    Search.configure(_search_config(tmp_path, "silent", heartbeat=1, grace=2)).run(store, progress=False)
    storage = optuna.storages.RDBStorage(store.url)
    dead = _plant_dead_trial(storage, "silent", "elsewhere", 1)
    storage.record_heartbeat(dead._trial_id)  # its last beat
    time.sleep(3)
    _check_retried(Search.configure(_search_config(tmp_path, "silent", trials=3)).run(store, progress=False), dead, 3)


def test_journal_storage_retries_the_trial_of_a_dead_local_process(tmp_path, monkeypatch):
    """With Optuna's journal file (no heartbeat) a trial whose process is gone on this host is retried."""
    monkeypatch.chdir(tmp_path)
    store, journal = Store(tmp_path / "r.db"), f"journal:{tmp_path / 'study.journal'}"
    Search.configure(_search_config(tmp_path, "journaled", storage=journal)).run(store, progress=False)
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = _plant_dead_trial(open_storage(journal), "journaled", socket.gethostname(), gone.pid)
    result = Search.configure(_search_config(tmp_path, "journaled", trials=2, storage=journal)).run(store, progress=False)
    _check_retried(result, dead, 2)
    assert join_search("journaled", journal, store, progress=False)["trials"] == result["trials"]  # full: no work
    assert load_summary("journaled", journal)["trials"] == result["trials"]


def test_two_local_processes_share_the_default_sqlite_file(tmp_path):
    space = _space(tmp_path)
    args = ["search", *TINY, "--space", str(space), "--trials", "6", "--epochs", "2", "--train-limit", "120",
            "--study", "local", "--seed", "6"]  # no --db, no --storage: results/bnextbench.db for both
    workers = [_worker(args, tmp_path) for _ in range(2)]
    for worker in workers:
        _, err = _finish(worker)
        assert "locked" not in err and "Traceback" not in err

    db = tmp_path / "results" / "bnextbench.db"
    study = optuna.load_study(study_name="local", storage=f"sqlite:///{db}")
    trials = _check_trials_and_rows(study, Store(db), 6)
    assert all(t.user_attrs.get("surplus") for t in trials if t.state == TrialState.FAIL)
    assert len({t.user_attrs["worker"] for t in trials if t.state in COUNTED}) == 2  # both wrote, concurrently
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_store_opens_while_another_connection_holds_the_file(tmp_path):
    """Switching a file to WAL needs it to itself, and SQLite refuses at once (no busy wait) while another
    connection holds a lock: the open must wait for the lock like any statement, not fail."""
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (id INTEGER)")  # a rollback-journal file, as a first opener leaves it
    holder.execute("BEGIN IMMEDIATE")  # a writer: others may read, and the switch must wait for it to finish
    holder.execute("INSERT INTO other VALUES (1)")
    released = threading.Timer(0.5, holder.execute, ["COMMIT"])
    released.start()
    try:
        store = Store(path)
    finally:
        released.join()
        holder.close()
    assert list(store.runs()) == []
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# --- migrations ------------------------------------------------------------------------------------------------

def _schema_differences(url: str) -> list:
    """Alembic's comparison of the database against the models, on bnextbench's tables."""
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "version_table": VERSION_TABLE, "compare_type": True,
            "include_name": lambda name, kind, _parent: kind != "table" or name in Base.metadata.tables,
        })
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    return differences


def test_database_of_version_0_1_is_migrated_and_keeps_its_rows(tmp_path):
    db = tmp_path / "results.db"
    with sqlite3.connect(db) as connection:
        connection.executescript(V01_SQL.read_text())  # rows and schema exactly as bnextbench 0.1 wrote them
    tables = ("runs", "epoch_metrics", "search_trials")
    with sqlite3.connect(db) as connection:
        before = {table: connection.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() for table in tables}
        optuna_version = connection.execute("SELECT * FROM alembic_version").fetchall()
        assert not connection.execute("SELECT name FROM sqlite_master WHERE name = ?", (VERSION_TABLE,)).fetchall()
    assert all(before.values())

    store = Store(db)

    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        after = {table: connection.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() for table in tables}
        connection.row_factory = None
        assert connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [("0005",)]
        assert connection.execute("SELECT * FROM alembic_version").fetchall() == optuna_version  # Optuna's own
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert [tuple(row) for row in after["epoch_metrics"]] == before["epoch_metrics"]
    # runs: every 0.1 column keeps its value but the recipe, which keeps only the recipe's own fields; what the
    # recipe JSON also held moved into columns
    old_runs = {row[0]: row for row in before["runs"]}
    for run in after["runs"]:
        old = json.loads(old_runs[run["id"]][8])  # the 0.1 recipe JSON
        assert json.loads(run["recipe"]) == {k: v for k, v in old.items()
                                             if k not in ("train_limit", "width_mult", "model_kwargs", "candidate",
                                                          "protocol", "study", "trial")}
        assert (run["study"], run["trial_number"], run["train_limit"]) == (old.get("study"), old.get("trial"),
                                                                           old["train_limit"])
        assert run["candidate"] == run["model"] == f"bnext-spec-{run['arch_hash']}"
        assert run["protocol_key"] == Protocol.from_dict(old["protocol"]).key  # 0.1 stored today's recipe fields
        assert (run["kind"], run["holdout"]) == ("train", None)  # 0004: every old run is a candidate's training run
        assert (run["world_size"], run["skipped_images"], run["eval_images_per_s"]) == (1, 0, None)  # 0005
    # search trials: old columns keep their values; the candidate hash became the candidate's one name, the
    # name of the run that trained it
    names = {run["id"]: run["candidate"] for run in after["runs"]}
    for old, new in zip(before["search_trials"], after["search_trials"]):
        assert tuple(new)[:3] + tuple(new)[4:13] == old[:3] + old[4:13]
        assert new["candidate_name"] == names[new["run_id"]] != old[3]
        assert (new["worker"], new["retry_of"]) == (None, None)  # unknown in 0.1
    assert _schema_differences(store.url) == []
    study = optuna.load_study(study_name="v0.1", storage=store.url)  # Optuna still reads its tables
    assert {t.user_attrs["run_id"] for t in study.trials} == {row.run_id for row in store.trials("v0.1")}
    runs = {run.id: run for run in store.study_runs("v0.1")}
    assert {row.run_id for row in store.trials("v0.1")} <= set(runs)  # found by study through the new index


def test_typed_protocol_migration_downgrades_to_the_0002_layout_and_back(tmp_path):
    from alembic import command
    from alembic.config import Config

    db = tmp_path / "results.db"
    with sqlite3.connect(db) as connection:
        connection.executescript(V01_SQL.read_text())
        hashes = connection.execute("SELECT candidate_hash FROM search_trials ORDER BY id").fetchall()
    Store(db).engine.dispose()
    config = Config()
    config.set_main_option("script_location", "bnextbench:migrations")
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # as the store migrates SQLite
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    engine.dispose()
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT candidate_hash FROM search_trials ORDER BY id").fetchall() == hashes
        recipe = json.loads(connection.execute("SELECT recipe FROM runs WHERE id = 1").fetchone()[0])
        assert {"train_limit", "width_mult", "study", "trial"} <= set(recipe)
    store = Store(db)  # and up again
    assert [run.study for run in store.runs()] == ["v0.1"] * 3 and _schema_differences(store.url) == []


def test_new_sqlite_database_gets_exactly_the_declared_schema(tmp_path):
    store = Store(tmp_path / "new.db")
    assert _schema_differences(store.url) == []


def test_new_postgres_database_gets_exactly_the_declared_schema(postgres):
    Store(postgres)
    assert _schema_differences(postgres) == []


@pytest.mark.parametrize("storage, fragment", [
    ("journal:{tmp}/none.journal", "no journal"),
    ("sqlite:///{tmp}/none.db", "no database"),
    ("none.db", "unknown storage 'none.db'"),
])
def test_worker_for_a_missing_study_exits_2_and_creates_nothing(tmp_path, monkeypatch, capsys, storage, fragment):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["bnextbench", "worker", "--study", "nope", "--storage",
                                      storage.format(tmp=tmp_path), "--db", str(tmp_path / "r.db")])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and fragment in err
    assert all(p.name.startswith("r.db") for p in tmp_path.iterdir())  # only the results database (and its WAL)
