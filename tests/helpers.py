"""What several test modules share (constants, data builders); not a test module, so tests may import it."""

from __future__ import annotations

import os
from pathlib import Path

import torch

SMALL_RESOLUTION = 32
NUM_CLASSES = 10

# --- the reference BNext state_dict layout (test_checkpoint, test_cli) -----------------------------------------
REFERENCE_LISTING = Path(
    os.environ.get("BNEXTBENCH_SHARED", Path(__file__).resolve().parents[2] / "shared")
) / "docs" / "reference-bnext-state-dict.json"


def reference_state(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors laid out as ``shapes``: zero-mean values, positive variances and temperatures.

    Small symmetric weights keep the activations of a 224-pixel forward pass finite and moderate,
    so that comparing logits compares numbers, not infinities.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith(("running_var", "temperature")):
            state[name] = 0.5 + torch.rand(shape, generator=generator)
        else:
            state[name] = 0.1 * torch.randn(shape, generator=generator)
    return state
