"""The llm template's train.py run by the harness: a seconds-long budget here, the full
cpu preset (three 60-second experiments) in the slow suite."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
from conftest import git, ledger_for, run_cli, set_line

from autoresearch.core.events import EventBus, RunOutput
from autoresearch.core.task import load_task
from autoresearch.store.templates import init_workspace, load_presets, set_hyperparameters
from autoresearch.store.workspace import Workspace
from autoresearch.study.manual import run_experiment

SUMMARY_KEYS = ["val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent",
                "total_tokens_M", "num_steps", "num_params_M", "depth"]


def uniform_bpb(data_dir) -> float:
    """What uniform logits would score (BOS targets are few enough to ignore in this bound)."""
    meta = json.loads((data_dir / "meta.json").read_text())
    return math.log2(meta["vocab_size"]) * (meta["val_tokens"] - 1) / meta["val_bytes"]


def test_short_budget_experiment_end_to_end(tmp_path, shakespeare_512):
    ws = init_workspace(tmp_path / "ws", template="llm", preset="cpu", tag="smoke", budget_seconds=3)
    set_line(ws / "autoresearch.toml", "vocab_size = ", "vocab_size = 512")
    set_line(ws / "autoresearch.toml", "eval_tokens = ", "eval_tokens = 20000")
    git(ws, "commit", "-qam", "vocab 512, a short evaluation for the test")
    Workspace(ws).link_data(shakespeare_512)
    lines = []
    bus = EventBus(lambda event: isinstance(event, RunOutput) and lines.append(event.line))
    result = run_experiment(ws, "baseline", bus=bus)
    assert result.status == "keep", result.reason
    lines_text = "\n".join(lines)
    assert re.search(r"device cpu \| (fp32|bf16) \| SDPA", lines_text) and "step 0000" in lines_text
    for key in SUMMARY_KEYS:
        assert key in result.metrics
    assert result.metrics["depth"] == 4 and result.metrics["num_steps"] >= 1
    assert 0 < result.metric < uniform_bpb(shakespeare_512)
    last_step = float(re.findall(r"dt (\d+)ms", lines_text)[-1]) / 1000
    # it stopped once the budget's end was nearer than half a step: not before that, never a whole step past
    assert 3 - last_step / 2 <= result.metrics["training_seconds"] < 3 + last_step / 2 + 0.1


def test_presets_apply_to_train_py(tmp_path):
    presets = load_presets()
    assert {"h100", "gpu", "mps", "cpu"} <= set(presets)
    for name, preset in presets.items():
        ws = init_workspace(tmp_path / name, template="llm", preset=name, tag="p")
        source = (ws / "train.py").read_text()
        for key, value in preset.train.items():
            literal = f'"{value}"' if isinstance(value, str) else repr(value)
            assert f"\n{key} = {literal} " in source
        task = load_task(ws)
        assert task.preset == name and task.budget.value == preset.budget["value"]
        assert task.data.seq_len == preset.data["seq_len"] and task.frozen == ["prepare.py", "autoresearch.toml"]
        assert preset.train["TOTAL_BATCH_SIZE"] % (preset.train["DEVICE_BATCH_SIZE"] * preset.data["seq_len"]) == 0
        compile(source, "train.py", "exec")


def test_set_hyperparameters_keeps_comments():
    source = 'DEPTH = 8                    # knob: int 2..24  blocks\nNAME = "SSSL"  # pattern\n'
    out = set_hyperparameters(source, {"DEPTH": 12, "NAME": "L"})
    assert out == 'DEPTH = 12                   # knob: int 2..24  blocks\nNAME = "L"     # pattern\n'
    with pytest.raises(ValueError, match="no hyperparameter MISSING"):
        set_hyperparameters(source, {"MISSING": 1})


@pytest.mark.slow
def test_cpu_preset_three_experiments(tmp_path):
    """The issue's acceptance run: init, prepare, three experiments of the real cpu preset."""
    ws = tmp_path / "cpu-run"
    assert run_cli("init", str(ws), "--preset", "cpu", "--tag", "accept").returncode == 0
    prepared = run_cli("prepare", cwd=ws, timeout=600)
    assert prepared.returncode == 0, prepared.stderr
    budget = load_task(ws).budget.value
    outcomes = []
    for message, edit in [("baseline", None), ("warmdown 0.3", ("WARMDOWN_RATIO = ", "WARMDOWN_RATIO = 0.3")),
                          ("depth 3", ("DEPTH = ", "DEPTH = 3"))]:
        if edit:
            set_line(ws / "train.py", edit[0], edit[1] + "  # edited")
        outcomes.append(run_experiment(ws, message))
    ledger = ledger_for(ws)
    walls = [row[0] for row in ledger.db.execute("SELECT wall_seconds FROM runs")]
    ledger.close()
    assert len(walls) >= 3 + 2 and all(w <= budget + 30 for w in walls), walls  # every run, reruns included
    rows = (ws / "results.tsv").read_text().splitlines()
    assert len(rows) == 4
    kept = [r for r in outcomes if r.status == "keep"]
    assert git(ws, "rev-parse", "HEAD") == kept[-1].commit
    baseline = outcomes[0]
    assert baseline.metric < 0.75 * uniform_bpb(ws / ".autoresearch" / "data")


EQUIVALENCE = '''
import torch
import train
from torch.nn.attention.flex_attention import create_block_mask, flex_attention


class FlashAttention3StandIn:
    """FA3's interface and layout ([B, T, heads, dim], window_size=(left, 0)), computed plainly."""
    @staticmethod
    def flash_attn_func(q, k, v, causal, window_size):
        T, left = q.size(1), window_size[0]
        i = torch.arange(T)
        allowed = (i[None, :] <= i[:, None]) & ((left < 0) | (i[:, None] - i[None, :] <= left))
        scores = (q.transpose(1, 2) @ k.transpose(1, 2).mT) / q.size(-1) ** 0.5
        return (scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v.transpose(1, 2)).transpose(1, 2)


torch.manual_seed(0)
cfg = train.GPTConfig(vocab_size=512, seq_len=64, depth=4, width=128, head_dim=32, window_pattern="SSSL")
model = train.GPT(cfg)
model.init_weights()
for block in model.blocks:  # the zero-initialised projections would hide attention altogether
    torch.nn.init.normal_(block.attn.c_proj.weight, std=0.05)
    torch.nn.init.normal_(block.mlp.c_proj.weight, std=0.05)
idx = torch.randint(0, 512, (2, 64))
with torch.no_grad():
    model.attention = "sdpa"
    reference = model(idx)
    train.FA3 = FlashAttention3StandIn
    model.attention = "fa3"
    fa3 = model(idx)
    train.FLEX = (flex_attention, create_block_mask)  # eager here: the reference implementation
    model.attention = "flex"
    flex = model(idx)
    model.attention = "sdpa"
    model.windows = [64] * 4
    full = model(idx)
model.attention, model.windows = "sdpa", train.GPT.layer_windows(cfg)
exported = torch.export.export(model, (idx,))  # what the evaluation receives: ATen operations only
hop = [n for n in exported.graph.nodes if n.op == "call_function" and "flex" in str(n.target)]
print("fa3", (fa3 - reference).abs().max().item())
print("flex", (flex - reference).abs().max().item())
print("windows matter", (full - reference).abs().max().item())
print("exported flex nodes", len(hop))
'''


def _figures_of(script: str, tmp_path, data) -> dict[str, str]:
    """Run `script` beside train.py in a cpu-preset workspace (vocabulary 512): its "name value" lines."""
    ws = init_workspace(tmp_path / "ws", template="llm", preset="cpu", tag="check")
    set_line(ws / "autoresearch.toml", "vocab_size = ", "vocab_size = 512")
    Workspace(ws).link_data(data)
    (ws / "check.py").write_text(script)
    out = subprocess.run([sys.executable, "check.py"], cwd=ws, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(line.rsplit(" ", 1) for line in out.stdout.strip().splitlines())


def test_every_attention_path_gives_the_same_logits_and_the_handoff_is_aten(tmp_path, shakespeare_512):
    """FA3 (a stand-in with its interface where it is absent), FlexAttention and SDPA with window
    masks compute the same model; the model handed off uses SDPA whatever trained it."""
    figures = _figures_of(EQUIVALENCE, tmp_path, shakespeare_512)
    assert float(figures["fa3"]) < 1e-4 and float(figures["flex"]) < 1e-4
    assert float(figures["windows matter"]) > 1e-3  # the windows are really applied by each path
    assert figures["exported flex nodes"] == "0"


FORMULAS = '''
import torch
import train

logits = torch.linspace(-300, 300, 100_001)  # the soft-cap through sigmoid is cap * tanh(logits / cap)
print("soft-cap", (train.soft_cap(logits) - train.LOGIT_SOFTCAP * torch.tanh(logits / train.LOGIT_SOFTCAP)).abs().max().item())

train.USE_BF16 = False  # fp32 here: a CPU with bf16 units would orthogonalise in bf16


def written_out(G):
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G / (G.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(5):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return X


# wide and tall by 4x (an MLP's matrices: the Gram form), wide by 1.25x and square (the plain iteration)
shapes = [(3, 64, 256), (3, 256, 64), (2, 64, 80), (2, 64, 64)]
print("newton-schulz", max((train.newton_schulz_orthogonalize(G) - written_out(G)).abs().max().item()
                           for G in (torch.randn(*shape) for shape in shapes)))
'''


def test_soft_cap_and_newton_schulz_compute_their_written_out_formulas(tmp_path, shakespeare_512):
    """The soft-cap through sigmoid is cap * tanh(logits / cap); Muon's Newton-Schulz, in either
    form (the Gram form on the small side of wide fp32 matrices), gives the written-out iteration's
    result. (One formula per operation: training runs what the evaluation runs, tests/test_train_edits.py.)"""
    figures = _figures_of(FORMULAS, tmp_path, shakespeare_512)
    assert float(figures["soft-cap"]) < 1e-5  # of logits capped at +-15: rounding only
    assert float(figures["newton-schulz"]) < 1e-4
