"""The packed model file: safetensors tensors plus one JSON metadata entry, never pickle.

Reading checks, in order, and refuses with one line naming the file: that it exists and is a
safetensors file whose header parses; that its metadata entry ``bnextbench`` is there and names the
format version this package reads; that the tensor bytes hash to the SHA-256 the metadata records (a
truncated or altered file). The digest covers the tensor bytes only: they are laid out by the tensors
alone, so a first serialisation gives the digest that the second one records.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ..errors import BnextbenchError

FORMAT = "bnextbench-packed/1"
METADATA_KEY = "bnextbench"
_HEADER_LENGTH = struct.Struct("<Q")
# A safetensors header is JSON; the spec caps it at 100 MB, which also bounds what a hostile length makes us read.
_MAX_HEADER_BYTES = 100_000_000


class DeployError(BnextbenchError):
    """A model the engine cannot run, or a packed file that cannot be read."""


def _data_digest(blob: bytes) -> str:
    (header_length,) = _HEADER_LENGTH.unpack_from(blob)
    return hashlib.sha256(memoryview(blob)[_HEADER_LENGTH.size + header_length:]).hexdigest()


def encode(tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> bytes:
    """The file's bytes: ``tensors`` and ``metadata`` with the format and the tensor bytes' digest added."""
    metadata = {"format": FORMAT, **metadata}
    draft = save_tensors(tensors, metadata={METADATA_KEY: json.dumps(metadata)})
    return save_tensors(tensors, metadata={METADATA_KEY: json.dumps({**metadata, "sha256": _data_digest(draft)})})


def is_packed_file(path: str | Path) -> bool:
    """Whether ``path`` looks like a safetensors file (its header's JSON starts at byte 8), not a torch zip."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(_HEADER_LENGTH.size + 1)
    except OSError:
        return False
    return len(start) == _HEADER_LENGTH.size + 1 and start[-1:] == b"{"


def _metadata(blob: bytes, path: Path) -> dict[str, Any]:
    if len(blob) < _HEADER_LENGTH.size:
        raise DeployError(f"cannot read packed model {path}: {len(blob)} bytes, too short for a safetensors file")
    (header_length,) = _HEADER_LENGTH.unpack_from(blob)
    end = _HEADER_LENGTH.size + header_length
    if header_length > _MAX_HEADER_BYTES or end > len(blob):
        raise DeployError(f"cannot read packed model {path}: truncated or not a safetensors file (header of "
                          f"{header_length} bytes in a file of {len(blob)})")
    try:
        header = json.loads(blob[_HEADER_LENGTH.size:end])
        metadata = json.loads(header["__metadata__"][METADATA_KEY])
    except (ValueError, KeyError, TypeError):
        raise DeployError(f"cannot read packed model {path}: no bnextbench metadata (not written by "
                          f"`bnextbench export`)") from None
    if not isinstance(metadata, dict):
        raise DeployError(f"cannot read packed model {path}: its metadata is not a JSON object")
    if metadata.get("format") != FORMAT:
        raise DeployError(f"cannot read packed model {path}: format {metadata.get('format')!r}; this bnextbench "
                          f"reads {FORMAT}")
    return metadata


def decode(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a packed model file, checked as the module docstring says."""
    path = Path(path)
    if not path.is_file():
        raise DeployError(f"packed model not found: {path}")
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DeployError(f"cannot read packed model {path}: {exc.strerror or exc}") from None
    metadata = _metadata(blob, path)
    if _data_digest(blob) != metadata.get("sha256"):
        raise DeployError(f"cannot read packed model {path}: its tensor bytes do not match the recorded SHA-256 "
                          f"(truncated or altered)")
    try:
        tensors = load_tensors(blob)
    except SafetensorError as exc:
        raise DeployError(f"cannot read packed model {path}: {str(exc).splitlines()[0][:200]}") from None
    return tensors, metadata
