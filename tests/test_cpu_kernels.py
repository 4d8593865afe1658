"""The switch of bnextbench.nn.config: its fast paths and plain torch ops compute the same network.

Every registered model runs one training forward + backward from the same weights three times: fp32
with the CPU kernels on ("fast"), fp32 with them off ("plain"), and float64 with them off
("reference"; the conv kernels are fp32-only, so float64 cannot test them, only judge them).

Two effects of fp32 rounding are kept from passing for kernel errors:

- Discontinuities. Reordered sums move a pre-sign value within ~1e-7 of 0 (or of a rounding edge of an
  8-bit quantizer) to the other side, and that one flip changes logits at 1e-3 and gradients by O(1).
  So each input quantizer is checked where it stands: its input must agree between the paths (every
  kernel upstream), the plain quantizer must emit exactly the fast values from the fast input, and then
  every run quantizes the fast input, which stops a flip from spreading, forward and backward: a HardSign's
  straight-through gradient stops at |x + b| = 1 and a min-max quantizer's range comes from two inputs, so
  an input a rounding away from such an edge changed 233 of bnext_small's gradients on an AVX-512 host
  while the backward still ran on each run's own input.
- Conditioning. Backward through train-mode BatchNorm over batch 2 loses digits: plain torch's own fp32
  gradient of some SE biases is 2 % off its float64 value. So each gradient must be about as close to
  the reference as plain torch's fp32 gradient is, not within a fixed tolerance of it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnextbench.models import create_model, list_models
from bnextbench.nn import (
    QuantConv2d,
    QuantLinear,
    cpu_kernels,
    set_cpu_kernels,
    use_cpu_kernels,
)
from bnextbench.nn.config import CPU_KERNELS_ENV
from bnextbench.nn.conv import _WinogradConv, algorithm_for, conv2d
from bnextbench.nn.quantizers import FLOAT_BITS, precision_of

from .helpers import NUM_CLASSES, SMALL_RESOLUTION

BATCH_SIZE = 2
LOGITS_RTOL, LOGITS_ATOL = 1e-4, 1e-5
QUANTIZER_INPUT_RTOL = 1e-5  # |plain - fast| / |fast| over each quantizer input; measured below 1e-6
# A fast gradient passes when |g_fast - g_ref| <= ACCURACY_RATIO |g_plain - g_ref| + GRAD_RTOL |g_ref|
# + GRAD_ATOL sqrt(numel). Winograd rounds 2-6x more than oneDNN per conv (a known trait of the
# algorithm), which ill-conditioned gradients amplify: up to 7.5x measured on bnext_large. The ATOL
# floor is for gradients that are 0 in exact arithmetic (a bias before a train-mode BatchNorm).
ACCURACY_RATIO = 10.0
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6


def input_quantizers(model: nn.Module) -> dict[str, nn.Module]:
    """Every layer's low-precision input quantizer, by module name: the steps where values jump."""
    return {
        f"{name}.input_quantizer": layer.input_quantizer
        for name, layer in model.named_modules()
        if isinstance(layer, (QuantConv2d, QuantLinear)) and precision_of(layer.input_quantizer) < FLOAT_BITS
    }


def custom_functions(output: torch.Tensor) -> set[str]:
    """Names of the Python autograd Functions in the graph that produced ``output``."""
    names, seen, pending = set(), set(), [output.grad_fn]
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            names.add(type(node).__name__)
        pending.extend(next_node for next_node, _ in node.next_functions)
    return names


@dataclass
class Run:
    logits: torch.Tensor
    grads: dict[str, torch.Tensor | None]
    functions: set[str]


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, hook) -> Run:
    """One forward + backward with ``hook(name, module, inputs, output)`` on every input quantizer."""
    handles = [quantizer.register_forward_hook(lambda m, i, o, name=name: hook(name, m, i, o))
               for name, quantizer in input_quantizers(model).items()]
    logits = model(images)
    for handle in handles:
        handle.remove()
    functions = custom_functions(logits)
    F.cross_entropy(logits, labels).backward()
    return Run(logits.detach(), {name: p.grad for name, p in model.named_parameters()}, functions)


@dataclass
class GradientError:
    fast: float  # |g_fast - g_ref|
    plain: float  # |g_plain - g_ref|
    reference: float  # |g_ref|
    numel: int

    @property
    def as_accurate_as_torch(self) -> bool:
        return self.fast <= ACCURACY_RATIO * self.plain + GRAD_RTOL * self.reference + GRAD_ATOL * self.numel**0.5


@dataclass
class PathsRun:
    fast: Run
    plain: Run
    reference_functions: set[str]
    quantizer_input_differences: dict[str, float]  # |plain - fast| / |fast|
    value_mismatches: list[str]  # quantizers whose plain path emits other values from the same input
    gradient_errors: dict[str, GradientError]
    without_gradient: dict[str, list[str]]  # run -> parameters that got no gradient


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a.detach() - b) / torch.linalg.vector_norm(b).clamp_min(1e-30))


@pytest.fixture(scope="module", params=list_models())
def paths_run(request) -> PathsRun:
    """The fast, plain and reference runs of one registered model, reduced to what the tests compare."""
    torch.manual_seed(0)
    model = create_model(request.param, num_classes=NUM_CLASSES, small_input=True).train()
    images = torch.randn(BATCH_SIZE, 3, SMALL_RESOLUTION, SMALL_RESOLUTION)
    labels = torch.randint(0, NUM_CLASSES, (BATCH_SIZE,))
    fast_values: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    input_differences: dict[str, float] = {}
    value_mismatches: list[str] = []

    def record(name, module, inputs, output):
        fast_values[name] = (inputs[0].detach().clone(), output.detach().clone())

    def share(name, module, inputs, output):
        # The quantizer runs again on the fast input, so that its output (+-1 and 8-bit levels, exact in
        # float64) and the edges of its straight-through gradient are the fast run's; the gradient still
        # flows to this run's own input, and from there upstream.
        x = inputs[0]
        return module.forward(x + (fast_values[name][0].to(x.dtype) - x).detach())

    def check_and_share(name, module, inputs, output):
        fast_input, fast_output = fast_values[name]
        input_differences[name] = relative_difference(inputs[0], fast_input)
        if not torch.equal(module.forward(fast_input), fast_output):  # .forward: no hook recursion
            value_mismatches.append(name)
        return share(name, module, inputs, output)

    with cpu_kernels(True):
        fast = train_step(copy.deepcopy(model), images, labels, record)
    assert fast_values, f"{request.param} has no low-precision input quantizer to check"
    with cpu_kernels(False):
        plain = train_step(copy.deepcopy(model), images, labels, check_and_share)
        reference = train_step(model.double(), images.double(), labels, share)

    runs = {"fast": fast, "plain": plain, "reference": reference}
    without_gradient = {tag: [n for n, g in run.grads.items() if g is None] for tag, run in runs.items()}
    gradient_errors = {}
    for name, expected in reference.grads.items():
        if expected is not None and fast.grads[name] is not None and plain.grads[name] is not None:
            gradient_errors[name] = GradientError(
                fast=float(torch.linalg.vector_norm(fast.grads[name].double() - expected)),
                plain=float(torch.linalg.vector_norm(plain.grads[name].double() - expected)),
                reference=float(torch.linalg.vector_norm(expected)),
                numel=expected.numel(),
            )
    for run in runs.values():  # keep numbers, not a model's worth of gradient tensors per run
        run.grads = {}
    return PathsRun(fast, plain, reference.functions, input_differences, value_mismatches, gradient_errors,
                    without_gradient)


def test_quantizers_see_the_same_inputs_and_emit_the_same_values(paths_run):
    apart = {name: d for name, d in paths_run.quantizer_input_differences.items() if d > QUANTIZER_INPUT_RTOL}
    assert apart == {}
    assert paths_run.value_mismatches == []


def test_logits_agree(paths_run):
    torch.testing.assert_close(paths_run.plain.logits, paths_run.fast.logits, rtol=LOGITS_RTOL, atol=LOGITS_ATOL)


def test_every_parameter_gradient_is_as_accurate_as_torch(paths_run):
    without = paths_run.without_gradient
    assert without["fast"] == without["plain"] == without["reference"]
    assert len(paths_run.gradient_errors) > 0
    off = {name: error for name, error in paths_run.gradient_errors.items() if not error.as_accurate_as_torch}
    assert off == {}


def test_switch_off_leaves_no_custom_autograd_function(paths_run):
    assert paths_run.plain.functions == paths_run.reference_functions == set()
    assert "_WinogradConvBackward" in paths_run.fast.functions  # so the check above can fail


@pytest.mark.parametrize("value, expected", [(None, True), ("", True), ("1", True), ("0", False), (" 0 ", False)])
def test_environment_variable_sets_the_default(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(CPU_KERNELS_ENV, raising=False)
    else:
        monkeypatch.setenv(CPU_KERNELS_ENV, value)
    assert use_cpu_kernels() is expected


def test_unknown_environment_value_is_refused(monkeypatch):
    monkeypatch.setenv(CPU_KERNELS_ENV, "off")
    with pytest.raises(ValueError, match=CPU_KERNELS_ENV):
        use_cpu_kernels()


def test_code_setting_wins_over_the_environment_and_the_context_restores_it(monkeypatch):
    monkeypatch.setenv(CPU_KERNELS_ENV, "0")
    try:
        set_cpu_kernels(True)
        assert use_cpu_kernels()
        with cpu_kernels(False):
            assert not use_cpu_kernels()
        assert use_cpu_kernels()
    finally:
        set_cpu_kernels(None)
    assert not use_cpu_kernels()


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_switch_decides_between_winograd_and_torch_conv2d(monkeypatch, enabled):
    x, weight = torch.randn(2, 256, 4, 4), torch.randn(8, 256, 3, 3)
    assert algorithm_for(x.shape, weight.shape, 1, 1) == "winograd"
    calls = []

    def spy(function):
        def called(*args, **kwargs):
            calls.append(function.__name__)
            return function(*args, **kwargs)

        return called

    monkeypatch.setattr(F, "conv2d", spy(F.conv2d))
    monkeypatch.setattr(_WinogradConv, "apply", spy(_WinogradConv.apply))
    with cpu_kernels(enabled):
        out = conv2d(x, weight, None, 1, 1)
    assert calls == (["apply"] if enabled else ["conv2d"])
    assert out.shape == (2, 8, 4, 4)
