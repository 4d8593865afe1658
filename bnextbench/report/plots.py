"""Figures of runs (matplotlib, no display needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data import normalization, normalize, resize
from ..errors import BnextbenchError
from ..io import atomic_write_bytes
from ..models import DEFAULT_RESOLUTION
from ..nn import is_binary
from ..store import Run
from ..train.loop import load_checkpoint_model


def plot_training_curves(run: Run, path: str | Path) -> Path:
    """Loss, top-1 and the weight-binarization tau against epoch (the BNext README's training figure)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not run.epochs:
        raise BnextbenchError(f"run {run.id} has no finished epoch to plot")
    epochs = [m.epoch + 1 for m in run.epochs]
    figure, (loss_axis, top1_axis, tau_axis) = plt.subplots(1, 3, figsize=(13, 3.6))
    loss_axis.plot(epochs, [m.train_loss for m in run.epochs], marker="o", label="train")
    loss_axis.plot(epochs, [m.test_loss for m in run.epochs], marker="o", label="test")
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    loss_axis.legend()
    top1_axis.plot(epochs, [m.train_top1 for m in run.epochs], marker="o", label="train (augmented)")
    top1_axis.plot(epochs, [m.test_top1 for m in run.epochs], marker="o", label="test")
    top1_axis.set(xlabel="epoch", ylabel="top-1 (%)", title="accuracy")
    top1_axis.legend()
    tau_axis.semilogy(epochs, [max(m.tau, 1e-300) for m in run.epochs], marker="o")
    tau_axis.axhline(1e-7, color="grey", linestyle="--", label="sign below 1e-7")
    tau_axis.set(xlabel="epoch", ylabel="tau", title="weight binarization tau")
    tau_axis.legend()
    for axis in (loss_axis, top1_axis, tau_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    figure.suptitle(f"run {run.id}: {run.model} on {run.data} at {run.resolution} px, seed {run.seed}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(buffer.getvalue(), path)
    return Path(path)


FEATURE_CELL_INCHES = 1.25  # one feature map per cell; at FEATURE_DPI a cell is 125 x 125 px
FEATURE_TITLE_INCHES = 0.75
FEATURE_MIN_COLUMNS = 4  # keeps room for the title
FEATURE_DPI = 100


@dataclass
class FeatureMaps:
    """Activations of one image at the activation binarizer of a block's first binary conv."""

    model: str
    block: int
    layer: str  # qualified name of the binary conv whose input binarizer was hooked
    after_sign: bool
    activations: torch.Tensor  # channels x height x width, on the CPU
    grid: tuple[int, int] = (0, 0)  # (rows, columns) of the drawn maps
    path: Path | None = None


def binary_blocks(model: nn.Module) -> tuple[str, nn.Sequential]:
    """(attribute, blocks) of a binary network, blocks in forward order: ``blocks`` (BNext, the baselines)
    or ``units`` (BNext-18)."""
    for attribute in ("blocks", "units"):
        blocks = getattr(model, attribute, None)
        if isinstance(blocks, nn.Sequential) and len(blocks):
            return attribute, blocks
    raise BnextbenchError(f"{type(model).__name__} has no binary blocks to visualise")


def capture_feature_maps(model: nn.Module, images: torch.Tensor, block: int, after_sign: bool = True,
                         name: str = "model") -> FeatureMaps:
    """Run ``images`` (one normalised image, 1 x 3 x R x R) through ``model`` and keep the activation at the
    input binarizer of block ``block``'s first binary conv: its output (exactly +-1) with ``after_sign``,
    else its real-valued input (before the learnable shift and the sign)."""
    attribute, blocks = binary_blocks(model)
    if not 0 <= block < len(blocks):
        raise BnextbenchError(f"block {block} out of range: {name} has blocks 0..{len(blocks) - 1}")
    conv_name, conv = next(((n, m) for n, m in blocks[block].named_modules() if is_binary(m)), (None, None))
    if conv is None:
        raise BnextbenchError(f"block {block} of {name} has no binary conv")
    captured: list[torch.Tensor] = []
    hook = conv.input_quantizer.register_forward_hook(
        lambda module, inputs, output: captured.append((output if after_sign else inputs[0]).detach())
    )
    model.eval()
    try:
        with torch.no_grad():
            model(images)
    finally:
        hook.remove()
    return FeatureMaps(name, block, f"{attribute}.{block}.{conv_name}", after_sign, captured[0][0].float().cpu())


def read_image(path: str | Path, resolution: int, data_spec: str | None) -> torch.Tensor:
    """An image file as a normalised 1 x 3 x R x R batch, preprocessed like the checkpoint's training data."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    try:
        with Image.open(path) as image:
            pixels = TF.pil_to_tensor(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise BnextbenchError(f"cannot read image {path}: {reason}") from None
    mean, std = normalization((data_spec or "imagefolder").partition(":")[0])
    return normalize(resize(pixels, resolution)[None], mean, std)


def plot_feature_maps(checkpoint: str | Path, image: str | Path, block: int, path: str | Path,
                      after_sign: bool = True, max_maps: int = 64) -> FeatureMaps:
    """A grid PNG of the first ``max_maps`` channel maps of block ``block`` for one image (BNext's figure of
    binary feature maps); the image is resized to the checkpoint's training resolution (224 if unknown)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if max_maps < 1:
        raise BnextbenchError(f"the number of maps must be positive, got {max_maps}")
    model, payload = load_checkpoint_model(checkpoint)
    name = payload.get("model_description", payload).get("model", type(model).__name__)
    resolution = payload.get("resolution") or DEFAULT_RESOLUTION
    features = capture_feature_maps(model, read_image(image, resolution, payload.get("data")), block, after_sign,
                                    name)
    maps = features.activations[:max_maps]
    columns = max(math.ceil(math.sqrt(len(maps))), FEATURE_MIN_COLUMNS)
    rows = math.ceil(len(maps) / columns)
    figure, axes = plt.subplots(rows, columns, squeeze=False, dpi=FEATURE_DPI, layout="constrained", figsize=(
        columns * FEATURE_CELL_INCHES, rows * FEATURE_CELL_INCHES + FEATURE_TITLE_INCHES))
    for channel, axis in enumerate(axes.flat):
        if channel >= len(maps):
            axis.set_axis_off()
            continue
        limit = 1.0 if after_sign else max(float(maps[channel].abs().max()), 1e-12)
        axis.imshow(maps[channel].numpy(), cmap="gray" if after_sign else "coolwarm", vmin=-limit, vmax=limit,
                    interpolation="nearest")
        axis.set(xticks=[], yticks=[])
        axis.set_title(f"ch {channel}", fontsize=8)
    stage = "after sign (black -1, white +1)" if after_sign else "before sign (blue < 0 < red, per-map scale)"
    figure.suptitle(f"{name} {features.layer}\ninput {stage}\n{len(maps)} of {len(features.activations)} channels "
                    f"of {maps.shape[1]}x{maps.shape[2]} px, image {Path(image).name}", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FEATURE_DPI)
    plt.close(figure)
    atomic_write_bytes(buffer.getvalue(), path)
    features.grid, features.path = (rows, columns), Path(path)
    return features
