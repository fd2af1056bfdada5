"""
Fixed data and evaluation of the tiny task: next-byte prediction on Shakespeare's sonnets.
FROZEN: experiments must not edit this file. Runs in well under a second, with numpy only, so the
research loop can be watched (and tested) without a GPU or a model download.
"""

import math
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
with open(HERE / "autoresearch.toml", "rb") as _f:
    _CONFIG = tomllib.load(_f)

BUDGET_KIND = _CONFIG["budget"].get("kind", "seconds")
BUDGET = float(_CONFIG["budget"]["value"])
VOCAB_SIZE = 256  # bytes
VAL_FRACTION = 0.1

_DATA = np.frombuffer((HERE / "sonnets.txt").read_bytes(), dtype=np.uint8)
_SPLIT = int(len(_DATA) * (1 - VAL_FRACTION))


def train_bytes():
    return _DATA[:_SPLIT].copy()


def evaluate_bpb(predict_log_probs):
    """Bits per byte on the held-out tail. `predict_log_probs(history)` gets the whole byte history
    (training text, then validation text) and must return natural-log probabilities [n, 256] where
    row i is the distribution of byte i+1 given bytes 0..i. Only validation targets are scored."""
    history = _DATA.copy()
    log_probs = np.asarray(predict_log_probs(history[:-1]), dtype=np.float64)
    if log_probs.shape != (len(history) - 1, VOCAB_SIZE):
        raise ValueError(f"predict_log_probs returned shape {log_probs.shape}, expected {(len(history) - 1, VOCAB_SIZE)}")
    if not np.allclose(np.exp(log_probs[_SPLIT - 1:]).sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("predicted distributions must sum to 1")
    targets = history[_SPLIT:]
    nats = -log_probs[np.arange(_SPLIT - 1, len(history) - 1), targets]
    return float(nats.sum() / (math.log(2) * len(targets)))
