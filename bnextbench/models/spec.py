"""The architecture spec of the BNext family: a small, JSON-serialisable dataclass with a stable hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

from timm.layers import make_divisible

from ..errors import BnextbenchError
from ..nn.quantizers import FLOAT_BITS


class SpecError(BnextbenchError):
    """An architecture spec that cannot describe a network."""


class BlockLayout(NamedTuple):
    """One BasicBlock: a k x k binary mixer cin -> cin (stride), then 1 x 1 binary units to cout;
    ``se_ratio`` sets the hidden width of its Info-Recoupling gates (channels // se_ratio)."""

    in_channels: int
    out_channels: int
    stride: int
    elm_attention: bool
    info_recoupling: bool
    kernel_size: int = 3
    se_ratio: int = 8


def stage_layout(stem_width: int, widths: tuple[int, ...], depths: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(in channels, out channels, stride) of every block; stage 0 keeps the resolution, every later
    stage halves it in its first block (the reference rule for ReActNet-A and BNext)."""
    blocks = []
    in_channels = stem_width
    for stage, (width, depth) in enumerate(zip(widths, depths)):
        for position in range(depth):
            blocks.append((in_channels, width, 2 if stage > 0 and position == 0 else 1))
            in_channels = width
    return blocks


def reference_elm_flags(num_blocks: int) -> tuple[bool, ...]:
    """The reference rule: block 1 plain, then ELM-Attention on even-indexed blocks (1-based)."""
    return tuple(i >= 2 and i % 2 == 0 for i in range(1, num_blocks + 1))


def ffn_widths(in_channels: int, out_channels: int) -> list[int]:
    """Output widths of the parallel 1 x 1 units of a block, concatenated to ``out_channels``.

    Each unit maps cin -> at most cin with a parameter-free shortcut (the first channels of its
    input), so cout = cin gives one unit and cout = 2 cin the two units of the reference.
    """
    count = math.ceil(out_channels / in_channels)
    return [min(in_channels, out_channels - j * in_channels) for j in range(count)]


@dataclass(frozen=True)
class BNextSpec:
    """BNext network: stem -> stages of BasicBlocks -> PReLU -> global pool -> FC.

    Stage 0 runs at the stem's resolution; the first block of every later stage has stride 2.
    ``elm_attention`` and ``info_recoupling`` hold one flag per block; ``se_ratio`` and ``kernel_size``
    (of the k x k mixers) are one value for every block or one per block. ``aux_bits`` is the precision
    of the non-binary stem, SE and classifier layers (8 as in BNext-quant and the paper's
    accounting, 32 for float as in the reference training file).
    """

    stem_width: int
    stage_widths: tuple[int, ...]
    stage_depths: tuple[int, ...]
    elm_attention: tuple[bool, ...]
    info_recoupling: tuple[bool, ...]
    se_ratio: int | tuple[int, ...] = 8
    kernel_size: int | tuple[int, ...] = 3
    stem_stride: int = 2
    num_classes: int = 1000
    aux_bits: int = 8

    def __post_init__(self) -> None:
        for name in ("stem_width", "num_classes", "aux_bits"):
            _check_positive_int(name, getattr(self, name))
        for name in ("stage_widths", "stage_depths"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise SpecError(f"{name} must be a non-empty list of positive integers")
            for value in values:
                _check_positive_int(name, value)
        if len(self.stage_widths) != len(self.stage_depths):
            raise SpecError(
                f"stage_widths has {len(self.stage_widths)} entries but stage_depths has {len(self.stage_depths)}"
            )
        blocks = sum(self.stage_depths)
        for name in ("elm_attention", "info_recoupling"):
            flags = getattr(self, name)
            if not isinstance(flags, tuple) or len(flags) != blocks or not all(isinstance(f, bool) for f in flags):
                raise SpecError(f"{name} must hold one true/false flag per block ({blocks} blocks)")
        for name in ("se_ratio", "kernel_size"):
            values = getattr(self, name)
            if isinstance(values, tuple) and len(values) != blocks:
                raise SpecError(f"{name} must be one positive integer or one per block ({blocks} blocks)")
            for value in values if isinstance(values, tuple) else (values,):
                _check_positive_int(name, value)
            if isinstance(values, tuple) and len(set(values)) == 1:  # one network, one canonical form
                object.__setattr__(self, name, values[0])
        if any(k % 2 == 0 for k in self.per_block("kernel_size")):
            raise SpecError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.stem_stride not in (1, 2):
            raise SpecError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if not (2 <= self.aux_bits <= 16 or self.aux_bits == FLOAT_BITS):
            raise SpecError(f"aux_bits must be 2..16 or 32, got {self.aux_bits}")

    @classmethod
    def from_layout(
        cls,
        stem_width: int,
        stage_widths: tuple[int, ...],
        stage_depths: tuple[int, ...],
        elm_attention: bool = True,
        info_recoupling: bool = True,
        **options: Any,
    ) -> BNextSpec:
        """A spec with the reference placement of ELM-Attention, switched on or off as a whole."""
        blocks = sum(stage_depths)
        elm = reference_elm_flags(blocks) if elm_attention else (False,) * blocks
        return cls(stem_width, tuple(stage_widths), tuple(stage_depths), elm, (info_recoupling,) * blocks, **options)

    def scaled(self, width_mult: float) -> BNextSpec:
        """Every channel count times ``width_mult``, rounded to a multiple of 8 (timm's make_divisible)."""
        if not width_mult > 0:
            raise SpecError(f"width multiplier must be positive, got {width_mult}")
        return dataclasses.replace(
            self,
            stem_width=make_divisible(self.stem_width * width_mult),
            stage_widths=tuple(make_divisible(w * width_mult) for w in self.stage_widths),
        )

    def per_block(self, name: str) -> tuple[int, ...]:
        """``se_ratio`` or ``kernel_size`` of every block."""
        value = getattr(self, name)
        return value if isinstance(value, tuple) else (value,) * sum(self.stage_depths)

    def blocks(self) -> list[BlockLayout]:
        stages = stage_layout(self.stem_width, self.stage_widths, self.stage_depths)
        return [
            BlockLayout(cin, cout, stride, elm, recoupling, kernel, se_ratio)
            for (cin, cout, stride), elm, recoupling, kernel, se_ratio in zip(
                stages, self.elm_attention, self.info_recoupling, self.per_block("kernel_size"),
                self.per_block("se_ratio"))
        ]

    def to_dict(self) -> dict[str, Any]:
        return {field.name: _jsonable(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces; equal specs give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BNextSpec:
        if not isinstance(data, dict):
            raise SpecError("an architecture spec must be a JSON object")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown spec field(s): {', '.join(unknown)}")
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
        try:
            return cls(**values)
        except TypeError as exc:
            raise SpecError(f"incomplete spec: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> BNextSpec:
        return cls.from_dict(parse_json(text, "spec"))


def parse_json(text: str, what: str) -> Any:
    """``json.loads`` whose failure is one SpecError line naming ``what``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{what} is not valid JSON: {exc}") from None


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name} must be a positive integer, got {value!r}")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# The named sizes of the reference implementation (src/bnext.py): stem width, stage widths, depths.
BNEXT_SIZES: dict[str, tuple[int, tuple[int, ...], tuple[int, ...]]] = {
    "bnext_tiny": (32, (64, 128, 256, 512, 1024), (1, 2, 2, 6, 2)),
    "bnext_small": (48, (96, 192, 384, 768, 1536), (1, 2, 2, 6, 2)),
    "bnext_middle": (48, (96, 192, 384, 768, 1536), (1, 4, 4, 8, 4)),
    "bnext_large": (64, (128, 256, 512, 1024, 2048), (1, 4, 4, 16, 4)),
}


def named_spec(name: str, **options: Any) -> BNextSpec:
    """The spec of a named BNext size; options go to :meth:`BNextSpec.from_layout`."""
    stem, widths, depths = BNEXT_SIZES[name]
    return BNextSpec.from_layout(stem, widths, depths, **options)


def random_spec(rng: random.Random, num_classes: int = 10, stem_stride: int = 1) -> BNextSpec:
    """A random valid spec around the named sizes (for conformance tests and counter benchmarks)."""
    stages = rng.randint(2, 5)
    widths = [8 * rng.randint(1, 8)]
    for _ in range(stages - 1):
        widths.append(min(1024, widths[-1] * rng.choice((1, 2, 2, 3))))
    depths = tuple(rng.randint(1, 4) for _ in range(stages))
    blocks = sum(depths)
    return BNextSpec(
        stem_width=8 * rng.randint(1, 6),
        stage_widths=tuple(widths),
        stage_depths=depths,
        elm_attention=tuple(rng.random() < 0.5 for _ in range(blocks)),
        info_recoupling=tuple(rng.random() < 0.7 for _ in range(blocks)),
        # one value for the network or one per block, as a per-stage search space yields
        se_ratio=rng.choice((4, 8, 16)) if rng.random() < 0.5 else tuple(rng.choice((4, 8, 16)) for _ in range(blocks)),
        kernel_size=rng.choice((3, 5)) if rng.random() < 0.5 else tuple(rng.choice((3, 5)) for _ in range(blocks)),
        stem_stride=stem_stride,
        num_classes=num_classes,
        aux_bits=rng.choice((8, 32)),
    )
