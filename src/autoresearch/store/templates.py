"""Templates shipped inside the package, and the size presets of the `llm` template."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

TEMPLATES = {
    "llm": "GPT pretraining scored by validation bits per byte (presets: h100, gpu, mps, cpu)",
    "tiny": "byte n-gram model on the sonnets: a whole experiment in about a second, numpy only",
}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    budget: dict
    data: dict
    train: dict
    knobs: dict = field(default_factory=dict)  # knob name -> narrower declared range


def template_dir(name: str) -> Path:
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}: choose one of {', '.join(TEMPLATES)}")
    return Path(str(resources.files("autoresearch") / "templates" / name))


def shared_file(name: str) -> Path:
    return Path(str(resources.files("autoresearch") / "templates" / name))


def load_presets() -> dict[str, Preset]:
    raw = tomllib.loads((template_dir("llm") / "presets.toml").read_text())
    return {name: Preset(name=name, description=p["description"], budget=p["budget"], data=p["data"], train=p["train"],
                         knobs=p.get("knobs", {})) for name, p in raw.items()}


def set_hyperparameters(source: str, values: dict) -> str:
    """Rewrite `NAME = value` lines of a train.py hyperparameter block, keeping their comments."""
    for name, value in values.items():
        match = re.search(rf"^{re.escape(name)} = [^#\n]*?(#.*)?$", source, re.MULTILINE)
        if not match:
            raise ValueError(f"train.py has no hyperparameter {name}")
        code = f'{name} = "{value}"' if isinstance(value, str) else f"{name} = {value!r}"
        comment = match.group(1)
        if comment:
            column = match.start(1) - match.start()  # keep the comment where it was
            code = f"{code.ljust(column - 1)} {comment}"
        source = source[:match.start()] + code + source[match.end():]
    return source


def render_llm_config(preset: Preset, dataset: str | None = None, budget_seconds: float | None = None) -> str:
    budget = dict(preset.budget)
    if budget_seconds:
        budget = {"kind": "seconds", "value": budget_seconds, "timeout": max(budget_seconds * 2 + 60, 120)}
    data = dict(preset.data, **({"dataset": dataset} if dataset else {}))
    return f"""# autoresearch task: what to run and how to score it. Frozen: experiments must not change it.
[task]
name = "llm"
preset = "{preset.name}"
command = ["{{python}}", "train.py"]
metric = "val_bpb"
direction = "minimize"
editable = ["train.py"]
frozen = ["prepare.py", "autoresearch.toml"]
program = "program.md"

[budget]
kind = "{budget['kind']}"   # seconds | tokens | flops: what the training budget counts
value = {_toml_number(budget['value'])}
timeout = {_toml_number(budget['timeout'])}   # hard wall-clock limit: the whole process group is killed after it

[data]
dataset = {_toml_string(data['dataset'])}   # shakespeare | climbmix | tinystories | a path to .txt/.jsonl/.parquet files
vocab_size = {int(data['vocab_size'])}
seq_len = {int(data['seq_len'])}
eval_tokens = {int(data['eval_tokens'])}   # 0 = score every validation token

[evaluation]   # the trusted evaluation: val_bpb comes from here, never from what train.py prints
command = ["{{python}}", "-P", "prepare.py", "evaluate", "{{handoff}}"]

[sandbox]   # kind: auto (bubblewrap when installed) | bwrap (required) | none
kind = "auto"
"""


def _toml_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
