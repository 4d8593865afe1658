"""Figures: training curves and binary feature maps of a model trained here on the digits data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from PIL import Image
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from bnextbench.cli import app
from bnextbench.models import create_model
from bnextbench.nn import binary_sign
from bnextbench.report.plots import (
    FEATURE_CELL_INCHES,
    FEATURE_DPI,
    FEATURE_TITLE_INCHES,
    capture_feature_maps,
    plot_feature_maps,
    read_image,
)
from bnextbench.train import load_checkpoint_model

CELL_PX = round(FEATURE_CELL_INCHES * FEATURE_DPI)
TITLE_PX = round(FEATURE_TITLE_INCHES * FEATURE_DPI)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A bnext_tiny at width 0.125 trained two epochs on digits at 16 px through the CLI, and a digit image."""
    root = tmp_path_factory.mktemp("trained")
    db, out = root / "runs.db", root / "checkpoint"
    result = CliRunner().invoke(app, [
        "train", "bnext_tiny", "--width-mult", "0.125", "--data", "digits", "--epochs", "2", "--resolution", "16",
        "--train-limit", "100", "--batch-size", "50", "--db", str(db), "--out", str(out), "--format", "json",
    ])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    digit = load_digits().images[0]  # an 8 x 8 handwritten zero, values 0..16
    image = root / "digit.png"
    Image.fromarray(np.round(digit * 255 / 16).astype(np.uint8)).save(image)
    return {"db": db, "checkpoint": out / "last.pt", "run_id": record["run_id"], "image": image}


def test_curves_png_has_the_figure_size(trained, tmp_path):
    target = tmp_path / "curves.png"
    result = CliRunner().invoke(app, ["plot", "curves", str(trained["run_id"]), "--db", str(trained["db"]),
                                      "--out", str(target)])
    assert result.exit_code == 0, result.output
    pixels = imread(target)
    assert pixels.shape[:2] == (396, 1430)  # figsize 13 x 3.6 inches at 110 dpi
    assert pixels[..., :3].std() > 0.05  # drawn, not blank


def test_features_grid_and_binary_maps(trained, tmp_path):
    target = tmp_path / "features.png"
    result = CliRunner().invoke(app, ["plot", "features", str(trained["checkpoint"]), str(trained["image"]),
                                      "--block", "2", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert "blocks.2.mixer.conv" in result.stdout and "16 channels of 8x8 px" in result.stdout
    pixels = imread(target)
    assert pixels.shape[:2] == (4 * CELL_PX + TITLE_PX, 4 * CELL_PX)  # 16 maps in a 4 x 4 grid
    gray = pixels[..., :3].mean(axis=2)
    assert (gray == 0).sum() > 0 and (gray == 1).sum() > 0  # black (-1) and white (+1) cells

    after = plot_feature_maps(trained["checkpoint"], trained["image"], 2, tmp_path / "after.png")
    before = plot_feature_maps(trained["checkpoint"], trained["image"], 2, tmp_path / "before.png", after_sign=False)
    assert after.layer == before.layer == "blocks.2.mixer.conv" and after.grid == (4, 4)
    assert after.activations.shape == before.activations.shape == (16, 8, 8)
    for channel_map in after.activations:
        assert set(channel_map.unique().tolist()) <= {-1.0, 1.0}  # at most two values per map, exactly +-1
    assert set(after.activations.unique().tolist()) == {-1.0, 1.0}
    assert before.activations.unique().numel() > 2  # real-valued before the binarizer
    # The hook sits on the binarizer: after = sign(before + learned shift), element for element.
    model, _ = load_checkpoint_model(trained["checkpoint"])
    shift = model.blocks[2].mixer.conv.input_quantizer.shift.detach()[0]
    assert torch.equal(after.activations, binary_sign(before.activations + shift))


@pytest.mark.parametrize("name, kwargs, block, layer", [
    ("bnext18", {}, 1, "units.1.conv"),
    ("xnor_resnet18", {"width_mult": 0.25}, 1, "blocks.1.conv1"),
    ("birealnet18", {"width_mult": 0.25}, 4, "blocks.4.conv"),
    ("reactnet_a", {"width_mult": 0.25}, 3, "blocks.3.mixer.conv"),
])
def test_every_family_exposes_its_binarizer(trained, name, kwargs, block, layer):
    model = create_model(name, num_classes=10, small_input=True, **kwargs)
    features = capture_feature_maps(model, read_image(trained["image"], 16, "digits"), block, name=name)
    assert features.layer == layer
    assert set(features.activations.unique().tolist()) <= {-1.0, 1.0}


@pytest.mark.parametrize("args, fragment", [
    (("CHECKPOINT", "IMAGE", "--block", "13"), "block 13 out of range: bnext_tiny has blocks 0..12"),
    (("CHECKPOINT", "IMAGE", "--block", "-1"), "has blocks 0..12"),
    (("CHECKPOINT", "notes.png", "--block", "1"), "cannot read image notes.png"),
    (("CHECKPOINT", "missing.png", "--block", "1"), "cannot read image missing.png: No such file"),
    (("notes.png", "IMAGE", "--block", "1"), "cannot read checkpoint notes.png"),
    (("missing.pt", "IMAGE", "--block", "1"), "checkpoint not found: missing.pt"),
    (("CHECKPOINT", "IMAGE", "--block", "1", "--maps", "0"), "number of maps must be positive"),
])
def test_feature_errors_are_one_line_and_write_nothing(trained, monkeypatch, tmp_path, args, fragment, run_cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.png").write_text("not an image\n")
    names = {"CHECKPOINT": str(trained["checkpoint"]), "IMAGE": str(trained["image"])}
    before = set(tmp_path.rglob("*"))
    code, out, err = run_cli("plot", "features", *(names.get(a, a) for a in args),
                         "--out", "maps.png")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err
    assert set(tmp_path.rglob("*")) == before
