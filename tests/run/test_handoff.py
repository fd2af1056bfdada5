"""The model handoff on its own: export, safe load, operation check, causality probe."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from autoresearch.run.handoff import WEIGHTS, HandoffError, causality_violation, export_model, load_model

VOCAB, WIDTH, LENGTH = 50, 16, 12


class TinyLM(nn.Module):
    """One attention layer: causal, or looking at the whole row when `causal` is False."""

    def __init__(self, causal: bool = True):
        super().__init__()
        self.causal = causal
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, idx):
        q, k, v = self.qkv(self.embed(idx)).unsqueeze(1).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal).squeeze(1)
        return self.head(y)


def _roundtrip(tmp_path, model):
    torch.manual_seed(0)
    example = torch.randint(VOCAB, (4, LENGTH))
    export_model(model, example, tmp_path / "handoff")
    module, shape = load_model(tmp_path / "handoff")
    return module, shape, example


def test_exported_model_scores_like_the_original(tmp_path):
    model = TinyLM().eval()
    module, shape, example = _roundtrip(tmp_path, model)
    assert shape == (4, LENGTH)
    with torch.no_grad():
        assert torch.allclose(module(example), model(example), atol=1e-6)


def test_causality_probe_passes_a_causal_model_and_catches_a_peeking_one(tmp_path):
    generator = torch.Generator().manual_seed(1)
    causal, _, example = _roundtrip(tmp_path / "a", TinyLM(causal=True))
    assert causality_violation(causal, example, VOCAB, generator) == ""
    peeking, _, example = _roundtrip(tmp_path / "b", TinyLM(causal=False))
    assert "looks ahead" in causality_violation(peeking, example, VOCAB, generator)


class Remembers(TinyLM):
    """Keeps the last batch it saw: it could answer a probe from memory."""

    def __init__(self):
        super().__init__()
        self.register_buffer("last", torch.zeros(4, LENGTH, dtype=torch.int64))

    def forward(self, idx):
        logits = super().forward(idx) + self.embed(self.last).sum()
        self.last.copy_(idx)
        return logits


class Counts(TinyLM):
    def forward(self, idx):
        self.head.bias[:1].add_(1.0)  # a write through a view of a weight
        return super().forward(idx)


class WritesItsInput(TinyLM):
    def forward(self, idx):
        logits = super().forward(idx)
        idx.zero_()  # the evaluator would probe a batch it did not score
        return logits


class InPlaceInside(TinyLM):
    def forward(self, idx):
        logits = super().forward(idx)
        logits[:, :, 0].mul_(2.0)  # in place on its own intermediate: no state
        return logits.relu_()


@pytest.mark.parametrize("model", [Remembers, Counts, WritesItsInput])
def test_a_graph_that_keeps_state_between_calls_is_refused(tmp_path, model):
    with pytest.raises(HandoffError, match="writes to its own weights, buffers or input"):
        _roundtrip(tmp_path, model())


def test_in_place_operations_on_intermediates_are_allowed(tmp_path):
    model = InPlaceInside().eval()
    module, _, example = _roundtrip(tmp_path, model)
    with torch.no_grad():
        assert torch.allclose(module(example), model(example), atol=1e-6)


def test_a_pickle_in_the_weights_is_refused_without_running(tmp_path):
    _roundtrip(tmp_path, TinyLM())
    ran = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(ran), "w"))

    (tmp_path / "handoff" / WEIGHTS).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(HandoffError, match="cannot be read"):
        load_model(tmp_path / "handoff")
    assert not ran.exists()


def test_missing_or_garbled_handoff_is_a_clear_error(tmp_path):
    with pytest.raises(HandoffError, match="no model was handed off"):
        load_model(tmp_path / "nothing")
    _roundtrip(tmp_path, TinyLM())
    (tmp_path / "handoff" / "program.json").write_text("{not json")
    with pytest.raises(HandoffError, match="cannot be read"):
        load_model(tmp_path / "handoff")


def test_operations_outside_aten_are_refused(tmp_path):
    torch.library.define("autoresearch_test::peek", "(Tensor x) -> Tensor")

    @torch.library.impl("autoresearch_test::peek", "CompositeExplicitAutograd")
    def peek(x):
        return x.clone()

    @torch.library.register_fake("autoresearch_test::peek")
    def _(x):
        return torch.empty_like(x)

    class Custom(TinyLM):
        def forward(self, idx):
            return torch.ops.autoresearch_test.peek(super().forward(idx))

    with pytest.raises(HandoffError, match="autoresearch_test.peek"):
        _roundtrip(tmp_path, Custom())
