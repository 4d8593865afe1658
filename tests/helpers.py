"""What several test modules share (constants, data builders); not a test module, so tests may import it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from bnextbench.cli import app

SMALL_RESOLUTION = 32
NUM_CLASSES = 10

# --- the reference BNext state_dict layout (test_checkpoint, test_cli) -----------------------------------------
SHARED = Path(os.environ.get("BNEXTBENCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
REFERENCE_LISTING = SHARED / "docs" / "reference-bnext-state-dict.json"
CIFAR10_TEST_JPEGS = SHARED / "data" / "cifar10" / "test.tar.gz"  # test/<class>/NNNN.jpg, 1000 per class


def reference_state(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors laid out as ``shapes``: zero-mean values, positive variances and temperatures.

    Small symmetric weights keep the activations of a 224-pixel forward pass finite and moderate,
    so that comparing logits compares numbers, not infinities.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith(("running_var", "temperature")):
            state[name] = 0.5 + torch.rand(shape, generator=generator)
        else:
            state[name] = 0.1 * torch.randn(shape, generator=generator)
    return state


def with_classes(state: dict[str, torch.Tensor], num_classes: int) -> dict[str, torch.Tensor]:
    """``state`` with its classifier resized to ``num_classes`` outputs."""
    features = state["fc.weight"].shape[1]
    return dict(state, **{"fc.weight": 0.1 * torch.randn(num_classes, features), "fc.bias": torch.zeros(num_classes)})


# --- a results database built by the command line (test_compare, test_report) -----------------------------
STUDY = "digits-small"
BASELINE_BUDGET = "2MBOPs"
TINY_SPACE = """family: bnext
base: bnext_tiny
stem_width: [8]
width_mult: [0.125]
depth: [[1], [1], [1], [1], [1]]
elm_attention: [true, false]
info_recoupling: [true, false]
"""


@dataclass
class ResultsDb:
    root: Path
    db: str
    search: dict
    baselines: list[dict]
    seeds: list[dict]


def invoke(*args: str) -> str:
    """``bnextbench ARGS`` through Typer's runner; its stdout, the test failing on a non-zero exit."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.stdout


def last_json(text: str):
    return json.loads(text.strip().splitlines()[-1])


def build_results_db(root: Path, extras: bool = True) -> ResultsDb:
    """A real small search on digits plus baselines (and, with ``extras``, a second seed and a 24 px run).

    The search: 2 trials, 1 epoch, 16 px, 60 training images, BNext-T at width 1/8 with one block per stage;
    the three baselines are width-fitted to :data:`BASELINE_BUDGET` under the study's protocol.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # checkpoints go under root/results
        space = root / "space.yaml"
        space.write_text(TINY_SPACE)
        db = str(root / "results.db")
        search = last_json(invoke("search", "--budget", "20MBOPs", "--space", str(space), "--trials", "2",
                                  "--epochs", "1", "--train-limit", "60", "--batch-size", "30", "--sampler",
                                  "random", "--pruner", "none", "--study", STUDY, "--noise-seeds", "0", "--db", db,
                                  "--format", "json"))
        baselines = last_json(invoke("baselines", "--study", STUDY, "--budget", BASELINE_BUDGET, "--db", db,
                                     "--format", "json"))
        seeds = []
        if extras:
            seeds = last_json(invoke("baselines", "--study", STUDY, "--budget", BASELINE_BUDGET, "--model",
                                     "xnor_resnet18", "--seed", "0", "--seed", "1", "--db", db, "--format", "json"))
            invoke("train", "reactnet_a", "--width-mult", "0.125", "--resolution", "24", "--epochs", "1",
                   "--train-limit", "60", "--batch-size", "30", "--db", db, "--format", "json")
    return ResultsDb(root, db, search, baselines, seeds)
