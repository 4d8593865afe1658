"""The protocol of a run: everything that decides what training does, apart from the architecture.

Two runs of one candidate under equal protocols are the same experiment, so a search trains each
candidate once per protocol and ranks baselines only against runs of the same protocol. The store
keeps :attr:`Protocol.key` (the exact protocol, seed included) and :attr:`Protocol.group_key` (the
same with any seed: the runs a mean over seeds is taken of) in indexed columns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..errors import BnextbenchError
from .recipe import Recipe

KEY_LENGTH = 16


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def protocol_keys(canonical: dict[str, Any]) -> tuple[str, str]:
    """(key, group key) of a protocol in :meth:`Protocol.to_dict`'s form; the group key leaves out the seed."""
    seedless = {**canonical, "recipe": {k: v for k, v in canonical["recipe"].items() if k != "seed"}}
    return _digest(canonical), _digest(seedless)


@dataclass(frozen=True)
class Protocol:
    """Data spec, input resolution, training-set limit, recipe (epochs and seed included), teachers, and the
    training images held out for validation (see :func:`bnextbench.data.hold_out`)."""

    data: str
    resolution: int
    train_limit: int | None
    recipe: Recipe
    teacher: str | None = None  # the teachers of a distilled run, assistants first, joined by " + "
    holdout: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The canonical form, as studies store it (``teacher`` only when distilled, ``holdout`` when set)."""
        data = {"data": self.data, "resolution": self.resolution, "train_limit": self.train_limit,
                "recipe": self.recipe.to_dict()}
        if self.teacher is not None:
            data["teacher"] = self.teacher
        if self.holdout is not None:
            data["holdout"] = self.holdout
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Protocol:
        if not isinstance(data, dict) or not {"data", "resolution", "train_limit", "recipe"} <= set(data):
            raise BnextbenchError("a protocol needs data, resolution, train_limit and recipe")
        return cls(data["data"], data["resolution"], data["train_limit"], Recipe.from_dict(data["recipe"]),
                   data.get("teacher"), data.get("holdout"))

    @property
    def seed(self) -> int:
        return self.recipe.seed

    @property
    def key(self) -> str:
        """Stable digest of the whole protocol: equal protocols, equal keys."""
        return protocol_keys(self.to_dict())[0]

    @property
    def group_key(self) -> str:
        """Digest of the protocol without its seed: runs that differ only in the seed share it."""
        return protocol_keys(self.to_dict())[1]

    def with_seed(self, seed: int) -> Protocol:
        return dataclasses.replace(self, recipe=dataclasses.replace(self.recipe, seed=seed))
