"""The weight-sharing supernet: subnets are BNext models of their spec, sharing the supernet's weights."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn

from bnextbench.models import BNext, create_model
from bnextbench.oneshot.supernet import BNextSupernet, SupernetError
from bnextbench.search.space import load_space, space_from_dict

SPACE_FILE = Path(__file__).parent / "data" / "oneshot-space.yaml"


def randomized(module: nn.Module) -> nn.Module:
    """Weights, BatchNorm statistics and shifts far from their initial values, in float64."""
    generator = torch.Generator().manual_seed(0)
    module.double()
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if name.endswith("num_batches_tracked") or name.endswith("tau"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * 0.5)
    return module.eval()


def covering_picks(space, extra: int = 2, seed: int = 0) -> list[dict]:
    """The smallest and largest corners, picks that take every choice of every option at least once (the
    i-th pick takes each option's i-th choice, or a random one), and ``extra`` random picks."""
    rng = random.Random(seed)
    widest = max(len(options) for options in space.choices.values())
    picks = [space.smallest_params(), space.largest_params()]
    for i in range(widest + extra):
        picks.append({name: options[i] if i < len(options) else rng.choice(options)
                      for name, options in space.choices.items()})
    return picks


@pytest.fixture(scope="module")
def space():
    return load_space(SPACE_FILE)


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    return randomized(BNextSupernet(space, num_classes=10, stem_stride=1))


def test_extracted_subnets_compute_the_supernets_forward(space, supernet):
    """For every choice of every option: the supernet run as that subnet, the extracted subnet, and a BNext
    built from the spec and loaded with the extracted weights give the same logits (float64)."""
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    picks = covering_picks(space)
    assert all({pick[name] for pick in picks} == set(options) for name, options in space.choices.items())
    for pick in picks:
        spec = space.spec_of(pick, 10, 1)
        shared = supernet(x, spec)
        extracted = supernet.extract(spec)
        assert type(extracted) is BNext and extracted.spec == spec
        fresh = BNext(spec).double().eval()
        fresh.load_state_dict(extracted.state_dict())
        assert torch.equal(shared, extracted(x))
        assert torch.equal(shared, fresh(x))
        assert shared.std() > 0.1  # the randomized weights give distinct, non-degenerate logits


def test_subnets_of_one_supernet_share_weights(space, supernet):
    small = supernet.extract(space.spec_of(space.smallest_params(), 10, 1))
    large = supernet.extract(space.spec_of(space.largest_params(), 10, 1))
    stem = small.stem.conv.weight
    assert torch.equal(stem, large.stem.conv.weight[: stem.shape[0]])
    kernel = large.blocks[1].mixer.conv.weight  # 5 x 5 in the largest, 3 x 3 centre in the smallest
    assert kernel.shape[-1] == 5 and small.blocks[1].mixer.conv.weight.shape[-1] == 3
    assert torch.equal(small.blocks[1].mixer.conv.weight, kernel[: small.blocks[1].mixer.conv.weight.shape[0],
                                                                  : small.blocks[1].mixer.conv.weight.shape[1], 1:4, 1:4])


def test_a_subnets_gradient_reaches_only_its_slice(space):
    torch.manual_seed(0)
    net = BNextSupernet(space, num_classes=10, stem_stride=1)
    spec = space.spec_of(space.smallest_params(), 10, 1)
    net(torch.randn(4, 3, 16, 16), spec).square().mean().backward()
    stem = net.stem.conv.weight.grad
    assert stem[: spec.stem_width].abs().sum() > 0 and stem[spec.stem_width:].abs().sum() == 0
    fc = net.fc.weight.grad
    assert fc[:, : spec.stage_widths[-1]].abs().sum() > 0 and fc[:, spec.stage_widths[-1]:].abs().sum() == 0


def test_largest_subnet_of_a_space_around_bnext_tiny_is_bnext_tiny():
    space = space_from_dict({"family": "bnext", "base": "bnext_tiny", "stem_width": [16, 32],
                             "width_mult": [0.5, 1.0], "depth": [[1], [1, 2], [1, 2], [2, 4, 6], [1, 2]],
                             "elm_attention": [True, False], "info_recoupling": [True, False]})
    torch.manual_seed(0)
    net = BNextSupernet(space, num_classes=10, stem_stride=1).eval()
    tiny = create_model("bnext_tiny", num_classes=10, small_input=True).eval()
    largest = net.extract(net.largest)
    assert net.largest == tiny.spec
    reference = tiny.state_dict()
    extracted = largest.state_dict()
    assert list(extracted) == list(reference)
    assert all(extracted[name].shape == reference[name].shape for name in reference)
    own = net.state_dict()
    assert all(torch.equal(extracted[name], own[name]) for name in extracted)  # weight for weight, unsliced
    tiny.load_state_dict(extracted)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(tiny(x), net(x))


def test_candidates_outside_the_space_are_refused(space, supernet):
    inside = space.spec_of(space.smallest_params(), 10, 1)
    import dataclasses

    for spec, fragment in (
        (dataclasses.replace(inside, stem_width=24), "stem width 24"),
        (dataclasses.replace(inside, stage_widths=(8, 16, 32, 64, 512)), "stage 4 width 512"),
        (dataclasses.replace(inside, num_classes=100), "100 classes"),
        (dataclasses.replace(inside, kernel_size=7), "kernel_size"),
    ):
        with pytest.raises(SupernetError, match=fragment):
            supernet(torch.zeros(1, 3, 16, 16, dtype=torch.float64), spec)
    with pytest.raises(SupernetError, match="one aux precision"):
        BNextSupernet(space_from_dict({"family": "bnext", "stem_width": [8], "depth": [1], "width_mult": [0.125],
                                       "aux_bits": [8, 32]}), 10, 1)


# --- training, scoring and the one-shot search -------------------------------------------------------------

def supernet_config(out: Path, epochs: int = 2, resume: bool = False):
    from bnextbench.train import Recipe, TrainConfig

    return TrainConfig(model="bnext_supernet", data="digits", recipe=Recipe(epochs=epochs, batch_size=50, lr=2e-3),
                       train_limit=300, holdout=100, supernet_space=load_space(SPACE_FILE).definition,
                       random_subnets=1, out=out, resume=resume)


def test_supernet_training_resumes_exactly(tmp_path):
    from bnextbench.store import Store
    from bnextbench.train import train
    from bnextbench.train.loop import StopRun

    store = Store(tmp_path / "r.db")
    straight = train(supernet_config(tmp_path / "straight"), store, progress=False)
    def stop_after_first_epoch(epoch, _metrics):
        raise StopRun("stopped after epoch 1")

    with pytest.raises(StopRun):
        train(supernet_config(tmp_path / "resumed"), store, progress=False, on_epoch=stop_after_first_epoch)
    resumed = train(supernet_config(tmp_path / "resumed", resume=True), store, progress=False)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["top1"] == straight["top1"]
    run = store.get_run(straight["run_id"])
    assert run.kind == "supernet" and run.holdout == 100 and run.candidate.startswith("supernet-")
    assert run.status == "completed" and len(run.epochs) == 2
    assert straight["run_id"] not in {r.id for r in store.completed_runs()}  # never on a leaderboard


def test_batch_norm_recalibration_sets_the_statistics_it_defines():
    """After recalibration on one batch, every BatchNorm holds the mean and unbiased variance of its input
    over that batch (recorded by hooks on a training-mode forward of the same images)."""
    from bnextbench.data import load_data, normalize
    from bnextbench.train.loop import recalibrate_batch_norm

    data = load_data("digits", train_limit=200)
    torch.manual_seed(0)
    net = BNextSupernet(load_space(SPACE_FILE), num_classes=10, stem_stride=1)
    model = net.extract(net.largest)
    recalibrate_batch_norm(model, data, torch.device("cpu"), batch_size=128, seed=3, images=128)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    recalibrated = {m: (m.running_mean.clone(), m.running_var.clone()) for m in norms}
    chosen = torch.randperm(200, generator=torch.Generator().manual_seed(3))[:128]
    inputs = {}
    hooks = [m.register_forward_hook(lambda m, args, _: inputs.__setitem__(m, args[0].detach())) for m in norms]
    with torch.no_grad():
        model.train()(normalize(data.train_images[chosen], data.mean, data.std))
    for hook in hooks:
        hook.remove()
    assert len(inputs) == len(norms) > 20
    for norm, x in inputs.items():
        mean, var = recalibrated[norm]
        channels = x.transpose(0, 1).flatten(1)
        assert torch.allclose(mean, channels.mean(1), atol=1e-5, rtol=1e-4)
        assert torch.allclose(var, channels.var(1, unbiased=True), atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def oneshot_study(tmp_path_factory):
    """A one-shot search on digits: a 2-epoch supernet, 12 scored trials, the 3 best retrained for 2 epochs."""
    import os

    from tests.helpers import invoke, last_json

    root = tmp_path_factory.mktemp("oneshot")
    cwd = os.getcwd()
    os.chdir(root)  # checkpoints go to results/ under the working folder
    try:
        text = invoke("search", "--budget", "3MBOPs", "--strategy", "oneshot", "--space", str(SPACE_FILE),
                      "--trials", "12", "--epochs", "2", "--train-limit", "300", "--holdout", "100",
                      "--batch-size", "50", "--retrain", "3", "--study", "one", "--db", str(root / "r.db"),
                      "--format", "json")
    finally:
        os.chdir(cwd)
    return root, last_json(text)


def test_oneshot_search_keeps_the_budget_and_records_its_fidelity(oneshot_study):
    from bnextbench.models import BNextSpec
    from bnextbench.profiling import profile_spec
    from bnextbench.store import Store

    root, result = oneshot_study
    trials = result["trials"]
    assert result["strategy"] == "oneshot" and len(trials) == 12
    scored = [t for t in trials if t["state"] == "complete"]
    assert len(scored) >= 4 and any(t["state"] == "infeasible" for t in trials)
    for trial in scored:
        assert profile_spec(BNextSpec.from_dict(trial["arch"]["spec"]), 16).bops == trial["bops"] <= 3e6
        assert 0.0 <= trial["top1"] <= 100.0 and trial["run_id"] is None
    fidelity = result["fidelity"]
    assert fidelity["count"] == 3 and len(fidelity["retrained"]) == 3
    assert -1.0 <= fidelity["kendall_tau"] <= 1.0 and -1.0 <= fidelity["spearman_rho"] <= 1.0
    store = Store(root / "r.db")
    best, names = [], set()
    for trial in sorted(scored, key=lambda t: (-t["top1"], t["number"])):  # the 3 best, one trial per candidate
        if trial["candidate"] not in names:
            names.add(trial["candidate"])
            best.append(trial)
    best = best[:3]
    for pair in fidelity["retrained"]:
        run = store.get_run(pair["run_id"])
        assert run.kind == "train" and run.study == "one" and run.trial_number == pair["trial"]
        assert run.holdout is None and run.epochs_done == 2  # the study's protocol: tested on the test split
    assert {p["trial"] for p in fidelity["retrained"]} == {t["number"] for t in best}
    supernet = store.get_run(result["oneshot"]["supernet_run"])
    assert supernet.kind == "supernet" and supernet.holdout == 100


def test_show_and_proxy_check_print_the_fidelity(oneshot_study, run_cli):
    root, result = oneshot_study
    code, out, err = run_cli("show", "one", "--db", str(root / "r.db"))
    assert code == 0 and "Kendall tau" in out + err and "over 3 candidates" in out + err
    import os

    cwd = os.getcwd()
    os.chdir(root)
    try:
        code, out, err = run_cli("proxy-check", "one", "--candidates", "4", "--db", str(root / "r.db"),
                                 "--format", "json")
    finally:
        os.chdir(cwd)
    assert code == 0, err
    import json

    fidelity = json.loads(out.strip().splitlines()[-1])
    assert fidelity["count"] >= 4 and fidelity["kendall_tau"] is not None


@pytest.mark.parametrize("args, fragment", [
    (("--supernet", "999"), "no run 999"),
    (("--holdout", "5000"), "--holdout 5000 leaves too few training images"),
])
def test_bad_oneshot_input_is_one_line(oneshot_study, run_cli, args, fragment):
    root, _ = oneshot_study
    code, out, err = run_cli("search", "--budget", "3MBOPs", "--strategy", "oneshot", "--space", str(SPACE_FILE),
                             "--trials", "2", "--epochs", "1", "--train-limit", "300", "--study", "bad",
                             "--db", str(root / "r.db"), *args)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_supernet_of_another_space_is_refused(oneshot_study, run_cli, tmp_path):
    root, result = oneshot_study
    other = tmp_path / "other.yaml"
    other.write_text(SPACE_FILE.read_text().replace("stem_width: [8, 16]", "stem_width: [8]"))
    code, out, err = run_cli("search", "--budget", "3MBOPs", "--strategy", "oneshot", "--space", str(other),
                             "--supernet", str(result["oneshot"]["supernet_run"]), "--trials", "2", "--epochs", "1",
                             "--train-limit", "300", "--study", "other", "--db", str(root / "r.db"))
    assert code == 2 and "another space" in err and len(err.strip().splitlines()) == 1
