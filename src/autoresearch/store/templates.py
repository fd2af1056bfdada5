"""Templates shipped inside the package, the size presets of the `llm` template, and new workspaces made from them.

A new workspace: the template's files, the preset applied (autoresearch.toml, train.py's
hyperparameters and knob ranges), a git repository on the research branch `autoresearch/<tag>`.
"""

from __future__ import annotations

import datetime
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from autoresearch.core.knobs import set_knob_ranges
from autoresearch.store import gitops
from autoresearch.store.workspace import SCHEMA_LINE, Workspace, WorkspaceError

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
    return f"""{SCHEMA_LINE}
# autoresearch task: what to run and how to score it. Frozen: experiments must not change it.
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
dataset = {toml_string(data['dataset'])}   # shakespeare | climbmix | tinystories | a path to .txt/.jsonl/.parquet files
vocab_size = {int(data['vocab_size'])}
seq_len = {int(data['seq_len'])}
eval_tokens = {int(data['eval_tokens'])}   # 0 = score every validation token

[evaluation]   # the trusted evaluation: val_bpb comes from here, never from what train.py prints
command = ["{{python}}", "-P", "prepare.py", "evaluate", "{{handoff}}"]
early_start = "run"   # prepare.py waits for the harness's word: its start-up overlaps train.py's and the export

[sandbox]   # kind: auto (bubblewrap when installed) | bwrap (required) | none
kind = "auto"
"""


def _toml_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


TEMPLATE_SKIP = {"presets.toml", "__pycache__"}


def default_tag() -> str:
    return datetime.date.today().strftime("%b%d").lower()  # e.g. nov26, as in the original


def init_workspace(path: Path, *, template: str = "llm", preset: str | None = None, tag: str | None = None,
                   dataset: str | None = None, budget_seconds: float | None = None) -> Path:
    path = Path(path).expanduser().resolve()
    if template not in TEMPLATES:
        raise WorkspaceError(f"unknown template {template!r}: choose one of {', '.join(TEMPLATES)}")
    if path.exists() and any(path.iterdir()):
        raise WorkspaceError(f"{path} exists and is not empty: choose a new directory")
    tag = tag or default_tag()
    if not gitops.git(path.parent if path.parent.exists() else Path.cwd(), "check-ref-format", "--branch",
                      f"autoresearch/{tag}", check=False):
        raise WorkspaceError(f"{tag!r} cannot be part of a git branch name: choose another --tag")

    path.mkdir(parents=True, exist_ok=True)
    for item in template_dir(template).iterdir():
        if item.name not in TEMPLATE_SKIP and item.is_file():
            shutil.copy2(item, path / item.name)
    shutil.copy2(shared_file("gitignore"), path / ".gitignore")
    shutil.copy2(shared_file("AGENTS.md"), path / "AGENTS.md")  # for outside agents; program.md is the research
    if template == "llm":
        _apply_preset(path, preset or detect_preset(), dataset, budget_seconds)
    elif preset:
        raise WorkspaceError(f"the {template} template has no presets (they belong to the llm template)")

    gitops.init_repo(path)
    gitops.git(path, "add", "--all")
    gitops.git(path, "commit", "-q", "-m", f"autoresearch workspace from the {template} template")
    gitops.git(path, "checkout", "-q", "-b", f"autoresearch/{tag}")
    Workspace(path).write_schema()
    return path


def _apply_preset(path: Path, preset_name: str, dataset: str | None, budget_seconds: float | None) -> None:

    presets = load_presets()
    if preset_name not in presets:
        raise WorkspaceError(f"unknown preset {preset_name!r}: choose one of {', '.join(presets)}")
    preset = presets[preset_name]
    (path / "autoresearch.toml").write_text(render_llm_config(preset, dataset, budget_seconds))
    train = path / "train.py"
    train.write_text(set_knob_ranges(set_hyperparameters(train.read_text(), preset.train), preset.knobs))


def detect_preset() -> str:
    """The preset that fits the hardware found: h100 for 80 GB Hopper-class GPUs, gpu, mps, else cpu."""
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return "h100" if props.total_memory >= 70 * 2**30 else "gpu"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"
