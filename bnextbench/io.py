"""File writes that are all or nothing."""

from __future__ import annotations

import errno
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import BnextbenchError


def _atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # disk full, quota, read-only folder: one line, the old file intact
            raise BnextbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def atomic_torch_save(payload: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``."""

    def save(temporary: str) -> None:
        try:
            torch.save(payload, temporary)
        except RuntimeError as exc:  # how torch's zip writer reports a failed write (full disk, size limit)
            raise OSError(errno.EIO, f"torch.save failed: {str(exc).splitlines()[0]}") from None

    _atomic_write(path, save)


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    _atomic_write(path, lambda temporary: Path(temporary).write_bytes(data))


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a missing, unreadable or unsafe file is one error line."""
    path = Path(path)
    if not path.is_file():
        raise BnextbenchError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise BnextbenchError(
            f"cannot read {what} {path}: not a PyTorch file, or it holds objects that weights-only loading refuses"
        ) from None
    except Exception as exc:  # torch raises many types for unreadable files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BnextbenchError(f"cannot read {what} {path}: {reason}") from None


def read_text(path: str | Path, what: str) -> str:
    """A text file's contents; a missing or unreadable file is one error line naming ``what``."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise BnextbenchError(f"cannot read {what} {path}: {reason}") from None
