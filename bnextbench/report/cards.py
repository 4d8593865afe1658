"""Hugging Face model cards (README.md with model-index YAML) of completed runs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .. import __version__
from ..io import atomic_write_files
from ..provenance import git_commit
from ..store import Store
from .board import ReportError


def model_card(store: Store, run_id: int) -> str:
    """A Hugging Face model card (README.md): model-index YAML with the test accuracy, then the run's facts."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    run = store.get_run(run_id)
    if run.status != "completed" or run.top1 is None:
        raise ReportError(f"run {run_id} is {run.status}; a model card needs a completed run")
    dataset = {"dataset_type": run.data.partition(":")[0], "dataset_name": f"{run.data} at {run.resolution} px",
               "dataset_split": "test", "task_type": "image-classification", "task_name": "Image Classification"}
    results = [EvalResult(metric_type="accuracy", metric_name="top-1 accuracy (%)", metric_value=round(run.top1, 4),
                          **dataset)]
    if run.top5 is not None:
        results.append(EvalResult(metric_type="top-5-accuracy", metric_name="top-5 accuracy (%)",
                                  metric_value=round(run.top5, 4), **dataset))
    name = f"bnextbench-run-{run.id}-{run.candidate.replace(' ', '-')}"
    counts = run.counts
    data = ModelCardData(
        model_name=name, library_name="bnextbench", license="mit", metrics=["accuracy"],
        tags=["binary-neural-network", "bnn", "image-classification", "bnextbench"], eval_results=results,
        bnextbench={"run_id": run.id, "model": run.model, "arch_hash": run.arch_hash, "seed": run.seed,
                    "epochs": run.epochs_done, "teacher": run.teacher, "complexity": run.complexity,
                    "recipe": run.recipe, "git_commit": run.git_commit, "versions": run.versions},
    )
    rows = [("model", run.candidate), ("architecture hash", run.arch_hash or ""), ("data", run.data),
            ("resolution", f"{run.resolution} px"), ("classes", run.num_classes),
            ("epochs", f"{run.epochs_done} of {run.epochs_planned}"), ("seed", run.seed),
            ("teacher", run.teacher or "none"), ("top-1", f"{run.top1:.2f} %"),
            ("top-5", "" if run.top5 is None else f"{run.top5:.2f} %")]
    if counts is not None:
        rows += [("BOPs", f"{counts.bops:,}"), ("FLOPs", f"{counts.flops:,.0f}"), ("OPs", f"{counts.ops:,.0f}"),
                 ("binarization degree", f"{100 * counts.binarization_degree:.2f} %"),
                 ("params", f"{counts.params:,}"), ("size", f"{counts.size_mib:.3f} MiB"),
                 ("ops rule", counts.ops_rule)]
    rows += [("checkpoint", run.checkpoint or ""), ("device", run.device), ("git commit", run.git_commit or ""),
             ("bnextbench", run.bnextbench_version or ""),
             ("card made by", f"bnextbench {__version__} at commit {git_commit() or 'unknown'}")]
    table = "\n".join(f"| {key} | {str(value).replace('|', '/')} |" for key, value in rows)
    body = (f"# {name}\n\nA binary neural network trained by bnextbench; counts are at {run.resolution} px "
            f"(BOPs: binary MACs, OPs = BOPs/64 + FLOPs).\n\n| field | value |\n|---|---|\n{table}\n\n"
            f"Evaluate the checkpoint: `bnextbench evaluate {run.checkpoint or 'CHECKPOINT'} --data {run.data}`.\n")
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def write_model_cards(store: Store, run_ids: Iterable[int], out_dir: str | Path) -> list[Path]:
    """``model-card-run-ID.md`` for each run into ``out_dir``, all or none (written by ``bnextbench report``)."""
    payloads = {f"model-card-run-{run_id}.md": model_card(store, run_id).encode() for run_id in run_ids}
    return atomic_write_files(payloads, out_dir, "the report")
