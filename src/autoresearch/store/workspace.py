"""Workspace: a git repository holding one research task, made from a shipped template.

Layout: editable `train.py`, frozen `prepare.py` and `autoresearch.toml`, `program.md` (the
researcher's instructions to the agent), `.gitignore`; run state in the ignored `.autoresearch/`.
Experiments happen on the research branch `autoresearch/<tag>`.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

from autoresearch.store import gitops
from autoresearch.propose.knobs import set_knob_ranges
from autoresearch.store.templates import (TEMPLATES, load_presets, render_llm_config, set_hyperparameters, shared_file,
                                    template_dir)

TEMPLATE_SKIP = {"presets.toml", "__pycache__"}


class WorkspaceError(RuntimeError):
    """The workspace could not be made or used; the message is one line that says what to do."""


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
    if template == "llm":
        _apply_preset(path, preset or detect_preset(), dataset, budget_seconds)
    elif preset:
        raise WorkspaceError(f"the {template} template has no presets (they belong to the llm template)")

    gitops.init_repo(path)
    gitops.git(path, "add", "--all")
    gitops.git(path, "commit", "-q", "-m", f"autoresearch workspace from the {template} template")
    gitops.git(path, "checkout", "-q", "-b", f"autoresearch/{tag}")
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


def find_workspace(start: Path) -> Path:
    """The workspace containing `start` (the nearest directory with an autoresearch.toml)."""
    start = Path(start).resolve()
    for candidate in (start, *start.parents):
        if (candidate / "autoresearch.toml").exists():
            return candidate
    raise WorkspaceError(f"{start} is not inside an autoresearch workspace: run `autoresearch init DIR` first, or pass -C DIR")


def link_data(workspace: Path, data_dir: Path) -> Path:
    """Point the workspace's `.autoresearch/data` at a prepared data directory in the cache."""
    link = workspace / ".autoresearch" / "data"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(data_dir, target_is_directory=True)
    return link
