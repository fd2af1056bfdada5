"""Model handoff: how a trained model leaves the training sandbox for the trusted evaluation.

The training script cannot be trusted to score itself, and the model's Python code cannot be
run where the validation split is readable (it could look the answers up). So the model crosses
as data: a `torch.export` graph of ATen operations plus its weights, with no Python in it.
The evaluator loads it without pickle (tensors only, `weights_only=True`), refuses operations
outside a known set (file access, custom kernels), and runs the causality probe before scoring.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch._export.serde import serialize as serde

PROGRAM, WEIGHTS, CONSTANTS, INPUTS, META = "program.json", "weights.pt", "constants.pt", "inputs.pt", "handoff.json"
ALLOWED_NAMESPACES = ("aten", "prims")
FORBIDDEN_OPS = ("from_file", "_load", "save", "print", "_assert_async")  # I/O and host side effects


class HandoffError(ValueError):
    """The handed-off model is missing, malformed, or uses something the evaluator will not run."""


def export_model(model: torch.nn.Module, example: torch.Tensor, directory: str | Path) -> Path:
    """Export `model(example) -> logits` for the harness: graph and weights, no Python."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    device_type = example.device.type
    with torch.no_grad(), torch.autocast(device_type=device_type, enabled=False):
        program = torch.export.export(model, (example,), strict=False)
    model.train(was_training)
    artifact = serde.serialize(program)
    (directory / PROGRAM).write_bytes(artifact.exported_program)
    (directory / WEIGHTS).write_bytes(artifact.state_dict)
    (directory / CONSTANTS).write_bytes(artifact.constants)
    (directory / INPUTS).write_bytes(artifact.example_inputs)
    (directory / META).write_text(json.dumps({"shape": list(example.shape), "device": device_type}))
    return directory


def load_model(directory: str | Path, device: torch.device | str = "cpu"):
    """The handed-off graph as a callable module on `device`, and its fixed input shape.
    Raises HandoffError with a one-line reason when it cannot be trusted or read."""
    directory = Path(directory)
    if not (directory / PROGRAM).is_file():
        raise HandoffError("no model was handed off: train.py must end with prepare.evaluate_bpb(model, ...)")
    try:
        meta = json.loads((directory / META).read_text())
        shape = tuple(int(n) for n in meta["shape"])
        artifact = serde.SerializedArtifact(
            (directory / PROGRAM).read_bytes(),
            _tensors(directory / WEIGHTS, device), _tensors(directory / CONSTANTS, device),
            _tensors(directory / INPUTS, device))
        program = serde.deserialize(artifact)
    except HandoffError:
        raise
    except Exception as exc:  # a crafted or truncated file: whatever it is, it is not a model we score
        raise HandoffError(f"the handed-off model cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from None
    check_operations(program)
    module = program.module()
    return _moved(module, device), shape


def _tensors(path: Path, device):
    """Tensors only: `weights_only` refuses pickled code (deserialize would fall back to it).
    Straight onto the evaluation's device: lifted constants (a cached mask) do not follow .to()."""
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    return torch.load(path, weights_only=True, map_location=device)


def check_operations(program) -> None:
    for node in program.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:  # getitem: one output of several
            continue
        name = str(node.target)
        namespace = name.split(".", 1)[0]
        if namespace not in ALLOWED_NAMESPACES or any(word in name for word in FORBIDDEN_OPS):
            raise HandoffError(f"the exported model uses {name}, which the evaluator does not run")


def _moved(module, device):
    try:
        return module.to(device)
    except Exception:  # graphs with device constants baked in stay where they were exported
        return module


@dataclass(frozen=True)
class ProbeSettings:
    trials: int = 4  # random cuts tried
    tolerance: float = 1e-3  # relative change of the logits allowed (float rounding)


@torch.no_grad()
def causality_violation(forward, real: torch.Tensor, vocab_size: int, generator: torch.Generator,
                        reference: torch.Tensor | None = None, **settings) -> str:
    """Changing tokens after position t (in the row, and every other row of the batch) must not
    change the predictions at positions <= t. `reference` is forward(real) when already computed;
    `settings` are ProbeSettings' (trials, tolerance). Returns "" if it holds, else what was seen."""
    probe_settings = ProbeSettings(**settings)
    batch, length = real.shape
    reference = forward(real).float() if reference is None else reference.float()
    for _ in range(probe_settings.trials):
        row = int(torch.randint(batch, (1,), generator=generator))
        cut = int(torch.randint(1, length - 1, (1,), generator=generator))
        probe = torch.randint(vocab_size, real.shape, generator=generator).to(real.device)
        probe[row, :cut + 1] = real[row, :cut + 1]
        logits = forward(probe).float()
        scale = max(1.0, reference[row, :cut + 1].abs().max().item())
        diff = (logits[row, :cut + 1] - reference[row, :cut + 1]).abs().max().item() / scale
        if not diff <= probe_settings.tolerance:  # NaN counts as a violation
            return (f"predictions up to position {cut} changed by {diff:.3g} (relative) when later tokens "
                    "changed: the model looks ahead")
    return ""
