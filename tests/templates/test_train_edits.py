"""An edit to a formula in the llm template's train.py means what it says: written as a model
writes it (a SEARCH/REPLACE answer, applied by the product's own edit code), it changes what is
trained and what the evaluation scores alike. (Training once ran hand-fused copies of the norm,
the activation and the loss, which such an edit missed: the training loss stayed the same to
the last digit while the evaluation ran the edited formula.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import set_line

from autoresearch.propose.edits import apply_to_texts, parse_answer
from autoresearch.store.templates import init_workspace
from autoresearch.store.workspace import Workspace


def answer(description: str, *blocks: tuple[str, str]) -> str:
    """A model's answer in the format the prompt asks for."""
    edits = "".join(f"<<<<<<< SEARCH train.py\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"
                    for search, replace in blocks)
    return f"DESCRIPTION: {description}\nREASONING: a plausible idea to try.\n{edits}"


ANSWERS = {
    "gelu": answer("GELU instead of ReLU^2 in the MLP",
                   ("    return F.relu(x).square()", "    return F.gelu(x)")),
    "no soft-cap": answer("no logit soft-cap",
                          ("        logits = soft_cap(self.lm_head(x).float())",
                           "        logits = self.lm_head(x).float()")),
    "another soft-cap": answer("a rational soft-cap instead of tanh's",
                               ("    return torch.sigmoid(logits * (2 / LOGIT_SOFTCAP)) * (2 * LOGIT_SOFTCAP) - LOGIT_SOFTCAP",
                                "    return logits / (1 + logits.abs() / LOGIT_SOFTCAP)")),
    "layernorm": answer("LayerNorm for RMSNorm",
                        ("    return F.rms_norm(x, (x.size(-1),))", "    return F.layer_norm(x, (x.size(-1),))")),
    "no qk-norm": answer("drop the QK-norm",
                         ("        q, k = apply_rotary(rms_norm(q), cos, sin), apply_rotary(rms_norm(k), cos, sin)  # QK-norm, then RoPE",
                          "        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)")),
    "partial rope": answer("rotary embedding on half of each head's dimensions only", (
        "    half = x.size(-1) // 2\n    x1, x2 = x[..., :half], x[..., half:]\n"
        "    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)",
        "    quarter = x.size(-1) // 4\n    x1, x2, rest = x[..., :quarter], x[..., quarter:2 * quarter], x[..., 2 * quarter:]\n"
        "    c, s = cos[..., :quarter], sin[..., :quarter]\n"
        "    return torch.cat([x1 * c + x2 * s, x2 * c - x1 * s, rest], dim=-1)")),
    "tied embeddings": answer(
        "tie the output head to the input embedding",
        ("        self.lm_head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)  # untied from wte",
         "        self.lm_head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)\n"
         "        self.lm_head.weight = self.wte.weight  # tied"),
        ("        nn.init.normal_(self.wte.weight, std=1.0)\n        nn.init.normal_(self.lm_head.weight, std=0.001)",
         "        nn.init.normal_(self.wte.weight, std=0.001)  # tied: the head's small scale (the input is normed)"),
        ("         dict(params=[model.lm_head.weight], lr=UNEMBEDDING_LR * width_scale)],",
         "        ],")),
    "logit temperature": answer("divide the logits by a temperature of 0.8 before the cap",
                                ("        logits = soft_cap(self.lm_head(x).float())",
                                 "        logits = soft_cap(self.lm_head(x).float() / 0.8)")),
}

# In the workspace, for train.py and each edited copy: the training loss of 4 optimizer steps on the
# same batches of a small model, and the logits of the model it hands off (export, load, run).
MEASURE = '''
import importlib, json, sys, tempfile
import torch
import prepare
from autoresearch.run.handoff import export_model, load_model

results = {}
for name in sys.argv[1:]:
    train = importlib.import_module(name)
    train.USE_BF16, train.AUTOCAST = False, torch.autocast("cpu", enabled=False)  # fp32 on every CPU
    torch.manual_seed(0)
    cfg = train.GPTConfig(vocab_size=prepare.VOCAB_SIZE, seq_len=64, depth=2, width=128, head_dim=32, window_pattern="SL")
    model = train.GPT(cfg)
    model.init_weights()
    optimizers = train.make_optimizers(model)
    loader = prepare.make_dataloader(8, 64, "cpu", seed=0)
    losses = []
    for _ in range(4):
        x, y, _ = next(loader)
        loss = model(x, y)
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    example = torch.randint(0, prepare.VOCAB_SIZE, (2, 64), generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as handoff:
        export_model(model, example, handoff)
        forward, _ = load_model(handoff)
        with torch.no_grad():
            logits = forward(example)
    results[name] = {"losses": losses, "logits": logits[0, :8, :16].flatten().tolist()}
print(json.dumps(results))
'''


@pytest.fixture(scope="module")
def measured(tmp_path_factory, shakespeare_512):
    ws = init_workspace(tmp_path_factory.mktemp("edits") / "ws", template="llm", preset="cpu", tag="edits")
    set_line(ws / "autoresearch.toml", "vocab_size = ", "vocab_size = 512")
    Workspace(ws).link_data(shakespeare_512)
    source = (ws / "train.py").read_text()
    (ws / "train_same.py").write_text(source)  # an unedited copy: the noise floor of this measure
    modules = ["train", "train_same"]
    for i, text in enumerate(ANSWERS.values()):
        proposal = parse_answer(text, "train.py")
        edited = apply_to_texts({"train.py": source}, proposal.edits, ["train.py"])["train.py"]
        assert edited != source
        (ws / f"train_edit{i}.py").write_text(edited)
        modules.append(f"train_edit{i}")
    (ws / "measure.py").write_text(MEASURE)
    out = subprocess.run([sys.executable, "measure.py", *modules], cwd=ws, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    edits = {name: results[f"train_edit{i}"] for i, name in enumerate(ANSWERS)}
    return results["train"], edits, results["train_same"]


@pytest.mark.parametrize("name", list(ANSWERS))
def test_an_edited_formula_changes_training_and_the_handed_off_model(measured, name):
    base, edits, _ = measured
    edited = edits[name]
    # at the first step every variant scores about ln(vocab): the head starts near zero, the blocks as the identity
    assert abs(edited["losses"][0] - base["losses"][0]) < 0.05
    # and after three updates it differs: by far more than nothing, which is what an unedited copy gives (below)
    assert abs(edited["losses"][-1] - base["losses"][-1]) > 1e-5, (name, edited["losses"], base["losses"])
    assert max(abs(a - b) for a, b in zip(edited["logits"], base["logits"])) > 1e-4


def test_unedited_training_is_reproducible(measured):
    """The differences above are the edits', not run-to-run noise: the same file gives the same numbers."""
    base, _, same = measured
    assert same == base and base["losses"][-1] < base["losses"][0]
