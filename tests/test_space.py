"""Search space files and the candidates they yield."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from bnextbench.profiling import profile_spec
from bnextbench.search.space import SpaceError, load_space

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


def test_shipped_spaces_load_and_sample_valid_candidates():
    space = load_space(SPACES / "bnext.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    hashes = set()
    for _ in range(20):
        trial = study.ask()
        candidate = space.suggest(trial, num_classes=10, stem_stride=1)
        assert candidate.spec.num_classes == 10 and candidate.spec.stem_stride == 1
        assert profile_spec(candidate.spec, 32).bops > 0
        hashes.add(candidate.name)
        study.tell(trial, 0.0)
    assert len(hashes) > 10
    baseline = load_space(SPACES / "reactnet_a.yaml")
    trial = study.ask()
    assert baseline.suggest(trial, 10, 1).model == "reactnet_a"


def test_anchor_reproduces_the_named_size():
    space = load_space(SPACES / "bnext.yaml")
    params = space.anchor_params("bnext_tiny")
    trial = optuna.trial.FixedTrial(params)
    spec = space.suggest(trial, num_classes=1000, stem_stride=2).spec
    from bnextbench.models import named_spec

    assert spec == named_spec("bnext_tiny")
    assert space.anchor_params("bnext_large") is None  # depth 16 is outside the space


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("family: bnext\nstem_width: [8\n", "not valid YAML"),
        ("- 1\n- 2\n", "mapping"),
        ("family: resnet\n", "family must be one of"),
        ("family: bnext\nstem_width: [8]\ndepth: [1]\ncolour: red\n", "unknown option(s) colour"),
        ("family: bnext\nstem_width: [-8]\ndepth: [1]\n", "stem_width: -8"),
        ("family: bnext\nstem_width: [8]\ndepth: [[1], [2]]\n", "lists 2 stages"),
        ("family: bnext\nstem_width: [8]\n", "needs depth"),
        ("family: registry\nmodel: resnet50\nwidth_mult: [1.0]\n", "registered model"),
        ("family: bnext\nstem_width: [8]\ndepth: [1]\nelm_attention: [maybe]\n", "true/false"),
    ],
)
def test_bad_space_files(tmp_path, text, fragment):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_space(path)


def test_missing_space_file(tmp_path):
    with pytest.raises(SpaceError, match="cannot read"):
        load_space(tmp_path / "none.yaml")
