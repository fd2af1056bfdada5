"""The causality check with no blind spot (issue 23): synthetic models that look ahead at 1 of 64
positions, at the last position only, or across the rows of a batch, each caught in at least 297 of
300 evaluations (each with its own secret generator) or unable to help by construction; honest
models never flagged. The shape is the cpu preset's: 4 rows of 256 tokens."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from autoresearch.run.handoff import CausalityProbe, _stratified_positions, cuts_needed, export_model, plan_probes
from autoresearch.store.templates import init_workspace

VOCAB, WIDTH, ROWS, LENGTH = 50, 8, 4, 256
TRIALS, SCORING_BATCHES = 300, 8
CUTS = math.ceil(cuts_needed(LENGTH) / ROWS) * ROWS  # what one evaluation checks: 176 here


class Prefix(nn.Module):
    """Causal by construction: each position sees the mean of its prefix. Cheap, so that 300
    evaluations of 44 probes take seconds. Subclasses add one look-ahead each."""

    def __init__(self, vocab: int = VOCAB):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.leak, self.head = nn.Embedding(vocab, WIDTH), nn.Embedding(vocab, WIDTH), nn.Linear(WIDTH, vocab)

    def forward(self, idx):
        positions = torch.arange(idx.size(1))
        return self.head(self.embed(idx).cumsum(1) / (positions[None, :, None] + 1) + self.look(idx, positions))

    def look(self, idx, positions):
        return 0.0


class Attention(nn.Module):
    """One causal attention layer (rounding like a real model's)."""

    def __init__(self, vocab: int = VOCAB):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.qkv, self.head = nn.Embedding(vocab, WIDTH), nn.Linear(WIDTH, 3 * WIDTH), nn.Linear(WIDTH, vocab)

    def forward(self, idx):
        q, k, v = self.qkv(self.embed(idx)).unsqueeze(1).chunk(3, dim=-1)
        return self.head(F.scaled_dot_product_attention(q, k, v, is_causal=True).squeeze(1))


class EveryNth(Prefix):
    """Position p reads its own target (the token at p+1) where p % every == offset."""

    def __init__(self, offset: int, every: int = 64, vocab: int = VOCAB):
        super().__init__(vocab)
        self.offset, self.every = offset, every

    def look(self, idx, positions):
        active = (positions % self.every == self.offset) & (positions < idx.size(1) - 1)
        return active[None, :, None] * self.leak(idx.roll(-1, dims=1))


class FlatNext(EveryNth):
    """The brief's pattern: p % 64 == 63 reads the next token of the flattened batch; at the last
    position that is the first token of the next row (its continuation in a consecutive layout)."""

    def __init__(self):
        super().__init__(63)

    def look(self, idx, positions):
        following = idx.flatten().roll(-1).view_as(idx)
        return (positions % 64 == 63)[None, :, None] * self.leak(following)


class LastReadsNextRow(Prefix):
    """Only the last position looks: at the first token of the next row of its batch."""

    def look(self, idx, positions):
        return (positions == idx.size(1) - 1)[None, :, None] * self.leak(idx[:, 0].roll(-1))[:, None, :]


class NeighbourAhead(Prefix):
    """Each row reads the next row of its batch one position ahead."""

    def look(self, idx, positions):
        return self.leak(idx.roll(-1, dims=0).roll(-1, dims=1))


class NeighbourMean(Prefix):
    """Each row reads the whole of the next row of its batch."""

    def look(self, idx, positions):
        return self.leak(idx.roll(-1, dims=0)).mean(1, keepdim=True)


class Faint(Prefix):
    """Every position nudges its target's logit by 5e-4 of the logits' scale: under the 1e-3 that
    the check allowed before, caught by the CPU's 1e-5."""

    def forward(self, idx):
        logits = super().forward(idx)
        nudge = F.one_hot(idx.roll(-1, dims=1), logits.size(-1)) * logits.abs().amax().clamp(min=1.0)
        return logits + 5e-4 * nudge


class WhenContent(Prefix):
    """A look-ahead that depends on the content: where the token's id is 0 mod 64 (1 in 64 positions)."""

    def __init__(self):
        super().__init__(vocab=256)

    def look(self, idx, positions):
        active = (idx % 64 == 0) & (positions < idx.size(1) - 1)[None, :]
        return active[:, :, None] * self.leak(idx.roll(-1, dims=1))


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny models run 300 x 44 probes: one thread each (more only wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trials(model: nn.Module, trials: int = TRIALS, vocab: int = VOCAB) -> list[tuple[bool, list]]:
    """`trials` evaluations of `model`, each with a fresh generator: probes planned as the trusted
    evaluation plans them, run after their scoring batches. For each: flagged or not, and what was
    probed ((batch, row, cut) of every probe row)."""
    data = torch.Generator().manual_seed(12345)
    batches = [torch.randint(vocab, (ROWS, LENGTH), generator=data) for _ in range(SCORING_BATCHES)]
    outcomes = []
    with torch.inference_mode():
        references = [model(x) for x in batches]
        for trial in range(trials):
            plan = plan_probes(SCORING_BATCHES, (ROWS, LENGTH), vocab, torch.Generator().manual_seed(1000 + trial))
            probe = CausalityProbe(model, plan, vocab)
            for i, (x, reference) in enumerate(zip(batches, references)):
                probe(i, x, reference)
            assert probe.violation or probe.cuts == CUTS
            probed = [(i, row, cut) for i, probes in plan.items() for p in probes for row, cut in enumerate(p.cuts.tolist())]
            outcomes.append((bool(probe.violation), probed))
    return outcomes, batches


def _caught_exactly_when_cut_at(model: EveryNth, leaking: set[int]) -> int:
    """Checks that the model is flagged in exactly the evaluations that cut at a leaking position
    (so its miss rate is the chance that the secret cuts miss them all); returns how often."""
    outcomes, _ = _trials(model)
    for flagged, probed in outcomes:
        assert flagged == any(cut in leaking for _, _, cut in probed)
    return sum(flagged for flagged, _ in outcomes)


def _escape(leaking: int, cuts: int = CUTS, length: int = LENGTH) -> float:
    """The chance that `cuts` distinct positions miss all `leaking` ones: C(T-k, n) / C(T, n)."""
    return math.comb(length - leaking, cuts) / math.comb(length, cuts)


def test_the_check_is_sized_for_99_percent_at_one_position_in_64():
    assert CUTS == 176  # 44 probe forwards of the cpu preset's 4 x 256
    for length in (64, 128, 256, 512, 1024, 2048):
        n, k = cuts_needed(length), max(1, round(length / 64))
        assert _escape(k, n, length) <= 0.01 < _escape(k, n - 1, length)
    generator = torch.Generator().manual_seed(0)
    positions = _stratified_positions(CUTS, LENGTH, generator)
    assert len(set(positions.tolist())) == CUTS  # every position once before any twice
    assert sorted(_stratified_positions(2 * LENGTH, LENGTH, generator).tolist()) == sorted(list(range(LENGTH)) * 2)
    plan = plan_probes(SCORING_BATCHES, (ROWS, LENGTH), VOCAB, generator)
    probes = [probe for batch in plan.values() for probe in batch]
    assert len(probes) == 44 and set(plan) == set(range(SCORING_BATCHES))  # spread over every batch
    assert all(len(set(probe.cuts.tolist())) == ROWS for probe in probes)  # each row its own cut
    assert all(((probe.shifts > 0) & (probe.shifts < VOCAB)).all() for probe in probes)  # every later token changes


def test_honest_models_are_never_flagged():
    assert not any(flagged for flagged, _ in _trials(Prefix())[0])
    assert not any(flagged for flagged, _ in _trials(Attention(), trials=30)[0])  # softmax's rounding, 30 x 44 probes


def test_a_look_ahead_at_one_position_in_64_is_caught_99_percent():
    """Positions 62, 126, 190 and 254 read their targets: flagged whenever a cut falls on one of them,
    which 176 distinct secret cuts of 256 positions miss with probability 0.90 %."""
    assert _escape(4) < 0.01
    caught = _caught_exactly_when_cut_at(EveryNth(offset=62), {62, 126, 190, 254})
    assert caught >= TRIALS - 8  # 297.3 expected; 8 or more misses would have probability 0.3 %
    caught = _caught_exactly_when_cut_at(EveryNth(offset=0), {0, 64, 128, 192})  # the first position too
    assert caught >= TRIALS - 8


def test_the_pattern_63_mod_64_is_caught_as_its_three_positions_in_the_row_allow():
    """p % 64 == 63 at 256 tokens: 63, 127 and 191 look ahead in the row, caught 97.0 % (the 176 cuts
    that 25 % more evaluation time pays for; 99 % would need 201); 255 reads the next row's first
    token, which the layout never puts in its batch (test_prepare_layout_... below)."""
    assert 0.96 < 1 - _escape(3) < 0.99
    caught = _caught_exactly_when_cut_at(FlatNext(), {63, 127, 191})
    assert caught >= TRIALS - 18  # 291.1 expected


def test_a_row_reading_another_row_is_caught():
    for model in (NeighbourAhead(), NeighbourMean()):
        assert all(flagged for flagged, _ in _trials(model)[0])


def test_a_faint_look_ahead_is_caught():
    assert all(flagged for flagged, _ in _trials(Faint(), trials=30)[0])


def test_what_the_check_cannot_promise():
    """A look at the next row's first token is never seen by a probe (no probe changes a row's first
    token): the layout makes it worthless instead. A look-ahead that depends on the content is caught
    exactly when a cut falls where it is active: at 1 in 64 positions, 1 - (63/64)^176 = 93.7 %."""
    assert not any(flagged for flagged, _ in _trials(LastReadsNextRow(), trials=20)[0])
    outcomes, batches = _trials(WhenContent(), vocab=256)
    for flagged, probed in outcomes:
        assert flagged == any(cut < LENGTH - 1 and batches[i][row, cut] % 64 == 0 for i, row, cut in probed)
    assert abs(sum(flagged for flagged, _ in outcomes) / TRIALS - (1 - (63 / 64) ** CUTS)) < 0.05


# ---------------------------------------------------------------------------
# The llm template's frozen prepare.py on a synthetic split whose tokens are their own positions.

N_TARGETS = 10 * LENGTH + 17  # 11 rows, the last one short: 3 batches of 4 rows


def _prepared(tmp_path, monkeypatch):
    """The llm template's workspace with data whose token i is i + 1 (BOS 0 only pads)."""
    ws = init_workspace(tmp_path / "ws", template="llm", preset="cpu", tag="layout")
    data = tmp_path / "data"
    data.mkdir()
    vocab = N_TARGETS + 2
    for split in ("train", "val", "test"):
        np.arange(1, N_TARGETS + 2, dtype=np.uint16).tofile(data / f"{split}.bin")
    token_bytes = np.ones(vocab, dtype=np.int64)
    token_bytes[0] = 0
    np.save(data / "token_bytes.npy", token_bytes)
    (data / "meta.json").write_text(json.dumps({"vocab_size": vocab, "bos_id": 0, "dtype": "uint16"}))
    monkeypatch.setenv("AUTORESEARCH_DATA_DIR", str(data))
    return ws, data


def _import_prepare(ws):
    spec = importlib.util.spec_from_file_location("prepare_under_test", ws / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepare_layout_scores_every_target_once_and_no_row_beside_its_continuation(tmp_path, monkeypatch):
    ws, _ = _prepared(tmp_path, monkeypatch)
    prepare = _import_prepare(ws)
    scored = []
    for x, y in prepare.validation_batches(ROWS, LENGTH, "cpu"):
        assert x.shape == y.shape == (ROWS, LENGTH)
        rows = [(set(x[r].tolist()) - {0}, set(y[r][y[r] >= 0].tolist())) for r in range(ROWS)]
        for a, (_, targets) in enumerate(rows):  # no row holds a target of another row of its batch
            assert not any(targets & inputs for b, (inputs, _) in enumerate(rows) if b != a)
        scored += y[y >= 0].tolist()
    assert sorted(scored) == list(range(2, N_TARGETS + 2))  # every target exactly once
    assert prepare._batch_count(N_TARGETS, ROWS, LENGTH) == 3
    assert prepare._batch_count(3 * LENGTH, 8, LENGTH) == 2  # one batch would do: two, so rows are apart
    assert prepare._batch_count(LENGTH, 8, LENGTH) == 1


def test_prepare_val_bpb_is_the_per_token_sum_and_a_look_at_the_next_row_gains_nothing(tmp_path, monkeypatch):
    ws, data = _prepared(tmp_path, monkeypatch)
    prepare = _import_prepare(ws)
    torch.manual_seed(0)
    table = torch.randn(N_TARGETS + 2, N_TARGETS + 2)

    def bigram(idx):  # each prediction from its own token: layout-free
        return table[idx]

    tokens = torch.from_numpy(np.fromfile(data / "val.bin", dtype=np.uint16).astype(np.int64))
    nats = F.cross_entropy(table[tokens[:-1]], tokens[1:], reduction="none").double().sum()
    expected = (nats / (math.log(2) * N_TARGETS)).item()
    assert prepare.score_bpb(bigram, ROWS, LENGTH, "cpu") == pytest.approx(expected, rel=1e-6)  # float32 rounding
    assert math.isfinite(prepare.score_bpb(bigram, ROWS, LENGTH, "cpu", split="test"))

    def last_reads_next_row(idx):  # certain of the next row's first token at its last position
        logits = torch.zeros(*idx.shape, N_TARGETS + 2)
        logits[torch.arange(idx.size(0)), -1, idx[:, 0].roll(-1)] = 30.0
        return logits

    uniform = math.log2(N_TARGETS + 2)
    assert prepare.score_bpb(last_reads_next_row, ROWS, LENGTH, "cpu") > uniform  # worse than knowing nothing


def _evaluate(ws, model, tmp_path) -> subprocess.CompletedProcess:
    export_model(model.eval(), torch.zeros(ROWS, LENGTH, dtype=torch.int64), tmp_path / "handoff")
    return subprocess.run([sys.executable, "-P", "prepare.py", "evaluate", str(tmp_path / "handoff")], cwd=ws,
                          capture_output=True, text=True, timeout=300)


def test_the_trusted_evaluation_reports_its_cuts_and_refuses_a_look_ahead(tmp_path, monkeypatch):
    ws, _ = _prepared(tmp_path, monkeypatch)
    vocab = N_TARGETS + 2
    out = _evaluate(ws, Prefix(vocab), tmp_path / "honest")
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "causality_cuts:   176" in out.stdout and "causality:        ok" in out.stdout
    out = _evaluate(ws, EveryNth(offset=3, every=8, vocab=vocab), tmp_path / "leaking")  # escapes 1e-16 of the time
    assert out.returncode == 3 and "invalid: predictions up to position" in out.stdout and "looks ahead" in out.stdout
