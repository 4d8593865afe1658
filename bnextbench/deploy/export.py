"""Export a model as a packed binary network: one safetensors file, no pickle.

What the file holds, by layer (``plan_layers`` decides, and refuses a model the engine cannot run):

- binary conv / linear (1-bit weights and inputs): ``NAME.packed_weight`` uint64 sign bits, 64 to a word
  (:func:`~bnextbench.deploy.layers.pack_weight_signs`); ``NAME.threshold`` float32, the input binarizer's
  per-channel shift folded into the threshold the sign is taken against (t = -b, exact in fp32);
  ``NAME.alpha`` float32, the per-output-channel scale of an XNOR-style binarizer; ``NAME.bias`` if any;
- k-bit layers (min-max quantized weights, BNext's 8-bit stem, SE and classifier): ``NAME.weight_codes``
  (uint8 up to 8 bits) with ``NAME.weight_low`` and ``NAME.weight_step`` per quantization group, so
  that codes * step + low is the weight the simulated layer convolves with, bit for bit;
- everything else (BatchNorm statistics, PReLU slopes, float layers) at its own precision and name.

The metadata (:mod:`bnextbench.deploy.fileformat`) says how to rebuild the architecture (registry name
and arguments, or a BNext spec), the class names, input resolution and normalisation, the counter's
figures at that resolution and the layer plan.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..complexity import count_model
from ..io import atomic_write_bytes, check_writable
from ..nn import ApproxSign, HardSign, MinMaxQuantizer, ProgressiveSign, QuantConv2d, QuantLinear, ScaledSign
from ..nn.quantizers import FLOAT_BITS, precision_of
from .fileformat import DeployError, decode, encode
from .layers import pack_weight_signs


def _binary_weight_scaled(name: str, layer: nn.Module) -> bool:
    """Whether the layer's weight binarizer scales its output (ScaledSign); refuses one that is not binary yet."""
    binarizer = layer.weight_quantizer
    if isinstance(binarizer, ScaledSign):
        return True
    if isinstance(binarizer, ProgressiveSign):
        if not binarizer.is_sign:
            raise DeployError(f"layer {name}: weights are not binary yet (tau = {float(binarizer.tau):.3g}, sign "
                              f"below {binarizer.sign_below:g}); export a checkpoint trained past its sign epoch")
        return False
    raise DeployError(f"layer {name}: the engine cannot run the weight binarizer {type(binarizer).__name__}")


def _binary_entry(name: str, layer: nn.Module) -> dict[str, Any]:
    if not isinstance(layer.input_quantizer, (HardSign, ApproxSign)):  # sign(x + b), b per channel or absent
        raise DeployError(f"layer {name}: the engine cannot run the input binarizer "
                          f"{type(layer.input_quantizer).__name__}")
    scaled = _binary_weight_scaled(name, layer)
    if isinstance(layer, QuantLinear):
        return {"kind": "binary-linear", "in_channels": layer.in_features, "out_channels": layer.out_features,
                "bias": layer.bias is not None}
    kernel, stride, padding = layer.kernel_size, layer.stride, layer.padding
    if (layer.groups != 1 or layer.dilation != (1, 1) or layer.padding_mode != "zeros" or kernel[0] != kernel[1]
            or stride[0] != stride[1] or padding[0] != padding[1]):
        raise DeployError(f"layer {name}: the engine runs square binary convs with groups 1, no dilation and zero "
                          f"padding, not {layer}")
    return {"kind": "binary-conv", "in_channels": layer.in_channels, "out_channels": layer.out_channels,
            "kernel_size": kernel[0], "stride": stride[0], "padding": padding[0], "scaled": scaled,
            "bias": layer.bias is not None}


def plan_layers(model: nn.Module) -> dict[str, dict[str, Any]]:
    """How each non-float layer is stored, by module name; a layer the engine cannot run is one error naming it."""
    plan: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        weight_quantizer = getattr(module, "weight_quantizer", None)
        input_quantizer = getattr(module, "input_quantizer", None)
        bits = (precision_of(weight_quantizer), precision_of(input_quantizer))
        if 1 in bits:
            if bits != (1, 1) or not isinstance(module, (QuantConv2d, QuantLinear)):
                raise DeployError(f"layer {name} ({type(module).__name__}) has {bits[0]}-bit weights and {bits[1]}-bit "
                                  f"inputs: the engine runs binary layers that are conv or linear with both 1-bit")
            plan[name] = _binary_entry(name, module)
        elif isinstance(module, (QuantConv2d, QuantLinear)) and isinstance(weight_quantizer, MinMaxQuantizer):
            plan[name] = {"kind": "quantized", "bits": weight_quantizer.bits,
                          "group_dims": list(weight_quantizer.group_dims)}
        elif bits[0] < FLOAT_BITS:
            raise DeployError(f"layer {name}: the engine cannot store the {bits[0]}-bit weight quantizer "
                              f"{type(weight_quantizer).__name__}")
    if not any(entry["kind"].startswith("binary") for entry in plan.values()):
        raise DeployError(f"{type(model).__name__} has no binary layer: nothing to pack")
    return plan


def quantized_weight(quantizer: MinMaxQuantizer, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """Integer codes and per-group (low, step) with codes * step + low == quantizer's value, bit for bit."""
    dims = tuple(d % weight.dim() for d in quantizer.group_dims)
    low = weight.amin(dim=dims, keepdim=True)
    step = (weight.amax(dim=dims, keepdim=True) - low).clamp_min(1e-8) / (2**quantizer.bits - 1)
    codes = torch.round((weight - low) / step)
    return {"weight_codes": codes.to(torch.uint8 if quantizer.bits <= 8 else torch.int32),
            "weight_low": low, "weight_step": step}


@torch.no_grad()
def packed_tensors(model: nn.Module, plan: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Every tensor the engine needs, by its name in the engine's model (see the module docstring)."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    tensors: dict[str, torch.Tensor] = {}
    for name, entry in plan.items():
        layer = model.get_submodule(name)
        replaced = [key for key in state if key.startswith(f"{name}.")]
        for key in replaced:
            del state[key]
        weight = layer.weight.detach().cpu().float()
        if entry["kind"] == "quantized":
            parts = quantized_weight(layer.weight_quantizer, weight)
            if layer.bias is not None:
                parts["bias"] = layer.bias.detach().cpu()
        else:
            shift = layer.input_quantizer.shift
            channels = entry["in_channels"]
            parts = {"packed_weight": pack_weight_signs(weight),
                     "threshold": torch.zeros(channels) if shift is None else -shift.detach().cpu().reshape(channels)}
            if entry.get("scaled"):
                parts["alpha"] = layer.weight_quantizer.output_scale(weight)
            if layer.bias is not None:
                parts["bias"] = layer.bias.detach().cpu()
        tensors.update({f"{name}.{key}": value.contiguous() for key, value in parts.items()})
    tensors.update(state)
    return tensors


def serialize(model: nn.Module, info: dict[str, Any]) -> bytes:
    """The packed file's bytes: ``model``'s tensors as planned, and ``info`` (architecture, classes, input) with
    the layer plan and the counter's figures at ``info["resolution"]`` added to the metadata."""
    plan = plan_layers(model)
    counter = count_model(model, info["resolution"]).to_dict() if hasattr(model, "layer_sites") else None
    return encode(packed_tensors(model, plan), {**info, "layers": plan, "counter": counter})


def export_checkpoint(checkpoint: str | Path, out: str | Path, classes: list[str] | None = None) -> dict[str, Any]:
    """Write ``checkpoint`` (from ``train`` or ``import-checkpoint``) as a packed file at ``out``, all or nothing;
    returns what was written: path, bytes, layers by kind, and the counter's figures."""
    from ..data import normalization, parse_data_spec
    from ..profiling import uses_small_input
    from ..train.loop import checkpoint_description, load_checkpoint_model

    check_writable(out, "packed model", folder=False)
    model, payload = load_checkpoint_model(checkpoint)
    model.eval()
    description = checkpoint_description(payload)
    num_classes = getattr(model, "num_classes", None)
    resolution = payload.get("resolution") or _native_resolution(description)
    data = payload.get("data")
    kind = parse_data_spec(data).kind if data else ("imagefolder" if not uses_small_input(resolution) else "cifar10")
    mean, std = normalization(kind)
    names = classes or payload.get("classes") or [str(index) for index in range(num_classes)]
    if num_classes is not None and len(names) != num_classes:
        raise DeployError(f"{len(names)} class names given for a model with {num_classes} classes")
    info = {"model": description, "classes": list(names), "resolution": resolution, "mean": list(mean),
            "std": list(std), "data": data, "source": Path(checkpoint).name}
    blob = serialize(model, info)
    atomic_write_bytes(blob, out)
    tensors, metadata = decode(out)  # read back: what is reported is what the file holds
    kinds = Counter(entry["kind"] for entry in metadata["layers"].values())
    parameters = {name for name, _ in model.named_parameters()}
    return {"path": str(out), "bytes": len(blob), "file_mib": len(blob) / 2**20, "layers": dict(kinds),
            "resolution": resolution, "counter": metadata["counter"],
            "parts": storage_parts(tensors, parameters, len(blob))}


_PART_OF_SUFFIX = {
    "packed_weight": "binary weights (1 bit each)",
    "weight_codes": "k-bit weight codes",
    "threshold": "sign thresholds, scales, quantizer ranges",
    "alpha": "sign thresholds, scales, quantizer ranges",
    "weight_low": "sign thresholds, scales, quantizer ranges",
    "weight_step": "sign thresholds, scales, quantizer ranges",
}


def storage_parts(tensors: dict[str, torch.Tensor], parameters: set[str], file_bytes: int) -> list[dict[str, Any]]:
    """Where a packed file's bytes go: tensors by part (binary weights, k-bit codes, scales, float parameters,
    float buffers such as BatchNorm statistics), then the header with its metadata, then the whole file."""
    parts: dict[str, list[int]] = {}
    for name, tensor in tensors.items():
        part = _PART_OF_SUFFIX.get(name.rsplit(".", 1)[-1]) or (
            "float parameters (32 bit)" if name in parameters else "buffers (BatchNorm statistics)")
        count_and_bytes = parts.setdefault(part, [0, 0])
        count_and_bytes[0] += 1
        count_and_bytes[1] += tensor.numel() * tensor.element_size()
    rows = [{"part": part, "tensors": count, "bytes": size, "mib": size / 2**20}
            for part, (count, size) in sorted(parts.items(), key=lambda item: -item[1][1])]
    header = file_bytes - sum(row["bytes"] for row in rows)
    rows.append({"part": "header and metadata", "tensors": None, "bytes": header, "mib": header / 2**20})
    rows.append({"part": "file", "tensors": len(tensors), "bytes": file_bytes, "mib": file_bytes / 2**20})
    return rows


def _native_resolution(description: dict[str, Any]) -> int:
    """The side a model without a training record is built for: 32 px with the small-input stem, else 224."""
    small = description.get("model_kwargs", {}).get("small_input")
    if small is None and description.get("arch_spec"):
        small = description["arch_spec"].get("stem_stride") == 1
    return 32 if small else 224
