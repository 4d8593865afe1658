"""Import the checkpoints released with the BNext paper (state_dicts of the reference ``src/bnext.py``).

Every reference tensor is consumed and shape-checked: it is either renamed onto this model or,
for the activation-temperature buffers that have no effect on the forward pass, checked and
dropped. A missing, extra or mis-shaped tensor is an error that lists the names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import BnextbenchError
from ..io import atomic_torch_save, read_checkpoint
from .registry import BNEXT_NAMES, check_model_name, create_model

CHECKPOINT_FORMAT = "bnextbench-model/1"
_LISTED_NAMES = 8

_UNIT_RENAMES = (
    (r"scale", "recoupling.mix"),
    (r"move\.bias", "conv.input_quantizer.shift"),
    (r"binary_conv\.weight", "conv.weight"),
    (r"binary_conv\.temperature", "conv.weight_quantizer.tau"),
    (r"norm1\.(.+)", r"bn1.\1"),
    (r"norm2\.(.+)", r"bn2.\1"),
    (r"activation1\.weight", "shortcut_prelu.weight"),
    (r"activation2\.weight", "prelu.weight"),
    (r"se\.se\.1\.(weight|bias)", r"recoupling.squeeze.\1"),
    (r"se\.se\.3\.(weight|bias)", r"recoupling.excite.\1"),
)
_UNIT_SLOTS = {"Attention": "mixer", "FFN": "ffn.0", "FFN_1": "ffn.0", "FFN_2": "ffn.1"}
_TOP_RENAMES = (
    (r"feature\.0\.conv1\.weight", "stem.conv.weight"),
    (r"feature\.0\.bn1\.(.+)", r"stem.bn.\1"),
    (r"feature\.0\.prelu\.weight", "stem.prelu.weight"),
    (r"prelu\.weight", "head_prelu.weight"),
    (r"fc\.(weight|bias)", r"fc.\1"),
)
# HardSign's temperature: decayed by the reference, but without effect on its forward pass.
_NO_EFFECT = re.compile(r"feature\.\d+\.(Attention|FFN|FFN_1|FFN_2)\.binary_activation\.temperature")
_NO_EFFECT_SHAPE = (1,)


class CheckpointError(BnextbenchError):
    pass


def reference_to_local(name: str) -> str | None:
    """This package's name for a reference tensor name, or None for an unknown name."""
    for pattern, target in _TOP_RENAMES:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, target, name)
    match = re.fullmatch(r"feature\.(\d+)\.(Attention|FFN|FFN_1|FFN_2)\.(.+)", name)
    if match and int(match.group(1)) >= 1:
        index, slot, rest = int(match.group(1)), _UNIT_SLOTS[match.group(2)], match.group(3)
        for pattern, target in _UNIT_RENAMES:
            if re.fullmatch(pattern, rest):
                return f"blocks.{index - 1}.{slot}.{re.sub(pattern, target, rest)}"
    return None


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
    """Rename and shape-check a reference state_dict for ``model``; raise listing every mismatch."""
    expected = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    unexpected, mismatched, mismatched_locals = [], [], set()
    for name, tensor in state.items():
        if _NO_EFFECT.fullmatch(name):
            if tuple(tensor.shape) != _NO_EFFECT_SHAPE:
                mismatched.append(f"{name} {list(tensor.shape)} != {list(_NO_EFFECT_SHAPE)}")
            continue
        local = reference_to_local(name)
        if local is None or local not in expected:
            unexpected.append(name)
        elif tensor.shape != expected[local].shape:
            mismatched.append(f"{name} {list(tensor.shape)} != {list(expected[local].shape)}")
            mismatched_locals.add(local)
        else:
            converted[local] = tensor
    missing = sorted(set(expected) - set(converted) - mismatched_locals)
    problems = [
        _listing(label, names)
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
        if names
    ]
    if problems:
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__}: " + "; ".join(problems))
    return converted


def import_reference_checkpoint(path: str | Path, model_name: str) -> nn.Module:
    """Build ``model_name`` and load a reference BNext checkpoint into it (classes from the FC's shape)."""
    check_model_name(model_name)
    if model_name not in BNEXT_NAMES:
        raise CheckpointError(f"reference checkpoints exist for {', '.join(BNEXT_NAMES)}, not {model_name}")
    state = read_state_dict(path)
    fc = state.get("fc.weight")
    num_classes = fc.shape[0] if fc is not None and fc.dim() == 2 else 1000
    model = create_model(model_name, num_classes=num_classes)
    model.load_state_dict(convert_reference_state_dict(state, model))
    return model


def save_model_checkpoint(path: str | Path, model_name: str, model: nn.Module, model_kwargs: dict[str, Any]) -> None:
    """Write a bnextbench model checkpoint atomically: all or nothing."""
    payload = {"format": CHECKPOINT_FORMAT, "model": model_name, "model_kwargs": model_kwargs,
               "state_dict": model.state_dict()}
    atomic_torch_save(payload, path)
