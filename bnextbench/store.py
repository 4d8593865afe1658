"""The results store: every run, its per-epoch metrics and final figures, in SQLite via SQLAlchemy 2.

The only module that touches the database. Each write is one transaction, so a crash leaves
either the previous row or the new one, never half of it. A run whose process died while it was
"running" is marked "interrupted" the next time the store is opened.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, create_engine, event, select
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from .errors import BnextbenchError

DEFAULT_DB = Path("results") / "bnextbench.db"
RUN_STATES = ("running", "completed", "interrupted", "diverged", "failed", "pruned")


class StoreError(BnextbenchError):
    pass


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    model: Mapped[str] = mapped_column(String(64))
    arch_spec: Mapped[dict[str, Any] | None]
    arch_hash: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(String(512))
    resolution: Mapped[int]
    num_classes: Mapped[int]
    recipe: Mapped[dict[str, Any]]
    seed: Mapped[int]
    teacher: Mapped[str | None] = mapped_column(String(512))
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
    complexity: Mapped[dict[str, Any] | None]
    message: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)

    epochs: Mapped[list[EpochMetric]] = relationship(back_populates="run", order_by="EpochMetric.epoch")


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
    """One trial of a search study and the run that trained it (none when infeasible or reused)."""

    __tablename__ = "search_trials"

    id: Mapped[int] = mapped_column(primary_key=True)
    study: Mapped[str] = mapped_column(String(255), index=True)
    trial_number: Mapped[int]
    candidate_hash: Mapped[str] = mapped_column(String(32), index=True)
    candidate: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    bops: Mapped[int]
    flops: Mapped[float] = mapped_column(Float)
    ops: Mapped[float] = mapped_column(Float)
    params: Mapped[int]
    top1: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=_now)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """A results database; ``url`` is an SQLAlchemy URL or a file path (SQLite)."""

    def __init__(self, location: str | Path | None = None):
        location = location or os.environ.get("BNEXTBENCH_DB") or DEFAULT_DB
        text = str(location)
        if "://" not in text:
            path = Path(text)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of database {path}: {exc.strerror}") from None
            text = f"sqlite:///{path}"
        self.url = text
        self.engine = create_engine(text)
        if text.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            Base.metadata.create_all(self.engine)
            self._mark_dead_runs_interrupted()
        except (OperationalError, DatabaseError) as exc:
            raise StoreError(f"cannot open results database {location}: {exc.orig}") from None

    def session(self) -> Session:
        return self._sessions()

    def _mark_dead_runs_interrupted(self) -> None:
        host = socket.gethostname()
        with self.session() as session, session.begin():
            for run in session.scalars(select(Run).where(Run.status == "running", Run.host == host)):
                if not pid_alive(run.pid):
                    run.status = "interrupted"
                    run.message = run.message or "the process ended without finishing the run"

    def create_run(self, **fields: Any) -> int:
        with self.session() as session, session.begin():
            run = Run(host=socket.gethostname(), pid=os.getpid(), **fields)
            session.add(run)
            session.flush()
            return run.id

    def update_run(self, run_id: int, **fields: Any) -> None:
        with self.session() as session, session.begin():
            run = session.get(Run, run_id)
            if run is None:
                raise StoreError(f"no run {run_id} in {self.url}")
            for key, value in fields.items():
                setattr(run, key, value)

    def record_epoch(self, run_id: int, epochs_done: int, **metrics: float) -> None:
        """Add one epoch's metrics and advance the run, in one transaction."""
        with self.session() as session, session.begin():
            run = session.get(Run, run_id)
            run.epochs_done = epochs_done
            session.add(EpochMetric(run_id=run_id, **metrics))

    def discard_epochs_after(self, run_id: int, epoch: int) -> None:
        """Drop metrics of epochs after ``epoch`` (their checkpoint was never written)."""
        with self.session() as session, session.begin():
            for metric in session.scalars(select(EpochMetric).where(EpochMetric.run_id == run_id,
                                                                    EpochMetric.epoch > epoch)):
                session.delete(metric)

    def record_trial(self, **fields: Any) -> None:
        with self.session() as session, session.begin():
            session.add(SearchTrial(**fields))

    def trials(self, study: str) -> list[SearchTrial]:
        with self.session() as session:
            return list(session.scalars(select(SearchTrial).where(SearchTrial.study == study)
                                        .order_by(SearchTrial.trial_number)))

    def find_completed_run(self, candidate_hash: str, protocol: dict[str, Any]) -> Run | None:
        """A completed run of the same candidate under the same protocol (data, resolution, recipe, limit)."""
        with self.session() as session:
            for run in session.scalars(select(Run).where(Run.status == "completed").order_by(Run.id)):
                if run.recipe.get("candidate") == candidate_hash and run.recipe.get("protocol") == protocol:
                    return run
        return None

    def get_run(self, run_id: int) -> Run:
        with self.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise StoreError(f"no run {run_id} in {self.url}")
            run.epochs  # load the metrics while the session is open
            return run

    def runs(self) -> Iterator[Run]:
        with self.session() as session:
            yield from session.scalars(select(Run).order_by(Run.id))


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def run_summary(run: Run) -> dict[str, Any]:
    """A JSON-ready view of a run."""
    keys = ("id", "status", "model", "arch_hash", "data", "resolution", "num_classes", "seed", "teacher", "device",
            "epochs_planned", "epochs_done", "top1", "top5", "train_images_per_s", "checkpoint", "message")
    summary = {key: getattr(run, key) for key in keys}
    summary["created_at"] = run.created_at.isoformat()
    return json.loads(json.dumps(summary, default=str))
