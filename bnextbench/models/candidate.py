"""One architecture under study, with the one name it goes by everywhere.

A candidate is a BNext spec, or a registered model at a width multiplier. Its :attr:`Candidate.name`
is what the search, ``show``, ``runs``, ``compare`` and the plots call it: ``bnext-spec-<hash of the
spec>`` for a spec, ``MODEL`` or ``MODEL x<width>`` for a registered model. :meth:`Candidate.to_dict`
is the ``arch`` object the tool prints for a candidate, and :meth:`Candidate.from_dict` reads it
back (also a bare spec object, as written by :meth:`BNextSpec.to_json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .spec import BNextSpec, SpecError, parse_json

SPEC_MODEL = "bnext_spec"
SPEC_NAME_PREFIX = "bnext-spec-"
FAMILIES = ("bnext", "registry")


def candidate_name(model: str, spec: BNextSpec | None = None, width_mult: float = 1.0) -> str:
    """The name of a spec (``bnext-spec-<hash>``) or of a registered model at ``width_mult``."""
    if spec is not None:
        return f"{SPEC_NAME_PREFIX}{spec.hash}"
    return model if width_mult == 1.0 else f"{model} x{width_mult:g}"


@dataclass(frozen=True)
class Candidate:
    """One architecture: a BNext spec, or a registered model at a width multiplier."""

    model: str
    spec: BNextSpec | None = None
    width_mult: float = 1.0

    @classmethod
    def of_spec(cls, spec: BNextSpec) -> Candidate:
        return cls(SPEC_MODEL, spec=spec)

    @property
    def name(self) -> str:
        return candidate_name(self.model, self.spec, self.width_mult)

    def to_dict(self) -> dict[str, Any]:
        if self.spec is not None:
            return {"family": "bnext", "spec": self.spec.to_dict()}
        return {"family": "registry", "model": self.model, "width_mult": self.width_mult}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> Candidate:
        """A candidate from its ``arch`` object, or from a bare BNext spec object."""
        if not isinstance(data, dict):
            raise SpecError("an architecture must be a JSON object")
        if "family" not in data:
            return cls.of_spec(BNextSpec.from_dict(data))
        family = data["family"]
        expected = {"bnext": {"family", "spec"}, "registry": {"family", "model", "width_mult"}}.get(family)
        if expected is None:
            raise SpecError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
        unknown = sorted(set(data) - expected)
        if unknown:
            raise SpecError(f"unknown field(s) of a {family} architecture: {', '.join(unknown)}")
        if family == "bnext":
            return cls.of_spec(BNextSpec.from_dict(data.get("spec")))
        from .registry import check_model_name

        width = data.get("width_mult", 1.0)
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            raise SpecError(f"width_mult must be a positive number, got {width!r}")
        return cls(check_model_name(str(data.get("model"))), width_mult=float(width))

    @classmethod
    def from_json(cls, text: str) -> Candidate:
        return cls.from_dict(parse_json(text, "the architecture"))
