"""Deployment: export a model with its binary weights packed 64 to a word, and run it with XNOR-popcount kernels.

``export_checkpoint`` writes the file (:mod:`.export`, :mod:`.fileformat`); ``load_packed`` runs it
(:mod:`.engine`: packed layers from :mod:`.layers` over the compiled kernels of :mod:`.kernels`).
"""

from .engine import PackedModel, evaluate_packed, load_packed, profile_packed, set_threads
from .export import export_checkpoint, plan_layers, serialize
from .fileformat import FORMAT, DeployError, is_packed_file

__all__ = ["FORMAT", "DeployError", "PackedModel", "evaluate_packed", "export_checkpoint", "is_packed_file",
           "load_packed", "plan_layers", "profile_packed", "serialize", "set_threads"]
