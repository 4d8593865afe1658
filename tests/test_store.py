"""Store conformance: the same cases against every backend (SQLite file, PostgreSQL server), as Optuna
tests its storages. PostgreSQL cases skip where no server can be started (.ci/run makes them mandatory)."""

from __future__ import annotations

import os
import socket

import pytest

from bnextbench.store import Store, StoreError
from bnextbench.train import Recipe
from bnextbench.train.protocol import Protocol

BACKENDS = ("sqlite", "postgresql")
PROTOCOL = Protocol("digits", 16, 120, Recipe(epochs=2, batch_size=40, seed=0))


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path) -> Store:
    if request.param == "sqlite":
        opened = Store(tmp_path / "results.db")
    else:
        opened = Store(request.getfixturevalue("postgres"))
    yield opened
    opened.engine.dispose()


def _run(store: Store, protocol: Protocol = PROTOCOL, candidate: str = "bnext-spec-0123456789abcdef",
         status: str = "completed", top1: float | None = 50.0, **fields) -> int:
    run_id = store.create_run(protocol, model=candidate, candidate=candidate, width_mult=1.0, num_classes=10,
                              device="cpu", versions={"bnextbench": "test"}, epochs_planned=protocol.recipe.epochs,
                              **fields)
    store.update_run(run_id, status=status, top1=top1)
    return run_id


def test_a_run_keeps_its_protocol_in_typed_columns(store):
    run = store.get_run(_run(store, study="s", trial_number=3))
    assert (run.candidate, run.data, run.resolution, run.train_limit, run.seed) == (
        "bnext-spec-0123456789abcdef", "digits", 16, 120, 0)
    assert run.protocol_key == PROTOCOL.key and run.protocol_group == PROTOCOL.group_key
    assert run.protocol.key == PROTOCOL.key  # rebuilt from the columns, the same protocol
    assert run.recipe == PROTOCOL.recipe.to_dict() and (run.study, run.trial_number) == ("s", 3)


def test_completed_run_is_found_by_candidate_and_exact_protocol(store):
    first = _run(store)
    _run(store)  # a second completed run of the same experiment: the first is the answer
    _run(store, candidate="bnext-spec-ffffffffffffffff")
    _run(store, protocol=PROTOCOL.with_seed(1))
    _run(store, candidate="reactnet_a x0.5", status="pruned")
    assert store.find_completed_run("bnext-spec-0123456789abcdef", PROTOCOL).id == first
    assert store.find_completed_run("reactnet_a x0.5", PROTOCOL) is None  # pruned runs are not reused
    assert store.find_completed_run("bnext-spec-0123456789abcdef", PROTOCOL.with_seed(2)) is None
    longer = Protocol(PROTOCOL.data, PROTOCOL.resolution, PROTOCOL.train_limit, Recipe(epochs=3, batch_size=40))
    assert store.find_completed_run("bnext-spec-0123456789abcdef", longer) is None


def test_a_protocol_group_holds_every_seed_and_nothing_else(store):
    seeds = [_run(store, protocol=PROTOCOL.with_seed(seed)) for seed in (0, 1, 2)]
    _run(store, protocol=Protocol("digits", 24, 120, PROTOCOL.recipe))  # another resolution
    _run(store, status="failed", top1=None)
    assert PROTOCOL.with_seed(5).group_key == PROTOCOL.group_key != PROTOCOL.with_seed(5).key
    assert [run.id for run in store.completed_runs(PROTOCOL.group_key)] == seeds
    assert len(store.completed_runs()) == 4


def test_trial_run_is_the_newest_run_of_that_trial(store):
    _run(store, study="s", trial_number=1)
    newer = _run(store, study="s", trial_number=1, status="running", top1=None)
    _run(store, study="other", trial_number=1)
    assert store.trial_run("s", 1).id == newer
    assert store.trial_run("s", 2) is None
    assert [run.id for run in store.study_runs("s")] == [newer - 1, newer]


def test_epochs_after_a_checkpoint_are_discarded(store):
    run_id = _run(store, status="running", top1=None)
    for epoch in range(3):
        store.record_epoch(run_id, epoch + 1, epoch=epoch, train_loss=1.0, train_top1=10.0, test_loss=1.0,
                           test_top1=10.0 + epoch, test_top5=50.0, lr=1e-3, tau=1.0, seconds=1.0, images_per_s=9.0)
    store.discard_epochs_after(run_id, 0)
    run = store.get_run(run_id)
    assert [m.epoch for m in run.epochs] == [0] and run.epochs_done == 3


def _trial(**fields) -> dict:
    return {"study": "s", "trial_number": 0, "candidate_name": "bnext-spec-0123456789abcdef",
            "candidate": {"family": "bnext"}, "bops": 52_150_000_000, "flops": 1.0, "ops": 2.0, "params": 3, **fields}


def test_one_row_per_trial_with_64_bit_bops(store):
    store.record_trial(state="complete", top1=10.0, **_trial())
    with pytest.raises(StoreError):
        store.record_trial(state="complete", top1=11.0, **_trial())  # the unique (study, trial) index
    store.record_failed_trial("s", 0)
    store.record_failed_trial("s", 1, **{k: v for k, v in _trial().items() if k not in ("study", "trial_number")})
    rows = store.trials("s")
    assert [(r.trial_number, r.state) for r in rows] == [(0, "failed"), (1, "failed")]
    assert rows[0].bops == 52_150_000_000 and rows[0].worker == f"{socket.gethostname()}:{os.getpid()}"


def test_a_dead_running_run_is_marked_interrupted_on_open(store):
    run_id = _run(store, status="running", top1=None)
    store.update_run(run_id, pid=2**22 + 12345)  # beyond the kernel's pid range: no such process
    reopened = Store(store.url)
    run = reopened.get_run(run_id)
    assert run.status == "interrupted" and "ended without finishing" in run.message
    reopened.engine.dispose()
