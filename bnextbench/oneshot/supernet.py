"""A weight-sharing BNext supernet: one set of weights from which every candidate of a space is a subnet.

A subnet takes, of every layer, the leading output and input channels; of every stage, the leading
blocks; of a larger mixer kernel, its centre (padding k // 2 keeps the output geometry); of every
Info-Recoupling gate, the leading hidden units; ELM-Attention and Info-Recoupling are the subnet's
own switches. The subnet is an ordinary :class:`~bnextbench.models.BNext` of its spec: the
supernet runs that very module on slices of its own tensors (``torch.func.functional_call``), so the
shared forward and an extracted copy compute the same thing by construction, and gradients of a
subnet's loss land in the supernet's weights. Training-mode BatchNorm updates the leading slices of
the shared running statistics in place; they mix every subnet drawn, so a subnet is scored only
after its own statistics are re-estimated (:mod:`bnextbench.oneshot.scoring`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..errors import BnextbenchError
from ..models import BNext, BNextSpec
from ..models.bnext import PRELU_INIT, BasicBlock, Stem
from ..models.spec import BlockLayout, ffn_widths
from ..nn import PReLU, aux_linear
from ..search.space import BNextSpace, space_from_dict

SUPERNET_MODEL = "bnext_supernet"
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")
_TEMPLATES_KEPT = 64  # meta-device subnet modules kept for reuse (a search revisits candidates)


class SupernetError(BnextbenchError):
    """A candidate or checkpoint that does not belong to this supernet."""


def _slice_like(full: torch.Tensor, shape: torch.Size, name: str) -> torch.Tensor:
    """The leading ``shape`` of ``full``; of a conv kernel's two spatial dimensions, the centre."""
    index = []
    for dim, (size, full_size) in enumerate(zip(shape, full.shape, strict=True)):
        if size > full_size:
            raise SupernetError(f"{name}: the candidate needs {tuple(shape)}, the supernet holds {tuple(full.shape)}")
        start = (full_size - size) // 2 if full.dim() == 4 and dim >= 2 else 0
        index.append(slice(start, start + size))
    return full[tuple(index)]


class BNextSupernet(nn.Module):
    """The largest network of a :class:`~bnextbench.search.space.BNextSpace`, laid out so that each of its
    candidates is a subnet: per block slot the widest mixer and as many 1 x 1 units, each as wide, as any
    candidate of the space puts there.

    ``forward(x, spec)`` runs subnet ``spec`` (the largest by default); :meth:`extract` copies it out as a
    stand-alone BNext; :meth:`subnet_state` is the sliced state (views of the supernet's tensors).
    """

    def __init__(self, space: BNextSpace, num_classes: int, stem_stride: int):
        super().__init__()
        if len(space.choices["aux_bits"]) != 1:
            raise SupernetError("a supernet shares one aux precision; give the space one aux_bits choice")
        self.space, self.num_classes, self.stem_stride = space, num_classes, stem_stride
        self.aux_bits = space.choices["aux_bits"][0]
        self.largest = space.spec_of(space.largest_params(), num_classes, stem_stride)
        stage_widths = [space.stage_width_choices(stage) for stage in range(space.stages)]
        self.slot_offsets: list[int] = []  # the first block slot of every stage
        blocks = []
        in_choices = space.choices["stem_width"]
        for stage, widths in enumerate(stage_widths):
            self.slot_offsets.append(len(blocks))
            choices = {key: space.choices[f"{key}_{stage}"] for key in ("elm_attention", "info_recoupling",
                                                                        "kernel_size", "se_ratio")}
            for position in range(max(space.choices[f"depth_{stage}"])):
                layout = BlockLayout(max(in_choices), max(widths), 2 if stage > 0 and position == 0 else 1,
                                     True in choices["elm_attention"], True in choices["info_recoupling"],
                                     max(choices["kernel_size"]), min(choices["se_ratio"]))
                blocks.append(BasicBlock(layout, self.aux_bits, _widest_units(in_choices, widths)))
                in_choices = widths
        self.stem = Stem(max(space.choices["stem_width"]), 3, stem_stride, self.aux_bits)
        self.blocks = nn.Sequential(*blocks)
        self.head_prelu = PReLU(max(stage_widths[-1]), init=PRELU_INIT)
        self.fc = aux_linear(max(stage_widths[-1]), num_classes, self.aux_bits)
        self._templates: OrderedDict[str, BNext] = OrderedDict()

    def check(self, spec: BNextSpec) -> None:
        """Raise :class:`SupernetError` unless ``spec`` is a candidate of this supernet's space."""
        if (spec.num_classes, spec.stem_stride) != (self.num_classes, self.stem_stride):
            raise SupernetError(f"the candidate has {spec.num_classes} classes and stem stride {spec.stem_stride}, "
                                f"the supernet {self.num_classes} and {self.stem_stride}")
        reason = self.space.why_not(spec)
        if reason:
            raise SupernetError(f"the candidate is outside the supernet's space: {reason}")

    def _template(self, spec: BNextSpec) -> BNext:
        """The subnet's module on the meta device (no memory): its structure, names and shapes."""
        template = self._templates.get(spec.hash)
        if template is None:
            self.check(spec)
            with torch.device("meta"):
                template = BNext(spec)
            self._templates[spec.hash] = template
            if len(self._templates) > _TEMPLATES_KEPT:
                self._templates.popitem(last=False)
        else:
            self._templates.move_to_end(spec.hash)
        template.train(self.training)
        for name, norm in template.named_modules():  # e.g. update_bn's cumulative average (momentum None)
            if isinstance(norm, nn.BatchNorm2d):
                norm.momentum = self.get_submodule(self._supernet_name(spec, name)).momentum
        return template

    def _supernet_name(self, spec: BNextSpec, name: str) -> str:
        match = _BLOCK_KEY.match(name)
        if match is None:
            return name
        block, stage = int(match.group(1)), 0
        while block >= spec.stage_depths[stage]:
            block -= spec.stage_depths[stage]
            stage += 1
        return f"blocks.{self.slot_offsets[stage] + block}.{name[match.end():]}"

    def subnet_state(self, spec: BNextSpec, template: BNext | None = None) -> dict[str, torch.Tensor]:
        """The state of subnet ``spec`` under its own names: slices of the supernet's tensors (views;
        multi-dimensional parameters as contiguous copies that still carry gradients back)."""
        template = template or self._template(spec)
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        state = {}
        for name, tensor in [*template.named_parameters(), *template.named_buffers()]:
            part = _slice_like(own[self._supernet_name(spec, name)], tensor.shape, name)
            state[name] = part.contiguous() if part.dim() > 1 else part
        return state

    def forward(self, x: torch.Tensor, spec: BNextSpec | None = None) -> torch.Tensor:
        spec = spec or self.largest
        template = self._template(spec)
        return functional_call(template, self.subnet_state(spec, template), (x,))

    def extract(self, spec: BNextSpec) -> BNext:
        """Subnet ``spec`` as a stand-alone BNext holding copies of its weights and statistics."""
        template = self._template(spec)
        with torch.device("meta"):
            model = BNext(spec)
        state = {name: tensor.detach().clone() for name, tensor in self.subnet_state(spec, template).items()}
        model.load_state_dict(state, assign=True)
        for name, parameter in model.named_parameters():  # assign takes the tensors, not their flags
            parameter.requires_grad_(template.get_parameter(name).requires_grad)
        return model.train(self.training)

    def description(self) -> dict[str, Any]:
        """How :func:`build_supernet` rebuilds this supernet (a checkpoint's model description)."""
        return {"model": SUPERNET_MODEL, "arch_spec": None, "space": self.space.definition,
                "model_kwargs": {"num_classes": self.num_classes, "stem_stride": self.stem_stride}}


def _widest_units(in_choices: list[int], out_choices: list[int]) -> list[int]:
    """Width of the j-th 1 x 1 unit of a block slot: the widest any (cin, cout) of the slot puts there."""
    widest: list[int] = []
    for cin in in_choices:
        for cout in out_choices:
            for j, width in enumerate(ffn_widths(cin, cout)):
                if j == len(widest):
                    widest.append(width)
                widest[j] = max(widest[j], width)
    return widest


def build_supernet(description: dict[str, Any]) -> BNextSupernet:
    """The supernet of a model description written by :meth:`BNextSupernet.description`."""
    space = space_from_dict(description["space"], "the supernet's space")
    if not isinstance(space, BNextSpace):
        raise SupernetError("a supernet needs a bnext space")
    return BNextSupernet(space, **description["model_kwargs"])
