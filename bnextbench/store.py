"""The results store: every run, its per-epoch metrics and final figures, via SQLAlchemy 2.

The only module that touches the database: an SQLite file by default (WAL mode and a 30 s busy
timeout, so several local processes can share it), or any SQLAlchemy URL such as PostgreSQL for
workers on many machines. Each write is one transaction, so a crash leaves either the previous row
or the new one, never half of it; a failed write is one :class:`StoreError` line. A run whose
process died while it was "running" is marked "interrupted" the next time the store is opened.
The schema is versioned with Alembic (``bnextbench/migrations``): opening a database written by
an older bnextbench upgrades it in place, in one transaction, under :meth:`Store.exclusive`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    create_engine,
    event,
    func,
    inspect,
    make_url,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
    sessionmaker,
)

from .errors import BnextbenchError, brief

if TYPE_CHECKING:  # the store takes protocols by their keys; the training package imports the store
    from .train.protocol import Protocol

DEFAULT_DB = Path("results") / "bnextbench.db"
RUN_STATES = ("running", "completed", "interrupted", "diverged", "failed", "pruned")
RUN_KINDS = ("train", "supernet", "evaluate")  # a candidate's training run, a one-shot supernet's, an evaluation
SQLITE_BUSY_TIMEOUT_S = 30
VERSION_TABLE = "bnextbench_alembic_version"  # Optuna keeps its own "alembic_version" in the same database
FIRST_REVISION = "0001"  # the schema of bnextbench 0.1, which had no version table
ADVISORY_LOCK_KEY = 0x626E6578  # "bnex": PostgreSQL advisory lock serialising migrations and study set-up


class StoreError(BnextbenchError):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON}


class RunCounts(NamedTuple):
    """What the counter recorded for a run (absolute counts; size in MiB)."""

    bops: int
    flops: float
    ops: float
    params: int
    binarization_degree: float
    size_mib: float
    ops_rule: str


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_protocol_candidate", "protocol_key", "candidate", "status"),
        Index("ix_runs_study_trial", "study", "trial_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    kind: Mapped[str] = mapped_column(String(16), default="train", server_default="train")  # one of RUN_KINDS
    model: Mapped[str] = mapped_column(String(64))
    candidate: Mapped[str] = mapped_column(String(96))  # the candidate's one name (models.candidate)
    width_mult: Mapped[float] = mapped_column(Float)
    arch_spec: Mapped[dict[str, Any] | None]
    arch_hash: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(String(512))
    resolution: Mapped[int]
    train_limit: Mapped[int | None]
    holdout: Mapped[int | None]  # training images held out to validate on instead of the test split
    num_classes: Mapped[int]
    recipe: Mapped[dict[str, Any]]  # the Recipe's fields, as trained
    seed: Mapped[int]
    teacher: Mapped[str | None] = mapped_column(String(512))
    protocol_key: Mapped[str] = mapped_column(String(16))  # Protocol.key: data, resolution, limit, recipe, teacher
    protocol_group: Mapped[str] = mapped_column(String(16), index=True)  # Protocol.group_key: the same, any seed
    study: Mapped[str | None] = mapped_column(String(255))  # the search study and trial that trained it
    trial_number: Mapped[int | None]
    device: Mapped[str] = mapped_column(String(64))
    versions: Mapped[dict[str, Any]]
    git_commit: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    checkpoint: Mapped[str | None] = mapped_column(String(1024))
    epochs_planned: Mapped[int]
    epochs_done: Mapped[int] = mapped_column(default=0)
    top1: Mapped[float | None] = mapped_column(Float)
    top5: Mapped[float | None] = mapped_column(Float)
    train_images_per_s: Mapped[float | None] = mapped_column(Float)
    eval_images_per_s: Mapped[float | None] = mapped_column(Float)  # of an evaluation run
    world_size: Mapped[int] = mapped_column(default=1, server_default="1")  # processes that trained it (torchrun)
    skipped_images: Mapped[int] = mapped_column(default=0, server_default="0")  # unreadable files passed over
    complexity: Mapped[dict[str, Any] | None]
    message: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)

    epochs: Mapped[list[EpochMetric]] = relationship(back_populates="run", order_by="EpochMetric.epoch")

    @property
    def counts(self) -> RunCounts | None:
        """The counter's figures at the run's resolution (None for models it cannot count, e.g. teachers)."""
        if not self.complexity:
            return None
        return RunCounts(**{key: self.complexity[key] for key in RunCounts._fields})

    @property
    def bnextbench_version(self) -> str | None:
        return (self.versions or {}).get("bnextbench")

    @property
    def protocol(self) -> Protocol:
        """The protocol this run trained under, rebuilt from its columns."""
        from .train.protocol import Protocol
        from .train.recipe import Recipe

        return Protocol(self.data, self.resolution, self.train_limit, Recipe.from_dict(self.recipe), self.teacher,
                        self.holdout)


class EpochMetric(Base):
    __tablename__ = "epoch_metrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float] = mapped_column(Float)
    train_top1: Mapped[float] = mapped_column(Float)
    test_loss: Mapped[float] = mapped_column(Float)
    test_top1: Mapped[float] = mapped_column(Float)
    test_top5: Mapped[float] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    tau: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    images_per_s: Mapped[float] = mapped_column(Float)

    run: Mapped[Run] = relationship(back_populates="epochs")


class SearchTrial(Base):
    """One trial of a search study and the run that trained it (none when infeasible or reused).

    One row per Optuna trial number. A trial whose worker died is kept as "failed" (with the
    worker and the run it left behind); its retry is a new trial whose ``retry_of`` names it.
    """

    __tablename__ = "search_trials"
    __table_args__ = (Index("ix_search_trials_study_trial", "study", "trial_number", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study: Mapped[str] = mapped_column(String(255), index=True)
    trial_number: Mapped[int]
    candidate_name: Mapped[str] = mapped_column(String(96), index=True)
    candidate: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    bops: Mapped[int] = mapped_column(BigInteger)  # 52e9 for BNext-L at 224 px: past PostgreSQL's INTEGER
    flops: Mapped[float] = mapped_column(Float)
    ops: Mapped[float] = mapped_column(Float)
    params: Mapped[int]
    top1: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    worker: Mapped[str | None] = mapped_column(String(320))  # host:pid of the process that ran the trial
    retry_of: Mapped[int | None]  # the trial number this trial retries (its worker died)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_identity() -> str:
    """host:pid of this process, as recorded with its trials."""
    return f"{socket.gethostname()}:{os.getpid()}"


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL (None for in-memory databases, other engines and malformed URLs)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    database = parsed.database
    if parsed.query.get("uri") == "true":
        database = database.removeprefix("file:")
    return Path(database)


def engine_options(url: str) -> dict[str, Any]:
    """create_engine keywords for ``url``: SQLite waits for a busy file; server connections are pinged."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    return {"pool_pre_ping": True}


def use_sqlite_wal(engine: Engine) -> None:
    """On SQLite: foreign keys, the busy timeout and write-ahead logging (kept in the file, so Optuna's
    connections to it use WAL too): readers never block the writer, writers queue instead of failing."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    _use_wal(cursor)
    cursor.close()


def _use_wal(cursor) -> None:
    """``PRAGMA journal_mode=WAL``, waiting for a busy file as every other statement does.

    Switching the journal mode needs the file to itself, and SQLite answers "database is locked" at once,
    without the busy timeout, while another connection holds a lock: two processes opening a new
    database together (the first converting it) would otherwise fail at random. A file already in WAL
    mode (every one after its first opening) is only read, so a connection never asks for that lock."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def shown(location: Any) -> str:
    """A database location for messages: URLs without their password."""
    text = str(location)
    if "://" not in text:
        return text
    try:
        return make_url(text).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return text


def database_error(location: Any, exc: BaseException, doing: str = "write to",
                   what: str = "results database") -> StoreError:
    """One line for a failed database operation, with the likely cause of the common SQLite failures."""
    reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    hints = {
        "database is locked": f"another process held it for {SQLITE_BUSY_TIMEOUT_S} s; for many local workers "
                              "use --storage journal:PATH, for many machines PostgreSQL",
        "readonly": "the file or its folder is read-only",
        "disk is full": "free some disk space",
        "disk I/O error": "the disk may be full, the file size limited or the device failing",
        "malformed": "the file is damaged; restore it from a copy (PRAGMA integrity_check lists the damage)",
        "not a database": "the file is damaged or not an SQLite database",
    }
    hint = next((text for key, text in hints.items() if key in reason), None)
    return StoreError(f"cannot {doing} {what} {shown(location)}: {reason}" + (f" ({hint})" if hint else ""))


def _resolve(location: str | Path | None) -> str | Path:
    """``--db`` as given, else $BNEXTBENCH_DB, else results/bnextbench.db; an empty one is an error, not the default."""
    if location is not None and not str(location).strip():
        raise StoreError("--db is empty: give a file path or an SQLAlchemy URL")
    return location or os.environ.get("BNEXTBENCH_DB") or DEFAULT_DB


class Store:
    """A results database; ``location`` is an SQLAlchemy URL or a file path (SQLite)."""

    def __init__(self, location: str | Path | None = None):
        location = _resolve(location)
        text = str(location)
        if "://" not in text:
            path = Path(text)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of database {path}: {exc.strerror}") from None
            text = f"sqlite:///{path}"
        self.url = text
        try:
            self.engine = create_engine(text, **engine_options(text))
        except (ArgumentError, ValueError, ImportError) as exc:  # malformed URL, unknown dialect, no driver
            raise StoreError(f"cannot use results database {shown(location)}: {exc}") from None
        use_sqlite_wal(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self._migrate()
            self._mark_dead_runs_interrupted()
        except (OperationalError, DatabaseError) as exc:
            raise database_error(location, exc, "open") from None

    @classmethod
    def existing(cls, location: str | Path | None = None) -> Store:
        """The results database of a command that only reads: a missing SQLite file is an error, never made."""
        text = str(_resolve(location))
        if "://" not in text and not Path(text).is_file():
            raise StoreError(f"no results database at {text}; train or search first")
        return cls(text)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """One write transaction; a database failure becomes one StoreError line and nothing is written."""
        try:
            with self.session() as session, session.begin():
                yield session
        except (OperationalError, DatabaseError) as exc:
            raise database_error(self.url, exc) from None

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held by one process at a time per database: a lock file beside an SQLite file, an advisory
        lock on PostgreSQL. Serialises schema migrations and the set-up of a shared study."""
        path = sqlite_path(self.url)
        if self.engine.dialect.name == "postgresql":
            with self.engine.begin() as connection:
                connection.execute(select(func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
                yield
        elif path is not None:
            from filelock import FileLock, Timeout

            try:
                lock = FileLock(f"{path}-lock", timeout=10 * SQLITE_BUSY_TIMEOUT_S)
                lock.acquire()
            except Timeout:
                raise StoreError(f"another process kept {path}-lock for {10 * SQLITE_BUSY_TIMEOUT_S} s") from None
            except OSError as exc:
                raise StoreError(f"cannot lock results database {path}: {exc.strerror or exc}") from None
            try:
                yield
            finally:
                lock.release()
        else:  # in-memory SQLite, other servers: nothing to share
            yield

    def _migrate(self) -> None:
        """Bring the schema to the newest revision (a new database is made by the same migrations)."""
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", "bnextbench:migrations")
        scripts = ScriptDirectory.from_config(config)
        head = scripts.get_current_head()

        def revision(connection: Connection) -> str | None:
            return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()

        with self.engine.connect() as connection:
            if revision(connection) == head:
                return
        try:
            with self.exclusive(), self.engine.begin() as connection:
                if connection.dialect.name == "sqlite":
                    # SQLite alters a table by copying it; with foreign keys on, dropping the old copy of a table
                    # that others reference fails. The switch only takes effect outside a transaction, so it
                    # comes first; pysqlite runs DDL outside any transaction unless told, hence BEGIN.
                    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                self._upgrade(connection, config, scripts, revision(connection), head)
        finally:
            self.engine.dispose()  # new connections get foreign keys (and the other pragmas) back

    def _upgrade(self, connection: Connection, config, scripts, current: str | None, head: str) -> None:
        """Run the migrations from ``current`` to ``head`` on ``connection`` (inside its transaction)."""
        from alembic import command

        if current == head:
            return
        if current is not None and current not in {script.revision for script in scripts.walk_revisions()}:
            raise StoreError(f"results database {self.url} has schema {current}, newer than this bnextbench "
                             f"knows ({head}); upgrade bnextbench")
        config.attributes["connection"] = connection
        if current is None and inspect(connection).has_table("runs"):
            command.stamp(config, FIRST_REVISION)  # written by bnextbench 0.1, before migrations existed
        command.upgrade(config, "head")
        if connection.dialect.name == "sqlite":  # the copies must still fit together
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise StoreError(f"migrating {self.url} would break {len(broken)} foreign key(s); nothing was changed")

    def _mark_dead_runs_interrupted(self) -> None:
        host = socket.gethostname()
        with self.session() as session:
            dead = [run.id for run in session.scalars(select(Run).where(Run.status == "running", Run.host == host))
                    if not pid_alive(run.pid)]
        if dead:
            with self._writing() as session:
                for run in session.scalars(select(Run).where(Run.id.in_(dead), Run.status == "running")):
                    run.status = "interrupted"
                    run.message = run.message or "the process ended without finishing the run"

    def create_run(self, protocol: Protocol, **fields: Any) -> int:
        """A new "running" row trained under ``protocol``; ``fields`` are the other columns."""
        with self._writing() as session:
            run = Run(host=socket.gethostname(), pid=os.getpid(), data=protocol.data, resolution=protocol.resolution,
                      train_limit=protocol.train_limit, holdout=protocol.holdout, recipe=protocol.recipe.to_dict(),
                      seed=protocol.seed,
                      teacher=protocol.teacher, protocol_key=protocol.key, protocol_group=protocol.group_key,
                      **fields)
            session.add(run)
            session.flush()
            return run.id

    def update_run(self, run_id: int, **fields: Any) -> None:
        with self._writing() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise StoreError(f"no run {run_id} in {self.url}")
            for key, value in fields.items():
                setattr(run, key, value)

    def record_epoch(self, run_id: int, epochs_done: int, **metrics: float) -> None:
        """Add one epoch's metrics and advance the run, in one transaction."""
        with self._writing() as session:
            run = session.get(Run, run_id)
            run.epochs_done = epochs_done
            session.add(EpochMetric(run_id=run_id, **metrics))

    def discard_epochs_after(self, run_id: int, epoch: int) -> None:
        """Drop metrics of epochs after ``epoch`` (their checkpoint was never written)."""
        with self._writing() as session:
            for metric in session.scalars(select(EpochMetric).where(EpochMetric.run_id == run_id,
                                                                    EpochMetric.epoch > epoch)):
                session.delete(metric)

    def record_trial(self, **fields: Any) -> None:
        """One row per trial number of a study; ``worker`` defaults to this process."""
        with self._writing() as session:
            session.add(SearchTrial(**{"worker": worker_identity(), **fields}))

    def record_failed_trial(self, study: str, trial_number: int, **fields: Any) -> None:
        """Keep a trial whose worker died as "failed": a new row, or its row if it had written one."""
        with self._writing() as session:
            row = session.scalars(select(SearchTrial).where(SearchTrial.study == study,
                                                            SearchTrial.trial_number == trial_number)).first()
            if row is None:
                session.add(SearchTrial(study=study, trial_number=trial_number, state="failed", **fields))
            else:
                row.state = "failed"

    def trials(self, study: str) -> list[SearchTrial]:
        with self.session() as session:
            return list(session.scalars(select(SearchTrial).where(SearchTrial.study == study)
                                        .order_by(SearchTrial.trial_number)))

    def trial_run(self, study: str, trial_number: int) -> Run | None:
        """The run a search started for this trial (the newest, if a trial was ever started twice)."""
        with self.session() as session:
            return session.scalars(select(Run).where(Run.study == study, Run.trial_number == trial_number)
                                   .order_by(Run.id.desc())).first()

    def find_completed_run(self, candidate: str, protocol: Protocol) -> Run | None:
        """The first completed training (or supernet) run of ``candidate`` (its name) under exactly ``protocol``
        (one indexed lookup); evaluations of a checkpoint trained nothing and do not count."""
        with self.session() as session:
            return session.scalars(select(Run).where(Run.protocol_key == protocol.key, Run.candidate == candidate,
                                                     Run.status == "completed", Run.kind != "evaluate")
                                   .order_by(Run.id)).first()

    def completed_runs(self, protocol_group: str | None = None) -> list[Run]:
        """Completed training runs (not supernets) with a top-1, optionally only those under one protocol group
        (any seed)."""
        query = select(Run).where(Run.status == "completed", Run.kind == "train", Run.top1.is_not(None))
        if protocol_group is not None:
            query = query.where(Run.protocol_group == protocol_group)
        with self.session() as session:
            return list(session.scalars(query.order_by(Run.id)))

    def study_runs(self, study: str) -> list[Run]:
        """The runs a search study trained, by trial."""
        with self.session() as session:
            return list(session.scalars(select(Run).where(Run.study == study).order_by(Run.trial_number, Run.id)))

    def get_run(self, run_id: int) -> Run:
        """The run with id ``run_id``; an id no database integer can hold is simply not there."""
        if isinstance(run_id, bool) or not isinstance(run_id, int) or not 0 < run_id < 2**63:
            raise StoreError(f"no run {brief(run_id)} in {self.url}")
        with self.session() as session:
            run = session.get(Run, run_id, options=[selectinload(Run.epochs)])  # metrics loaded with the run
            if run is None:
                raise StoreError(f"no run {run_id} in {self.url}")
            return run

    def runs(self) -> Iterator[Run]:
        with self.session() as session:
            yield from session.scalars(select(Run).order_by(Run.id))


def run_summary(run: Run) -> dict[str, Any]:
    """A JSON-ready view of a run."""
    keys = ("id", "status", "kind", "model", "candidate", "width_mult", "arch_hash", "data", "resolution",
            "train_limit", "holdout", "num_classes", "seed", "teacher", "device", "protocol_key", "study",
            "trial_number", "epochs_planned", "epochs_done", "top1", "top5", "train_images_per_s", "eval_images_per_s",
            "skipped_images", "checkpoint", "message")
    summary = {key: getattr(run, key) for key in keys}
    summary["created_at"] = run.created_at.isoformat()
    return json.loads(json.dumps(summary, default=str))
