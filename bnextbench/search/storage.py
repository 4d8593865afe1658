"""Optuna storages for a study: a database through SQLAlchemy (RDB, with heartbeats) or a journal file."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, StorageInternalError
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError

from ..errors import BnextbenchError
from ..store import database_error, engine_options, shown, sqlite_path, use_sqlite_wal

JOURNAL_PREFIX = "journal:"


class SearchError(BnextbenchError):
    pass


def open_storage(spec: str, heartbeat: tuple[int, int] | None = None,
                 on_dead_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
                 create: bool = True) -> optuna.storages.BaseStorage:
    """``journal:PATH`` -> Optuna's journal file; an SQLAlchemy URL -> its RDB storage, with the
    heartbeat ``(interval, grace)`` in seconds and ``on_dead_trial(study, trial)`` when given.
    Without ``create`` a journal file or SQLite database must exist already."""
    if spec.startswith(JOURNAL_PREFIX):
        path = Path(spec[len(JOURNAL_PREFIX):])
        if not create and not path.is_file():
            raise SearchError(f"no journal {path}; a search with --storage {spec} creates it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise SearchError(f"cannot use journal {path}: {exc.strerror or exc}") from None
    if "://" not in spec:
        raise SearchError(f"unknown storage {spec!r}: give an SQLAlchemy URL (sqlite:///PATH, "
                          "postgresql://USER@HOST/DB) or journal:PATH")
    database = sqlite_path(spec)
    if not create and database is not None and not database.is_file():
        raise SearchError(f"no database {database}; a search with --storage {spec} creates it")
    options: dict[str, Any] = {}
    if heartbeat is not None:
        options = {"heartbeat_interval": heartbeat[0], "grace_period": heartbeat[1],
                   "heartbeat_stale_trial_callback": on_dead_trial}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats: experimental since Optuna 2.9
            storage = RDBStorage(spec, engine_kwargs=engine_options(spec), **options)
    except (OperationalError, DatabaseError, StorageInternalError) as exc:
        raise database_error(spec, exc.__cause__ or exc, "open", "study storage") from None
    except (ImportError, ValueError, ArgumentError) as exc:  # driver not installed, malformed URL
        raise SearchError(f"cannot use study storage {shown(spec)}: {exc}") from None
    use_sqlite_wal(storage.engine)
    storage.engine.dispose()  # new connections get the pragmas
    return storage


def uses_heartbeats(storage: optuna.storages.BaseStorage) -> bool:
    """Whether trials on ``storage`` can beat (database storages; journal files cannot)."""
    return isinstance(storage, RDBStorage)


def release(storage: optuna.storages.BaseStorage) -> None:
    """Close a database storage's pooled connections (before reopening it with other settings)."""
    if isinstance(storage, RDBStorage):
        storage.engine.dispose()


def load_existing_study(name: str, storage_spec: str) -> optuna.Study:
    """A study that must exist already in ``storage_spec``; otherwise one error line naming it."""
    storage = open_storage(storage_spec, create=False)
    if name not in optuna.study.get_all_study_names(storage):
        raise SearchError(f"unknown study {name!r} in {shown(storage_spec)}")
    return optuna.load_study(study_name=name, storage=storage)
