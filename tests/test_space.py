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


def test_default_space_spans_the_readme_budget():
    """At digits' 16 px the default space reaches far below and above 0.3 G BOPs, and holds BNext-T and -S."""
    space = load_space(SPACES / "bnext.yaml")
    bops = {name: profile_spec(space.suggest(optuna.trial.FixedTrial(params), 10, 1).spec, 16).bops
            for name, params in (("smallest", space.smallest_params()), ("largest", space.largest_params()),
                                 ("tiny", space.anchor_params("bnext_tiny")), ("small", space.anchor_params("bnext_small")))}
    assert bops["smallest"] < 0.01e9 and bops["largest"] > 1.0e9
    assert bops["tiny"] == 98_304_000 and bops["small"] == 221_184_000
    assert len(space.choices["width_mult_0"]) == 15  # eighths from 1/4 to 2


def test_ranges_and_per_stage_kernels_and_se_ratios(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("family: bnext\nstem_width: {from: 8, to: 24, step: 8}\nwidth_mult: {from: 0.25, to: 0.5, step: 0.125}\n"
                    "depth: [[1], [2], [1], [1], [1]]\nse_ratio: [[4], [16], [8], [8], [8]]\n"
                    "kernel_size: [[3], [5], [3], [3], [3]]\n")
    space = load_space(path)
    assert space.choices["stem_width"] == [8, 16, 24]
    assert space.choices["width_mult_3"] == [0.25, 0.375, 0.5]
    params = space.smallest_params()
    spec = space.suggest(optuna.trial.FixedTrial(params), 10, 1).spec
    assert spec.se_ratio == (4, 16, 16, 8, 8, 8) and spec.kernel_size == (3, 5, 5, 3, 3, 3)
    assert [b.kernel_size for b in spec.blocks()] == [3, 5, 5, 3, 3, 3]


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("{from: 0.25, to: 2.0}", "exactly from, to and step"),
        ("{from: 0.25, to: 2.0, step: 0}", "step > 0"),
        ("{from: 2.0, to: 0.25, step: 0.125}", "to >= from"),
        ("{from: 0.001, to: 2.0, step: 0.000001}", "more than 1000"),
        ("{from: 0.25, to: .inf, step: 0.125}", "finite numbers"),
    ],
)
def test_bad_ranges(tmp_path, value, fragment):
    path = tmp_path / "space.yaml"
    path.write_text(f"family: bnext\nstem_width: [8]\ndepth: [1]\nwidth_mult: {value}\n")
    with pytest.raises(SpaceError, match=fragment):
        load_space(path)
