"""Import the checkpoints released with the BNext paper (state_dicts of the reference ``src/bnext.py``).

Every reference tensor is consumed and shape-checked: it is either renamed onto this model or,
for the activation-temperature buffers that have no effect on the forward pass, checked and
dropped. A missing, extra or mis-shaped tensor is an error that lists the names as the
checkpoint spells them, with this package's name beside each.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Container
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ..choices import REFERENCE_VARIANTS
from ..errors import BnextbenchError
from ..io import atomic_torch_save, read_checkpoint
from ..nn.quantizers import FLOAT_BITS
from .registry import BNEXT_NAMES, check_model_name, create_model

CHECKPOINT_FORMAT = "bnextbench-model/1"
_LISTED_NAMES = 8

QUANT_AUX_BITS = 8
_VARIANT_AUX_BITS = dict(zip(REFERENCE_VARIANTS, (FLOAT_BITS, QUANT_AUX_BITS)))
# The reference's stem has stride 2 for ImageNet's class count and stride 1 for any other (CIFAR).
_IMAGENET_CLASSES = 1000

# Renames written once as templates and applied in both directions: ``{field}`` stands for the
# part of the name both spellings share, so reference -> local and local -> reference cannot drift.
_FIELDS = {"param": r"weight|bias", "attr": r"[^.]+"}
_UNIT_RENAMES = (
    ("scale", "recoupling.mix"),
    ("move.bias", "conv.input_quantizer.shift"),
    ("binary_conv.weight", "conv.weight"),
    ("binary_conv.temperature", "conv.weight_quantizer.tau"),
    ("norm1.{attr}", "bn1.{attr}"),
    ("norm2.{attr}", "bn2.{attr}"),
    ("activation1.weight", "shortcut_prelu.weight"),
    ("activation2.weight", "prelu.weight"),
    ("se.se.1.{param}", "recoupling.squeeze.{param}"),
    ("se.se.3.{param}", "recoupling.excite.{param}"),
)
_TOP_RENAMES = (
    ("feature.0.conv1.weight", "stem.conv.weight"),
    ("feature.0.bn1.{attr}", "stem.bn.{attr}"),
    ("feature.0.prelu.weight", "stem.prelu.weight"),
    ("prelu.weight", "head_prelu.weight"),
    ("fc.{param}", "fc.{param}"),
)
# Reference feature.N (N >= 1) is block N - 1 here; a doubling block's FFN_1 and FFN_2 are ffn.0 and
# ffn.1, a plain block's single FFN is ffn.0. No leading zeros, so that each name has one spelling.
_REFERENCE_UNIT = re.compile(r"feature\.([1-9]\d*)\.(Attention|FFN|FFN_1|FFN_2)\.(.+)")
_LOCAL_UNIT = re.compile(r"blocks\.(0|[1-9]\d*)\.(mixer|ffn\.0|ffn\.1)\.(.+)")
_UNIT_SLOTS = {"Attention": "mixer", "FFN": "ffn.0", "FFN_1": "ffn.0", "FFN_2": "ffn.1"}
# HardSign's temperature: decayed by the reference, but without effect on its forward pass.
_NO_EFFECT = re.compile(r"feature\.\d+\.(Attention|FFN|FFN_1|FFN_2)\.binary_activation\.temperature")
_NO_EFFECT_SHAPE = (1,)


class CheckpointError(BnextbenchError):
    """A reference checkpoint that cannot be read, or does not fit the model it is imported into."""


class ImportedModel(NamedTuple):
    """A model loaded from a reference checkpoint, with what rebuilds it: ``create_model(name, **model_kwargs)``."""

    name: str
    model: nn.Module
    model_kwargs: dict[str, Any]


@functools.cache
def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # literal, field, literal, ...
    return re.compile("".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>{_FIELDS[part]})" for index, part in enumerate(parts)
    ))


def _rename(name: str, renames: tuple[tuple[str, str], ...], to_local: bool) -> str | None:
    """``name`` matched against one side of each (reference, local) template pair, spelled by the other."""
    for reference, local in renames:
        source, target = (reference, local) if to_local else (local, reference)
        match = _template_pattern(source).fullmatch(name)
        if match:
            return target.format(**match.groupdict())
    return None


def reference_to_local(name: str) -> str | None:
    """This package's name for a reference tensor name, or None for an unknown name."""
    top = _rename(name, _TOP_RENAMES, to_local=True)
    if top is not None:
        return top
    match = _REFERENCE_UNIT.fullmatch(name)
    if match is None:
        return None
    index, slot, rest = match.groups()
    local_rest = _rename(rest, _UNIT_RENAMES, to_local=True)
    return None if local_rest is None else f"blocks.{int(index) - 1}.{_UNIT_SLOTS[slot]}.{local_rest}"


def local_to_reference(name: str, local_names: Container[str]) -> str | None:
    """The reference name of this package's tensor ``name``: the exact inverse of :func:`reference_to_local`.

    ``local_names`` (the model's state_dict names) decide the one spelling the name alone does not:
    ``blocks.i.ffn.0`` is the reference's ``FFN_1`` in a block that also has ``ffn.1``, else ``FFN``.
    None for a name that has no reference counterpart.
    """
    top = _rename(name, _TOP_RENAMES, to_local=False)
    if top is not None:
        return top
    match = _LOCAL_UNIT.fullmatch(name)
    if match is None:
        return None
    block, slot, rest = match.groups()
    reference_rest = _rename(rest, _UNIT_RENAMES, to_local=False)
    if reference_rest is None:
        return None
    if slot == "mixer":
        reference_slot = "Attention"
    elif slot == "ffn.1":
        reference_slot = "FFN_2"
    else:
        reference_slot = "FFN_1" if f"blocks.{block}.ffn.1.{rest}" in local_names else "FFN"
    return f"feature.{int(block) + 1}.{reference_slot}.{reference_rest}"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a checkpoint file: bare, nested under "state_dict", with or without "module."."""
    path = Path(path)
    try:
        payload = read_checkpoint(path)
    except BnextbenchError as exc:
        raise CheckpointError(str(exc)) from None
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict) or not payload or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()
    ):
        raise CheckpointError(f"{path} holds no state_dict (a mapping of tensor names to tensors)")
    if all(name.startswith("module.") for name in payload):
        payload = {name[len("module."):]: tensor for name, tensor in payload.items()}
    return payload


def _listing(label: str, names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED_NAMES])
    more = f" and {len(names) - _LISTED_NAMES} more" if len(names) > _LISTED_NAMES else ""
    return f"{label} ({len(names)}): {shown}{more}"


def convert_reference_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename, shape- and type-check a reference state_dict for ``model`` (real floats where the model holds
    floats, all finite; integers where it holds integers); raise listing every mismatch.

    The error names tensors as the checkpoint spells them (a missing one as it should have been
    spelled), with this package's name in parentheses.
    """
    expected = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    unexpected, mismatched, mistyped, not_finite, mismatched_locals = [], [], [], [], set()
    for name, tensor in state.items():
        if _NO_EFFECT.fullmatch(name):
            if tuple(tensor.shape) != _NO_EFFECT_SHAPE:
                mismatched.append(f"{name} {list(tensor.shape)} != {list(_NO_EFFECT_SHAPE)}")
            continue
        local = reference_to_local(name)
        if local is None or local not in expected:
            unexpected.append(name)
        elif tensor.shape != expected[local].shape:
            mismatched.append(f"{name} ({local}) {list(tensor.shape)} != {list(expected[local].shape)}")
            mismatched_locals.add(local)
        elif tensor.is_floating_point() != expected[local].is_floating_point() or tensor.is_complex():
            mistyped.append(f"{name} ({local}) {tensor.dtype} where {expected[local].dtype} belongs")
            mismatched_locals.add(local)
        elif tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            not_finite.append(f"{name} ({local})")
            mismatched_locals.add(local)
        else:
            converted[local] = tensor
    missing = [
        f"{local_to_reference(local, expected)} ({local})"
        for local in expected
        if local not in converted and local not in mismatched_locals
    ]
    problems = [
        _listing(label, names)
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched),
                             ("wrong dtype", mistyped), ("NaN or infinite values", not_finite))
        if names
    ]
    if problems:
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__}: " + "; ".join(problems))
    return converted


def reference_model_kwargs(num_classes: int, variant: str) -> dict[str, Any]:
    """Every constructor argument of the registry model that matches a reference checkpoint.

    ``small_input`` mirrors the reference's stem rule (stride 2 if num_classes == 1000, else 1 for
    CIFAR), and the ablation switches are on, as in the released ``BNext(num_classes, size)``.
    """
    if variant not in _VARIANT_AUX_BITS:
        raise CheckpointError(f"unknown checkpoint variant {variant!r}; choose {' or '.join(REFERENCE_VARIANTS)}")
    return {
        "num_classes": num_classes,
        "small_input": num_classes != _IMAGENET_CLASSES,
        "width_mult": 1.0,
        "elm_attention": True,
        "info_recoupling": True,
        "aux_bits": _VARIANT_AUX_BITS[variant],
    }


def import_reference_checkpoint(path: str | Path, model_name: str, variant: str = "float") -> ImportedModel:
    """Build ``model_name`` and load a reference BNext checkpoint into it (classes from the FC's shape).

    ``variant`` picks the reference implementation the checkpoint is run as: "float" (``src/bnext.py``,
    full-precision stem, SE and classifier; the file the reference training script imports) or
    "quant" (``src/bnext_quant.py`` with quant=True, se_bits=8: 8-bit stem, SE and classifier,
    ``aux_bits=8``). A checkpoint with 1000 classes gets the ImageNet stride-2 stem, any other class
    count the stride-1 stem (``small_input=True``), as the reference decides by the class count.
    """
    check_model_name(model_name)
    if model_name not in BNEXT_NAMES:
        raise CheckpointError(f"reference checkpoints exist for {', '.join(BNEXT_NAMES)}, not {model_name}")
    state = read_state_dict(path)
    fc = state.get("fc.weight")
    num_classes = fc.shape[0] if fc is not None and fc.dim() == 2 else _IMAGENET_CLASSES
    model_kwargs = reference_model_kwargs(num_classes, variant)
    model = create_model(model_name, **model_kwargs)
    model.load_state_dict(convert_reference_state_dict(state, model))
    return ImportedModel(model_name, model, model_kwargs)


def save_model_checkpoint(path: str | Path, model_name: str, model: nn.Module, model_kwargs: dict[str, Any]) -> None:
    """Write a bnextbench model checkpoint atomically: all or nothing."""
    payload = {"format": CHECKPOINT_FORMAT, "model": model_name, "model_kwargs": model_kwargs,
               "state_dict": model.state_dict()}
    atomic_torch_save(payload, path)
