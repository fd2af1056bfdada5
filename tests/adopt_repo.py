"""A small training repository in a style that is not ours, for `autoresearch adopt` (the README's
worked example): its own flag parser (--key=value over a config dict), its own log format, its own
data preparation into a git-ignored data/ directory, and checkpoints written to ./out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TRAIN = '''"""A byte-level bigram model trained with SGD; prints 'step N | loss X' and 'final | val loss X'."""
import os
import sys

import numpy as np

config = {"lr": 0.3, "smooth": 1.0, "steps": 120, "batch": 256, "out_dir": "out", "seed": 0}
for arg in sys.argv[1:]:  # a flag parser of its own: --key=value
    key, _, value = arg.lstrip("-").partition("=")
    if key not in config:
        sys.exit(f"unknown flag --{key}")
    config[key] = type(config[key])(value)

train = np.fromfile("data/train.bin", dtype=np.uint8).astype(np.int64)
val = np.fromfile("data/val.bin", dtype=np.uint8).astype(np.int64)
rng = np.random.default_rng(config["seed"])
W = np.zeros((256, 256))


def loss_and_grad(x, y):
    logits = W[x] / config["smooth"]
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y] + 1e-12).mean()
    p[np.arange(len(y)), y] -= 1
    return loss, p / (len(y) * config["smooth"])


for step in range(config["steps"]):
    i = rng.integers(0, len(train) - 1, config["batch"])
    loss, grad = loss_and_grad(train[i], train[i + 1])
    np.add.at(W, train[i], -config["lr"] * 100 * grad)
    if step % 20 == 0:
        print(f"step {step} | loss {loss:.4f}", flush=True)

os.makedirs(config["out_dir"], exist_ok=True)
np.save(os.path.join(config["out_dir"], "ckpt.npy"), W)
print("saved", os.path.join(config["out_dir"], "ckpt.npy"))
val_loss, _ = loss_and_grad(val[:-1], val[1:])
print(f"final | val loss {val_loss:.4f}")
'''

PREPARE = '''"""Turns input.txt into data/train.bin and data/val.bin (bytes), 90/10."""
import os

text = open("input.txt", "rb").read()
os.makedirs("data", exist_ok=True)
cut = int(0.9 * len(text))
open("data/train.bin", "wb").write(text[:cut])
open("data/val.bin", "wb").write(text[cut:])
print(f"{cut} training bytes, {len(text) - cut} validation bytes")
'''

TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
        "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
        "it was the season of Darkness, it was the spring of hope, it was the winter of despair.\n") * 60


def make_repo(path: Path) -> Path:
    """The repository, committed, with its data prepared the way its README would say."""
    path.mkdir(parents=True)
    (path / "train.py").write_text(TRAIN)
    (path / "prepare_data.py").write_text(PREPARE)
    (path / "input.txt").write_text(TEXT)
    (path / "README.md").write_text("# bigram\n\npython prepare_data.py && python train.py --lr=0.3\n")
    (path / ".gitignore").write_text("data/\nout/\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["-c", "user.name=me", "-c", "user.email=me@x",
                                                              "commit", "-qm", "bigram"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    subprocess.run([sys.executable, "prepare_data.py"], cwd=path, check=True, capture_output=True)
    return path
