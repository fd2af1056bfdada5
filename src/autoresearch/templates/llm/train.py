"""
GPT pretraining in one file: the file the research agent edits.

A nanochat-style decoder: RoPE, RMSNorm, QK-norm, ReLU^2 MLP, untied head, logit soft-cap,
optional sliding-window layers; Muon for matrices, AdamW for embeddings. Trains for the fixed
budget from prepare.py, then prints val_bpb and a summary block. Run: python train.py
"""

import math
import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from prepare import (BUDGET, BUDGET_KIND, MAX_SEQ_LEN, SEED, VOCAB_SIZE, budget_progress, device_peak_flops,
                     evaluate_bpb, make_dataloader)

# ---------------------------------------------------------------------------
# Hyperparameters: the agent's main lever. The "knob:" comments declare ranges for search tools.
DEPTH = 8                    # knob: int 2..24        number of transformer blocks
ASPECT_RATIO = 64            # knob: int 32..128      model width = DEPTH * ASPECT_RATIO, rounded up to a multiple of HEAD_DIM
HEAD_DIM = 128               # knob: choice 32|64|128 width of one attention head
WINDOW_PATTERN = "SSSL"      # knob: choice L|SL|SSL|SSSL  per-layer attention: S = half context, L = full; last layer is always L
TOTAL_BATCH_SIZE = 524288     # knob: int 4096..2097152 pow2  tokens per optimizer step
DEVICE_BATCH_SIZE = 128      # knob: int 1..256 pow2  rows per forward pass (gradient accumulation makes up the rest)
EMBEDDING_LR = 0.6           # knob: float 0.01..2.0 log
UNEMBEDDING_LR = 0.004       # knob: float 0.0005..0.05 log
MATRIX_LR = 0.04             # knob: float 0.005..0.2 log  Muon learning rate
WEIGHT_DECAY = 0.0           # knob: float 0.0..0.5   Muon weight decay
ADAM_BETAS = (0.8, 0.95)
WARMUP_RATIO = 0.0           # knob: float 0.0..0.3   share of the budget spent warming up
WARMDOWN_RATIO = 0.5         # knob: float 0.0..0.9   share of the budget spent decaying to FINAL_LR_FRAC
FINAL_LR_FRAC = 0.0          # knob: float 0.0..0.5
LOGIT_SOFTCAP = 15.0         # knob: float 5.0..50.0
TORCH_COMPILE = "auto"       # knob: choice auto|on|off  auto = CUDA only: compiling on a CPU takes 12-30 s and gains little
# SEED (from prepare.py) is the harness's, a new one for each repeat of a run: a result that holds only
# for one seed is noise, and the judge measures the noise across seeds.

# ---------------------------------------------------------------------------
# Device, chosen once: CUDA (bf16, compiled), Apple MPS, or CPU (bf16 where it has bf16 units, else fp32).
if torch.cuda.is_available():
    DEVICE = torch.device("cuda")
elif torch.backends.mps.is_available():
    DEVICE = torch.device("mps")
else:
    DEVICE = torch.device("cpu")


def cpu_has_bf16_units():
    """AVX512-BF16 or AMX: there bf16 matmuls run ~2.8x fp32's (a 2-core EPYC); without them bf16 is slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


USE_BF16 = torch.cuda.is_bf16_supported() if DEVICE.type == "cuda" else DEVICE.type == "cpu" and cpu_has_bf16_units()
AUTOCAST = torch.amp.autocast(device_type=DEVICE.type, dtype=torch.bfloat16) if USE_BF16 else nullcontext()
COMPILE = TORCH_COMPILE == "on" or (TORCH_COMPILE == "auto" and DEVICE.type == "cuda")
UNTIMED_STEPS = 1 if COMPILE else 0  # a compiling first step is not timed (the harness's clock leaves a slow start
# out too); an eager one is a step like the others (on a CPU ~1.2x one), and leaving it out cost the wall time
torch.manual_seed(SEED)
if DEVICE.type == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def load_flash_attention_3():
    """FlashAttention-3 kernels on Hopper GPUs when the `kernels` package can load them; else None (SDPA)."""
    if DEVICE.type != "cuda" or torch.cuda.get_device_capability()[0] != 9:
        return None
    try:
        from kernels import get_kernel
        return get_kernel("varunneal/flash-attention-3").flash_attn_interface
    except Exception:
        return None


FA3 = load_flash_attention_3()


def load_flex_attention():
    """FlexAttention, compiled (its eager form is a slow reference): sliding windows without a dense
    mask on GPUs without FA3. None where it is missing, the model is not compiled, or not on CUDA: on a
    CPU it has no backward (torch 2.13), so windows take SDPA with a mask (benchmarks/cpu_attention.py)."""
    if not (COMPILE and DEVICE.type == "cuda"):
        return None
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError:
        return None
    return torch.compile(flex_attention, dynamic=False), create_block_mask


FLEX = load_flex_attention() if FA3 is None else None
# How attention runs while training: FA3 (Hopper), FlexAttention (other GPUs, windows), else SDPA
# (a boolean mask for windows). The model handed to the evaluation always uses SDPA: ATen only.
ATTENTION = "fa3" if FA3 is not None else "flex" if FLEX is not None else "sdpa"


def attend(q, k, v, window, mask, kernel):
    """Causal attention over q, k, v of shape [B, T, heads, head_dim], at most `window` tokens back."""
    T = q.size(1)
    if kernel == "fa3":
        y = FA3.flash_attn_func(q, k, v, causal=True, window_size=(window - 1 if window < T else -1, 0))
        return y[0] if isinstance(y, tuple) else y
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if kernel == "flex" and mask is not None:
        y = FLEX[0](q, k, v, block_mask=mask)
    elif mask is None:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return y.transpose(1, 2)

# ---------------------------------------------------------------------------
# Model


@dataclass
class GPTConfig:
    vocab_size: int
    seq_len: int
    depth: int
    width: int
    head_dim: int
    window_pattern: str


# One formula per operation, the same in training, in the evaluation and under torch.compile: an
# edit here changes what is trained and what is scored alike.
def rms_norm(x):
    return F.rms_norm(x, (x.size(-1),))


def apply_rotary(x, cos, sin):
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


def relu_square(x):
    return F.relu(x).square()


def soft_cap(logits):
    """LOGIT_SOFTCAP * tanh(logits / LOGIT_SOFTCAP) written as 2 cap sigmoid(2 logits / cap) - cap:
    the same function (tanh(u) = 2 sigmoid(2u) - 1), and PyTorch's CPU sigmoid is ~3x faster than its tanh."""
    return torch.sigmoid(logits * (2 / LOGIT_SOFTCAP)) * (2 * LOGIT_SOFTCAP) - LOGIT_SOFTCAP


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head, self.head_dim = cfg.width // cfg.head_dim, cfg.head_dim
        self.c_q = nn.Linear(cfg.width, cfg.width, bias=False)
        self.c_k = nn.Linear(cfg.width, cfg.width, bias=False)
        self.c_v = nn.Linear(cfg.width, cfg.width, bias=False)
        self.c_proj = nn.Linear(cfg.width, cfg.width, bias=False)

    def forward(self, x, cos, sin, window, mask, kernel="sdpa"):
        B, T, C = x.shape
        qkv = torch.cat([self.c_q.weight, self.c_k.weight, self.c_v.weight])  # one matmul for the three
        q, k, v = F.linear(x, qkv).view(B, T, 3, self.n_head, self.head_dim).unbind(2)
        q, k = apply_rotary(rms_norm(q), cos, sin), apply_rotary(rms_norm(k), cos, sin)  # QK-norm, then RoPE
        y = attend(q, k, v, window, mask, kernel)
        return self.c_proj(y.contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.width, 4 * cfg.width, bias=False)
        self.c_proj = nn.Linear(4 * cfg.width, cfg.width, bias=False)

    def forward(self, x):
        return self.c_proj(relu_square(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn = CausalSelfAttention(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, window, mask, kernel="sdpa"):
        x = x + self.attn(rms_norm(x), cos, sin, window, mask, kernel)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.width)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.lm_head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)  # untied from wte
        self.windows = self.layer_windows(cfg)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim))
        angles = torch.outer(torch.arange(cfg.seq_len).float(), inv_freq)
        self.register_buffer("cos", angles.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", angles.sin()[None, :, None, :], persistent=False)
        self.masks = {}
        self.attention = ATTENTION  # "sdpa" before the handoff: the evaluation runs ATen operations only

    @staticmethod
    def layer_windows(cfg):
        pattern = cfg.window_pattern.upper()
        sizes = {"L": cfg.seq_len, "S": cfg.seq_len // 2}
        windows = [sizes[pattern[i % len(pattern)]] for i in range(cfg.depth)]
        windows[-1] = cfg.seq_len  # the last layer always sees the whole context
        return windows

    @torch.no_grad()
    def init_weights(self):
        nn.init.normal_(self.wte.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        bound = 3**0.5 * self.cfg.width**-0.5  # uniform with the std of 1/sqrt(width)
        for block in self.blocks:
            for linear in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(linear.weight, -bound, bound)
            nn.init.zeros_(block.attn.c_proj.weight)  # every block starts as the identity
            nn.init.zeros_(block.mlp.c_proj.weight)

    def sliding_window_mask(self, window, T, device):
        """The window's mask for the kernel in use: a boolean matrix for SDPA, a block mask for
        FlexAttention, None for FA3 (it takes the window itself) and for plain causal attention."""
        if window >= T or self.attention == "fa3":
            return None
        key = (self.attention, window, T)
        if key not in self.masks:
            if self.attention == "flex":
                def in_window(b, h, q_idx, kv_idx):
                    return (q_idx >= kv_idx) & (q_idx - kv_idx < window)
                self.masks[key] = FLEX[1](in_window, None, None, T, T, device=device)
            else:
                i = torch.arange(T, device=device)
                self.masks[key] = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)
        return self.masks[key]

    def forward(self, idx, targets=None):
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = rms_norm(self.wte(idx))
        for block, window in zip(self.blocks, self.windows):
            x = block(x, cos, sin, window, self.sliding_window_mask(window, T, idx.device), self.attention)
        x = rms_norm(x)
        logits = soft_cap(self.lm_head(x).float())
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)

    def flops_per_token(self):
        """Training FLOPs per token: 6 per weight outside the embedding, plus attention scores."""
        n_matmul = sum(p.numel() for p in self.parameters()) - self.wte.weight.numel()
        attention = sum(12 * self.cfg.width * min(w, self.cfg.seq_len) for w in self.windows)
        return 6 * n_matmul + attention


# ---------------------------------------------------------------------------
# Optimizer: Muon (momentum, then orthogonalised by Newton-Schulz) for the hidden matrices


def newton_schulz_step(A):
    """The polynomial of one Newton-Schulz step, Q(A) = aI + bA + cA^2 with A = XX^T: X <- Q(A) X.
    Its coefficients and its form live here alone (both forms of the iteration below use it)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    Q = torch.baddbmm(A, A, A, beta=b, alpha=c)
    Q.diagonal(dim1=-2, dim2=-1).add_(a)
    return Q


@torch.no_grad()
def newton_schulz_orthogonalize(G, steps=5):
    """Approximately the nearest semi-orthogonal matrix to each G in a [n, rows, cols] stack."""
    X = G.bfloat16() if USE_BF16 else G.float()  # bf16 where the device has bf16 units (as autocast)
    tall = X.size(-2) > X.size(-1)
    if tall:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    if X.dtype == torch.float32 and X.size(-1) > 1.5 * X.size(-2):
        X = gram_newton_schulz(X, steps)
    else:
        for _ in range(steps):
            X = torch.bmm(newton_schulz_step(torch.bmm(X, X.mT)), X)
    return (X.mT if tall else X).to(G.dtype)


def gram_newton_schulz(X, steps):
    """The same iteration for a wide X [n, m, k] (k > 1.5m) on the small side: with Q = Q(A),
    X <- QX is X = PX0 with P <- QP, and A = XX^T <- QAQ (all polynomials of X0X0^T commute).
    2m^2k + 17m^3 multiply-adds instead of 5(2m^2k + m^3): 44 % fewer for an MLP matrix (k = 4m).
    fp32 only: P gathers rounding error that bf16 would not keep small."""
    A = torch.bmm(X, X.mT)
    P = None
    for i in range(steps):
        Q = newton_schulz_step(A)
        P = Q if P is None else torch.bmm(Q, P)
        if i < steps - 1:
            A = torch.bmm(Q, torch.bmm(A, Q))
    return torch.bmm(P, X)


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.95, weight_decay=0.0):
        super().__init__(list(params), dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            by_shape = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_shape.setdefault(p.shape, []).append(p)
            for shape, params in by_shape.items():  # one batched orthogonalisation per shape
                grads = torch.stack([p.grad for p in params])
                state = self.state[params[0]]
                if "momentum" not in state or state["momentum"].shape != grads.shape:
                    state["momentum"] = torch.zeros_like(grads)
                buf = state["momentum"]
                buf.lerp_(grads, 1 - group["momentum"])
                update = newton_schulz_orthogonalize(grads.lerp_(buf, group["momentum"]))  # Nesterov
                scale = max(1.0, shape[0] / shape[1]) ** 0.5
                for p, u in zip(params, update):
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(u, alpha=-group["lr"] * scale)


def make_optimizers(model):
    width_scale = (model.cfg.width / 768) ** -0.5  # AdamW rates were tuned at width 768
    adamw = torch.optim.AdamW(
        [dict(params=[model.wte.weight], lr=EMBEDDING_LR * width_scale),
         dict(params=[model.lm_head.weight], lr=UNEMBEDDING_LR * width_scale)],
        betas=ADAM_BETAS, eps=1e-10, weight_decay=0.0, fused=DEVICE.type == "cuda")
    muon = Muon([p for p in model.blocks.parameters()], lr=MATRIX_LR, weight_decay=WEIGHT_DECAY)
    optimizers = [adamw, muon]
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return optimizers


def lr_multiplier(progress):
    if progress < WARMUP_RATIO:
        return (progress + 1e-8) / WARMUP_RATIO
    if progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    decay = (1.0 - progress) / WARMDOWN_RATIO
    return FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * max(decay, 0.0)


def peak_memory_mb():
    if DEVICE.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


# ---------------------------------------------------------------------------
# Training


def main():
    t_start = time.time()
    width = -(-DEPTH * ASPECT_RATIO // HEAD_DIM) * HEAD_DIM  # round up to whole heads
    cfg = GPTConfig(vocab_size=VOCAB_SIZE, seq_len=MAX_SEQ_LEN, depth=DEPTH, width=width,
                    head_dim=HEAD_DIM, window_pattern=WINDOW_PATTERN)
    tokens_per_micro_batch = DEVICE_BATCH_SIZE * MAX_SEQ_LEN
    grad_accum_steps = max(1, round(TOTAL_BATCH_SIZE / tokens_per_micro_batch))
    tokens_per_step = grad_accum_steps * tokens_per_micro_batch  # TOTAL_BATCH_SIZE, to a whole micro-batch

    model = GPT(cfg).to(DEVICE)
    model.init_weights()
    num_params = sum(p.numel() for p in model.parameters())
    flops_per_token = model.flops_per_token()
    peak_flops = device_peak_flops(DEVICE)
    optimizers = make_optimizers(model)
    forward = torch.compile(model, dynamic=False) if COMPILE else model
    windows = any(w < cfg.seq_len for w in model.windows)
    attention = {"fa3": "FA3", "flex": "FlexAttention windows",
                 "sdpa": "SDPA" + (" + window masks" if windows else "")}[ATTENTION]
    print(f"device {DEVICE.type} | {'bf16' if USE_BF16 else 'fp32'} | {attention} | compile {COMPILE} | "
          f"params {num_params / 1e6:.2f}M | width {cfg.width} | depth {DEPTH} | {tokens_per_step:,} tokens/step | "
          f"budget {BUDGET:g} {BUDGET_KIND}", flush=True)

    loader = make_dataloader(DEVICE_BATCH_SIZE, MAX_SEQ_LEN, DEVICE)  # in the order of the run's seed
    x, y, epoch = next(loader)
    step, training_seconds, timed_tokens, tokens, smooth_loss = 0, 0.0, 0, 0, None
    last_print = 0.0
    while True:
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        progress_before = progress = budget_progress(training_seconds, tokens, tokens * flops_per_token)
        lrm = lr_multiplier(progress)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * lrm
        optimizers[1].param_groups[0]["momentum"] = 0.85 + 0.10 * min(1.0, progress / 0.1)  # Muon momentum warmup
        for _ in range(grad_accum_steps):
            with AUTOCAST:
                loss = forward(x, y)
            (loss / grad_accum_steps).backward()
            x, y, epoch = next(loader)
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        train_loss = loss.item()  # also waits for the device, so the timing below is honest
        if not math.isfinite(train_loss) or train_loss > 100:
            print(f"FAIL: training diverged at step {step} (loss {train_loss})", flush=True)
            sys.exit(1)
        dt = time.perf_counter() - t0
        step += 1
        tokens += tokens_per_step
        if step > UNTIMED_STEPS:
            training_seconds += dt
            timed_tokens += tokens_per_step
        smooth_loss = train_loss if smooth_loss is None else 0.9 * smooth_loss + 0.1 * train_loss
        progress = budget_progress(training_seconds, tokens, tokens * flops_per_token)
        now = time.time()
        # stop once the budget's end is nearer than half a step: on average every run then trains its
        # budget, whatever its step size (stopping past the end would give it half a step more)
        done = step > UNTIMED_STEPS and progress + (progress - progress_before) / 2 >= 1.0
        if now - last_print >= 1.0 or done:
            last_print = now
            tok_per_sec = timed_tokens / training_seconds if training_seconds else tokens_per_step / dt
            mfu = 100 * tok_per_sec * flops_per_token / peak_flops if peak_flops else 0.0
            print(f"step {step:05d} ({100 * min(progress, 1.0):5.1f}%) | loss {smooth_loss:.4f} | lrm {lrm:.2f} | "
                  f"dt {dt * 1000:.0f}ms | tok/s {tok_per_sec:,.0f} | mfu {mfu:.1f}% | epoch {epoch}", flush=True)
        if done:
            break

    model.eval()
    model.attention = "sdpa"  # what the evaluation can run (FA3 and FlexAttention are not ATen operations)
    # fp32 like the harness's evaluation (no autocast), the plain model (compiling it again costs more than it saves)
    val_bpb = evaluate_bpb(model, DEVICE_BATCH_SIZE, MAX_SEQ_LEN)  # None under the harness: it evaluates
    tok_per_sec = timed_tokens / training_seconds if training_seconds else 0.0
    mfu = 100 * tok_per_sec * flops_per_token / peak_flops if peak_flops else 0.0
    print("---")
    if val_bpb is not None:
        print(f"val_bpb:          {val_bpb:.6f}")
    print(f"training_seconds: {training_seconds:.1f}")
    print(f"total_seconds:    {time.time() - t_start:.1f}")
    print(f"peak_vram_mb:     {peak_memory_mb():.1f}")
    print(f"mfu_percent:      {mfu:.2f}")
    print(f"total_tokens_M:   {tokens / 1e6:.1f}")
    print(f"num_steps:        {step}")
    print(f"num_params_M:     {num_params / 1e6:.1f}")
    print(f"depth:            {DEPTH}")
    print(f"tokens_per_sec:   {tok_per_sec:.0f}")
    print(f"device:           {DEVICE.type}")
    print(f"peak_tflops:      {peak_flops / 1e12:.2f}")


if __name__ == "__main__":
    main()
