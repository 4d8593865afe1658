"""Where a result came from: the code's git commit and the versions of the packages that computed it."""

from __future__ import annotations

import subprocess
from importlib.metadata import version
from pathlib import Path

RECORDED_PACKAGES = ("bnextbench", "torch", "timm", "torchvision")


def git_commit() -> str | None:
    """The commit of the bnextbench checkout in use, or None for an installed wheel or without git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose numerics a run depends on."""
    return {name: version(name) for name in RECORDED_PACKAGES}
