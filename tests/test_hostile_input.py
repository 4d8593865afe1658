"""Hostile and malformed input, class by class: each is a short one-line error (exit 2 on the command line), found
before any work, with nothing written; beside them, generated input drives the parsers and the range checks."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bnextbench import data as data_module
from bnextbench import limits
from bnextbench.data import DataError, load_data
from bnextbench.errors import BnextbenchError, BnextbenchWarning
from bnextbench.search import parse_budgets
from bnextbench.search.budget import parse_budget
from bnextbench.search.space import MAX_SPACE_NODES, SpaceError, load_space, space_from_dict

from .test_train import _digit_folder

SHORT = 300  # characters: what "one line" means whatever the input was


def _alias_bomb(levels: int = 9) -> str:
    """A few hundred bytes whose aliases expand to 9**levels strings (a "billion laughs" file)."""
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines + ["family: bnext", f"model: *l{levels - 1}"]) + "\n"


def test_alias_bomb_is_refused_at_once_with_a_short_message(tmp_path, run_cli):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb())
    assert len(bomb.read_bytes()) < 600
    started = time.perf_counter()
    with pytest.raises(SpaceError, match="expands to more than") as caught:
        load_space(bomb)
    assert time.perf_counter() - started < 10 and len(str(caught.value)) < SHORT
    code, out, err = run_cli("search", "--budget", "1GBOPs", "--space", str(bomb), "--db", str(tmp_path / "r.db"))
    assert code == 2 and err.count("\n") == 1 and len(err) < SHORT and "Traceback" not in err
    assert not (tmp_path / "r.db").exists()


def test_a_space_that_expands_a_little_still_loads(tmp_path):
    """Aliases themselves are fine: the bound is on what they expand to."""
    space = tmp_path / "space.yaml"
    space.write_text("family: bnext\nstem_width: 16\ndepth: &d [1, 2]\nwidth_mult: &w [0.25, 0.5]\n")
    assert load_space(space).choices["depth_0"] == [1, 2]
    deep = _alias_bomb(levels=6)  # 9**6 = 531 441 values: over the bound
    assert 9**6 > MAX_SPACE_NODES
    (tmp_path / "deep.yaml").write_text(deep)
    with pytest.raises(SpaceError, match="expands"):
        load_space(tmp_path / "deep.yaml")


def test_recursive_alias_is_refused(tmp_path):
    (tmp_path / "loop.yaml").write_text("a: &a [*a]\nfamily: bnext\n")
    with pytest.raises(SpaceError, match="expands"):
        load_space(tmp_path / "loop.yaml")


@pytest.mark.parametrize("text, fragment", [
    ("family: [bnext]\n", "family must be one of"),
    ("family: bnext\nbase: [bnext_tiny]\nstem_width: 16\ndepth: [1]\n", "base must be one of"),
    ("family: bnext\n1: 2\n", "option names must be text, got 1"),
    ("family: registry\nmodel: {a: 1}\nwidth_mult: [1.0]\n", "model must be a registered model"),
    ("family: bnext\nstem_width: [" + ", ".join(["'" + "x" * 500 + "'"] * 50) + "]\ndepth: [1]\n",
     "stem_width: 'xxx"),
])
def test_spaces_of_the_wrong_shape_are_short_errors(tmp_path, text, fragment):
    (tmp_path / "space.yaml").write_text(text)
    with pytest.raises(SpaceError) as caught:
        load_space(tmp_path / "space.yaml")
    assert fragment in str(caught.value) and len(str(caught.value)) < SHORT


@pytest.mark.parametrize("option, value, fragment", [
    ("--resolution", "1", "--resolution must be an integer in [8, 1024], got 1"),
    ("--resolution", "100000", "--resolution must be an integer in [8, 1024]"),
    ("--width-mult", "inf", "--width-mult must be a finite number in (0, 8]"),
    ("--width-mult", "1000", "--width-mult must be a finite number in (0, 8]"),
    ("--lr", "-1", "--lr must be a finite number in (0, inf)"),
    ("--lr", "nan", "--lr must be a finite number in (0, inf), got nan"),
    ("--label-smoothing", "2", "--label-smoothing must be a finite number in [0, 1)"),
    ("--device", "foo", "--device must be cpu, cuda or cuda:N, got 'foo'"),
    ("--seed", str(2**70), "--seed must be an integer in [0, 4294967295]"),
    ("--epochs", "0", "--epochs must be an integer in [1, 100000]"),
    ("--batch-size", "0", "--batch-size must be an integer in [1, 65536]"),
    ("--train-limit", "0", "--train-limit must be an integer in [1, "),
    ("--sign-at", "0", "--sign-at must be a finite number in (0, 1]"),
    ("--tau-decay", "1", "--tau-decay must be a finite number in (0, 1)"),
])
def test_numeric_options_are_checked_before_any_work(tmp_path, run_cli, option, value, fragment):
    db = tmp_path / "r.db"
    code, out, err = run_cli("train", "bnext_tiny", option, value, "--epochs" if option != "--epochs" else "--seed",
                             "1" if option != "--epochs" else "0", "--db", str(db))
    assert code == 2 and fragment in err and err.count("\n") == 1, err
    assert not db.exists()  # refused before the results database is opened


@pytest.mark.parametrize("args, fragment", [
    (("search", "--budget", "1GBOPs", "--resolution", "4"), "--resolution must be an integer in [8, 1024]"),
    (("search", "--budget", "1GBOPs", "--study", "../../../escaped"), "study name '../../../escaped' must be"),
    (("search", "--budget", "1GBOPs", "--study", "s" * 300), "must be 1 to 128 letters"),
    (("search", "--budget", "1GBOPs", "--study", "a/b"), "as it names a folder"),
    (("search", "--budget", "1GBOPs", "--trials", "0"), "--trials must be an integer in [1, "),
    (("search", "--budget", "1GBOPs", "--heartbeat", "0"), "--heartbeat must be an integer in [1, "),
    (("search", "--budget", "1GBOPs", "--noise-seeds", "-1"), "--noise-seeds must be an integer in [0, 100]"),
    (("search", "--budget", "1GBOPs", "--strategy", "oneshot", "--retrain", "-1"), "--retrain must be"),
    (("search", "--budget", "1GBOPs", "--device", "tpu"), "--device must be cpu, cuda or cuda:N"),
])
def test_search_options_are_checked_before_any_work(tmp_path, run_cli, args, fragment):
    db = tmp_path / "r.db"
    code, out, err = run_cli(*args, "--db", str(db))
    assert code == 2 and fragment in err and err.count("\n") == 1, err
    assert not db.exists()


def test_help_states_every_range(run_cli):
    code, out, _ = run_cli("train", "--help")
    text = " ".join(out.replace("│", " ").split())  # rich's help panel, its borders and line breaks removed
    for limit in (limits.EPOCHS, limits.LR, limits.RESOLUTION, limits.WIDTH_MULT, limits.LABEL_SMOOTHING,
                  limits.SEED, limits.SIGN_AT, limits.TAU_DECAY):
        assert limit.text() in text, limit.label


# Image folders that are damaged or hostile.

def test_an_empty_or_false_first_image_is_named(tmp_path):
    root = _digit_folder(tmp_path / "d", {"train": [0, 1], "val": [0, 1]})
    first = root / "train" / "digit0" / "0.png"
    first.write_bytes(b"")
    with pytest.raises(DataError, match=f"cannot decode image {first}"):
        load_data(f"imagefolder:{root}")  # the default resolution is read from this very image
    first.write_text("this is text, not a PNG")
    with pytest.raises(DataError, match=f"cannot decode image {first}"):
        load_data(f"imagefolder:{root}", resolution=8)


def test_a_symlink_loop_is_named(tmp_path):
    root = _digit_folder(tmp_path / "d", {"train": [0, 1], "val": [0, 1]})
    loop = root / "train" / "digit1" / "loop.png"
    os.symlink(loop, loop)
    with pytest.raises(DataError, match=f"cannot read {loop}"):
        load_data(f"imagefolder:{root}", resolution=8)


def test_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("BNEXTBENCH_CACHE", str(tmp_path / "cache"))
    root = _digit_folder(tmp_path / "d", {"train": [0, 1], "val": [0, 1]})
    first = load_data(f"imagefolder:{root}", resolution=8)
    (cache,) = (tmp_path / "cache" / "data").glob("*.pt")
    cache.write_bytes(cache.read_bytes()[:100])  # truncated, as a full disk or a killed copy leaves it
    with pytest.warns(BnextbenchWarning, match="damaged cache"):
        again = load_data(f"imagefolder:{root}", resolution=8)
    assert torch.equal(first.train_images, again.train_images)
    assert torch.load(cache, weights_only=True)["train_images"].shape == first.train_images.shape  # rewritten
    torch.save({"train_images": torch.zeros(3)}, cache)  # a valid file with the wrong payload
    with pytest.warns(BnextbenchWarning, match="damaged cache"):
        assert torch.equal(load_data(f"imagefolder:{root}", resolution=8).test_images, first.test_images)


def test_an_unwritable_cache_file_warns_and_goes_on(tmp_path, monkeypatch):
    """The cache cannot be written (a file stands where its folder should be): the data loads all the same."""
    monkeypatch.setenv("BNEXTBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    root = _digit_folder(tmp_path / "d", {"train": [0, 1], "val": [0, 1]})
    with pytest.warns(BnextbenchWarning, match="not cached"):
        assert load_data(f"imagefolder:{root}", resolution=8).train_images.shape == (8, 3, 8, 8)


def test_a_one_class_folder_is_refused(tmp_path):
    root = _digit_folder(tmp_path / "d", {"train": [3], "val": [3]})
    with pytest.raises(DataError, match="1 class folder"):
        load_data(f"imagefolder:{root}")


def test_a_set_that_cannot_fit_in_memory_is_refused_before_decoding():
    with pytest.raises(DataError, match="need .* GiB decoded, more than this machine's"):
        data_module._check_fits_memory(10**9, 1024)


# Generated input: the promise is a BnextbenchError with a short message, or a valid result; nothing else.

def _assert_one_short_line(error: BnextbenchError) -> None:
    assert len(str(error)) < SHORT and "\n" not in str(error)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.from_regex(r"-?[0-9.e+]{1,12}[kKmMgGtTx]?(bops|flops|ops|params|mib|x)?",
                                            fullmatch=True))
def test_budget_parser_on_generated_text(text):
    try:
        budget = parse_budget(text)
    except BnextbenchError as exc:
        _assert_one_short_line(exc)
    else:
        assert budget.limit > 0 and math.isfinite(budget.limit) and budget.metric
        assert parse_budgets([text])[0] == budget


_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12) | st.integers(), inner,
                                                                  max_size=5),
    max_leaves=30)
_space_keys = st.sampled_from(["family", "base", "stem_width", "aux_bits", "width_mult", "depth", "elm_attention",
                               "info_recoupling", "se_ratio", "kernel_size", "model", "from", "other"])
_space_like = st.dictionaries(_space_keys, _yaml_values | st.sampled_from(["bnext", "registry", "bnext_tiny"]),
                              max_size=8).map(lambda d: {"family": "bnext", **d} if len(d) % 2 else d)


@settings(max_examples=300, deadline=None)
@given(_space_like)
def test_space_loader_on_generated_definitions(definition):
    try:
        space = space_from_dict(definition)
    except BnextbenchError as exc:
        _assert_one_short_line(exc)
    else:
        assert space.family in ("bnext", "registry")


@settings(max_examples=100, deadline=None)
@given(_yaml_values)
def test_space_files_on_generated_yaml(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(yaml.safe_dump(value) if not isinstance(value, str) else value)
    try:
        load_space(path)
    except BnextbenchError as exc:
        _assert_one_short_line(exc)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([getattr(limits, name) for name in dir(limits) if isinstance(getattr(limits, name),
                                                                                    limits.Limit)]),
       st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.floats() | st.text(max_size=10))
def test_option_ranges_on_generated_values(limit, value):
    try:
        assert limit.check(value) is value
    except BnextbenchError as exc:
        assert str(exc).startswith(f"{limit.label} must be ") and len(str(exc)) < SHORT
    else:
        assert limit.low <= value <= limit.high and (not limit.integer or isinstance(value, int))


# Interrupts: Ctrl-C exits 130 with one line, and every record stays consistent.

def _interrupt_when(args: list[str], cwd, ready, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``bnextbench ARGS`` in a process of its own, send SIGINT once ``ready()`` holds, return its result."""
    process = subprocess.Popen([sys.executable, "-m", "bnextbench", *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    try:
        while not ready():
            if process.poll() is not None or time.time() > deadline:
                out, err = process.communicate()
                pytest.fail(f"never ready to interrupt (exit {process.returncode}): {err[-500:]}")
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def _rows(db, query: str) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute(query).fetchall()
        except sqlite3.OperationalError:  # tables not created yet
            return []


def _integrity(db) -> str:
    with sqlite3.connect(db) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_ctrl_c_during_train_exits_130_and_keeps_the_run_interrupted(tmp_path):
    db = tmp_path / "r.db"
    result = _interrupt_when(["train", "bnext_tiny", "--epochs", "50", "--train-limit", "400", "--batch-size", "20",
                              "--db", str(db), "--out", str(tmp_path / "run")], tmp_path,
                             lambda: (tmp_path / "run" / "last.pt").is_file())
    assert result.returncode == 130 and result.stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in result.stderr
    assert _rows(db, "SELECT status FROM runs") == [("interrupted",)] and _integrity(db) == "ok"
    assert (tmp_path / "run" / "last.pt").is_file()  # the epoch it finished is kept, to resume from


def test_ctrl_c_during_search_exits_130_and_keeps_the_trial(tmp_path):
    db = tmp_path / "r.db"
    space = tmp_path / "space.yaml"
    space.write_text((Path(__file__).parent / "data" / "small-space.yaml").read_text())
    result = _interrupt_when(["search", "--budget", "20MBOPs", "--space", str(space), "--trials", "4", "--epochs",
                              "30", "--train-limit", "240", "--batch-size", "20", "--sampler", "random",
                              "--pruner", "none", "--study", "stopped", "--noise-seeds", "0", "--db", str(db)],
                             tmp_path, lambda: bool(_rows(db, "SELECT id FROM epoch_metrics")))
    assert result.returncode == 130 and result.stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in result.stderr and "KeyboardInterrupt" not in result.stderr
    trials = _rows(db, "SELECT state, run_id FROM search_trials")
    runs = dict(_rows(db, "SELECT id, status FROM runs"))
    (interrupted_run,) = [run_id for state, run_id in trials if state == "interrupted"]
    assert runs[interrupted_run] == "interrupted" and _integrity(db) == "ok"


# Start-up: once the entry point runs (before it, Python starts and finds the package: milliseconds that are the
# interpreter's), Ctrl-C is an interrupt like any other, whatever is loading: the command line, torch's C++ core.
_STARTED_THEN_RUN = "from bnextbench.__main__ import run; print('started', flush=True); run()"


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3, 0.6])
def test_ctrl_c_during_start_up_exits_130_with_one_line(tmp_path, delay):
    process = subprocess.Popen([sys.executable, "-c", _STARTED_THEN_RUN, "models"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "started\n"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert (process.returncode, err) == (130, "error: interrupted\n")


# Divergence: a run whose loss leaves the finite numbers is "diverged", with a message that says so.

def test_a_diverging_run_is_diverged_not_a_database_fault(tmp_path, run_cli):
    db = tmp_path / "r.db"
    code, out, err = run_cli("train", "bnext_tiny", "--lr", "1e30", "--epochs", "2", "--train-limit", "40",
                             "--batch-size", "20", "--db", str(db), "--out", str(tmp_path / "run"))
    assert code == 2 and err.count("\n") == 1 and "diverged:" in err and "no checkpoint is kept" in err, err
    assert "NOT NULL" not in err
    assert _rows(db, "SELECT status FROM runs") == [("diverged",)] and _integrity(db) == "ok"
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_diverging_search_trial_is_kept_as_diverged(tmp_path, monkeypatch, caplog):
    import optuna

    from bnextbench.search.study import Search, SearchConfig
    from bnextbench.store import Store

    monkeypatch.chdir(tmp_path)
    optuna.logging.enable_propagation()  # so that caplog sees what Optuna's handler prints
    space = tmp_path / "space.yaml"
    space.write_text((Path(__file__).parent / "data" / "small-space.yaml").read_text())
    config = SearchConfig(budgets=parse_budgets(["20MBOPs"]), space=space, data="digits", trials=2, epochs=1,
                          train_limit=40, batch_size=20, sampler="random", pruner="none", study="nan", lr=1e30)
    try:
        result = Search.configure(config).run(Store(tmp_path / "r.db"), progress=False)
    finally:
        optuna.logging.disable_propagation()
    assert {t["state"] for t in result["trials"]} <= {"diverged", "infeasible"}
    assert any(t["state"] == "diverged" for t in result["trials"])
    states = {state for (state,) in _rows(tmp_path / "r.db", "SELECT state FROM search_trials")}
    assert "diverged" in states and _integrity(tmp_path / "r.db") == "ok"
    told = [r for r in caplog.records if r.name.startswith("optuna") and "Trial" in r.getMessage()]
    assert any("stopped: diverged" in r.getMessage() for r in told)
    assert not any(r.exc_info for r in told)  # one plain line per trial, no traceback


# Outputs are checked before the work; malformed checkpoints and databases are short errors.

@pytest.mark.parametrize("args, fragment", [
    (("train", "bnext_tiny", "--epochs", "1", "--out", "AFILE"), "checkpoint folder AFILE is a file, not a folder"),
    (("teacher", "train", "resnet10t", "--epochs", "1", "--out", "AFILE/t.pt"), "AFILE is a file, not a folder"),
    (("teacher", "train", "resnet10t", "--epochs", "1", "--out", "ADIR"), "teacher ADIR is a folder, not a file"),
])
def test_outputs_that_cannot_be_written_are_refused_before_training(tmp_path, monkeypatch, run_cli, args, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "AFILE").write_text("in the way")
    (tmp_path / "ADIR").mkdir()
    code, out, err = run_cli(*args, "--db", str(tmp_path / "r.db"))
    assert code == 2 and fragment in err and err.count("\n") == 1, err
    assert not _rows(tmp_path / "r.db", "SELECT id FROM runs")  # no run was started, let alone completed


def _trained_checkpoint(tmp_path, run_cli) -> dict:
    code, _, err = run_cli("train", "bnext_tiny", "--width-mult", "0.25", "--epochs", "1", "--train-limit", "40",
                           "--batch-size", "20", "--db", str(tmp_path / "r.db"), "--out", str(tmp_path / "run"))
    assert code == 0, err
    return torch.load(tmp_path / "run" / "last.pt", weights_only=True)


def test_malformed_bnextbench_checkpoints_are_short_errors(tmp_path, run_cli):
    good = _trained_checkpoint(tmp_path, run_cli)
    cases = {
        "no-description": ({k: v for k, v in good.items() if k != "model_description"}, "does not record which model"),
        "empty-state": ({**good, "model": {}},
                        "the weights do not fit the model: 630 missing (first 'stem.conv.weight')"),
        "bad-kwargs": ({**good, "model_description": {**good["model_description"], "model": "bnext_tiny",
                                                      "arch_spec": None, "model_kwargs": {"no_such_arg": 1}}},
                       "cannot build bnext_tiny from the recorded arguments"),
        "wrong-shape": ({**good, "model": {k: (v[:1] if v.dim() else v) for k, v in good["model"].items()}},
                        "of another shape"),
    }
    for name, (payload, fragment) in cases.items():
        torch.save(payload, tmp_path / f"{name}.pt")
        code, out, err = run_cli("evaluate", str(tmp_path / f"{name}.pt"))
        assert code == 2 and fragment in err and err.count("\n") == 1 and len(err) < SHORT, (name, err)
    (tmp_path / "garbage.pt").write_bytes(b"PK\x03\x04" + bytes(200))
    code, _, err = run_cli("evaluate", str(tmp_path / "garbage.pt"))
    assert code == 2 and "cannot read checkpoint" in err and "weights_only=False" not in err
    assert not err.strip().rsplit(":", 1)[-1].strip().isdigit()  # a reason, not a bare number


def test_database_options_that_would_silently_make_a_database(tmp_path, monkeypatch, run_cli):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("runs", "--db", "")
    assert code == 2 and "--db is empty" in err and not (tmp_path / "results").exists()
    for args in (("show", "X"), ("runs",), ("compare",), ("plot", "curves", "1")):
        code, _, err = run_cli(*args, "--db", str(tmp_path / "missing.db"))
        assert code == 2 and "no results database at" in err, (args, err)
        assert not (tmp_path / "missing.db").exists()


def test_reference_tensors_of_the_wrong_kind_are_refused(tmp_path):
    import json as json_module

    from bnextbench.models.checkpoint import CheckpointError, import_reference_checkpoint

    from .helpers import REFERENCE_LISTING, reference_state

    if not REFERENCE_LISTING.is_file():
        pytest.skip(f"reference listing not found at {REFERENCE_LISTING}")
    state = reference_state(json_module.loads(REFERENCE_LISTING.read_text())["bnext_tiny"])
    floats = [name for name, tensor in state.items() if tensor.is_floating_point() and tensor.numel() > 1]
    state[floats[0]] = state[floats[0]].to(torch.int64)
    state[floats[1]] = torch.full_like(state[floats[1]], math.nan)
    state[floats[2]] = state[floats[2]].to(torch.complex64)
    torch.save(state, tmp_path / "ref.pth")
    with pytest.raises(CheckpointError) as caught:
        import_reference_checkpoint(tmp_path / "ref.pth", "bnext_tiny")
    message = str(caught.value)
    assert "wrong dtype (2)" in message and "torch.int64 where torch.float32 belongs" in message
    assert "complex64" in message and f"NaN or infinite values (1): {floats[1]}" in message
    assert "missing" not in message  # a refused tensor is named once, as refused


def test_markdown_report_keeps_hostile_names_as_text():
    from bnextbench.report.board import Leaderboard, Section
    from bnextbench.report.formats import to_markdown

    hostile = "<script>alert(1)</script>"
    row = {"candidate": hostile, "model": hostile, "top1": 50.0, "bops": 1.0, "ops": 1.0, "params": 1.0}
    board = Leaderboard([Section(f"study {hostile}", "local", f"imagefolder:/{hostile}", 32, [row])],
                        {"study": hostile}, hostile)
    text = to_markdown(board)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.splitlines()[2].startswith("study &lt;script&gt;")  # the headline under the title too


@pytest.mark.parametrize("args", [
    ("train", "bnext_tiny", "--data", "imagefolder:/nonexistent/x"),
    ("train", "bnext_tiny", "--teacher", "/nonexistent/t.pt"),
    ("train", "bnext_tiny", "--resume", "--out", "/nonexistent/run"),
    ("teacher", "train", "resnet10t", "--data", "imagefolder:/nonexistent/x"),
    ("supernet", "train", "--data", "imagefolder:/nonexistent/x"),
])
def test_refused_training_leaves_no_database_behind(tmp_path, run_cli, args):
    db = tmp_path / "r.db"
    code, _, err = run_cli(*args, "--db", str(db))
    assert code == 2 and err.count("\n") == 1, err
    assert not db.exists()


def test_run_ids_no_database_integer_holds_are_simply_absent(tmp_path, run_cli):
    db = tmp_path / "r.db"
    _trained_checkpoint(tmp_path, run_cli)
    for args in (("runs", "--run", str(2**70)), ("plot", "curves", str(2**70)), ("runs", "--run", "0")):
        code, _, err = run_cli(*args, "--db", str(db))
        assert code == 2 and err.startswith(f"error: no run {args[-1]} in sqlite:///") and "Overflow" not in err
    assert _integrity(db) == "ok"


def test_the_command_line_shows_a_rebuilt_cache_as_one_warning_line(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("BNEXTBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it; put it back after
    root = _digit_folder(tmp_path / "d", {"train": [0, 1], "val": [0, 1]})
    load_data(f"imagefolder:{root}", resolution=8)
    (cache,) = (tmp_path / "cache" / "data").glob("*.pt")
    cache.write_bytes(b"damaged")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, _, err = run_cli("train", "bnext_tiny", "--data", f"imagefolder:{root}", "--resolution", "8",
                               "--epochs", "1", "--batch-size", "4", "--db", str(tmp_path / "r.db"),
                               "--out", str(tmp_path / "run"))
    assert code == 0, err
    warned = [line for line in err.splitlines() if "damaged cache" in line]
    assert warned == [f"warning: damaged cache {cache}: decoding the images again"]
