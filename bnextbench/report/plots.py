"""Figures of runs (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from ..errors import BnextbenchError
from ..io import atomic_write_bytes
from ..store import Run


def plot_training_curves(run: Run, path: str | Path) -> Path:
    """Loss, top-1 and the weight-binarization tau against epoch (the BNext README's training figure)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run.epochs:
        raise BnextbenchError(f"run {run.id} has no finished epoch to plot")
    epochs = [m.epoch + 1 for m in run.epochs]
    figure, (loss_axis, top1_axis, tau_axis) = plt.subplots(1, 3, figsize=(13, 3.6))
    loss_axis.plot(epochs, [m.train_loss for m in run.epochs], marker="o", label="train")
    loss_axis.plot(epochs, [m.test_loss for m in run.epochs], marker="o", label="test")
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    loss_axis.legend()
    top1_axis.plot(epochs, [m.train_top1 for m in run.epochs], marker="o", label="train (augmented)")
    top1_axis.plot(epochs, [m.test_top1 for m in run.epochs], marker="o", label="test")
    top1_axis.set(xlabel="epoch", ylabel="top-1 (%)", title="accuracy")
    top1_axis.legend()
    tau_axis.semilogy(epochs, [max(m.tau, 1e-300) for m in run.epochs], marker="o")
    tau_axis.axhline(1e-7, color="grey", linestyle="--", label="sign below 1e-7")
    tau_axis.set(xlabel="epoch", ylabel="tau", title="weight binarization tau")
    tau_axis.legend()
    figure.suptitle(f"run {run.id}: {run.model} on {run.data} at {run.resolution} px, seed {run.seed}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(buffer.getvalue(), path)
    return Path(path)
