"""Compare: a real digits search against same-protocol baselines, and the published rows apart.

The results database is built once per module by the command line itself: a 2-trial search on digits
(1 epoch, 16 px, 60 training images, BNext-T at width 1/8 with one block per stage), the three baselines width-fitted to 2 M BOPs
under the study's protocol, a second seed of xnor_resnet18, and one run at 24 px.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import pytest

from bnextbench.profiling import profile_model
from bnextbench.report.priors import PUBLISHED_DATA, load_priors, parse_tag
from bnextbench.report.board import PUBLISHED_OPS_RULE
from bnextbench.search import parse_budgets
from bnextbench.search.baselines import BASELINE_MODELS, flag_protocol, width_for_budget
from bnextbench.search.study import Search, SearchConfig
from bnextbench.store import Store

from .helpers import BASELINE_BUDGET, STUDY, TINY_SPACE, ResultsDb, build_results_db

DOCS = Path(__file__).resolve().parents[2] / "shared" / "docs"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> ResultsDb:
    return build_results_db(tmp_path_factory.mktemp("compare"))




def compare_json(run_cli, results: ResultsDb, *args: str) -> dict:
    code, out, err = run_cli("compare", "--db", results.db, "--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


def test_baselines_fit_the_budget_under_the_study_protocol(results):
    store = Store(results.db)
    searched = [store.get_run(t["run_id"]) for t in results.search["trials"] if t["state"] == "complete"]
    assert searched, "the study trained at least one candidate"
    protocol = searched[0].protocol
    assert [r["model"] for r in results.baselines] == list(BASELINE_MODELS)
    budgets = parse_budgets([BASELINE_BUDGET])
    for record in results.baselines:
        run = store.get_run(record["run_id"])
        assert run.status == "completed" and run.protocol_key == protocol.key == run.protocol.key
        assert (run.data, run.resolution, run.epochs_done) == (protocol.data, protocol.resolution, 1)
        assert run.width_mult == record["width_mult"] == width_for_budget(record["model"], budgets, 16, 10)
        assert run.complexity["bops"] == profile_model(record["model"], 16, 10, width_mult=record["width_mult"]).bops
        assert run.complexity["bops"] <= 2e6 < profile_model(record["model"], 16, 10,
                                                              width_mult=record["width_mult"] + 1 / 64).bops


def test_flag_protocol_is_the_protocol_of_a_search_with_those_flags(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE)
    search = Search.configure(SearchConfig(budgets=parse_budgets(["20MBOPs"]), space=space, epochs=1, batch_size=30,
                                 train_limit=60))
    protocol, classes = flag_protocol("digits", 1, 30, SearchConfig.lr, 0, 60)
    assert (protocol.key, classes) == (search.record.protocol.key, 10)


def test_baselines_reuse_a_trained_seed_and_train_a_new_one(results):
    seed0, seed1 = results.seeds
    assert seed0["reused"] and seed0["run_id"] == results.baselines[0]["run_id"]
    assert not seed1["reused"] and seed1["seed"] == 1
    assert Store(results.db).get_run(seed1["run_id"]).seed == 1


def test_compare_json_ranks_local_runs_and_keeps_published_rows_apart(results, run_cli):
    report = compare_json(run_cli, results, "--study", STUDY)
    local, published = report["sections"]
    assert (local["kind"], local["data"], local["resolution"]) == ("local", "digits", 16)
    assert published["kind"] == "published" and published["resolution"] == 224
    store = Store(results.db)
    rows = {row["model"].split(" ")[0]: row for row in local["rows"] if row["kind"] == "baseline"}
    assert set(rows) == set(BASELINE_MODELS)
    xnor = rows["xnor_resnet18"]
    runs = [store.get_run(i) for i in xnor["run_ids"]]
    assert xnor["n_seeds"] == 2 and xnor["seeds"] == [0, 1]
    assert xnor["top1"] == pytest.approx(statistics.fmean(r.top1 for r in runs))
    assert xnor["top1_std"] == pytest.approx(statistics.stdev(r.top1 for r in runs))
    reactnet = rows["reactnet_a"]
    run = store.get_run(reactnet["run_ids"][0])
    assert reactnet["source"] == f"run {run.id}" and reactnet["top1"] == pytest.approx(run.top1)
    assert reactnet["bops"] == run.complexity["bops"] and reactnet["ops"] == pytest.approx(run.complexity["ops"])
    searched = {row["run_ids"][0] for row in local["rows"] if row["kind"] == "searched"}
    assert searched == {t["run_id"] for t in results.search["trials"] if t["state"] == "complete"}
    assert all(row["resolution"] == 16 for row in local["rows"])  # the 24 px run is another protocol
    assert [row["rank"] for row in local["rows"]] == list(range(1, len(local["rows"]) + 1))
    top1 = [row["top1"] for row in local["rows"]]
    assert top1 == sorted(top1, reverse=True)
    assert any(row["on_front"] for row in local["rows"] if row["kind"] == "searched")
    prior = {row["model"]: row for row in published["rows"]}
    assert prior["XNOR-Net ResNet-18"]["source_url"] == "https://github.com/liuzechun/Bi-Real-net"
    assert prior["XNOR-Net ResNet-18"]["top1"] == 51.2 and prior["XNOR-Net ResNet-18"]["bops"] == 1.70e9
    assert prior["ReActNet-A"]["source_url"] == "https://github.com/liuzechun/ReActNet"
    assert prior["ReActNet-A"]["top1"] == 69.4 and prior["ReActNet-A"]["ops"] == pytest.approx(0.87e8)
    assert prior["ReActNet-A"]["with_prelu"] == "yes" and prior["ReActNet-A"]["with_se"] == "no"
    assert report["provenance"]["study"] == STUDY and report["provenance"]["seeds"] == [0, 1]


def test_different_resolutions_never_share_a_ranking(results, run_cli):
    report = compare_json(run_cli, results, "--data", "digits")
    titles = [section["title"] for section in report["sections"]]
    assert titles[:2] == ["digits at 16 px; OPs and degree by the bits ops rule",
                          "digits at 24 px; OPs and degree by the bits ops rule"] and len(titles) == 3
    assert titles[2].startswith("published, ImageNet") and "as published" in titles[2]
    shown = {table["caption"]: table["columns"] for table in report["tables"]}
    assert "BOPs (G)" in shown[titles[2]] and "BOPs (M)" in shown[titles[0]]  # ImageNet BNNs in billions
    at24 = report["sections"][1]["rows"]
    assert [(row["model"], row["rank"], row["kind"]) for row in at24] == [("reactnet_a x0.125", 1, "baseline")]


def test_compare_csv_and_table(results, run_cli):
    code, out, err = run_cli("compare", "--db", results.db, "--study", STUDY, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    sections = {row["section"] for row in rows}
    assert sections == {"digits at 16 px; OPs and degree by the bits ops rule",
                        f"published, {PUBLISHED_DATA} at 224 px; OPs and degree {PUBLISHED_OPS_RULE}"}
    for section in sections:
        ranks = [int(row["rank"]) for row in rows if row["section"] == section]
        assert ranks == list(range(1, len(ranks) + 1))
    react = next(row for row in rows if row["model"] == "ReActNet-A")
    assert react["BOPs (G)"] == "4.820" and react["BOPs (M)"] == "" and react["OPs (M)"] == "87.000"
    assert react["with PReLU"] == "yes"
    code, out, _ = run_cli("compare", "--db", results.db, "--study", STUDY, "--design")
    assert code == 0 and "digits at 16 px" in out and "BOPs (M)" in out and "with PReLU" in out
    assert "BOPs (G)" in out and "52.150" in out  # the published section's BOPs in billions (BNext-L)


def test_published_vs_counted_flags_the_bnext_readme_unit(results, run_cli):
    code, out, err = run_cli("compare", "--db", results.db, "--published-vs-counted",
                             "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    for size, model in (("T", "bnext_tiny"), ("S", "bnext_small"), ("M", "bnext_middle"), ("L", "bnext_large")):
        mine = {(r["figure"], r["counted_metric"]): r for r in rows if r["prior"] == f"BNext-{size}"}
        assert all(r["model"] == model and r["ops_rule"] == "bnext-paper" for r in mine.values())
        readme_vs_bops = mine[('README "BOPs (G)"', "bops")]
        readme_vs_ops = mine[('README "BOPs (G)"', "ops")]
        assert readme_vs_bops["flagged"] and readme_vs_bops["counted"] / readme_vs_bops["published"] > 60
        assert not readme_vs_ops["flagged"] and abs(readme_vs_ops["difference"]) < 0.002
        assert not mine[("OPs", "ops")]["flagged"] and not mine[("BOPs", "bops")]["flagged"]
        assert not mine[("binarization degree", "binarization_degree")]["flagged"]
    flagged = {(r["prior"], r["figure"]) for r in rows if r["flagged"]}
    assert ("BNext-L", "FLOPs") in flagged  # 0.041e8 published (arith) against 0.049e8 counted
    assert ("XNOR-Net ResNet-18", "binarization degree") in flagged  # README 18.07 % vs 15.97 %
    react = {r["figure"]: r for r in rows if r["prior"] == "ReActNet-A"}
    assert react["BOPs"]["counted"] == 4_816_896_000 and not any(r["flagged"] for r in react.values())
    code, out, _ = run_cli("compare", "--db", results.db, "--published-vs-counted")
    assert code == 0 and "README \"BOPs (G)\"" in out and "over 3 %" in out


def test_registry_matches_the_docs_csv():
    priors = {p.model: p for p in load_priors()}
    assert len(priors) == 53 and priors["BNext-18"].implemented_as == "bnext18"
    assert priors["ReActNet-B"].ops == pytest.approx(1.63e8) and "1.17" in priors["ReActNet-B"].note
    assert priors["BNext-T"].readme_bops_column == pytest.approx(0.077e9) and priors["BNext-T"].degree == pytest.approx(0.9781)
    assert priors["AdamBNN (ReActNet-A architecture)"].tags == {
        "top1": "read", "ops": "read", "kd": "read", "bops": "as ReActNet-A", "flops": "as ReActNet-A",
        "params": "derived"}
    assert parse_tag("acc=read; rest=derived", {"top1", "top5", "bops"}) == {
        "top1": "read", "top5": "read", "bops": "derived"}
    source = DOCS / "prior-bnns.csv"
    if not source.is_file():
        pytest.skip("the project docs are not beside this checkout")
    for row in csv.DictReader(source.open(encoding="utf-8")):
        prior = priors[row["model"]]
        assert (prior.family, prior.kd, prior.source_url, prior.tag) == (row["family"], row["kd"], row["source_url"],
                                                                          row["tag"])
        for field, column, scale in (("top1", "top1", 1), ("bops", "bops_e9", 1e9), ("flops", "flops_e8", 1e8),
                                     ("ops", "ops_e8", 1e8), ("params", "params_m", 1e6)):
            expected = float(row[column]) * scale if row[column] else None
            assert getattr(prior, field) == pytest.approx(expected), (row["model"], field)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--study", "no-such-study"), "unknown study 'no-such-study'"),
        (("--data", "cifar10:/nonexistent"), "no completed runs on cifar10:/nonexistent"),
        (("--data", "imagenet"), "unknown data spec"),
        (("--format", "xml"), "--format"),
    ],
)
def test_bad_compare_input_is_one_line_exit_2(results, args, fragment, run_cli):
    code, out, err = run_cli("compare", "--db", results.db, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err


def test_empty_or_missing_database_is_one_line_exit_2(tmp_path, run_cli):
    empty = tmp_path / "empty.db"
    Store(empty)
    code, out, err = run_cli("compare", "--db", str(empty))
    assert code == 2 and out == "" and "no completed runs" in err and err.count("\n") == 1
    missing = tmp_path / "missing.db"
    code, _, err = run_cli("compare", "--db", str(missing))
    assert code == 2 and "no results database" in err and not missing.exists()
    code, _, err = run_cli("baselines", "--db", str(empty), "--study", "nope")
    assert code == 2 and "unknown study 'nope'" in err
    code, _, err = run_cli("baselines", "--db", str(empty), "--study", "nope", "--epochs", "2")
    assert code == 2 and "--study fixes the protocol; drop --epochs" in err
    code, _, err = run_cli("baselines", "--db", str(empty), "--budget", "2MBOPs", "--model",
                           "resnet50")
    assert code == 2 and "unknown baseline resnet50" in err
