"""The range of every number a user gives, in one table: the library checks each value against it before any
work starts (so Python callers are protected as the command line is), and ``--help`` prints the same range."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import BnextbenchError, brief


@dataclass(frozen=True)
class Limit:
    """A closed or open interval of ints or finite floats; ``label`` names the value as the user gave it."""

    label: str
    low: float
    high: float
    integer: bool = False
    low_open: bool = False
    high_open: bool = False

    def text(self) -> str:
        """The range as ``--help`` states it: ``an integer in [1, 100000]``, ``in (0, 1]``."""
        def bound(value: float) -> str:
            return "inf" if math.isinf(value) else f"{value:g}" if not self.integer else f"{int(value)}"

        interval = (f"{'(' if self.low_open else '['}{bound(self.low)}, {bound(self.high)}"
                    f"{')' if self.high_open or math.isinf(self.high) else ']'}")
        return f"an integer in {interval}" if self.integer else f"a finite number in {interval}"

    def holds(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def check(self, value, optional: bool = False):
        """``value`` itself if it lies in the range (or is None where ``optional``), else a one-line error."""
        if (value is None and optional) or self.holds(value):
            return value
        raise BnextbenchError(f"{self.label} must be {self.text()}, got {brief(value)}")


def help_with(limit: Limit, text: str) -> str:
    """An option's help followed by its range: ``Training epochs (an integer in [1, 100000]).``"""
    return f"{text.rstrip('.')} ({limit.text()})."


# What training a model can take: past these bounds a value is a typo, or asks more memory than any machine has.
EPOCHS = Limit("--epochs", 1, 100_000, integer=True)
BATCH_SIZE = Limit("--batch-size", 1, 65_536, integer=True)
LR = Limit("--lr", 0, math.inf, low_open=True)  # any finite rate: a divergent one is reported as diverged
SIGN_AT = Limit("--sign-at", 0, 1, low_open=True)
TAU_DECAY = Limit("--tau-decay", 0, 1, low_open=True, high_open=True)
LABEL_SMOOTHING = Limit("--label-smoothing", 0, 1, high_open=True)
SEED = Limit("--seed", 0, 2**32 - 1, integer=True)  # numpy's seeds are 32-bit
WIDTH_MULT = Limit("--width-mult", 0, 8, low_open=True)
RESOLUTION = Limit("--resolution", 8, 1024, integer=True)  # 8 px: the smallest input a stride-8 stem still sees
TRAIN_LIMIT = Limit("--train-limit", 1, 2**40, integer=True)
HOLDOUT = Limit("--holdout", 1, 2**40, integer=True)
EVAL_BATCH_SIZE = Limit("--batch-size", 1, 65_536, integer=True)
# Searches.
TRIALS = Limit("--trials", 1, 1_000_000, integer=True)
NOISE_SEEDS = Limit("--noise-seeds", 0, 100, integer=True)
HEARTBEAT = Limit("--heartbeat", 1, 86_400, integer=True)
GRACE = Limit("--grace", 2, 7 * 86_400, integer=True)
RETRAIN = Limit("--retrain", 0, 10_000, integer=True)
SUPERNET_EPOCHS = Limit("--supernet-epochs", 1, 100_000, integer=True)
SUPERNET_RUN = Limit("--supernet", 1, 2**63 - 1, integer=True)
RANDOM_SUBNETS = Limit("--random-subnets", 0, 64, integer=True)
CALIBRATION_IMAGES = Limit("--calibration-images", 1, 1_000_000, integer=True)
PROXY_CANDIDATES = Limit("--candidates", 2, 10_000, integer=True)
# Deployment.
THREADS = Limit("--threads", 1, 1024, integer=True)  # the engine also refuses more than the machine's CPUs
TOP = Limit("--top", 1, 100_000, integer=True)
