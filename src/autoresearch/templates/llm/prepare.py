"""
Fixed constants, data loading and evaluation for this research task. FROZEN: the agent must not
edit this file (the harness checks its hash), so every experiment is measured the same way.

The data itself is made once by `autoresearch prepare` (download, BPE tokenizer, token arrays) and
read here from the prepared directory. Constants come from autoresearch.toml, which is frozen too.
Under the harness, the loader and the evaluation tell the harness's clock what they do (each batch
served, each budget check, the handoff): the training time that counts is measured by the harness.
"""

import gc
import json
import math
import os
import platform
import sys
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

try:  # the harness's clock: it stamps these messages itself (nothing is sent outside the harness)
    from autoresearch.run.clock import tell as _tell_harness
except ImportError:
    def _tell_harness(kind, value=None):
        pass

HERE = Path(__file__).resolve().parent
with open(HERE / "autoresearch.toml", "rb") as _f:
    _CONFIG = tomllib.load(_f)

# ---------------------------------------------------------------------------
# Fixed constants (from autoresearch.toml; do not change them here)
MAX_SEQ_LEN = int(_CONFIG["data"]["seq_len"])  # context length of every row
EVAL_TOKENS = int(_CONFIG["data"].get("eval_tokens", 0))  # 0 = score every validation token
BUDGET_KIND = _CONFIG["budget"].get("kind", "seconds")  # seconds | tokens | flops
BUDGET = float(_CONFIG["budget"]["value"])  # training budget in BUDGET_KIND units
TIME_BUDGET = BUDGET if BUDGET_KIND == "seconds" else None
DATA_DIR = Path(os.environ.get("AUTORESEARCH_DATA_DIR") or HERE / ".autoresearch" / "data")
# The run's seed, given by the harness: each repeat of one commit gets its own, so the noise the judge
# measures is what another seed would give. It orders the training data (make_dataloader) and seeds
# train.py's initialisation; 42 when run by hand.
SEED = int(os.environ.get("AUTORESEARCH_SEED") or 42)
# Scoring batches on a CPU hold about this many tokens, so that each layer's activations stay in the
# caches between operations (2-core EPYC, the cpu preset's model: 16.7k tokens/s in rows of 4 x 256,
# 12.1k in the training's 16 x 256). Which tokens are scored, and how, does not depend on it.
CPU_SCORING_TOKENS = 1024
CPU_SCORING_WORKERS = 4  # at most this many batches at a time (more would wait on Python's lock)


def _load_meta():
    meta_path = DATA_DIR / "meta.json"
    if not meta_path.exists():
        raise SystemExit(f"no prepared data at {DATA_DIR}: run `autoresearch prepare` in {HERE}")
    return json.loads(meta_path.read_text())


META = _load_meta()
VOCAB_SIZE = int(META["vocab_size"])
BOS_ID = int(META["bos_id"])


_last_tokens = [None]


def budget_progress(training_seconds, tokens, flops):
    """Share of the training budget spent so far (stop training at 1.0)."""
    if tokens != _last_tokens[0]:  # one message a step, however often it is asked
        _last_tokens[0] = tokens
        _tell_harness("step")
    spent = {"seconds": training_seconds, "tokens": tokens, "flops": flops}[BUDGET_KIND]
    return spent / BUDGET


def get_token_bytes(device="cpu"):
    """UTF-8 byte length of every token id; 0 for special tokens (they are never scored)."""
    return torch.from_numpy(np.load(DATA_DIR / "token_bytes.npy").astype(np.int64)).to(device)


def _tokens(split):
    return np.memmap(DATA_DIR / f"{split}.bin", dtype=np.dtype(META["dtype"]), mode="r")


# ---------------------------------------------------------------------------
# Training data: documents are packed back to back, each starting with BOS, so no token is
# cropped away. Each epoch walks every row-sized window once, in a new random order.

def make_dataloader(batch_size, seq_len=MAX_SEQ_LEN, device="cpu", seed=None):
    """Yields (inputs, targets, epoch) forever; inputs and targets are int64 [batch_size, seq_len].
    The order follows the run's SEED (the harness's); a `seed` given here is mixed in, not instead."""
    tokens = _tokens("train")
    n_windows = (len(tokens) - 1) // seq_len
    if n_windows < batch_size:
        raise SystemExit(f"training split has {len(tokens)} tokens, too few for batches of {batch_size}x{seq_len}")
    rng = np.random.default_rng(SEED if seed is None else [SEED, seed])
    pin = device.type == "cuda" if isinstance(device, torch.device) else str(device).startswith("cuda")
    leftover = (len(tokens) - 1) % seq_len  # tokens beyond the last whole window: room for a random phase
    epoch = 0
    while True:
        epoch += 1
        phase = int(rng.integers(0, leftover + 1))
        starts = phase + seq_len * rng.permutation(n_windows)
        for i in range(0, len(starts) - batch_size + 1, batch_size):
            rows = np.stack([tokens[s:s + seq_len + 1] for s in starts[i:i + batch_size]]).astype(np.int64)
            batch = torch.from_numpy(rows)
            if pin:
                batch = batch.pin_memory()
            batch = batch.to(device, non_blocking=True)
            _tell_harness("batch", batch_size * seq_len)
            yield batch[:, :-1], batch[:, 1:], epoch


# ---------------------------------------------------------------------------
# Evaluation: validation bits per byte, independent of the vocabulary size.

def validation_batches(batch_size, seq_len=MAX_SEQ_LEN, device="cpu", split="val"):
    """Windows over the validation tokens (or the held-out test tokens, which only a verification's
    evaluation can read) so that every target is scored exactly once. Batches always have batch_size
    rows (padding targets are -1) so compiled models see one shape.

    Rows are dealt out across the batches (batch j holds windows j, j + n, j + 2n, ... of n batches):
    a row's last target is the first token of the next window, which is then never in its batch, and
    no row of a batch holds any target of another. So a model that reads across the rows it is
    scored with learns nothing about what it must predict."""
    tokens = np.asarray(_tokens(split), dtype=np.int64)
    if EVAL_TOKENS:
        tokens = tokens[:EVAL_TOKENS + 1]
    n_targets = len(tokens) - 1
    n_rows = math.ceil(n_targets / seq_len)
    inputs = np.full((n_rows * seq_len,), BOS_ID, dtype=np.int64)
    targets = np.full((n_rows * seq_len,), -1, dtype=np.int64)
    inputs[:n_targets] = tokens[:-1]
    targets[:n_targets] = tokens[1:]
    inputs, targets = inputs.reshape(n_rows, seq_len), targets.reshape(n_rows, seq_len)
    n_batches = _batch_count(n_targets, batch_size, seq_len)
    for j in range(n_batches):
        x, y = inputs[j::n_batches], targets[j::n_batches]
        if len(x) < batch_size:  # pad with rows that score nothing
            pad = batch_size - len(x)
            x = np.concatenate([x, np.full((pad, seq_len), BOS_ID, dtype=np.int64)])
            y = np.concatenate([y, np.full((pad, seq_len), -1, dtype=np.int64)])
        yield torch.from_numpy(np.ascontiguousarray(x)).to(device), torch.from_numpy(np.ascontiguousarray(y)).to(device)


def _batch_count(n_targets, batch_size, seq_len=MAX_SEQ_LEN):
    """Batches of a split of n_targets targets: enough for every row, and two at least where there
    are two rows (one batch would hold a row beside the row after it)."""
    n_rows = math.ceil(n_targets / seq_len)
    return max(math.ceil(n_rows / batch_size), min(n_rows, 2))


def evaluate_bpb(model, batch_size, seq_len=MAX_SEQ_LEN):
    """Bits per byte on the validation split: the sum of per-token cross-entropy (nats) over all
    scored tokens divided by ln(2) times their UTF-8 byte count. Special tokens count in neither.
    `model(inputs)` must return logits [batch, seq, vocab]; the loss is computed here, not by it.

    In a run of the harness (AUTORESEARCH_HANDOFF set) the model is not scored in this process:
    it is exported (graph and weights, no Python) for the harness's own evaluation, which runs in
    a separate sandbox, alone can read the validation split, and probes the model for causality.
    Then this returns None and train.py prints no val_bpb of its own."""
    handoff = os.environ.get("AUTORESEARCH_HANDOFF")
    device = next(model.parameters()).device
    rows = scoring_rows(batch_size, seq_len, device)
    if handoff:
        from autoresearch.run.handoff import export_model
        _tell_harness("handoff")  # training is over: the harness's clock stops here
        example = torch.full((rows, seq_len), BOS_ID, dtype=torch.int64, device=device)  # only its shape matters
        export_model(model, example, handoff)
        _tell_harness("handed-off")
        print(f"model handed off for the harness's evaluation ({handoff})", flush=True)
        gc.freeze()  # the process ends soon: its last collection need not walk all that torch.export made (~0.6 s)
        return None
    return score_bpb(model, rows, seq_len, device)


def scoring_rows(batch_size, seq_len, device):
    """Rows per scoring batch (and in the handed-off graph): the training's batch on accelerators,
    about CPU_SCORING_TOKENS tokens on a CPU."""
    if torch.device(device).type != "cpu":
        return batch_size
    return max(1, min(batch_size, CPU_SCORING_TOKENS // seq_len))


def score_bpb(forward, batch_size, seq_len, device, on_batch=None, split="val"):
    """Bits per byte of `forward` over a split. Each batch's sum is taken on its own and the sums
    are added in batch order, so the number does not depend on how batches were shared out."""
    token_bytes = get_token_bytes(device)

    @torch.inference_mode()  # no autograd bookkeeping at all: ~14 % faster than no_grad on a 2-core CPU
    def score(i, x, y):
        logits = forward(x).float()
        if on_batch is not None:
            on_batch(i, x, logits)
        nats = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-1, reduction="none")
        valid = y.reshape(-1) >= 0
        n_bytes = torch.where(valid, token_bytes[y.reshape(-1).clamp(min=0)], 0)
        return (nats * (n_bytes > 0)).sum(dtype=torch.float64), n_bytes.sum()

    parts = _in_threads(score, validation_batches(batch_size, seq_len, device, split), torch.device(device))
    if not parts:
        return float("nan")
    total_nats = torch.stack([nats for nats, _ in parts]).sum()
    total_bytes = torch.stack([n_bytes for _, n_bytes in parts]).sum()
    return (total_nats / (math.log(2) * total_bytes)).item()


def _in_threads(score, batches, device):
    """score(i, x, y) of every batch, in order. On a CPU several Python threads of one intra-op
    thread each score batches side by side: small batches run faster so than one at a time on all
    threads (2 cores: 14.4k tokens/s against 11.8k). Accelerators take them one at a time."""
    threads = torch.get_num_threads()
    workers = min(CPU_SCORING_WORKERS, threads) if device.type == "cpu" else 1
    if workers <= 1:
        return [score(i, x, y) for i, (x, y) in enumerate(batches)]
    numbered, lock, results, failed = enumerate(batches), threading.Lock(), {}, threading.Event()

    def work():
        while not failed.is_set():
            with lock:  # batches are read one at a time, as they are needed
                item = next(numbered, None)
            if item is None:
                return
            i, (x, y) = item
            try:
                results[i] = score(i, x, y)
            except BaseException:
                failed.set()  # the other workers stop too
                raise

    torch.set_num_threads(max(1, threads // workers))
    try:
        with ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(work) for _ in range(workers)]:
                done.result()  # a worker's exception is raised here
    finally:
        torch.set_num_threads(threads)
    return [results[i] for i in sorted(results)]


def evaluate_handoff(handoff):
    """The harness's trusted evaluation of a handed-off model: `python prepare.py evaluate DIR`.
    Prints a summary block with val_bpb, or a line `invalid: why` and exits 3."""
    import secrets
    try:
        from autoresearch.run.evaluation import wait_for
    except ImportError:  # an older harness never starts an evaluation early; if one did, read nothing
        def wait_for(word):
            if os.environ.get("AUTORESEARCH_EVAL_GATE_FD"):
                sys.exit(4)
    torch.ones(64, 64) @ torch.ones(64, 64)  # the thread pool and matmul kernels start while train.py does
    # Started with the run, this process loads Python and torch while train.py starts up on one core, the
    # evaluator's own modules (torch.export's, ~1.3 s) while the model is exported, and the model after `go`:
    # nothing of it is read before the run has ended and passed its checks.
    wait_for("handoff")
    from autoresearch.run.handoff import CausalityProbe, HandoffError, load_model, plan_probes
    wait_for("go")
    # the device kind train.py picked (the graph may carry device constants of it)
    device = torch.device("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
    try:
        forward, (batch_size, seq_len) = load_model(handoff, device)
        if seq_len != MAX_SEQ_LEN:
            raise HandoffError(f"the model was exported for rows of {seq_len} tokens, not {MAX_SEQ_LEN}")
    except HandoffError as exc:
        print(f"invalid: {exc}", flush=True)
        sys.exit(3)
    # fp32 (TF32 matmuls on GPUs): the graph asserts the dtypes it was exported with, so no autocast
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    # The causality check (autoresearch/run/handoff.py): probes drawn from a secret seed (the model cannot
    # know where they are) follow their scoring batches in the scoring threads, with its logits as reference.
    generator = torch.Generator().manual_seed(secrets.randbits(62))
    n_batches = _batch_count(min(len(_tokens("val")) - 1, EVAL_TOKENS or 2**62), batch_size, seq_len)
    probe = CausalityProbe(forward, plan_probes(n_batches, (batch_size, seq_len), VOCAB_SIZE, generator), VOCAB_SIZE)
    t0 = time.time()
    val_bpb = score_bpb(forward, batch_size, seq_len, device, on_batch=probe)
    if probe.violation:
        print(f"invalid: {probe.violation}", flush=True)
        sys.exit(3)
    if not math.isfinite(val_bpb):
        print(f"invalid: the model's predictions are not finite (val_bpb {val_bpb})", flush=True)
        sys.exit(3)
    test_bpb = None
    if os.environ.get("AUTORESEARCH_SCORE_TEST") and (DATA_DIR / "test.bin").exists():  # a verification only
        test_bpb = score_bpb(forward, batch_size, seq_len, device, split="test")
    print("---")
    print(f"val_bpb:          {val_bpb:.6f}")
    if test_bpb is not None:
        print(f"test_bpb:         {test_bpb:.6f}")
    print(f"eval_seconds:     {time.time() - t0:.1f}")
    print(f"causality_cuts:   {probe.cuts}")
    print("causality:        ok")


# ---------------------------------------------------------------------------
# Peak throughput of the device actually found, for MFU. Dense bf16 tensor-core figures for GPUs;
# an fp32 vector estimate for CPUs (cores x clock x FLOPs per cycle).

GPU_PEAK_BF16 = [  # (substring of the device name, FLOP/s); first match wins
    ("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("H800", 989e12), ("GH200", 989e12),
    ("B200", 2250e12), ("B100", 1750e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12),
    ("L40", 181e12), ("L4", 121e12), ("A10G", 70e12), ("A10", 125e12), ("A6000", 155e12),
    ("RTX 5090", 210e12), ("RTX 4090", 165e12), ("RTX 4080", 97e12), ("RTX 3090", 71e12),
    ("V100", 125e12), ("T4", 65e12), ("MI300X", 1307e12), ("MI250", 362e12),
]
APPLE_PEAK_FP32 = [("M4 Max", 17e12), ("M4 Pro", 9e12), ("M4", 4.3e12), ("M3 Max", 16e12), ("M3 Pro", 7e12),
                   ("M3", 4.1e12), ("M2 Ultra", 27e12), ("M2 Max", 13.6e12), ("M2 Pro", 6.8e12), ("M2", 3.6e12),
                   ("M1 Ultra", 21e12), ("M1 Max", 10.4e12), ("M1 Pro", 5.2e12), ("M1", 2.6e12)]


def device_peak_flops(device):
    """Peak FLOP/s of `device`, or 0.0 when unknown (MFU is then reported as 0)."""
    kind = torch.device(device).type
    if kind == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((peak for key, peak in GPU_PEAK_BF16 if key in name), 0.0)
    if kind == "mps":
        brand = os.popen("sysctl -n machdep.cpu.brand_string 2>/dev/null").read()
        return next((peak for key, peak in APPLE_PEAK_FP32 if key in brand), 0.0)
    return _cpu_peak_fp32()


def _cpu_peak_fp32():
    flags, mhz = "", 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = line
            elif line.startswith("cpu MHz") and not mhz:
                mhz = float(line.split(":")[1])
    except OSError:
        pass
    per_cycle = 64 if "avx512f" in flags else 32 if "fma" in flags else 16 if platform.machine() == "arm64" else 8
    return torch.get_num_threads() * (mhz or 2500.0) * 1e6 * per_cycle


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "evaluate":
        evaluate_handoff(sys.argv[2])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # all is said: the interpreter's teardown after torch.export's imports is ~1 s of every run's wall
    else:
        sys.exit("usage: python prepare.py evaluate HANDOFF_DIR  (the harness's evaluation of a handed-off model)")
