"""Training and distillation: the BNext recipe, the loop, teachers and checkpoints."""

from .distill import TeacherCurriculum, kd_loss, load_teacher
from .loop import TrainConfig, TrainingDiverged, evaluate, load_checkpoint_model, train
from .recipe import Recipe

__all__ = [
    "Recipe",
    "TeacherCurriculum",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "kd_loss",
    "load_checkpoint_model",
    "load_teacher",
    "train",
]
