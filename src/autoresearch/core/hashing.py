"""sha256 of a file, read in 1 MiB chunks (data files and model weights are large)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def directory_sha256(path: Path) -> str:
    """One digest of every file under `path` (names and contents); "" when it holds none."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else []
    for file in files:
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file_sha256(file).encode() + b"\0")
    return digest.hexdigest() if files else ""
