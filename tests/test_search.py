"""Budget-constrained search on the embedded digits data: budgets hold, studies resume, bad input fails cleanly."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from bnextbench.cli import count_field, main, trial_columns
from bnextbench.models import BNextSpec
from bnextbench.profiling import profile_spec
from bnextbench.search import parse_budgets
from bnextbench.search.study import Search, SearchConfig, SearchError
from bnextbench.search.summary import best_per_bucket, leaderboard, pareto_front
from bnextbench.store import Store

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "bnext.yaml"
SMALL_SPACE = (Path(__file__).parent / "data" / "small-space.yaml").read_text()


def small_config(tmp_path, **overrides) -> SearchConfig:
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_SPACE)
    settings = dict(budgets=parse_budgets(["20MBOPs"]), space=space, data="digits", trials=5, epochs=2,
                    train_limit=120, batch_size=40, sampler="random", pruner="none", study="small", seed=1)
    return SearchConfig(**{**settings, **overrides})


def test_search_trains_only_candidates_under_budget(tmp_path):
    store = Store(tmp_path / "r.db")
    result = Search.configure(small_config(tmp_path)).run(store, progress=False)
    trials = result["trials"]
    assert len([t for t in trials if t["state"] in ("complete", "pruned", "infeasible")]) == 5
    trained = [t for t in trials if t["state"] == "complete"]
    assert trained, "at least one candidate fits 20 M BOPs at 16 px"
    for trial in trained:
        spec = BNextSpec.from_dict(trial["arch"]["spec"])
        assert profile_spec(spec, 16).bops == trial["bops"] <= 20e6
        assert trial["budget_share"] == trial["bops"] / 20e6 and trial["epochs"] == 2
        run = store.get_run(trial["run_id"])
        assert run.status == "completed" and run.candidate == trial["candidate"]
    for trial in trials:
        if trial["state"] == "infeasible":
            assert trial["bops"] > 20e6 and trial["run_id"] is None and trial["budget_share"] > 1
    linked = {t.trial_number: t.run_id for t in store.trials("small")}
    assert all(linked[t["number"]] == t["run_id"] for t in trained)
    front = pareto_front(trials)
    assert front and all(a["ops"] <= b["ops"] for a, b in zip(front, front[1:]))
    assert sum(1 for _ in best_per_bucket(trials)) >= 1


def _trial(number, state, top1, bops, epochs=3):
    return {"number": number, "state": state, "top1": top1, "bops": bops, "ops": bops / 64, "epochs": epochs}


# Complete trials at 3 epochs, a pruned one with a higher top-1 after 1 epoch, an over-budget one, a failed one.
MIXED_FIDELITY = [
    _trial(0, "complete", 70.0, 9e6), _trial(1, "pruned", 90.0, 3e6, epochs=1), _trial(2, "complete", 80.0, 40e6),
    _trial(3, "infeasible", None, 400e6, epochs=None), _trial(4, "complete", 80.0, 20e6), _trial(5, "fail", None, 5e6),
]


def test_leaderboard_ranks_one_fidelity_and_keeps_pruned_trials_apart():
    rows = leaderboard(MIXED_FIDELITY)
    assert [(row["rank"], row["number"]) for row in rows] == [
        (1, 4), (2, 2), (3, 0),  # complete by top-1; of the equal 80 %, the cheaper first
        (None, 1),  # pruned: a top-1 after 1 epoch is not ranked against 3-epoch ones, however high
        (None, 3), (None, 5),  # no top-1, by number
    ]
    assert [row["epochs"] for row in rows[:4]] == [3, 3, 3, 1]


def test_best_per_bucket_names_its_bounds_and_prefers_the_cheaper_of_equals():
    buckets = best_per_bucket(MIXED_FIDELITY)
    assert [(b["bops_from"], b["bops_below"], b["trial"]["number"]) for b in buckets] == [
        (2**23, 2**24, 0), (2**24, 2**25, 4), (2**25, 2**26, 2)]  # trial 1 is pruned: not a trained candidate
    for bucket in buckets:
        assert bucket["bops_from"] <= bucket["trial"]["bops"] < bucket["bops_below"]
    tied = [_trial(0, "complete", 80.0, 30e6), _trial(1, "complete", 80.0, 20e6)]  # one bucket, equal top-1
    assert [b["trial"]["number"] for b in best_per_bucket(tied)] == [1]


@pytest.mark.parametrize("budgets, header, shown", [
    (["0.3GBOPs"], "BOPs (G)", "0.2212"), (["20MBOPs"], "BOPs (M)", "221.2"), (["500kBOPs"], "BOPs (k)", "221184"),
    (["2MParams"], "BOPs (M)", "221.2"), (None, "BOPs (M)", "221.2"),
])
def test_counts_are_shown_in_the_unit_of_the_budget(budgets, header, shown):
    bops = count_field(budgets, "bops", "BOPs", 1)
    assert (bops.header, bops.cell({"bops": 221_184_000})) == (header, shown)
    assert header in [field.header for field in trial_columns(budgets)]
    params = count_field(["2MParams", "0.3GBOPs"], "params", "params", 3)
    assert (params.header, params.cell({"params": 1_234_567})) == ("params (M)", "1.235")


def test_rerun_continues_and_reuses_trained_candidates(tmp_path):
    store = Store(tmp_path / "r.db")
    assert not Search.configure(small_config(tmp_path, trials=3)).run(store, progress=False)["already_complete"]
    runs_before = len(list(store.runs()))
    result = Search.configure(small_config(tmp_path, trials=5)).run(store, progress=False)
    assert not result["already_complete"]
    numbers = [t["number"] for t in result["trials"]]
    assert numbers == sorted(set(numbers)) and len([t for t in result["trials"] if t["state"] != "fail"]) == 5
    study = optuna.load_study(study_name="small", storage=store.url)
    trained_now = [t for t in study.trials[3:] if "run_id" in t.user_attrs and "reused_run" not in t.user_attrs]
    reused = [t for t in study.trials if "reused_run" in t.user_attrs]
    assert len(list(store.runs())) - runs_before == len(trained_now)  # only the new trials trained, each once
    assert all(t.user_attrs["run_id"] == t.user_attrs["reused_run"] for t in reused)
    runs_full = len(list(store.runs()))
    again = Search.configure(small_config(tmp_path, trials=5)).run(store, progress=False)
    assert again["already_complete"] and again["trials"] == result["trials"] and len(list(store.runs())) == runs_full


def test_study_with_another_space_is_refused(tmp_path):
    store = Store(tmp_path / "r.db")
    Search.configure(small_config(tmp_path, trials=1)).run(store, progress=False)
    other = tmp_path / "other.yaml"
    other.write_text(SMALL_SPACE.replace("[8, 16]", "[8]"))
    with pytest.raises(SearchError, match="exists with another space"):
        Search.configure(small_config(tmp_path, trials=2, space=other)).run(store, progress=False)


def _study_written(db: Path, name: str) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            rows = connection.execute("SELECT 1 FROM studies WHERE study_name = ?", (name,)).fetchall()
    except sqlite3.OperationalError:
        return False
    return bool(rows)


def test_killed_search_loses_and_repeats_no_trial(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "r.db"
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_SPACE)
    args = ["search", "--budget", "20MBOPs", "--space", str(space), "--trials", "4", "--epochs", "4",
            "--train-limit", "480", "--batch-size", "40", "--sampler", "random", "--pruner", "none",
            "--study", "killed", "--db", str(db), "--seed", "2", "--noise-seeds", "0"]
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "bnextbench", *args], cwd=tmp_path,
                               stdout=log, stderr=subprocess.STDOUT)
    storage = f"sqlite:///{db}"
    deadline = time.time() + 300
    completed_before: dict[int, float] = {}
    try:
        while time.time() < deadline:
            time.sleep(0.1)  # a trial lasts about a second on a fast host; poll often enough to see one running
            if process.poll() is not None:
                pytest.fail(f"the search exited early ({process.returncode}): {(tmp_path / 'worker.log').read_text()[-500:]}")
            if not _study_written(db, "killed"):  # let the worker create Optuna's tables before we read them
                continue
            trials = optuna.load_study(study_name="killed", storage=storage).get_trials()
            done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
            running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and "run_id" in t.user_attrs]
            if done and running:
                completed_before = {t.number: t.value for t in done}
                process.send_signal(signal.SIGKILL)
                break
        else:
            pytest.fail("the search never had a completed and a running trial at once")
    finally:
        process.kill()
        process.wait()
        log.close()
    assert completed_before

    monkey_argv = ["bnextbench", *args, "--format", "json"]
    old_argv, sys.argv = sys.argv, monkey_argv
    try:
        main()
    finally:
        sys.argv = old_argv
    study = optuna.load_study(study_name="killed", storage=storage)
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 4
    for number, value in completed_before.items():
        assert trials[number].state == optuna.trial.TrialState.COMPLETE and trials[number].value == value
    assert [t.state for t in trials].count(optuna.trial.TrialState.FAIL) == 1  # the killed one, not retried in place
    run_ids = [t.user_attrs["run_id"] for t in finished if "run_id" in t.user_attrs and "reused_run" not in t.user_attrs]
    assert len(run_ids) == len(set(run_ids))  # no completed trial trained twice
    killed_run = [r for r in Store(db).runs() if r.status == "interrupted"]
    assert len(killed_run) == 1




@pytest.mark.parametrize("budget", ["0.3", "GBOPs", "-1GBOPs", "0.3XBOPs", "abc"])
def test_bad_budgets_exit_2_and_write_nothing(monkeypatch, tmp_path, budget, run_cli):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("search", "--budget", budget, "--db", str(tmp_path / "r.db"))
    assert code == 2 and err.startswith("error: budget") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("family: bnext\nstem_width: [8\n", "not valid YAML"),
        ("family: bnext\nstem_width: [8]\ndepth: [1]\nwidth: [1]\n", "unknown option(s) width"),
        ("family: bnext\nstem_width: [32]\nwidth_mult: [1.0]\ndepth: [[1], [2], [2], [6], [2]]\n", "admits no candidate"),
    ],
)
def test_bad_spaces_exit_2_and_write_nothing(monkeypatch, tmp_path, text, fragment, run_cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(text)
    code, _, err = run_cli("search", "--budget", "1MBOPs", "--space", "space.yaml",
                           "--db", str(tmp_path / "r.db"))
    assert code == 2 and fragment in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


def test_search_json_lists_every_trial(tmp_path, run_cli):
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_SPACE)
    code, out, err = run_cli("search", "--budget", "20MBOPs", "--budget", "2MParams",
                             "--space", str(space), "--trials", "2", "--epochs", "1", "--train-limit", "60",
                             "--db", str(tmp_path / "r.db"), "--format", "json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["budgets"] == ["20MBOPs", "2MParams"]
    for trial in result["trials"]:
        assert {"number", "state", "arch", "candidate", "bops", "flops", "ops", "params", "top1"} <= set(trial)
        assert trial["budget_share"] == max(trial["bops"] / 20e6, trial["params"] / 2e6)  # the nearer to binding
    progress = [line for line in err.splitlines() if line.startswith(f"study {result['study']} [")]
    assert any("epoch 1/1, top-1" in line for line in progress), err  # the log shows each trial's epochs
    assert progress[-1].startswith(f"study {result['study']} [2/2 trials]") and "best " in progress[-1]
    best = max((t for t in result["trials"] if t["state"] == "complete"), key=lambda t: t["top1"])
    spread = result["winner_seeds"]  # the winner trained again with seeds 1 and 2, under the same protocol
    assert (spread["trial"], spread["seeds"], spread["top1"][0]) == (best["number"], [0, 1, 2], best["top1"])
    assert len(set(spread["run_ids"])) == 3 and spread["min"] <= spread["mean"] <= spread["max"]
    runs = {run.id: run for run in Store(tmp_path / "r.db").runs()}
    assert [runs[i].seed for i in spread["run_ids"]] == [0, 1, 2]
    assert len({runs[i].protocol_group for i in spread["run_ids"]}) == 1
    assert all(runs[i].candidate == best["candidate"] for i in spread["run_ids"])
    code, out, _ = run_cli("show", result["study"], "--db", str(tmp_path / "r.db"), "--format", "json")
    assert code == 0 and "pareto_front" in json.loads(out)
    code, _, err = run_cli("show", "nope", "--db", str(tmp_path / "r.db"))
    assert code == 2 and "unknown study" in err


def test_a_trial_is_one_candidate_everywhere_and_its_arch_reads_back(tmp_path, run_cli):
    """search prints each trial's arch object and name; profile --spec reads the object back with the same
    counts, and runs and compare call the trained candidate by the same name."""
    db = str(tmp_path / "r.db")
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_SPACE)
    code, out, err = run_cli("search", "--budget", "20MBOPs", "--space", str(space), "--trials", "2", "--epochs", "1",
                             "--train-limit", "60", "--sampler", "random", "--pruner", "none", "--noise-seeds", "0",
                             "--db", db, "--format", "json")
    assert code == 0, err
    trials = [t for t in json.loads(out.strip().splitlines()[-1])["trials"] if t["state"] == "complete"]
    assert trials
    code, out, err = run_cli("runs", "--db", db, "--format", "json")
    runs = {run["id"]: run for run in json.loads(out)}
    code, out, err = run_cli("compare", "--db", db, "--format", "json")
    compared = {row["model"] for row in json.loads(out)["sections"][0]["rows"]}
    for trial in trials:
        arch = tmp_path / f"trial-{trial['number']}.json"
        arch.write_text(json.dumps(trial["arch"]))
        code, out, err = run_cli("profile", "--spec", str(arch), "--resolution", "16", "--format", "json")
        assert code == 0, err
        counted = json.loads(out)
        assert (counted["model"], counted["bops"], counted["ops"]) == (trial["candidate"], trial["bops"], trial["ops"])
        assert runs[trial["run_id"]]["candidate"] == runs[trial["run_id"]]["model"] == trial["candidate"]
        assert trial["candidate"] in compared


def test_a_trial_stopped_between_storing_and_reporting_its_first_epoch_names_its_run(tmp_path, monkeypatch, run_cli):
    """Ctrl-C while the first epoch's checkpoint is written: the epoch is in the store, the trial has not yet
    been told its run; its interrupted row still names the run it started (a race a real Ctrl-C can hit)."""
    import bnextbench.train.loop as loop

    def interrupted_save(payload, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "atomic_torch_save", interrupted_save)
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_SPACE)
    db = tmp_path / "r.db"
    code, _, err = run_cli("search", "--budget", "20MBOPs", "--space", str(space), "--trials", "2", "--epochs", "2",
                           "--train-limit", "60", "--sampler", "random", "--pruner", "none", "--noise-seeds", "0",
                           "--study", "stopped", "--db", str(db))
    assert code == 130, err
    store = Store(db)
    (trial,) = store.trials("stopped")
    run = store.trial_run("stopped", trial.trial_number)
    assert trial.state == "interrupted" and run is not None and trial.run_id == run.id
    assert run.status == "interrupted"
