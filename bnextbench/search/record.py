"""What a study records about itself, in canonical form, as Optuna user attributes.

A study holds its budgets (as their canonical texts), its space (the parsed definition), its
protocol (:meth:`Protocol.to_dict`) and its settings (sampler, pruner, size, heartbeat, workers).
They are parsed once, when the search is configured, and read back by workers, ``show``,
``baselines --study`` and the reports, never parsed from files again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import optuna

from ..errors import brief
from ..train.protocol import Protocol
from .budget import Budget, parse_budgets
from .space import space_definition, space_from_dict
from .storage import SearchError, load_existing_study

SPACE_ATTR, PROTOCOL_ATTR, BUDGETS_ATTR, SETTINGS_ATTR = "space", "protocol", "budgets", "search"
ONESHOT_ATTR, FIDELITY_ATTR = "oneshot", "fidelity"  # a one-shot study's supernet; its proxy's measured fidelity


@dataclass(frozen=True)
class StudySettings:
    """How a study searches; the heartbeat is the study's, not a worker's. ``strategy``: "multi-trial" (train
    each candidate) or "oneshot" (score each with a supernet's weights)."""

    sampler: str
    pruner: str
    trials: int
    heartbeat: int
    grace: int
    strategy: str = "multi-trial"

    def to_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "pruner": self.pruner, "trials": self.trials, "heartbeat": self.heartbeat,
                "grace": self.grace, "strategy": self.strategy}


@dataclass(frozen=True)
class StudyRecord:
    """A study's budgets, space, protocol and settings."""

    name: str
    budgets: tuple[Budget, ...]
    space: Any  # a BNextSpace or RegistrySpace
    protocol: Protocol
    settings: StudySettings
    oneshot: dict[str, Any] | None = None  # {"supernet_run", "calibration_images"} of a one-shot study

    @property
    def budget_texts(self) -> list[str]:
        return [budget.text for budget in self.budgets]

    def matches(self, study: optuna.Study) -> bool:
        """Whether ``study`` was made for this space, protocol and (one-shot) supernet."""
        attrs = study.user_attrs
        return (attrs.get(SPACE_ATTR) == space_definition(self.space) and attrs.get(PROTOCOL_ATTR) ==
                self.protocol.to_dict() and attrs.get(ONESHOT_ATTR) == self.oneshot)

    def write(self, study: optuna.Study) -> None:
        """Record space, protocol and budgets on a new study (settings: :func:`register_worker`)."""
        study.set_user_attr(SPACE_ATTR, space_definition(self.space))
        study.set_user_attr(PROTOCOL_ATTR, self.protocol.to_dict())
        study.set_user_attr(BUDGETS_ATTR, self.budget_texts)
        if self.oneshot is not None:
            study.set_user_attr(ONESHOT_ATTR, self.oneshot)


def register_worker(study: optuna.Study, settings: StudySettings) -> int:
    """Store ``settings`` with one more worker; returns how many workers had joined before."""
    workers = (study.user_attrs.get(SETTINGS_ATTR) or {}).get("workers", 0)
    study.set_user_attr(SETTINGS_ATTR, {**settings.to_dict(), "workers": workers + 1})
    return workers


def stored_settings(study: optuna.Study) -> StudySettings | None:
    """The settings a study records (None for studies of bnextbench 0.1, which recorded none)."""
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:
        return None
    return StudySettings(**{key: stored[key] for key in ("sampler", "pruner", "trials", "heartbeat", "grace")},
                         strategy=stored.get("strategy", "multi-trial"))


STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def check_study_name(name: str) -> str:
    """A study name is also a folder name (its checkpoints go to results/checkpoints/STUDY): letters, digits and
    ``._+-``, at most 128 characters, never a path out of that folder."""
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name) or ".." in name:
        raise SearchError(f"study name {brief(name)} must be 1 to 128 letters, digits or ._+- (starting with a "
                          "letter or digit, no '..'), as it names a folder")
    return name


def read_study_record(name: str, storage_spec: str) -> StudyRecord:
    """The record of an existing study, for workers joining it and for reports on it."""
    study = load_existing_study(name, storage_spec)
    attrs = study.user_attrs
    settings = stored_settings(study)
    if settings is None:
        raise SearchError(f"study {name!r} was made by an older bnextbench; continue it with `bnextbench search` "
                          "and its original options")
    return StudyRecord(name, tuple(parse_budgets(attrs[BUDGETS_ATTR])),
                       space_from_dict(json.loads(attrs[SPACE_ATTR]), f"the space of study {name!r}"),
                       Protocol.from_dict(attrs[PROTOCOL_ATTR]), settings, attrs.get(ONESHOT_ATTR))
