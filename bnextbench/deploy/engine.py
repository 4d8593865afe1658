"""Run a packed model file: binary layers by XNOR-popcount, every other layer by torch.

The architecture is rebuilt from the file's metadata on the meta device (no weights allocated), each
planned binary layer, once found to be the architecture's binary layer of the same geometry, is replaced
by its packed counterpart (:mod:`bnextbench.deploy.layers`), each
k-bit layer gets its weight back from integer codes, and every tensor of the file is then loaded in
place, strictly: a file that does not fit its architecture is one error, not a silent partial load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..complexity import Complexity, check_resolution, count_model
from ..errors import brief
from ..nn import QuantConv2d, QuantLinear, is_binary
from . import kernels
from .fileformat import FORMAT, DeployError, decode
from .layers import PackedBinaryConv2d, PackedBinaryLinear


@dataclass
class PackedModel:
    """A packed model ready to run: ``model`` (eval mode, CPU) and the file's metadata."""

    model: nn.Module
    metadata: dict[str, Any]
    path: Path

    @property
    def classes(self) -> list[str]:
        return self.metadata["classes"]

    @property
    def resolution(self) -> int:
        return self.metadata["resolution"]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @torch.inference_mode()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of a normalised float32 batch (N, 3, H, W)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise DeployError(f"{self.path.name} takes images of shape (N, 3, H, W), got {tuple(images.shape)}")
        return self.model(images.float().contiguous())


def _geometry(layer: nn.Module) -> dict[str, Any] | None:
    """What a binary layer of the rebuilt architecture is, in the layer plan's terms (None: not a binary layer)."""
    if isinstance(layer, QuantConv2d) and is_binary(layer):
        return {"kind": "binary-conv", "in_channels": layer.in_channels, "out_channels": layer.out_channels,
                "kernel_size": layer.kernel_size[0], "stride": layer.stride[0], "padding": layer.padding[0],
                "bias": layer.bias is not None}
    if isinstance(layer, QuantLinear) and is_binary(layer):
        return {"kind": "binary-linear", "in_channels": layer.in_features, "out_channels": layer.out_features,
                "bias": layer.bias is not None}
    return None


def _packed_layer(name: str, entry: dict[str, Any], replaced: nn.Module, where: str) -> nn.Module:
    """The packed layer for ``entry``, once the architecture's own layer there is found to be that binary layer:
    the kernels trust these shapes, so the file's plan must match what the code builds."""
    geometry = _geometry(replaced)
    if geometry is None or any(entry.get(key) != value for key, value in geometry.items()):
        raise DeployError(f"{where}: layer {name} of the file ({brief(entry)}) is not the architecture's layer there "
                          f"({brief(geometry or type(replaced).__name__)})")
    with torch.device("meta"):  # the file's tensors are assigned in place of these
        if entry["kind"] == "binary-conv":
            return PackedBinaryConv2d(entry["in_channels"], entry["out_channels"], entry["kernel_size"],
                                      entry["stride"], entry["padding"], bool(entry["scaled"]), entry["bias"])
        return PackedBinaryLinear(entry["in_channels"], entry["out_channels"], entry["bias"])


def _dequantized(tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    codes, low, step = (tensors.pop(f"{name}.{part}") for part in ("weight_codes", "weight_low", "weight_step"))
    return codes.float() * step + low  # the simulated quantizer's round(...) * step + low, in the same order


def assemble(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], where: str) -> nn.Module:
    """The engine's model from a file's tensors and metadata (see the module docstring)."""
    tensors = dict(tensors)
    try:
        model = _architecture(metadata)
        for name, entry in metadata["layers"].items():
            layer = model.get_submodule(name)
            if entry["kind"] == "quantized":
                if not isinstance(layer, (QuantConv2d, QuantLinear)):
                    raise DeployError(f"{where}: layer {name} of the file is quantized, but the architecture's layer "
                                      f"there is a {type(layer).__name__}")
                layer.weight_quantizer = nn.Identity()
                tensors[f"{name}.weight"] = _dequantized(tensors, name)
            elif entry["kind"] in ("binary-conv", "binary-linear"):
                model.set_submodule(name, _packed_layer(name, entry, layer, where))
            else:
                raise DeployError(f"{where}: layer {name} has kind {entry['kind']!r}, which this engine cannot run")
    except DeployError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise DeployError(f"{where}: cannot rebuild the model its metadata describes: {brief(str(exc))}") from None
    from ..train.loop import load_weights

    load_weights(model, tensors, where, assign=True)
    still_meta = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if still_meta:
        raise DeployError(f"{where}: the file leaves {len(still_meta)} tensors unset (first {still_meta[0]})")
    return model.eval().requires_grad_(False)


def load_packed(path: str | Path) -> PackedModel:
    """A packed model file, read and checked (:func:`bnextbench.deploy.fileformat.decode`), ready to run."""
    path = Path(path)
    tensors, metadata = decode(path)
    model = assemble(tensors, metadata, str(path))
    return PackedModel(model, metadata, path)


def set_threads(count: int) -> None:
    """Threads for the whole engine: numba's kernels and torch's real-valued layers."""
    if not 1 <= count <= kernels.thread_limit():
        raise DeployError(f"threads must be 1..{kernels.thread_limit()} on this machine, got {count}")
    kernels.set_threads(count)
    torch.set_num_threads(count)


def read_image(path: str | Path, resolution: int, resize: bool) -> torch.Tensor:
    """An image file as a uint8 (3, R, R) tensor: RGB (palette images through their colours) at exactly R x R,
    or, with ``resize``, its shorter side resized to R / 0.95 and centre-cropped (the evaluation crop)."""
    from ..data import decode_image

    path = Path(path)
    if not path.is_file():
        raise DeployError(f"image not found: {path}")
    image = decode_image(path, DeployError)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    bands = image.getbands()
    if len(bands) != 3:
        raise DeployError(f"image {path} has {len(bands)} channel{'s' * (len(bands) != 1)} (mode {image.mode}); "
                          f"the model takes 3 (RGB)")
    image = image.convert("RGB")
    if resize:
        from ..streaming import eval_transform

        return eval_transform(resolution)(image)
    if image.size != (resolution, resolution):
        raise DeployError(f"image {path} is {image.size[0]}x{image.size[1]} px; the model takes "
                          f"{resolution}x{resolution} (--resize resizes and centre-crops)")
    from torchvision.transforms.v2.functional import pil_to_tensor

    return pil_to_tensor(image)


def classify(packed: PackedModel, paths: list[Path], top: int = 5, resize: bool = False) -> list[dict[str, Any]]:
    """The ``top`` classes of each image with their softmax probabilities (%), by the packed model."""
    from ..data import normalize

    if not 1 <= top <= packed.num_classes:
        raise DeployError(f"--top must be 1..{packed.num_classes} for this model, got {top}")
    batch = torch.stack([read_image(path, packed.resolution, resize) for path in paths])
    probabilities = packed.logits(normalize(batch, packed.metadata["mean"], packed.metadata["std"])).softmax(1)
    best = probabilities.topk(top, dim=1)
    return [
        {"image": str(path), "rank": rank + 1, "class": packed.classes[index], "probability": 100 * float(p)}
        for path, values, indices in zip(paths, best.values, best.indices)
        for rank, (p, index) in enumerate(zip(values, indices.tolist()))
    ]


def _architecture(metadata: dict[str, Any]) -> nn.Module:
    """The file's architecture with its float layers, on the meta device: what the counter reads."""
    from ..train.loop import build_model

    with torch.device("meta"):
        return build_model(metadata["model"])


def profile_packed(path: str | Path, resolution: int | None = None, ops_rule: str = "bits",
                   per_layer: bool = False) -> tuple[Complexity, int]:
    """The counter's figures for a packed file's architecture (at its own resolution unless given) and the file's
    size in bytes; the file is read and checked whole, as the engine reads it."""
    _, metadata = decode(path)
    side = metadata["resolution"] if resolution is None else resolution
    check_resolution(side)
    report = count_model(_architecture(metadata), side, ops_rule, name=metadata["model"]["model"], per_layer=per_layer)
    return report, Path(path).stat().st_size


def evaluate_packed(path: str | Path, data: str, resolution: int | None = None, device: str | None = None,
                    batch_size: int = 512, data_mode: str = "auto", skip_bad_images: bool = False,
                    store: Any = None) -> dict[str, Any]:
    """:func:`bnextbench.train.loop.evaluate_checkpoint` for a packed file, run by the engine on the CPU: top-1 /
    top-5, loss and images/s on the test split of ``data``, kept as a run of kind "evaluate"."""
    from ..train.loop import check_evaluation_options, evaluate_and_record

    if device is not None and torch.device(device).type != "cpu":
        raise DeployError(f"{path} is a packed model, which the XNOR-popcount engine runs on the CPU only; drop "
                          f"--device {device}")
    check_evaluation_options(resolution, batch_size, data_mode, device)
    packed = load_packed(path)
    side = packed.resolution
    packed.logits(torch.zeros(1, 3, side, side))  # the kernels compile on first use: not inside the timed pass
    # Laid out as a model checkpoint records its model (no recipe: evaluation takes the default one).
    payload = {"format": FORMAT, **packed.metadata["model"], "data": packed.metadata["data"],
               "resolution": packed.resolution, "classes": packed.classes}
    return evaluate_and_record(packed.model, payload, _architecture(packed.metadata), path, data, resolution,
                               torch.device("cpu"), batch_size, data_mode, skip_bad_images, store)
