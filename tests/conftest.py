"""Shared fixtures."""

from __future__ import annotations

import pytest

from bnextbench.models import create_model, list_models

SMALL_RESOLUTION = 32
NUM_CLASSES = 10


@pytest.fixture(scope="module", params=list_models())
def small_model(request):
    """Every registered model, built once per module for 32-pixel inputs and 10 classes."""
    model = create_model(request.param, num_classes=NUM_CLASSES, small_input=True)
    model.name = request.param
    return model
