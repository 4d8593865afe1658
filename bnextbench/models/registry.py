"""The model registry: bnextbench's entrypoints registered in timm's registry.

After ``import bnextbench``, ``timm.create_model("bnext_tiny", num_classes=10)`` works. Every
entrypoint accepts ``num_classes`` and ``small_input`` (32-pixel inputs: stride-1 stem, no max pool).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

import timm
from timm.models import register_model
from torch import nn

from ..choices import MODEL_RESOLUTION
from ..errors import BnextbenchError
from .baselines import BiRealNet18, ReActNetA, XnorResNet18
from .bnext import BNext, BNext18
from .spec import BNEXT_SIZES, named_spec

DEFAULT_RESOLUTION = MODEL_RESOLUTION
_TIMM_FACTORY_KEYS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")

_MODEL_NAMES: list[str] = []

# Read by timm's register_model: the input geometry each model was designed for (no weights to download).
default_cfgs: dict[str, dict[str, Any]] = {}


class UnknownModelError(BnextbenchError):
    pass


def _register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    default_cfgs[fn.__name__] = {"input_size": (3, DEFAULT_RESOLUTION, DEFAULT_RESOLUTION), "num_classes": 1000}
    _MODEL_NAMES.append(fn.__name__)
    return register_model(fn)


def _model_kwargs(pretrained: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
    if pretrained:
        raise BnextbenchError(
            "bnextbench downloads no weights; import a released checkpoint with `bnextbench import-checkpoint`"
        )
    return {key: value for key, value in kwargs.items() if key not in _TIMM_FACTORY_KEYS}


def _bnext(
    name: str,
    num_classes: int = 1000,
    small_input: bool = False,
    width_mult: float = 1.0,
    elm_attention: bool = True,
    info_recoupling: bool = True,
    aux_bits: int = 8,
) -> BNext:
    spec = named_spec(
        name,
        elm_attention=elm_attention,
        info_recoupling=info_recoupling,
        num_classes=num_classes,
        stem_stride=1 if small_input else 2,
        aux_bits=aux_bits,
    )
    return BNext(spec if width_mult == 1.0 else spec.scaled(width_mult))


@_register
def bnext_tiny(pretrained: bool = False, **kwargs: Any) -> BNext:
    """BNext-T: 32, 64, 128x2, 256x2, 512x6, 1024x2 (stage ratio 1:1:3:1)."""
    return _bnext("bnext_tiny", **_model_kwargs(pretrained, kwargs))


@_register
def bnext_small(pretrained: bool = False, **kwargs: Any) -> BNext:
    """BNext-S: BNext-T widths x 1.5."""
    return _bnext("bnext_small", **_model_kwargs(pretrained, kwargs))


@_register
def bnext_middle(pretrained: bool = False, **kwargs: Any) -> BNext:
    """BNext-M: BNext-S widths, depths 1:4:4:8:4."""
    return _bnext("bnext_middle", **_model_kwargs(pretrained, kwargs))


@_register
def bnext_large(pretrained: bool = False, **kwargs: Any) -> BNext:
    """BNext-L: BNext-T widths x 2, depths 1:4:4:16:4."""
    return _bnext("bnext_large", **_model_kwargs(pretrained, kwargs))


@_register
def bnext18(pretrained: bool = False, **kwargs: Any) -> BNext18:
    """BNext-18: ResNet-18 layout with ELM-Attention and Info-Recoupling units."""
    return BNext18(**_model_kwargs(pretrained, kwargs))


@_register
def xnor_resnet18(pretrained: bool = False, **kwargs: Any) -> XnorResNet18:
    """XNOR-Net ResNet-18 baseline."""
    return XnorResNet18(**_model_kwargs(pretrained, kwargs))


@_register
def birealnet18(pretrained: bool = False, **kwargs: Any) -> BiRealNet18:
    """Bi-Real Net 18 baseline."""
    return BiRealNet18(**_model_kwargs(pretrained, kwargs))


@_register
def reactnet_a(pretrained: bool = False, **kwargs: Any) -> ReActNetA:
    """ReActNet-A baseline."""
    return ReActNetA(**_model_kwargs(pretrained, kwargs))


def list_models() -> list[str]:
    """Names of every model bnextbench registers, in registration order."""
    return list(_MODEL_NAMES)


def check_model_name(name: str) -> str:
    if name in _MODEL_NAMES:
        return name
    close = difflib.get_close_matches(name, _MODEL_NAMES, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(_MODEL_NAMES)}"
    raise UnknownModelError(f"unknown model {name!r}{hint}")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered bnextbench model through timm (unknown names raise with close suggestions)."""
    return timm.create_model(check_model_name(name), **kwargs)


BNEXT_NAMES = tuple(BNEXT_SIZES)
