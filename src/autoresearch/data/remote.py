"""The two web datasets: climbmix (the original autoresearch data) and TinyStories.

Facts mirrored from the original karpathy/autoresearch prepare.py: the data is
the Hugging Face dataset ``karpathy/climbmix-400b-shuffle``, stored as parquet
shards ``shard_00000.parquet`` ... ``shard_06542.parquet`` (6543 files, a
``text`` column each), and the last shard, ``shard_06542.parquet``, is pinned
as the validation shard; training uses shards from 0 upward.

Base URLs can be overridden (keyword argument first, then environment
variable), which is how tests point them at a local server and how a user
points them at a mirror.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoresearch.data.download import download_files

__all__ = [
    "CLIMBMIX_BASE_URL",
    "CLIMBMIX_LAST_SHARD",
    "CLIMBMIX_URL_ENV",
    "CLIMBMIX_VAL_SHARD",
    "REMOTE_DATASETS",
    "TINYSTORIES_BASE_URL",
    "TINYSTORIES_TRAIN_FILE",
    "TINYSTORIES_URL_ENV",
    "TINYSTORIES_VALID_FILE",
    "climbmix_base_url",
    "climbmix_shard_name",
    "fetch_climbmix",
    "fetch_remote_dataset",
    "fetch_tinystories",
    "tinystories_base_url",
]

CLIMBMIX_BASE_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
CLIMBMIX_URL_ENV = "AUTORESEARCH_CLIMBMIX_URL"
CLIMBMIX_LAST_SHARD = 6542  # shard_06542.parquet is the last one
CLIMBMIX_VAL_SHARD = CLIMBMIX_LAST_SHARD  # pinned validation shard, as in the original
CLIMBMIX_TEST_SHARD = CLIMBMIX_LAST_SHARD - 1  # pinned held-out test shard: only a verification reads it
CLIMBMIX_MAX_TRAIN_SHARDS = CLIMBMIX_TEST_SHARD  # shards 0..6540 are for training

TINYSTORIES_BASE_URL = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main"
TINYSTORIES_URL_ENV = "AUTORESEARCH_TINYSTORIES_URL"
TINYSTORIES_TRAIN_FILE = "TinyStoriesV2-GPT4-train.txt"  # about 2.2 GB
TINYSTORIES_VALID_FILE = "TinyStoriesV2-GPT4-valid.txt"  # about 22 MB


def climbmix_shard_name(index: int) -> str:
    return f"shard_{index:05d}.parquet"


def climbmix_base_url(override: str | None = None) -> str:
    return _base_url(override, CLIMBMIX_URL_ENV, CLIMBMIX_BASE_URL)


def tinystories_base_url(override: str | None = None) -> str:
    return _base_url(override, TINYSTORIES_URL_ENV, TINYSTORIES_BASE_URL)


def _base_url(override: str | None, env_var: str, default: str) -> str:
    chosen = override or os.environ.get(env_var) or default
    return chosen.rstrip("/")


def fetch_climbmix(
    dest_dir: Path,
    *,
    num_train_shards: int = 8,
    base_url: str | None = None,
    **download_kwargs: Any,
) -> tuple[list[Path], list[Path]]:
    """Download the first `num_train_shards` climbmix shards plus the pinned validation shard.

    Returns ``(train_paths, val_paths)``. `base_url` defaults to
    ``$AUTORESEARCH_CLIMBMIX_URL`` or else `CLIMBMIX_BASE_URL`; the other
    keyword arguments go to `download_files` (workers, retries, progress, ...).
    """
    if not 1 <= num_train_shards <= CLIMBMIX_MAX_TRAIN_SHARDS:
        raise ValueError(
            f"num_train_shards must be between 1 and {CLIMBMIX_MAX_TRAIN_SHARDS} "
            f"(climbmix has {CLIMBMIX_LAST_SHARD + 1} shards, the last one is for validation), got {num_train_shards}"
        )
    url = climbmix_base_url(base_url)
    dest_dir = Path(dest_dir)
    train_names = [climbmix_shard_name(i) for i in range(num_train_shards)]
    val_names = [climbmix_shard_name(CLIMBMIX_VAL_SHARD)]
    # The validation shard goes first so an evaluation set exists as soon as possible.
    paths = download_files(
        [(f"{url}/{name}", dest_dir / name) for name in val_names + train_names], **download_kwargs
    )
    return paths[len(val_names):], paths[: len(val_names)]


def fetch_climbmix_test(dest_dir: Path, *, base_url: str | None = None, **download_kwargs: Any) -> list[Path]:
    """Download the pinned held-out test shard (`CLIMBMIX_TEST_SHARD`), never used for training."""
    url = climbmix_base_url(base_url)
    name = climbmix_shard_name(CLIMBMIX_TEST_SHARD)
    return download_files([(f"{url}/{name}", Path(dest_dir) / name)], **download_kwargs)


def fetch_tinystories(
    dest_dir: Path,
    *,
    base_url: str | None = None,
    **download_kwargs: Any,
) -> tuple[list[Path], list[Path]]:
    """Download TinyStories V2 (GPT-4 stories, separated by ``<|endoftext|>``).

    Returns ``([train_txt], [valid_txt])``. `base_url` defaults to
    ``$AUTORESEARCH_TINYSTORIES_URL`` or else `TINYSTORIES_BASE_URL`.
    """
    url = tinystories_base_url(base_url)
    dest_dir = Path(dest_dir)
    names = [TINYSTORIES_VALID_FILE, TINYSTORIES_TRAIN_FILE]
    valid, train = download_files([(f"{url}/{name}", dest_dir / name) for name in names], **download_kwargs)
    return [train], [valid]


REMOTE_DATASETS: dict[str, Callable[..., tuple[list[Path], list[Path]]]] = {
    "climbmix": fetch_climbmix,
    "tinystories": fetch_tinystories,
}


def fetch_remote_dataset(name: str, dest_dir: Path, **kwargs: Any) -> tuple[list[Path], list[Path]]:
    """Fetch a web dataset by name; returns ``(train_paths, val_paths)``."""
    try:
        fetch = REMOTE_DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(REMOTE_DATASETS))
        raise ValueError(f"unknown web dataset {name!r}; choose one of: {known}") from None
    return fetch(dest_dir, **kwargs)
