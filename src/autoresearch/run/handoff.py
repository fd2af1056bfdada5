"""Model handoff: how a trained model leaves the training sandbox for the trusted evaluation.

The training script cannot be trusted to score itself, and the model's Python code cannot be
run where the validation split is readable (it could look the answers up). So the model crosses
as data: a `torch.export` graph of ATen operations plus its weights, with no Python in it.
The evaluator loads it without pickle (tensors only, `weights_only=True`), refuses operations
outside a known set (file access, custom kernels) and graphs that keep state from one call to the
next, and probes the model for causality while it is scored (CausalityProbe, below).
"""

from __future__ import annotations

import json
import math
import operator
import threading
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
    """Refuses operations outside ATen (file access, custom kernels) and graphs that keep state."""
    for node in program.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:  # getitem: one output of several
            continue
        name = str(node.target)
        namespace = name.split(".", 1)[0]
        if namespace not in ALLOWED_NAMESPACES or any(word in name for word in FORBIDDEN_OPS):
            raise HandoffError(f"the exported model uses {name}, which the evaluator does not run")
    _check_stateless(program)


def _check_stateless(program) -> None:
    """A graph that writes to its weights, buffers, constants or input keeps state from one call to
    the next: it could remember what it scored and answer a probe from memory. torch.export keeps
    in-place operations as they were written, so the writes are found in the graph itself."""
    signature = program.graph_signature
    written = [spec.kind.name.lower() for spec in signature.output_specs if spec.kind.name != "USER_OUTPUT"]
    state = _state_aliases(program.graph)
    for node in program.graph.nodes:
        if node.op == "call_function" and any(arg in state for arg in _written_args(node)):
            written.append(str(node.target))
    if written:
        raise HandoffError(f"the exported model writes to its own weights, buffers or input ({written[0]}): "
                           "the evaluation scores graphs without state")


def _state_aliases(graph) -> set:
    """The graph's inputs (weights, buffers, constants, tokens) and every view of them."""
    state = set()
    for node in graph.nodes:
        if node.op in ("placeholder", "get_attr"):
            state.add(node)
        elif node.op == "call_function" and any(arg in state for arg in _viewed_args(node)):
            state.add(node)
    return state


def _schema_args(node):
    """(argument schema, graph node) pairs of a call, positional then keywords; a list argument
    (Tensor[]) gives a pair for each node in it, a constant argument none."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return []
    by_name = {argument.name: argument for argument in schema.arguments}
    pairs = list(zip(schema.arguments, node.args))
    pairs += [(by_name[name], value) for name, value in node.kwargs.items() if name in by_name]
    return [(argument, item) for argument, value in pairs
            for item in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(item, torch.fx.Node)]


def _viewed_args(node):
    """The inputs whose memory the node's output may share: views, aliases, in-place results."""
    if node.target is operator.getitem:
        return [node.args[0]]
    schema = getattr(node.target, "_schema", None)
    returns_alias = schema is not None and any(ret.alias_info is not None for ret in schema.returns)
    if not (returns_alias or "view" in str(node.target)):  # _unsafe_view shares memory undeclared
        return []
    return [value for argument, value in _schema_args(node) if argument.alias_info is not None or not returns_alias]


def _written_args(node):
    """The inputs an operation writes to (in place, out=, set_)."""
    written = [value for argument, value in _schema_args(node)
               if argument.alias_info is not None and argument.alias_info.is_write]
    if str(node.target).startswith("aten.set_"):  # set_ makes its tensor share another's memory
        written += [value for _, value in _schema_args(node)]
    return written


def _moved(module, device):
    try:
        return module.to(device)
    except Exception:  # graphs with device constants baked in stay where they were exported
        return module


# ---------------------------------------------------------------------------
# The causality check. A probe is one forward pass of the scoring shape in which every row r keeps
# its scored tokens up to a cut t_r and has every later token replaced by a different one; the
# logits of row r at positions <= t_r must be those of its scoring. A look-ahead from position p
# to p+1 (reading its own target) changes them only at the cut t_r = p, so each probe row tests one
# position: coverage comes from many cuts, drawn so that every position of a row is tried once
# before any is tried again. The last position's cut keeps the whole row and changes only the
# other rows: it tests that rows scored together do not read each other. A replaced token is a
# random one, never the token it replaces. That a probe's tail is not real text does not help a
# graph: the reference is its own scoring pass, whose logits at t depend, if it looks ahead, on
# tokens the probe no longer holds, and it keeps nothing from one call to the next.

LEAK_SHARE = 1 / 64  # the check is sized to catch a look-ahead at this share of a row's positions ...
MISS_AT_MOST = 0.01  # ... in all but this share of evaluations
MIN_PROBES = 4  # probe forwards at the least, whatever the shape
# The relative change of a row's logits (to their largest magnitude, at least 1) that counts as rounding.
# On a CPU a causal model's rows come out bit for bit the same whatever their neighbours and later
# tokens (measured: 0.0 for the cpu preset's model), while 1e-3 would let a faint look-ahead at every
# position nudge its target's logit by 1e-3 of the logits' scale (~10): ~0.004 bpb for free. GPUs: TF32.
TOLERANCE = {"cpu": 1e-5, "mps": 1e-3, "cuda": 2e-3}


def cuts_needed(seq_len: int, share: float = LEAK_SHARE, miss: float = MISS_AT_MOST) -> int:
    """The fewest distinct cut positions with which a look-ahead at k = share * seq_len fixed
    positions of every row escapes with probability <= miss: C(T-k, n) / C(T, n) <= miss."""
    leaking = max(1, round(seq_len * share))
    escape, n = 1.0, 0
    while escape > miss and n < seq_len:
        escape *= (seq_len - leaking - n) / (seq_len - n)  # C(T-k, n+1)/C(T, n+1) from C(T-k, n)/C(T, n)
        n += 1
    return n


@dataclass(frozen=True)
class Probe:
    cuts: torch.Tensor  # [rows]: row r keeps its tokens at positions <= cuts[r]
    shifts: torch.Tensor  # [rows, seq_len] in 1..vocab-1: a replaced token is (token + shift) % vocab


def plan_probes(n_batches: int, shape: tuple[int, int], vocab_size: int, generator: torch.Generator,
                n_probes: int | None = None) -> dict[int, list[Probe]]:
    """The probes of one evaluation, by the scoring batch they follow, drawn before it starts
    (the scoring threads then share no generator). `n_probes` defaults to what cuts_needed asks."""
    rows, seq_len = shape
    if n_probes is None:
        n_probes = max(MIN_PROBES, math.ceil(cuts_needed(seq_len) / rows))
    if n_batches <= 0 or n_probes <= 0:
        return {}
    cuts = _stratified_positions(n_probes * rows, seq_len, generator).view(n_probes, rows)
    shifts = torch.randint(1, max(2, vocab_size), (n_probes, rows, seq_len), generator=generator)
    plan: dict[int, list[Probe]] = {}
    for batch, probe_cuts, probe_shifts in zip(_probed_batches(n_probes, n_batches, generator), cuts, shifts):
        plan.setdefault(batch, []).append(Probe(probe_cuts, probe_shifts))
    return plan


def _stratified_positions(count: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """`count` positions: random permutations of 0..seq_len-1 one after the other, so every position
    comes once before any comes twice (n cuts of T cover min(n, T) distinct positions)."""
    rounds = [torch.randperm(seq_len, generator=generator) for _ in range(math.ceil(count / seq_len))]
    return torch.cat(rounds)[:count]


def _probed_batches(n_probes: int, n_batches: int, generator: torch.Generator) -> list[int]:
    """Which scoring batch each probe follows: spread over all of them, at random."""
    batches = torch.cat([torch.randperm(n_batches, generator=generator) for _ in range(math.ceil(n_probes / n_batches))])
    return batches[:n_probes].tolist()


class CausalityProbe:
    """The causality check of one evaluation, run as score_bpb's `on_batch` from the scoring threads:
    a scoring batch's probes follow it, with its logits as their reference, so nothing is computed twice."""

    def __init__(self, forward, plan: dict[int, list[Probe]], vocab_size: int, tolerance: float | None = None):
        """`tolerance`: TOLERANCE of the batches' device when None."""
        self.forward, self.plan, self.vocab_size, self.tolerance = forward, plan, vocab_size, tolerance
        self.problems: list[str] = []
        self.cuts = 0  # cuts checked so far
        self._lock = threading.Lock()  # the count is added to from several threads

    def __call__(self, batch: int, real: torch.Tensor, logits: torch.Tensor) -> None:
        for probe in self.plan.get(batch, ()):
            if self.problems:  # one violation is enough: the rest is not worth the time
                return
            tolerance = self.tolerance if self.tolerance is not None else TOLERANCE.get(real.device.type, 2e-3)
            seen = cut_violation(self.forward, real, logits, probe, self.vocab_size, tolerance)
            with self._lock:
                self.cuts += len(probe.cuts)
                if seen:
                    self.problems.append(seen)

    @property
    def violation(self) -> str:
        return self.problems[0] if self.problems else ""


@torch.no_grad()
def cut_violation(forward, real: torch.Tensor, reference: torch.Tensor, probe: Probe, vocab_size: int,
                  tolerance: float) -> str:
    """One probe forward (see above). `reference` is forward(real). Returns "" or what was seen."""
    positions = torch.arange(real.shape[1], device=real.device)
    cuts = probe.cuts.to(real.device)
    kept = positions[None, :] <= cuts[:, None]  # [rows, seq_len]
    altered = torch.where(kept, real, (real + probe.shifts.to(real.device)) % vocab_size)
    logits, reference = forward(altered).float(), reference.float()
    if logits.shape != reference.shape:
        return f"the model's output has shape {tuple(logits.shape)} on a probe, {tuple(reference.shape)} on scoring"
    # one temporary of the logits' size, not three (the graph's output may share memory with its
    # weights, so it is not written to): each is fresh memory, page faults on a CPU
    moved = torch.where(kept, torch.sub(logits, reference).abs_().amax(-1), 0.0).amax(-1)  # NaN stays NaN
    scale = torch.maximum(reference.amax(-1), reference.amin(-1).neg())
    scale = torch.where(kept, scale, 0.0).amax(-1).clamp(min=1.0)
    relative = moved / scale
    checked = torch.isfinite(scale)  # a row whose own predictions are not finite fails as val_bpb instead
    failed = (checked & ~(relative <= tolerance)).nonzero().flatten().tolist()
    if not failed:
        return ""
    row = failed[0]
    cut = int(cuts[row])
    where = ("when only the other rows of its batch changed" if cut == real.shape[1] - 1
             else "when later tokens changed")
    return (f"predictions up to position {cut} changed by {relative[row].item():.3g} (relative) {where}: "
            "the model looks ahead")


@dataclass(frozen=True)
class ProbeSettings:
    trials: int = 4  # probe forwards, each row with a random cut
    tolerance: float = 1e-3  # relative change of the logits allowed (float rounding)


@torch.no_grad()
def causality_violation(forward, real: torch.Tensor, vocab_size: int, generator: torch.Generator,
                        reference: torch.Tensor | None = None, **settings) -> str:
    """A few random probes of one batch (what the frozen prepare.py of older workspaces calls; the
    llm template's evaluation now plans its probes with plan_probes). `reference` is forward(real)
    when already computed; `settings` are ProbeSettings'. Returns "" if it holds, else what was seen."""
    probe_settings = ProbeSettings(**settings)
    rows, seq_len = real.shape
    reference = forward(real).float() if reference is None else reference.float()
    for _ in range(probe_settings.trials):
        probe = Probe(torch.randint(seq_len, (rows,), generator=generator),
                      torch.randint(1, max(2, vocab_size), (rows, seq_len), generator=generator))
        seen = cut_violation(forward, real, reference, probe, vocab_size, probe_settings.tolerance)
        if seen:
            return seen
    return ""
