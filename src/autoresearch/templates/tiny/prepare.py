"""
Fixed data and evaluation of the tiny task: next-byte prediction on Shakespeare's sonnets.
FROZEN: experiments must not edit this file. Runs in well under a second, with numpy only, so the
research loop can be watched (and tested) without a GPU or a model download.

The model is a backoff n-gram: for each order k, a table of counts of the byte that follows each
k-byte context seen in training. It is scored here, with hierarchical additive smoothing:
    p_k(b | ctx) = (count_k(ctx, b) + alpha * p_{k-1}(b | shorter ctx)) / (count_k(ctx) + alpha)
"""

import math
import os
import sys
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
with open(HERE / "autoresearch.toml", "rb") as _f:
    _CONFIG = tomllib.load(_f)

BUDGET_KIND = _CONFIG["budget"].get("kind", "seconds")
BUDGET = float(_CONFIG["budget"]["value"])
VOCAB_SIZE = 256  # bytes
# The run's seed, given by the harness (a new one for each repeat of a run); 42 when run by hand.
# The counts do not depend on it: this task's runs are truly deterministic, its noise truly zero.
SEED = int(os.environ.get("AUTORESEARCH_SEED") or 42)
MAX_ORDER = 8

# The held-out tail of the sonnets is its own file: under the harness, training runs cannot read it.
# The test split is A Lover's Complaint (printed with the sonnets in 1609): only a verification reads it.
_TRAIN = np.frombuffer((HERE / "sonnets.txt").read_bytes(), dtype=np.uint8)


def train_bytes():
    return _TRAIN.copy()


def _text(held_out="sonnets_val.txt"):
    """Training text then the held-out text, and where the held-out part starts."""
    val = np.frombuffer((HERE / held_out).read_bytes(), dtype=np.uint8)
    if len(val) == 0:
        raise SystemExit(f"{held_out} is empty here: only the evaluation may read it")
    return np.concatenate([_TRAIN, val]), len(_TRAIN)


def context_ids(data, order):
    """An integer id of the `order` bytes before each position (positions 0..len-1)."""
    ids = np.zeros(len(data), dtype=np.int64)
    for k in range(1, order + 1):
        shifted = np.zeros(len(data), dtype=np.int64)
        shifted[k:] = data[:-k].astype(np.int64) + 1  # +1 so "before the start" differs from byte 0
        ids = ids * 257 + shifted
    return ids


def evaluate_bpb(tables, alpha):
    """Bits per byte on the held-out tail. `tables[k]` is (sorted context ids of order k, counts
    [n_contexts, 256]) for k = 0..order; `alpha` is the smoothing strength.

    In a run of the harness (AUTORESEARCH_HANDOFF set) the tables are handed off instead and scored
    by the harness's own evaluation in a separate sandbox; then this returns None."""
    handoff = os.environ.get("AUTORESEARCH_HANDOFF")
    if handoff:
        arrays = {"alpha": np.asarray(alpha, dtype=np.float64)}
        for k, (unique, counts) in enumerate(tables):
            arrays[f"contexts_{k}"], arrays[f"counts_{k}"] = np.asarray(unique), np.asarray(counts)
        Path(handoff).mkdir(parents=True, exist_ok=True)
        np.savez(Path(handoff) / "model.npz", **arrays)
        return None
    return _score(tables, float(alpha))


def _score(tables, alpha, held_out="sonnets_val.txt"):
    data, split = _text(held_out)
    positions = np.arange(split, len(data))
    probs = np.full((len(positions), VOCAB_SIZE), 1.0 / VOCAB_SIZE)
    for order, (unique, counts) in enumerate(tables):
        ctx = context_ids(data, order)[positions]
        idx = np.clip(np.searchsorted(unique, ctx), 0, max(len(unique) - 1, 0))
        found = (unique[idx] == ctx) if len(unique) else np.zeros(len(ctx), dtype=bool)
        c = np.where(found[:, None], counts[idx], 0.0) if len(unique) else np.zeros_like(probs)
        probs = (c + alpha * probs) / (c.sum(axis=1, keepdims=True) + alpha)
    nats = -np.log(probs[np.arange(len(positions)), data[positions]])
    return float(nats.sum() / (math.log(2) * len(positions)))


def _load_handoff(path):
    """The handed-off tables, checked: plain arrays only (no pickle), sane shapes and values."""
    try:
        with np.load(Path(path) / "model.npz", allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"no readable model was handed off ({type(exc).__name__}: {str(exc)[:120]})") from None
    alpha = float(arrays.pop("alpha", np.nan))
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a positive number, not {alpha}")
    tables = []
    for k in range(MAX_ORDER + 1):
        if f"contexts_{k}" not in arrays:
            break
        unique, counts = arrays[f"contexts_{k}"], arrays[f"counts_{k}"].astype(np.float64)
        if unique.ndim != 1 or counts.shape != (len(unique), VOCAB_SIZE) or np.any(np.diff(unique) <= 0):
            raise ValueError(f"table of order {k} is malformed")
        if not np.all(np.isfinite(counts)) or np.any(counts < 0):
            raise ValueError(f"table of order {k} has negative or non-finite counts")
        tables.append((unique.astype(np.int64), counts))
    if not tables:
        raise ValueError("the handed-off model has no tables")
    return tables, alpha


def evaluate_handoff(path):
    """The harness's trusted evaluation: `python prepare.py evaluate DIR`."""
    try:
        tables, alpha = _load_handoff(path)
    except ValueError as exc:
        print(f"invalid: {exc}", flush=True)
        sys.exit(3)
    val_bpb = _score(tables, alpha)
    if not math.isfinite(val_bpb):
        print(f"invalid: the model's predictions are not finite (val_bpb {val_bpb})", flush=True)
        sys.exit(3)
    print("---")
    print(f"val_bpb:          {val_bpb:.6f}")
    if os.environ.get("AUTORESEARCH_SCORE_TEST") and (HERE / "complaint_test.txt").stat().st_size:  # a verification
        print(f"test_bpb:         {_score(tables, alpha, 'complaint_test.txt'):.6f}")
    print("causality:        ok")  # contexts are built here from earlier bytes only


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "evaluate":
        evaluate_handoff(sys.argv[2])
    else:
        sys.exit("usage: python prepare.py evaluate HANDOFF_DIR  (the harness's evaluation of a handed-off model)")
