"""Search spaces (YAML, read with ``safe_load``) and the candidates they yield.

A ``bnext`` space samples a :class:`BNextSpec` around a named size: stem width and aux precision,
and per stage the width multiplier, depth, ELM-Attention (the reference placement within the stage
when on), Info-Recoupling, SE ratio and mixer kernel size. Any option lists its choices, or gives a
range ``{from: 0.25, to: 2.0, step: 0.125}``. A ``registry`` space
samples the width multiplier of a registered model (the baselines). Every candidate has a
canonical JSON form and one name (:class:`bnextbench.models.candidate.Candidate`), so identical
candidates are trained once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol

import yaml
from timm.layers import make_divisible

from ..errors import BnextbenchError, brief, clip
from ..io import read_text
from ..models import BNEXT_SIZES, BNextSpec, SpecError, list_models
from ..models.candidate import Candidate
from ..models.spec import reference_elm_flags


class SpaceError(BnextbenchError):
    pass


class Suggester(Protocol):
    """What a space needs from a sampler: Optuna's ``Trial`` fits."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any: ...


# Options each stage picks on its own: (kind of value, default choices; None = required).
PER_STAGE: dict[str, tuple[type, list[Any] | None]] = {
    "width_mult": (float, [1.0]), "depth": (int, None), "elm_attention": (bool, [True]),
    "info_recoupling": (bool, [True]), "se_ratio": (int, [8]), "kernel_size": (int, [3]),
}


PER_BLOCK = ("elm_attention", "info_recoupling", "kernel_size", "se_ratio")  # per-stage picks the spec holds per block


class BNextSpace:
    """A BNext space; ``num_classes`` and ``stem_stride`` come from the data, not the space."""

    family = "bnext"
    keys = {"family", "base", "stem_width", "aux_bits", *PER_STAGE}

    def __init__(self, data: dict[str, Any]):
        base = data.get("base", "bnext_tiny")
        if not isinstance(base, str) or base not in BNEXT_SIZES:
            raise SpaceError(f"base must be one of {', '.join(BNEXT_SIZES)}, got {brief(base)}")
        _, self.base_widths, _ = BNEXT_SIZES[base]
        stages = len(self.base_widths)
        self.choices: dict[str, list[Any]] = {
            "stem_width": _choices(data, "stem_width", int),
            "aux_bits": _choices(data, "aux_bits", int, [8]),
        }
        for key, (kind, default) in PER_STAGE.items():
            options = data.get(key, default)
            # a list of per-stage lists, or one list of choices that every stage picks from
            if isinstance(options, list) and options and all(isinstance(o, (list, dict)) for o in options):
                if len(options) != stages:
                    raise SpaceError(f"{key} lists {len(options)} stages but {base} has {stages}")
                per_stage = options
            else:
                per_stage = [options] * stages
            for stage, stage_options in enumerate(per_stage):
                self.choices[f"{key}_{stage}"] = _choices({key: stage_options}, key, kind)
        self.stages = stages

    def suggest(self, trial: Suggester, num_classes: int, stem_stride: int) -> Candidate:
        pick = {name: trial.suggest_categorical(name, options) for name, options in self.choices.items()}
        return Candidate.of_spec(self.spec_of(pick, num_classes, stem_stride))

    def stage_width_choices(self, stage: int) -> list[int]:
        """The channel counts stage ``stage`` can have (multipliers of the base width, multiples of 8)."""
        base = self.base_widths[stage]
        return sorted({make_divisible(base * mult) for mult in self.choices[f"width_mult_{stage}"]})

    def spec_of(self, pick: dict[str, Any], num_classes: int, stem_stride: int) -> BNextSpec:
        """The spec of one choice per option (``pick``: option name -> value)."""
        widths = tuple(make_divisible(w * pick[f"width_mult_{s}"]) for s, w in enumerate(self.base_widths))
        depths = tuple(pick[f"depth_{s}"] for s in range(self.stages))
        per_block: dict[str, list[Any]] = {key: [] for key in PER_BLOCK}
        for stage, depth in enumerate(depths):
            for _ in range(depth):
                for key, values in per_block.items():
                    values.append(pick[f"{key}_{stage}"])
        reference = reference_elm_flags(sum(depths))
        per_block["elm_attention"] = [on and placed for on, placed in zip(per_block["elm_attention"], reference)]
        try:
            return BNextSpec(pick["stem_width"], widths, depths, stem_stride=stem_stride, num_classes=num_classes,
                             aux_bits=pick["aux_bits"], **{key: tuple(values) for key, values in per_block.items()})
        except SpecError as exc:
            raise SpaceError(f"the space yields an invalid spec: {exc}") from None

    def why_not(self, spec: BNextSpec) -> str | None:
        """Why ``spec`` is not a candidate of this space (None when it is)."""
        if len(spec.stage_widths) != self.stages:
            return f"it has {len(spec.stage_widths)} stages, the space {self.stages}"
        if spec.stem_width not in self.choices["stem_width"]:
            return f"stem width {spec.stem_width} is not one of {self.choices['stem_width']}"
        if spec.aux_bits not in self.choices["aux_bits"]:
            return f"aux_bits {spec.aux_bits} is not one of {self.choices['aux_bits']}"
        reference = reference_elm_flags(sum(spec.stage_depths))
        first = 0
        per_block = {key: spec.per_block(key) if key in ("kernel_size", "se_ratio") else getattr(spec, key)
                     for key in PER_BLOCK}
        for stage, (width, depth) in enumerate(zip(spec.stage_widths, spec.stage_depths)):
            if width not in self.stage_width_choices(stage):
                return f"stage {stage} width {width} is not one of {self.stage_width_choices(stage)}"
            if depth not in self.choices[f"depth_{stage}"]:
                return f"stage {stage} depth {depth} is not one of {self.choices[f'depth_{stage}']}"
            blocks = range(first, first + depth)
            first += depth
            for key in ("info_recoupling", "kernel_size", "se_ratio"):
                values = {per_block[key][b] for b in blocks}
                if len(values) != 1 or not values <= set(self.choices[f"{key}_{stage}"]):
                    return f"stage {stage} {key} {sorted(values)} is not one choice of {self.choices[f'{key}_{stage}']}"
            elm = [per_block["elm_attention"][b] for b in blocks]
            placed = [reference[b] for b in blocks]
            if not any(elm == [on and p for p in placed] for on in self.choices[f"elm_attention_{stage}"]):
                return f"stage {stage} ELM-Attention flags {elm} do not follow the space's placement"
        return None

    def smallest_params(self) -> dict[str, Any]:
        """The cheapest corner of the space: smallest widths, depths and kernels, no ELM or recoupling
        where the space allows, the largest SE ratio (narrowest gates)."""
        return self._corner(min)

    def largest_params(self) -> dict[str, Any]:
        """The largest corner: widest, deepest, largest kernels, every branch on, the narrowest SE ratio."""
        return self._corner(max)

    def _corner(self, pick) -> dict[str, Any]:
        params = {name: pick(options) for name, options in self.choices.items()}
        for name, options in self.choices.items():
            if name.startswith("se_ratio"):  # a larger ratio is a smaller gate
                params[name] = (max if pick is min else min)(options)
        return params

    def anchor_params(self, name: str) -> dict[str, Any] | None:
        """Trial parameters that reproduce named size ``name`` if every choice is in the space, else None."""
        stem, widths, depths = BNEXT_SIZES[name]
        params: dict[str, Any] = {"stem_width": stem, "aux_bits": 8}
        for stage, (width, depth) in enumerate(zip(widths, depths)):
            params.update({f"width_mult_{stage}": width / self.base_widths[stage], f"depth_{stage}": depth,
                           f"elm_attention_{stage}": True, f"info_recoupling_{stage}": True,
                           f"se_ratio_{stage}": 8, f"kernel_size_{stage}": 3})
        return params if all(params[k] in self.choices[k] for k in params) else None


class RegistrySpace:
    """Width multipliers of one registered model (for baselines such as reactnet_a)."""

    family = "registry"
    keys = {"family", "model", "width_mult"}

    def __init__(self, data: dict[str, Any]):
        self.model = data.get("model")
        if not isinstance(self.model, str) or self.model not in list_models():
            raise SpaceError(f"model must be a registered model, got {brief(self.model)}")
        self.choices = {"width_mult": _choices(data, "width_mult", float)}

    def suggest(self, trial: Suggester, num_classes: int, stem_stride: int) -> Candidate:
        return Candidate(self.model, width_mult=trial.suggest_categorical("width_mult", self.choices["width_mult"]))

    def smallest_params(self) -> dict[str, Any]:
        return {"width_mult": min(self.choices["width_mult"])}

    def anchor_params(self, name: str) -> dict[str, Any] | None:
        return {"width_mult": 1.0} if name == self.model and 1.0 in self.choices["width_mult"] else None


SPACES = {"bnext": BNextSpace, "registry": RegistrySpace}
MAX_CHOICES = 1000  # per option: a range that expands further is a typo, not a space


def _expand_range(key: str, options: dict[str, Any]) -> list[float]:
    """``{from: a, to: b, step: s}``: a, a + s, ..., b (b included when on the grid)."""
    if set(options) != {"from", "to", "step"}:
        raise SpaceError(f"{key}: a range needs exactly from, to and step")
    low, high, step = (options[name] for name in ("from", "to", "step"))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high, step)):
        raise SpaceError(f"{key}: from, to and step must be finite numbers")
    if step <= 0 or high < low:
        raise SpaceError(f"{key}: a range needs step > 0 and to >= from")
    count = math.floor((high - low) / step + 1e-9) + 1
    if count > MAX_CHOICES:
        raise SpaceError(f"{key}: the range holds {count} choices, more than {MAX_CHOICES}")
    return [round(low + i * step, 12) for i in range(count)]


def _choices(data: dict[str, Any], key: str, kind: type, default: list[Any] | None = None) -> list[Any]:
    options = data.get(key, default)
    if options is None:
        raise SpaceError(f"the space needs {key}")
    if isinstance(options, dict):
        options = _expand_range(key, options)
    if not isinstance(options, list):
        options = [options]
    if not options:
        raise SpaceError(f"{key} lists no choices")
    for option in options:
        valid = isinstance(option, bool) if kind is bool else (
            isinstance(option, (int, float)) and not isinstance(option, bool) and option > 0
            and (kind is float or float(option).is_integer()))
        if not valid:
            expected = "true/false" if kind is bool else "positive number"
            raise SpaceError(f"{key}: {brief(option)} is not a valid {expected}")
    return [kind(option) if kind is not bool else option for option in options]


def default_space() -> Path:
    """search_spaces/bnext.yaml of this checkout (source and editable installs) or of the installed wheel."""
    beside_package = Path(__file__).resolve().parents[2] / "search_spaces" / "bnext.yaml"
    if beside_package.is_file():
        return beside_package
    from importlib.resources import files

    return Path(str(files("bnextbench.search_spaces") / "bnext.yaml"))


MAX_SPACE_BYTES = 1 << 20
MAX_SPACE_NODES = 100_000  # values once aliases are expanded; a real space holds a few hundred


def _parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` that first counts the document's values with every alias expanded, so a few
    hundred bytes of nested aliases (a "billion laughs" file) are refused before they are built."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # reads the text already: control characters are refused here
        root = loader.get_single_node()
        pending, seen = ([root] if root is not None else []), 0
        while pending:
            node = pending.pop()
            seen += 1
            if seen > MAX_SPACE_NODES:
                raise SpaceError(f"{where} expands to more than {MAX_SPACE_NODES:,} values (nested YAML aliases?)")
            if isinstance(node, yaml.SequenceNode):
                pending.extend(node.value)
            elif isinstance(node, yaml.MappingNode):
                pending.extend(item for pair in node.value for item in pair)
        return None if root is None else loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise SpaceError(f"{where} is not valid YAML{line}") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_space(path: str | Path):
    """Read and validate a space file; errors name the file and the problem in one line."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_SPACE_BYTES:
            raise SpaceError(f"{path} is larger than {MAX_SPACE_BYTES >> 20} MiB: not a search space")
        text = read_text(path, "search space")
    except BnextbenchError as exc:
        raise SpaceError(str(exc)) from None
    return space_from_dict(_parse_yaml(text, str(path)), str(path))


def space_from_dict(data: Any, where: str = "the space"):
    """A space from its parsed definition (a space file's mapping, or :func:`space_definition` of a study)."""
    if not isinstance(data, dict):
        raise SpaceError(f"{where} must hold a mapping of options")
    not_names = [key for key in data if not isinstance(key, str)]
    if not_names:
        raise SpaceError(f"{where}: option names must be text, got {brief(not_names[0])}")
    family = data.get("family")
    if not isinstance(family, str) or family not in SPACES:
        raise SpaceError(f"{where}: family must be one of {', '.join(SPACES)}, got {brief(family)}")
    space_class = SPACES[family]
    unknown = sorted(set(data) - space_class.keys)
    if unknown:
        raise SpaceError(f"{where}: unknown option(s) {clip(', '.join(unknown))}")
    try:
        space = space_class(data)
    except SpaceError as exc:
        raise SpaceError(f"{where}: {exc}") from None
    space.definition = json.loads(json.dumps(data, sort_keys=True))
    return space


def space_definition(space) -> str:
    """The canonical text of a space's definition (sorted keys, no spaces): what a study stores and compares."""
    return json.dumps(space.definition, sort_keys=True, separators=(",", ":"))
