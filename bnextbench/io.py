"""File writes that are all or nothing: one file, or a set of files in one folder.

Every file is written to a temporary file beside its target and renamed over it; a set is renamed only
once every member is written, and taken back if a rename fails. What fails is one error line naming
the path, and what was there before stays (for a set: the members not yet replaced).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import pickle
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import BnextbenchError

Writer = Callable[[str], None]  # writes the contents to the file at the path it is given


def _temporary_beside(path: Path) -> Path:
    """A fresh name in ``path``'s folder, so the rename onto ``path`` is atomic (one file system).

    Not mkstemp: its files are owner-only, and the rename would pass that on to reports and checkpoints.
    """
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def _write_all(folder: Path, writers: Mapping[str, Writer]) -> list[Path]:
    """Write each named file into ``folder`` or none; raise the OSError after undoing what was done."""
    created: list[Path] = []  # the folders this write makes, deepest first
    staged: dict[Path, Path] = {}
    renamed: list[Path] = []
    try:
        created = list(itertools.takewhile(lambda p: not p.exists(), [folder, *folder.parents]))
        folder.mkdir(parents=True, exist_ok=True)
        for name, write in writers.items():
            staged[folder / name] = _temporary_beside(folder / name)
            write(str(staged[folder / name]))
        for target, temporary in staged.items():
            os.replace(temporary, target)
            renamed.append(target)
    except BaseException:
        for path in [*staged.values(), *renamed]:  # a set is whole or absent, never a mix of two
            with contextlib.suppress(OSError):  # best effort: the error to report is the one being raised
                path.unlink()
        for empty in created:
            try:
                empty.rmdir()
            except OSError:  # not empty after all (another writer's file) or never made
                break
        raise
    return renamed


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _atomic_write(path: str | Path, write: Writer) -> None:
    path = Path(path)
    try:
        _write_all(path.parent, {path.name: write})
    except OSError as exc:  # disk full, quota, read-only folder: one line, the old file intact
        raise BnextbenchError(f"cannot write {path}: {_reason(exc)}") from None


def atomic_torch_save(payload: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``."""

    def save(temporary: str) -> None:
        try:
            torch.save(payload, temporary)
        except RuntimeError as exc:  # how torch's zip writer reports a failed write (full disk, size limit)
            raise OSError(errno.EIO, f"torch.save failed: {str(exc).splitlines()[0]}") from None

    _atomic_write(path, save)


def _bytes_writer(data: bytes) -> Writer:
    return lambda temporary: Path(temporary).write_bytes(data)


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    _atomic_write(path, _bytes_writer(data))


def atomic_write_files(payloads: Mapping[str, bytes], out_dir: str | Path, what: str) -> list[Path]:
    """Write every ``name: contents`` into ``out_dir`` or none; a failure names ``what`` (e.g. "the report")."""
    out_dir = Path(out_dir)
    try:
        return _write_all(out_dir, {name: _bytes_writer(data) for name, data in payloads.items()})
    except OSError as exc:
        raise BnextbenchError(f"cannot write {what} to {out_dir}: {_reason(exc)}") from None


def check_writable(path: str | Path, what: str, folder: bool) -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written: a file where a folder is wanted (or
    the reverse), a file among its parents, or a folder without write permission. Writes nothing."""
    path = Path(path)
    if path.exists():
        if path.is_dir() != folder:
            raise BnextbenchError(f"{what} {path} is a {'file' if folder else 'folder'}, not a "
                                  f"{'folder' if folder else 'file'}")
        target = path if folder else path.parent
    else:
        target = next(parent for parent in path.absolute().parents if parent.exists())
        if not target.is_dir():
            raise BnextbenchError(f"cannot write {what} {path}: {target} is a file, not a folder")
    if not os.access(target, os.W_OK | os.X_OK):
        raise BnextbenchError(f"cannot write {what} {path}: {target} is not writable")
    return path


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
    except Exception as exc:  # torch raises many types for unreadable files, some with a bare number as text
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if not reason or reason.isdigit():
            reason = f"not a PyTorch file ({type(exc).__name__})"
        raise BnextbenchError(f"cannot read {what} {path}: {reason[:200]}") from None


def read_text(path: str | Path, what: str) -> str:
    """A text file's contents; a missing or unreadable file is one error line naming ``what``."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise BnextbenchError(f"cannot read {what} {path}: {reason}") from None
