"""Prior BNNs as the papers count them: XNOR-Net ResNet-18, Bi-Real-18 and ReActNet-A.

First conv, classifier and the 1 x 1 downsampling shortcuts of the ResNets are float; every other
conv is binary (1-bit weights and activations). ``width_mult`` scales every channel count (rounded
to a multiple of 8) so a baseline can be fitted to a budget; ``small_input`` selects the CIFAR
stem (3 x 3 stride 1, no max pool).
"""

from __future__ import annotations

import torch
from timm.layers import make_divisible
from torch import nn

from ..nn import ApproxSign, HardSign, QuantConv2d, RPReLU, ScaledSign
from ..nn.layers import pool_like_stride
from .plan import LayerSite, conv_out
from .spec import ffn_widths, stage_layout

RESNET18_WIDTHS = (64, 128, 256, 512)


def scaled_widths(widths: tuple[int, ...], width_mult: float) -> tuple[int, ...]:
    if not width_mult > 0:
        raise ValueError(f"width multiplier must be positive, got {width_mult}")
    return tuple(make_divisible(w * width_mult) for w in widths)


class ResNetStem(nn.Module):
    """Float stem: 7 x 7 stride-2 conv + BN (+ ReLU) + 3 x 3 stride-2 max pool, or 3 x 3 stride 1 for small inputs."""

    def __init__(self, width: int, small_input: bool, relu: bool):
        super().__init__()
        kernel, stride = (3, 1) if small_input else (7, 2)
        self.conv = QuantConv2d(3, width, kernel, stride)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.pool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))

    def out_size(self, resolution: int) -> int:
        size = conv_out(resolution, self.conv.stride[0])
        return size if isinstance(self.pool, nn.Identity) else conv_out(size, 2)


class _ResNetBase(nn.Module):
    """Shared head and geometry of the ResNet-18 baselines; subclasses fill ``self.blocks``."""

    def __init__(self, num_classes: int, small_input: bool, width_mult: float, stem_relu: bool):
        super().__init__()
        self.num_classes = num_classes
        self.widths = scaled_widths(RESNET18_WIDTHS, width_mult)
        self.stem = ResNetStem(self.widths[0], small_input, stem_relu)
        self.blocks = nn.Sequential()
        self.head_norm: nn.Module = nn.Identity()
        self.fc = nn.Linear(self.widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head_norm(self.blocks(self.stem(x)))
        return self.fc(features.mean(dim=(2, 3)))

    def layer_sites(self, resolution: int) -> list[LayerSite]:
        sites = [LayerSite.of(self.stem.conv, "stem.conv", resolution)]
        size = self.stem.out_size(resolution)
        for index, block in enumerate(self.blocks):
            block_sites, size = block.layer_sites(f"blocks.{index}", size)
            sites += block_sites
        sites.append(LayerSite.of(self.fc, "fc", 1))
        return sites


def scaled_sign_conv(cin: int, cout: int, kernel: int, stride: int, activation: nn.Module) -> QuantConv2d:
    return QuantConv2d(cin, cout, kernel, stride, input_quantizer=activation, weight_quantizer=ScaledSign())


class BiRealUnit(nn.Module):
    """Bi-Real unit: BN(binary 3 x 3 conv(ApproxSign(x))) + shortcut, shortcut = AvgPool -> float 1 x 1 -> BN on change."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = scaled_sign_conv(cin, cout, 3, stride, ApproxSign())
        self.bn = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(pool_like_stride(stride), QuantConv2d(cin, cout, 1), nn.BatchNorm2d(cout))
        else:
            self.downsample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)) + self.downsample(x)

    def layer_sites(self, prefix: str, size: int) -> tuple[list[LayerSite], int]:
        out_size = conv_out(size, self.conv.stride[0])
        sites = [LayerSite.of(self.conv, f"{prefix}.conv", size)]
        if isinstance(self.downsample, nn.Sequential):
            sites.append(LayerSite.of(self.downsample[1], f"{prefix}.downsample.1", out_size))
        return sites, out_size


class BiRealNet18(_ResNetBase):
    """Bi-Real Net 18 (Liu et al. 2018): one binary 3 x 3 conv per residual unit, 4 units per stage.

    Binary conv: ApproxSign activations, sign weights scaled by mean|W| per output channel.
    """

    def __init__(self, num_classes: int = 1000, small_input: bool = False, width_mult: float = 1.0):
        super().__init__(num_classes, small_input, width_mult, stem_relu=False)
        for cin, cout, stride in stage_layout(self.widths[0], self.widths, (4, 4, 4, 4)):
            self.blocks.append(BiRealUnit(cin, cout, stride))


class XnorBlock(nn.Module):
    """XNOR-Net ResNet block: two (BN -> sign -> binary 3 x 3 conv) layers + shortcut.

    Shortcut: identity, or a float 1 x 1 stride-2 conv + BN when the shape changes. Activations use a
    clipped straight-through sign (|x| <= 1); weights are sign scaled by mean|W| per output channel.
    The activation scaling map K of the XNOR paper is omitted, as in the tables that count it.
    """

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = scaled_sign_conv(cin, cout, 3, stride, HardSign(clip=1.0))
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = scaled_sign_conv(cout, cout, 3, 1, HardSign(clip=1.0))
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(QuantConv2d(cin, cout, 1, stride), nn.BatchNorm2d(cout))
        else:
            self.downsample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.bn2(self.conv1(self.bn1(x)))) + self.downsample(x)

    def layer_sites(self, prefix: str, size: int) -> tuple[list[LayerSite], int]:
        out_size = conv_out(size, self.conv1.stride[0])
        sites = [LayerSite.of(self.conv1, f"{prefix}.conv1", size), LayerSite.of(self.conv2, f"{prefix}.conv2", out_size)]
        if isinstance(self.downsample, nn.Sequential):
            sites.append(LayerSite.of(self.downsample[0], f"{prefix}.downsample.0", size))
        return sites, out_size


class XnorResNet18(_ResNetBase):
    """XNOR-Net ResNet-18 (Rastegari et al. 2016): [2, 2, 2, 2] blocks of two binary convs; BN-ReLU head."""

    def __init__(self, num_classes: int = 1000, small_input: bool = False, width_mult: float = 1.0):
        super().__init__(num_classes, small_input, width_mult, stem_relu=True)
        for cin, cout, stride in stage_layout(self.widths[0], self.widths, (2, 2, 2, 2)):
            self.blocks.append(XnorBlock(cin, cout, stride))
        self.head_norm = nn.Sequential(nn.BatchNorm2d(self.widths[-1]), nn.ReLU(inplace=True))


class ReActUnit(nn.Module):
    """RPReLU(BN(binary conv(RSign(x))) + shortcut); shortcut = first ``cout`` channels of P(x)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.out_channels = cout
        self.conv = scaled_sign_conv(cin, cout, kernel, stride, ApproxSign(cin))
        self.bn = nn.BatchNorm2d(cout)
        self.pool = pool_like_stride(stride)
        self.activation = RPReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.bn(self.conv(x)) + self.pool(x)[:, : self.out_channels])


class ReActBlock(nn.Module):
    """ReActNet-A block: 3 x 3 unit (cin -> cin, stride), then 1 x 1 units concatenated to cout.

    Each 1 x 1 unit has its own RSign shift (the reference shares one between the two halves).
    """

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.mixer = ReActUnit(cin, cin, 3, stride)
        self.ffn = nn.ModuleList(ReActUnit(cin, width, 1, 1) for width in ffn_widths(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.mixer(x)
        return torch.cat([unit(mixed) for unit in self.ffn], dim=1)


class ReActNetA(nn.Module):
    """ReActNet-A (Liu et al. 2020): MobileNetV1 layout with full binary 3 x 3 convs, RSign and RPReLU.

    Float stem 3 x 3 (stride 2, 1 for small inputs) -> 13 blocks 32 -> 64 -> ... -> 1024 -> GAP -> float FC.
    """

    stem_width = 32
    stage_widths = (64, 128, 256, 512, 1024)
    stage_depths = (1, 2, 2, 6, 2)

    def __init__(self, num_classes: int = 1000, small_input: bool = False, width_mult: float = 1.0):
        super().__init__()
        self.num_classes = num_classes
        stem_width, *widths = scaled_widths((self.stem_width, *self.stage_widths), width_mult)
        self.stem = nn.Sequential(QuantConv2d(3, stem_width, 3, 1 if small_input else 2), nn.BatchNorm2d(stem_width))
        self.blocks = nn.Sequential(
            *(ReActBlock(cin, cout, stride) for cin, cout, stride in stage_layout(stem_width, widths, self.stage_depths))
        )
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))

    def layer_sites(self, resolution: int) -> list[LayerSite]:
        stem = self.stem[0]
        sites = [LayerSite.of(stem, "stem.0", resolution)]
        size = conv_out(resolution, stem.stride[0])
        for index, block in enumerate(self.blocks):
            sites.append(LayerSite.of(block.mixer.conv, f"blocks.{index}.mixer.conv", size))
            size = conv_out(size, block.mixer.conv.stride[0])
            sites += [LayerSite.of(unit.conv, f"blocks.{index}.ffn.{j}.conv", size) for j, unit in enumerate(block.ffn)]
        sites.append(LayerSite.of(self.fc, "fc", 1))
        return sites
