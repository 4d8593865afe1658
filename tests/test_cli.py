"""The command line: output formats, units and one-line errors with exit code 2."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from bnextbench.models import list_models, named_spec

from .helpers import REFERENCE_LISTING, reference_state

SUMMARY_KEYS = {
    "model", "resolution", "num_classes", "ops_rule", "params", "binary_params",
    "bops", "flops", "ops", "binarization_degree", "size_mib",
}




def test_profile_json_has_plain_numbers(run_cli):
    code, out, _ = run_cli("profile", "bnext_tiny", "--format", "json", "--ops-rule", "bnext-paper")
    assert code == 0
    data = json.loads(out)
    assert SUMMARY_KEYS <= set(data)
    assert data["bops"] == 4_816_896_000 and data["ops_rule"] == "bnext-paper" and data["resolution"] == 224
    assert 0 < data["binarization_degree"] < 1
    assert all(isinstance(data[key], (int, float)) for key in SUMMARY_KEYS - {"model", "ops_rule"})


def test_profile_csv_per_layer_and_small_resolution(run_cli):
    code, out, _ = run_cli("profile", "reactnet_a", "--resolution", "32", "--num-classes", "10",
                       "--per-layer", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["name"] == "stem.0" and rows[0]["stride"] == "1"  # small-input stem at 32 px
    assert rows[-1]["out_channels"] == "10"
    assert sum(int(row["bops"]) for row in rows) == 4_816_896_000 * 4 // 49  # maps 1/3.5 of ImageNet's


def test_profile_table_names_rule_and_units(run_cli):
    code, out, _ = run_cli("profile", "birealnet18", "--per-layer")
    assert code == 0
    assert "ops rule 'bits'" in out and "BOPs (G)" in out and "1.6763" in out


def test_profile_spec_file(tmp_path, run_cli):
    spec = named_spec("bnext_tiny", num_classes=10, stem_stride=1)
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json())
    code, out, _ = run_cli("profile", "--spec", str(path), "--resolution", "32", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["bops"] == 393_216_000 and data["model"] == f"bnext-spec-{spec.hash}"


def test_models_lists_every_registered_model(run_cli):
    code, out, _ = run_cli("models", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [row["model"] for row in rows] == list_models()
    assert all(row["resolution"] == 224 for row in rows)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("profile", "bnext_tni"), "did you mean bnext_tiny"),
        (("profile", "bnext_tiny", "--resolution", "0"), "resolution must be a positive integer"),
        (("profile", "bnext_tiny", "--resolution", "-4"), "resolution must be a positive integer"),
        (("profile", "bnext_tiny", "--resolution", "abc"), "--resolution"),
        (("profile", "bnext_tiny", "--ops-rule", "fast"), "--ops-rule"),
        (("profile", "bnext_tiny", "--num-classes", "0"), "num_classes"),
        (("profile",), "MODEL"),
        (("profile", "--spec", "/nonexistent/spec.json"), "cannot read spec file"),
        (("import-checkpoint", "/nonexistent.pth", "--model", "bnext_tiny", "--out", "OUT"), "checkpoint not found"),
        (("import-checkpoint", "README.md", "--model", "bnext_tiny", "--out", "OUT"), "cannot read checkpoint"),
        (("import-checkpoint", "README.md", "--model", "reactnet_a", "--out", "OUT"), "reference checkpoints exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(monkeypatch, tmp_path, args, fragment, run_cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("# not a checkpoint\n")
    before = set(tmp_path.iterdir())
    code, out, err = run_cli(*args)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err
    assert "Traceback" not in err
    assert set(tmp_path.iterdir()) == before  # nothing written


def test_bad_spec_json_is_one_line(tmp_path, run_cli):
    path = tmp_path / "spec.json"
    path.write_text('{"stem_width": 8, "colour": "red"}')
    code, _, err = run_cli("profile", "--spec", str(path))
    assert code == 2 and "unknown spec field(s): colour" in err


def test_import_checkpoint_writes_a_loadable_file(tmp_path, run_cli):
    if not REFERENCE_LISTING.is_file():
        pytest.skip("reference listing not available")
    state = reference_state(json.loads(REFERENCE_LISTING.read_text())["bnext_tiny"])
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ref.pth")
    out = tmp_path / "sub" / "tiny.pt"
    code, _, err = run_cli("import-checkpoint", str(tmp_path / "ref.pth"), "--model", "bnext_tiny",
                       "--out", str(out))
    assert code == 0, err
    saved = torch.load(out, weights_only=True)
    assert saved["model"] == "bnext_tiny" and saved["model_kwargs"] == {
        "num_classes": 1000, "small_input": False, "width_mult": 1.0, "elm_attention": True, "info_recoupling": True,
        "aux_bits": 32}
    assert torch.equal(saved["state_dict"]["fc.bias"], state["fc.bias"])
    assert [p.name for p in out.parent.iterdir()] == ["tiny.pt"]  # no temporary file left


def test_train_evaluate_and_runs(tmp_path, run_cli):
    db = str(tmp_path / "r.db")
    code, out, err = run_cli("train", "reactnet_a", "--width-mult", "0.25", "--epochs", "1",
                         "--train-limit", "100", "--batch-size", "50", "--db", db, "--out", str(tmp_path / "run"),
                         "--format", "json")
    assert code == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert {"run_id", "top1", "top5", "epochs", "train_images_per_s"} <= set(record)
    code, out, _ = run_cli("evaluate", str(tmp_path / "run" / "last.pt"), "--db", db, "--format", "json")
    assert code == 0 and json.loads(out)["top1"] == pytest.approx(record["top1"])
    code, out, _ = run_cli("runs", "--db", db, "--format", "json")
    assert code == 0 and json.loads(out)[0]["status"] == "completed"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("train", "bnext_tiny", "--data", "imagenet"), "unknown data spec"),
        (("train", "bnext_tiny", "--data", "imagefolder:/nonexistent/x"), "is not a directory"),
        (("train", "bnext_tiny", "--epochs", "0"), "--epochs must be an integer in [1, 100000], got 0"),
        (("train", "bnext_tiny", "--resume"), "--resume needs --out"),
        (("train", "bnext_tiny", "--teacher", "/nonexistent/t.pt"), "teacher checkpoint not found"),
        (("evaluate", "/nonexistent/last.pt"), "checkpoint not found"),
    ],
)
def test_bad_training_input_is_one_line_exit_2(tmp_path, args, fragment, run_cli):
    code, out, err = run_cli(*args, "--db", str(tmp_path / "r.db")) if args[0] == "train" else run_cli(*args)
    assert code == 2 and fragment in err and err.count("\n") == 1
