"""`torchrun -m bnextbench train` on the CPU (gloo): real processes on the digits, one run, equal replicas,
exact resume, and the ways a group can fail."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import torch

from bnextbench.train.distributed import state_digest
from bnextbench.train.loop import LAST_CHECKPOINT, load_checkpoint_model

pytestmark = pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")

# 400 digits over 2 processes at a global batch of 32: 12 steps of 16 images per process and epoch.
TRAIN = ["train", "bnext_tiny", "--width-mult", "0.125", "--train-limit", "400", "--batch-size", "32",
         "--seed", "5", "--format", "json"]
DIGEST_LINE = re.compile(r"^rank (\d+)/(\d+) epoch (\d+)/(\d+) weights sha256 ([0-9a-f]{64})$", re.MULTILINE)


def _torchrun(folder: Path, *args: str, processes: int = 2) -> subprocess.Popen:
    """``torchrun --nproc-per-node PROCESSES -m bnextbench ARGS`` in ``folder``, a process group of its own."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "BNEXTBENCH_CACHE": str(folder / "cache")}
    return subprocess.Popen(["torchrun", "--standalone", "--nproc-per-node", str(processes), "-m", "bnextbench",
                             *args], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment, start_new_session=True)


def _finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        out, err = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _train(folder: Path, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    return _finish(_torchrun(folder, *TRAIN, "--db", "r.db", *args, processes=processes))


def _wait_for(process: subprocess.Popen, ready) -> None:
    """Poll until ``ready()`` holds; the test fails if the process ends first."""
    while not ready():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"ended before the moment to act (exit {process.returncode}): {err[-2000:]}")
        time.sleep(0.1)


def _runs(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute("SELECT id, status, world_size, epochs_done, message FROM runs").fetchall()
        except sqlite3.OperationalError:  # no tables yet
            return []


def _digests(stderr: str) -> dict[int, dict[int, str]]:
    """{epoch: {rank: digest}} as the processes printed them."""
    found: dict[int, dict[int, str]] = {}
    for rank, _size, epoch, _epochs, digest in DIGEST_LINE.findall(stderr):
        found.setdefault(int(epoch), {})[int(rank)] = digest
    return found


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """An uninterrupted 2-epoch run of two processes; its folder holds out.txt and err.txt beside its outputs."""
    folder = tmp_path_factory.mktemp("straight")
    result = _train(folder, "--epochs", "2", "--out", "run")
    (folder / "out.txt").write_text(result.stdout)
    (folder / "err.txt").write_text(result.stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def test_two_processes_train_one_run_with_equal_replicas(straight):
    runs = _runs(straight / "r.db")
    assert [(status, world_size, epochs_done) for _id, status, world_size, epochs_done, _m in runs] == [
        ("completed", 2, 2)]
    digests = _digests((straight / "err.txt").read_text())
    assert sorted(digests) == [1, 2]
    for epoch, by_rank in digests.items():
        assert sorted(by_rank) == [0, 1] and by_rank[0] == by_rank[1], epoch
    # the digest printed is that of the weights kept: the checkpoint holds what both ranks held after epoch 2
    assert state_digest(_weights(straight / "run" / LAST_CHECKPOINT)) == digests[2][0]
    assert digests[1][0] != digests[2][0]  # the weights did train


def test_rank_0_alone_writes(straight):
    out = (straight / "out.txt").read_text().strip().splitlines()
    assert len(out) == 1 and '"run_id": 1' in out[0]  # one record printed, by rank 0
    written = {str(path.relative_to(straight)) for path in straight.rglob("*")
               if path.is_file() and not path.name.startswith(("out.txt", "err.txt"))
               and "cache" not in path.parts}
    assert {name for name in written if not name.startswith("r.db")} == {f"run/{LAST_CHECKPOINT}"}
    model, payload = load_checkpoint_model(straight / "run" / LAST_CHECKPOINT)
    assert payload["world_size"] == 2 and payload["epoch"] == 1


def test_a_run_stopped_by_sigterm_resumes_to_the_uninterrupted_weights(straight, tmp_path):
    checkpoint = tmp_path / "run" / LAST_CHECKPOINT
    process = _torchrun(tmp_path, *TRAIN, "--db", "r.db", "--epochs", "2", "--out", "run")
    _wait_for(process, checkpoint.is_file)
    os.kill(process.pid, signal.SIGTERM)  # torchrun passes it on to both processes
    stopped = _finish(process)
    assert stopped.returncode != 0
    [(run_id, status, world_size, epochs_done, message)] = _runs(tmp_path / "r.db")
    assert (status, world_size, epochs_done) == ("interrupted", 2, 1), message
    # rank 0 meets either the signal or, first, the end of rank 1 (which met it) in a collective
    assert "SIGTERM" in message or "the process group broke" in message, message
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 0

    resumed = _train(tmp_path, "--epochs", "2", "--out", "run", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [row[:4] for row in _runs(tmp_path / "r.db")] == [(run_id, "completed", 2, 2)]
    assert sorted(_digests(resumed.stderr)) == [2]  # the resumed run trained epoch 2 only
    expected, got = _weights(straight / "run" / LAST_CHECKPOINT), _weights(checkpoint)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_more_processes_than_the_data_feeds_is_one_error_and_no_run(tmp_path):
    # 40 images over 4 processes: 10 each, fewer than a batch of 64 / 4 = 16.
    result = _train(tmp_path, "--epochs", "1", "--train-limit", "40", "--batch-size", "64", "--out", "run",
                    processes=4)
    assert result.returncode != 0
    assert _error_lines(result.stderr) == [
        "error: 40 training images cannot give each of 4 processes one batch of 16 (--batch-size 64 over 4); "
        "use fewer processes or a smaller --batch-size"], result.stderr[-3000:]
    assert _runs(tmp_path / "r.db") == [] and not (tmp_path / "run").exists()


def test_a_global_batch_that_does_not_split_evenly_is_refused(tmp_path):
    result = _train(tmp_path, "--epochs", "1", "--batch-size", "33", "--out", "run")
    assert result.returncode != 0
    assert _error_lines(result.stderr) == [
        "error: --batch-size 33 is the global batch and must split evenly over the 2 processes torchrun started"]
    assert _runs(tmp_path / "r.db") == [] and not (tmp_path / "run").exists()


def _worker_of(torchrun_pid: int, local_rank: int) -> int | None:
    """The pid of the process torchrun started for ``local_rank``, found by its parent and environment."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):  # gone meanwhile, or not ours to read
            continue
        if parent == torchrun_pid and f"LOCAL_RANK={local_rank}".encode() in environment:
            return int(entry.name)
    return None


def test_a_killed_rank_stops_the_others_and_the_run_is_interrupted(tmp_path):
    checkpoint = tmp_path / "run" / LAST_CHECKPOINT
    process = _torchrun(tmp_path, *TRAIN, "--db", "r.db", "--epochs", "20", "--out", "run")
    _wait_for(process, checkpoint.is_file)
    rank_1 = _worker_of(process.pid, 1)
    assert rank_1 is not None
    os.kill(rank_1, signal.SIGKILL)
    result = _finish(process)
    assert result.returncode != 0
    [(_id, status, world_size, epochs_done, message)] = _runs(tmp_path / "r.db")
    assert status == "interrupted" and world_size == 2 and 1 <= epochs_done < 20, (status, message)
    [error] = _error_lines(result.stderr)  # rank 0's, saying what the run records
    assert error == f"error: {' '.join(message.split())}", result.stderr[-3000:]
    model, payload = load_checkpoint_model(checkpoint)  # the last finished epoch, intact
    assert payload["epoch"] == epochs_done - 1
    assert state_digest(payload["model"]) == _digests(result.stderr)[epochs_done][0]


@pytest.mark.parametrize("command", [["search", "--budget", "2MBOPs"], ["supernet", "train"],
                                     ["teacher", "train", "resnet10t"]])
def test_other_commands_refuse_torchrun(command, tmp_path, monkeypatch, run_cli):
    # the environment torchrun gives rank 0 of two processes
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    code, out, err = run_cli(*command, "--db", str(tmp_path / "r.db"))
    assert code == 2 and err == f"error: only `bnextbench train` runs under torchrun, not `{command[0]}`; run it " \
                                "as one process\n"
    assert not (tmp_path / "r.db").exists()


REPLICA_CHECK = r"""
import sys

import torch
from bnextbench.train.distributed import ReplicasDiffer, World

world = World.from_environment()
with world.group(torch.device("cpu")):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    # One write a line: the two processes share a pipe, and print() writes a line's parts one by one.
    sys.stdout.write(f"equal {world.check_replicas(model, 'at the start') is not None}\n")
    if world.rank == 1:
        with torch.no_grad():
            model.weight[0, 0] += 1e-7  # the smallest change a float sum might hide
    try:
        world.check_replicas(model, "after the change")
    except ReplicasDiffer as exc:
        sys.stdout.write(f"rank {world.rank}: {exc}\n")
"""


def test_the_replica_check_sees_a_single_changed_weight(tmp_path):
    (tmp_path / "check.py").write_text(REPLICA_CHECK)
    process = subprocess.Popen(["torchrun", "--standalone", "--nproc-per-node", "2", "check.py"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    result = _finish(process)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = sorted(result.stdout.splitlines())
    assert lines == ["equal True", "equal True",
                     "rank 0: the processes hold different weights after the change: rank(s) 1 differ from rank 0",
                     "rank 1: the processes hold different weights after the change: rank(s) 1 differ from rank 0"]
