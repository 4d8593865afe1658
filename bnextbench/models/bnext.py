"""BNext (Guo et al. 2022): the family built from a :class:`BNextSpec`, and BNext-18.

Architecture only. Unit order (spec section 1.4): shift -> sign -> binary conv (no scale) -> BN -> PReLU
-> [lambda-mix with the shortcut input -> SE (sigmoid) gate] -> [x PReLU(shortcut) for ELM] -> BN -> + shortcut.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import HardSign, PReLU, ProgressiveSign, QuantConv2d, aux_conv, aux_linear
from ..nn.layers import pool_like_stride, spatial_mean
from .plan import LayerSite, conv_out, conv_site, linear_site
from .spec import BlockLayout, BNextSpec, ffn_widths

BINARY_WEIGHT_INIT_STD = 1e-3
PRELU_INIT = 0.25


def inert_prelu(channels: int) -> nn.PReLU:
    """A PReLU that the reference constructs and stores but never calls; frozen so checkpoints round-trip."""
    prelu = nn.PReLU(channels, init=PRELU_INIT)
    prelu.requires_grad_(False)
    return prelu


class Recoupling(nn.Module):
    """Info-Recoupling gate: m = lam * source + (1 - lam) * y; y * sigmoid(W2 ReLU(W1 GAP(m) + c1) + c2).

    lam is per channel, initialised 0.5 and clamped to [0, 1] after each optimizer step (:meth:`constrain_`).
    """

    def __init__(self, channels: int, se_ratio: int, bits: int):
        super().__init__()
        hidden = max(1, channels // se_ratio)
        self.mix = nn.Parameter(torch.full((1, channels, 1, 1), 0.5))
        self.squeeze = aux_conv(channels, hidden, 1, bits, bias=True)
        self.excite = aux_conv(hidden, channels, 1, bits, bias=True)

    @torch.no_grad()
    def constrain_(self) -> None:
        self.mix.clamp_(0.0, 1.0)

    def forward(self, y: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        # GAP is linear and lam per channel, so mix the pooled maps: GAP(m) = lam GAP(source) + (1 - lam) GAP(y).
        # lerp takes one dtype; under autocast y (a conv's output) is bf16 while source and lam may be fp32.
        pooled_y, pooled_source = spatial_mean(y), spatial_mean(source)
        dtype = torch.promote_types(torch.promote_types(pooled_y.dtype, pooled_source.dtype), self.mix.dtype)
        mixed = torch.lerp(pooled_y.to(dtype), pooled_source.to(dtype), self.mix.to(dtype))
        gate = self.excite(F.relu(self.squeeze(mixed)))
        return y * torch.sigmoid(gate)


class BinaryUnit(nn.Module):
    """One binary conv with its own real-valued residual (the reference's Attention / FFN_3x3 / FFN_1x1).

    Shortcut r: P(PReLU1(x)) with ELM-Attention (optionally followed by a 1 x 1 aux conv + BN when
    channels change, BNext-18), else the first ``out_channels`` of P(x). Output: BN2(y * r) + r with
    ELM, BN2(y) + r with recoupling only, y + r with neither. P = 2 x 2 average pool at stride 2.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        elm_attention: bool,
        info_recoupling: bool,
        se_ratio: int,
        aux_bits: int,
        shortcut_conv: bool = False,
        mix_with_shortcut: bool = False,
        sign_below: float = 1e-7,
    ):
        super().__init__()
        if out_channels > in_channels and not shortcut_conv:
            raise ValueError("a unit widening its channels needs a shortcut conv")
        self.out_channels = out_channels
        self.elm_attention = elm_attention
        self.mix_with_shortcut = mix_with_shortcut
        self.conv = QuantConv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            input_quantizer=HardSign(in_channels, clip=1.5),
            weight_quantizer=ProgressiveSign(sign_below),
        )
        nn.init.normal_(self.conv.weight, std=BINARY_WEIGHT_INIT_STD)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.prelu = PReLU(out_channels, init=PRELU_INIT)
        self.shortcut_prelu = PReLU(in_channels, init=PRELU_INIT) if elm_attention else inert_prelu(in_channels)
        self.pool = pool_like_stride(stride)
        if shortcut_conv:
            self.shortcut_conv = aux_conv(in_channels, out_channels, 1, aux_bits)
            self.shortcut_bn = nn.BatchNorm2d(out_channels)
        else:
            self.shortcut_conv = self.shortcut_bn = None
        self.recoupling = Recoupling(out_channels, se_ratio, aux_bits) if info_recoupling else None
        self.bn2 = nn.BatchNorm2d(out_channels) if elm_attention or info_recoupling else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.prelu(self.bn1(self.conv(x)))
        pooled = self.pool(x)
        if self.out_channels < pooled.shape[1]:  # a slice costs a zero-fill and copy in backward
            pooled = pooled[:, : self.out_channels]
        if self.elm_attention:
            shortcut = self.pool(self.shortcut_prelu(x))
            if self.shortcut_conv is not None:
                shortcut = self.shortcut_bn(self.shortcut_conv(shortcut))
        else:
            shortcut = pooled
        if self.recoupling is not None:
            y = self.recoupling(y, shortcut if self.mix_with_shortcut else pooled)
        if self.elm_attention:
            return self.bn2(y * shortcut) + shortcut
        return (y if self.bn2 is None else self.bn2(y)) + shortcut


class BasicBlock(nn.Module):
    """k x k binary mixer (cin -> cin, stride) then 1 x 1 binary units concatenated to cout.

    ``unit_widths`` overrides the 1 x 1 units' widths (:func:`ffn_widths`); a supernet holds more and wider ones.
    """

    def __init__(self, layout, aux_bits: int, unit_widths: list[int] | None = None):
        super().__init__()
        cin, se_ratio = layout.in_channels, layout.se_ratio
        self.mixer = BinaryUnit(
            cin, cin, layout.kernel_size, layout.stride, layout.elm_attention, layout.info_recoupling, se_ratio,
            aux_bits,
        )
        self.ffn = nn.ModuleList(
            BinaryUnit(cin, width, 1, 1, False, layout.info_recoupling, se_ratio, aux_bits)
            for width in unit_widths or ffn_widths(cin, layout.out_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.mixer(x)
        if len(self.ffn) == 1:
            return self.ffn[0](mixed)
        return torch.cat([unit(mixed) for unit in self.ffn], dim=1)


class Stem(nn.Module):
    """k x k aux-precision conv from 3 channels -> BN (no activation; the PReLU is stored, unused)."""

    def __init__(self, width: int, kernel_size: int, stride: int, aux_bits: int):
        super().__init__()
        self.conv = aux_conv(3, width, kernel_size, aux_bits, stride, pre_quantized_input=True)
        self.bn = nn.BatchNorm2d(width)
        self.prelu = inert_prelu(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class BNext(nn.Module):
    """A BNext network built from its spec: stem -> BasicBlocks -> PReLU -> global average -> FC."""

    def __init__(self, spec: BNextSpec):
        super().__init__()
        self.spec = spec
        self.num_classes = spec.num_classes
        last = spec.stage_widths[-1]
        self.stem = Stem(spec.stem_width, 3, spec.stem_stride, spec.aux_bits)
        self.blocks = nn.Sequential(
            *(BasicBlock(layout, spec.aux_bits) for layout in spec.blocks())
        )
        self.head_prelu = PReLU(last, init=PRELU_INIT)
        self.fc = aux_linear(last, spec.num_classes, spec.aux_bits)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_prelu(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(spatial_mean(self.forward_features(x)).flatten(1))

    def layer_sites(self, resolution: int) -> list[LayerSite]:
        return bnext_layer_sites(self.spec, resolution)


def _unit_sites(prefix: str, cin: int, cout: int, kernel: int, stride: int, size: int, layout: BlockLayout,
                aux_bits: int) -> list:
    sites = [conv_site(f"{prefix}.conv", cin, cout, kernel, stride, size, (1, 1))]
    if layout.info_recoupling:
        hidden = max(1, cout // layout.se_ratio)
        aux = (aux_bits, aux_bits)
        sites.append(conv_site(f"{prefix}.recoupling.squeeze", cout, hidden, 1, 1, 1, aux, bias=True))
        sites.append(conv_site(f"{prefix}.recoupling.excite", hidden, cout, 1, 1, 1, aux, bias=True))
    return sites


def _unit_extra_params(cin: int, cout: int, elm: bool, recoupling: bool) -> int:
    # shift (cin), BN1 (2 cout), PReLU2 (cout), PReLU1 (cin, stored even when unused),
    # BN2 (2 cout, with ELM or recoupling), lambda (cout, with recoupling).
    count = cin + 2 * cout + cout + cin
    if elm or recoupling:
        count += 2 * cout
    if recoupling:
        count += cout
    return count


def bnext_layer_sites(spec: BNextSpec, resolution: int) -> list[LayerSite]:
    """Every conv and linear of ``BNext(spec)`` with its geometry at ``resolution`` and its precision."""
    aux = (spec.aux_bits, spec.aux_bits)
    sites = [conv_site("stem.conv", 3, spec.stem_width, 3, spec.stem_stride, resolution, aux)]
    size = conv_out(resolution, spec.stem_stride)
    for index, layout in enumerate(spec.blocks()):
        cin, prefix = layout.in_channels, f"blocks.{index}"
        sites += _unit_sites(f"{prefix}.mixer", cin, cin, layout.kernel_size, layout.stride, size, layout,
                             spec.aux_bits)
        size = conv_out(size, layout.stride)
        for j, width in enumerate(ffn_widths(cin, layout.out_channels)):
            sites += _unit_sites(f"{prefix}.ffn.{j}", cin, width, 1, 1, size, layout, spec.aux_bits)
    sites.append(linear_site("fc", spec.stage_widths[-1], spec.num_classes, aux))
    return sites


def bnext_extra_params(spec: BNextSpec) -> int:
    """Parameters of ``BNext(spec)`` outside conv and linear layers (norms, PReLUs, shifts, lambdas)."""
    count = 3 * spec.stem_width + spec.stage_widths[-1]  # stem BN + stored PReLU, head PReLU
    for layout in spec.blocks():
        cin = layout.in_channels
        count += _unit_extra_params(cin, cin, layout.elm_attention, layout.info_recoupling)
        for width in ffn_widths(cin, layout.out_channels):
            count += _unit_extra_params(cin, width, False, layout.info_recoupling)
    return count


class BNext18(nn.Module):
    """BNext-18 (reference ``src/birealnet.py``): ResNet-18 layout [2, 2, 2, 2], widths 64-512.

    Each block: ELM-Attention unit (binary 3 x 3, cin -> cout, stride; shortcut AvgPool -> aux 1 x 1
    conv -> BN on PReLU(x) when channels change; the lambda-mix uses that shortcut) then a plain
    3 x 3 unit. Stem: 7 x 7 stride-2 conv + BN + 3 x 3 max pool (3 x 3 stride 1, no pool for small inputs).
    Weights turn sign below tau = 1e-5 (the reference's threshold for this model).
    """

    widths = (64, 128, 256, 512)

    def __init__(
        self,
        num_classes: int = 1000,
        small_input: bool = False,
        elm_attention: bool = True,
        info_recoupling: bool = True,
        aux_bits: int = 8,
        se_ratio: int = 8,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.small_input = small_input
        kernel, stride = (3, 1) if small_input else (7, 2)
        self.stem = Stem(self.widths[0], kernel, stride, aux_bits)
        self.stem_pool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        units = []
        cin = self.widths[0]
        for stage, cout in enumerate(self.widths):
            for position in range(2):
                stride = 2 if stage > 0 and position == 0 else 1
                common = dict(se_ratio=se_ratio, aux_bits=aux_bits, sign_below=1e-5)
                units.append(
                    BinaryUnit(cin, cout, 3, stride, elm_attention, info_recoupling, shortcut_conv=cin != cout,
                               mix_with_shortcut=True, **common)
                )
                units.append(BinaryUnit(cout, cout, 3, 1, False, info_recoupling, **common))
                cin = cout
        self.units = nn.Sequential(*units)
        self.head_prelu = PReLU(cin, init=PRELU_INIT)
        self.fc = aux_linear(cin, num_classes, aux_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head_prelu(self.units(self.stem_pool(self.stem(x))))
        return self.fc(spatial_mean(features).flatten(1))

    def layer_sites(self, resolution: int) -> list[LayerSite]:
        size = conv_out(conv_out(resolution, self.stem.conv.stride[0]), 1 if self.small_input else 2)
        sites = [LayerSite.of(self.stem.conv, "stem.conv", resolution)]
        for index, unit in enumerate(self.units):
            sites.append(LayerSite.of(unit.conv, f"units.{index}.conv", size))
            stride = unit.conv.stride[0]
            if unit.shortcut_conv is not None:
                sites.append(LayerSite.of(unit.shortcut_conv, f"units.{index}.shortcut_conv", conv_out(size, stride)))
            size = conv_out(size, stride)
            if unit.recoupling is not None:
                sites.append(LayerSite.of(unit.recoupling.squeeze, f"units.{index}.recoupling.squeeze", 1))
                sites.append(LayerSite.of(unit.recoupling.excite, f"units.{index}.recoupling.excite", 1))
        sites.append(LayerSite.of(self.fc, "fc", 1))
        return sites
