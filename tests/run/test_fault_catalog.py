"""Fault catalog: broken and hostile train.py variants, each with the outcome it must get.

Every variant runs through the real harness (real git, real subprocesses, bubblewrap when it is
installed) in a workspace that has a baseline. After each one: the right status and reason in the
record, the branch back at the last kept commit, frozen files unchanged, the ledger and
results.tsv complete and in agreement, and no process of the run left alive.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import BWRAP, git, ledger_for, needs_bwrap, set_line

from autoresearch.run.process import marked_processes
from autoresearch.store.templates import init_workspace, set_hyperparameters
from autoresearch.store.workspace import Workspace
from autoresearch.study.manual import run_experiment

SECRET = "sk-test-0123456789abcdef-never-in-a-log"
FAST_JUDGE = "\n[judge]\nbaseline_runs = 1\nmax_reruns = 0\n"


@dataclass
class Outcome:
    status: str
    reason: str = ""  # a regular expression the reason must match ("" = anything)
    invalid: bool = False


def before_main(code: str):
    """An edit that runs `code` (Python, may span lines) just before train.py's main()."""
    def edit(ws: Path) -> None:
        source = (ws / "train.py").read_text()
        body = "\n".join("    " + line for line in code.strip("\n").splitlines())
        assert source.count("\n    main()\n") == 1
        (ws / "train.py").write_text(source.replace("\n    main()\n", f"\n{body}\n    main()\n"))
    return edit


def replace(old: str, new: str):
    def edit(ws: Path) -> None:
        source = (ws / "train.py").read_text()
        assert source.count(old) == 1, old
        (ws / "train.py").write_text(source.replace(old, new))
    return edit


# ---------------------------------------------------------------------------
# The workspaces: the tiny task (a run takes a second) and a micro GPT of the llm template.

def _workspace_with_baseline(ws: Path) -> Path:
    toml = ws / "autoresearch.toml"
    toml.write_text(toml.read_text() + FAST_JUDGE)
    git(ws, "commit", "-qam", "one baseline run: the catalog judges against it")
    baseline = run_experiment(ws, "baseline")
    assert baseline.status == "keep", baseline.reason
    return ws


@pytest.fixture(scope="module")
def tiny_ws(tmp_path_factory):
    ws = init_workspace(tmp_path_factory.mktemp("catalog") / "tiny", template="tiny", tag="faults")
    toml = ws / "autoresearch.toml"
    set_line(toml, "value = ", "value = 2")
    set_line(toml, "timeout = ", "timeout = 4")
    toml.write_text(toml.read_text().replace('kind = "auto"', 'kind = "auto"\nmemory_gb = 1.0\nmax_processes = 32'))
    return _workspace_with_baseline(ws)


def _micro_llm_workspace(root: Path, data: Path, budget: float, timeout: float | None = None, tokens: int = 0) -> Path:
    """The cpu preset shrunk to a micro model on Shakespeare-512, its baseline run once (`tokens`: a
    budget of that many tokens instead of `budget` seconds)."""
    ws = init_workspace(root, template="llm", preset="cpu", tag=root.name, budget_seconds=budget)
    toml = ws / "autoresearch.toml"
    if tokens:
        set_line(toml, "kind = \"seconds\"", "kind = \"tokens\"")
        set_line(toml, "value = ", f"value = {tokens}")
    set_line(toml, "vocab_size = ", "vocab_size = 512")
    set_line(toml, "eval_tokens = ", "eval_tokens = 20000")
    if timeout is not None:
        set_line(toml, "timeout = ", f"timeout = {timeout:g}")
    train = ws / "train.py"
    train.write_text(set_hyperparameters(train.read_text(), {"DEPTH": 2, "ASPECT_RATIO": 64, "HEAD_DIM": 64,
                                                             "DEVICE_BATCH_SIZE": 8, "TOTAL_BATCH_SIZE": 2048}))
    git(ws, "commit", "-qam", f"micro model, {f'{tokens:,} tokens' if tokens else f'{budget:g} s'} budget")
    Workspace(ws).link_data(data)
    return _workspace_with_baseline(ws)


@pytest.fixture(scope="module")
def llm_ws(tmp_path_factory, shakespeare_512):
    return _micro_llm_workspace(tmp_path_factory.mktemp("catalog") / "llm", shakespeare_512, budget=2)


# ---------------------------------------------------------------------------
# Generic faults, on the tiny task

TINY = {
    "syntax error": (replace("def fit(data):", "def fit(data)"), Outcome("crash", "SyntaxError")),
    "import error": (replace("import numpy as np", "import numpy as np\nimport no_such_module_here"),
                     Outcome("crash", "ModuleNotFoundError")),
    "exception mid-run": (replace("    tables = fit(data)", "    tables = fit(data)\n    raise RuntimeError('boom')"),
                          Outcome("crash", "RuntimeError: boom")),
    "exit 0 without a summary": (replace("    main()\n", "    print('bye')\n"),
                                 Outcome("crash", "exited without a summary block")),
    "a hang": (before_main("while True:\n    pass"), Outcome("crash", "timed out after 4 s")),
    "sleeping past the budget": (before_main("import time\ntime.sleep(30)"), Outcome("crash", "timed out after 4 s")),
    "endless output": (before_main("import sys\nwhile True:\n    sys.stdout.write('x' * 65536 + '\\n')"),
                       Outcome("crash", "timed out")),
    "out of memory under the limit": (before_main("hog = np.ones(2**28)  # 2 GiB against a 1 GiB limit"),
                                      Outcome("crash", "(?i)memory")),
    "too many processes": (before_main("import subprocess, time\nkids = [subprocess.Popen(['sleep', '30']) for _ in range(100)]\n"
                                       "time.sleep(3)"), Outcome("crash", "more than 32 processes")),
    "children that outlive the parent": (
        before_main("import subprocess\nkid = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
                    "print('daemon', kid.pid, flush=True)"),
        Outcome("discard")),
    "writing to prepare.py": (before_main("open('prepare.py', 'a').write('\\n_SPLIT = 10\\n')"),
                              Outcome("crash", "Read-only file system|modified frozen file")),
    "deleting the ledger": (before_main(
        "import glob, os\nfor up in ('.', '..', '../..', '../../..'):\n"
        "    for f in glob.glob(up + '/.autoresearch/*ledger*') + glob.glob(up + '/*ledger.sqlite*'):\n"
        "        try:\n            os.remove(f)\n            print('deleted', f)\n"
        "        except OSError as e:\n            print('blocked', e)"), Outcome("discard")),
    "rewriting results.tsv": (before_main(
        "for up in ('.', '../../..'):\n    try:\n"
        "        open(up + '/results.tsv', 'w').write('commit\\tval_bpb\\tmemory_gb\\tstatus\\tdescription\\n')\n"
        "    except OSError as e:\n        print('blocked', e)"), Outcome("discard")),
    "rewriting git history": (before_main(
        "import subprocess\nprint(subprocess.run(['git', 'update-ref', 'HEAD', 'HEAD~1'], capture_output=True, text=True))\n"
        "print(subprocess.run(['git', 'tag', 'planted'], capture_output=True, text=True))"),
        Outcome("crash|discard", "git refs|")),
    "printing a fake val_bpb": (replace("    print(f\"depth:            {ORDER}\")",
                                        "    print(f\"depth:            {ORDER}\")\n    print('---')\n"
                                        "    print('val_bpb:          0.010000')"), Outcome("discard")),
    "monkeypatching the evaluation": (replace("    val_bpb = evaluate_bpb(tables, ALPHA)", "    val_bpb = 0.01"),
                                      Outcome("crash", "invalid: no readable model", invalid=True)),
    "a handed-off model with a pickle in it": (
        replace("    val_bpb = evaluate_bpb(tables, ALPHA)",
                "    import os, pickle\n    os.makedirs(os.environ['AUTORESEARCH_HANDOFF'], exist_ok=True)\n"
                "    np.savez(os.environ['AUTORESEARCH_HANDOFF'] + '/model.npz', alpha=np.array([{'x': 1}], dtype=object))\n"
                "    val_bpb = None"),
        Outcome("crash", "invalid: no readable model", invalid=True)),
    "NaN in the handed-off model": (replace("    val_bpb = evaluate_bpb(tables, ALPHA)",
                                            "    val_bpb = evaluate_bpb([(u, c * np.nan) for u, c in tables], ALPHA)"),
                                    Outcome("crash", "invalid: .*non-finite", invalid=True)),
    "reading environment variables for keys": (before_main(
        "import os\nprint('env', sorted(os.environ.items()))"), Outcome("discard")),
}


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_fault(tiny_ws, name, monkeypatch):
    edit, expected = TINY[name]
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # in the harness's environment, never in a run's
    _run_variant(tiny_ws, name, edit, expected)
    log = (tiny_ws / ".autoresearch" / "runs").glob("*/run.log")
    latest = max(log, key=lambda p: p.parent.name)
    text = latest.read_text(errors="replace")
    assert SECRET not in text
    assert latest.stat().st_size <= 20 * 2**20 + 4096  # the log cap
    if name == "children that outlive the parent" and not BWRAP:  # (in a sandbox the pid is its namespace's)
        pid = int(re.search(r"daemon (\d+)", text).group(1))
        assert not _alive(pid), "a daemonised child outlived the run"
    if name == "endless output":
        assert "log truncated" in text


@needs_bwrap
def test_training_on_the_private_validation_text_gains_nothing(tiny_ws):
    edit = replace("    data = train_bytes()", "    held_out = np.frombuffer(open('sonnets_val.txt', 'rb').read(), dtype=np.uint8)\n"
                   "    print('held-out bytes seen:', len(held_out))\n    data = np.concatenate([train_bytes(), held_out])")
    result = _run_variant(tiny_ws, "training on the validation text", edit, Outcome("discard"))
    assert "held-out bytes seen: 0" in result.log_path.read_text()


@needs_bwrap
def test_the_workspaces_own_copy_of_the_validation_text_is_out_of_reach(tmp_path):
    """A run happens in a slot inside the workspace; the workspace around it (its copy of the private
    validation text, its ledger, its runs) is hidden, wherever it lies: here outside /tmp and home,
    which the sandbox hides anyway."""
    import tempfile
    root = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        ws = init_workspace(root / "tiny", template="tiny", tag="reach")
        _workspace_with_baseline(ws)
        edit = replace("    data = train_bytes()", "    from pathlib import Path\n    main = Path.cwd().parents[2]\n"
                       "    for name in ('sonnets_val.txt', '.autoresearch/ledger.sqlite', 'results.tsv'):\n"
                       "        try:\n            print(name, 'read', len((main / name).read_bytes()))\n"
                       "        except OSError as e:\n            print(name, 'unreachable', type(e).__name__)\n"
                       "    data = train_bytes()")
        result = _run_variant(ws, "reading the workspace around the slot", edit, Outcome("discard"))
        log = result.log_path.read_text()
        for name in ("sonnets_val.txt", ".autoresearch/ledger.sqlite", "results.tsv"):
            assert f"{name} unreachable" in log, log[-2000:]
    finally:
        shutil.rmtree(root, ignore_errors=True)


@needs_bwrap
def test_network_is_unreachable(tiny_ws):
    with _Listener() as listener:
        edit = before_main(f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {listener.port}), timeout=2)\n"
                           f"    print('connected')\nexcept OSError as e:\n    print('blocked', e)")
        result = _run_variant(tiny_ws, "opening a network connection", edit, Outcome("discard"))
    assert listener.accepted == 0
    assert "blocked" in result.log_path.read_text()


@pytest.mark.parametrize("name", ["deleting the ledger", "rewriting git history", "writing to prepare.py",
                                  "children that outlive the parent"])
def test_without_a_sandbox_the_harness_still_repairs(tmp_path, name):
    """Without bubblewrap these succeed in the run; the harness must still put everything back."""
    ws = init_workspace(tmp_path / "ws", template="tiny", tag="nobox")
    set_line(ws / "autoresearch.toml", 'kind = "auto"', 'kind = "none"')
    _workspace_with_baseline(ws)
    edit, expected = TINY[name]
    expected = {"deleting the ledger": Outcome("discard"), "rewriting git history": Outcome("crash", "git refs"),
                "writing to prepare.py": Outcome("crash", "modified frozen file"),
                "children that outlive the parent": Outcome("discard")}[name]
    result = _run_variant(ws, name, edit, expected)
    if name == "children that outlive the parent":
        assert not _alive(int(re.search(r"daemon (\d+)", result.log_path.read_text()).group(1)))


# ---------------------------------------------------------------------------
# Faults of a model: the micro GPT of the llm template

LLM = {
    "NaN loss": (replace("                loss = forward(x, y)", "                loss = forward(x, y) * float('nan')"),
                 Outcome("crash", "diverged")),
    "loss explosion": (replace("                loss = forward(x, y)", "                loss = forward(x, y) * 1e4"),
                       Outcome("crash", "diverged")),
    "skipping optimizer steps": (replace("            opt.step()", "            pass"), Outcome("discard")),
    "non-causal attention": (replace("is_causal=True", "is_causal=False"),
                             Outcome("crash", "invalid: .*looks ahead", invalid=True)),
    "monkeypatching the evaluation": (replace("    model.eval()\n", "    model.eval()\n    evaluate_bpb = lambda *a: 0.01\n"),
                                      Outcome("crash", "invalid: no model was handed off", invalid=True)),
    "shrinking the evaluation tokens": (replace("    model.eval()\n", "    model.eval()\n    import prepare\n"
                                                "    prepare.EVAL_TOKENS = 300\n"), Outcome("discard|keep")),
    # the bomb goes in as the weights, before the handoff is told done (written later, it would be a
    # model changed after its handoff: rejected too, but not by the evaluator's loader)
    "a pickle bomb in the handoff": (before_main("""
import os, pickle
import autoresearch.run.handoff as handoff
class Boom:
    def __reduce__(self):
        return (os.system, ('echo PWNED-BY-PICKLE',))
real_export = handoff.export_model
def export_with_a_bomb(model, example, directory):
    real_export(model, example, directory)
    open(os.path.join(directory, 'weights.pt'), 'wb').write(pickle.dumps(Boom()))
handoff.export_model = export_with_a_bomb
"""), Outcome("crash", "invalid: the handed-off model cannot be read", invalid=True)),
}


@pytest.mark.parametrize("name", list(LLM))
def test_model_fault(llm_ws, name):
    edit, expected = LLM[name]
    baseline = ledger_for(llm_ws)
    best = baseline.incumbent(git(llm_ws, "rev-parse", "--abbrev-ref", "HEAD")).metric
    baseline.close()
    result = _run_variant(llm_ws, name, edit, expected)
    if name == "skipping optimizer steps":  # an untrained model scores what an untrained model scores
        assert result.metric > best + 0.5
    if name == "shrinking the evaluation tokens":  # the harness still scored all 20,000 tokens
        assert abs(result.metric - best) < 0.15
    if name == "a pickle bomb in the handoff":
        assert "PWNED-BY-PICKLE" not in result.log_path.read_text()  # the payload never ran in the evaluator


# ---------------------------------------------------------------------------
# Budget cheats: the harness's clock, not the run's, says how long a run trained (a 10 s budget) and
# the loader's count how much (a 40,000-token budget); alone, and with every core kept busy

@pytest.fixture(scope="module")
def budget_ws(tmp_path_factory, shakespeare_512):
    # the hard timeout leaves the 1.8x clock (18 s of training, start-up and export beside it) room on
    # a loaded 2-core machine: at 25 s it once timed out in CI instead of being measured over budget
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")  # see `under`
        return _micro_llm_workspace(tmp_path_factory.mktemp("catalog") / "budget", shakespeare_512, budget=10,
                                    timeout=40)


@pytest.fixture(scope="module")
def tokens_ws(tmp_path_factory, shakespeare_512):
    """The same micro model on 40,000 tokens: 20 steps of 2,048, and the loader serves one batch more."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")
        return _micro_llm_workspace(tmp_path_factory.mktemp("catalog") / "tokens", shakespeare_512, budget=10,
                                    timeout=40, tokens=40_000)


@contextmanager
def busy_cores():
    """A busy loop on every core until the block ends: the load of a machine shared with other work."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def under(load: str, monkeypatch):
    """The runs' load: none of the test's own, or busy cores. The runs get one thread (OMP_NUM_THREADS,
    which the harness passes on): with two on cores that other work keeps busy, each step of this
    model waits at OpenMP's barriers for a thread held off the cores, 1-7 s instead of 0.1, a few
    steps a budget, and a 15 % stretch is less than one step (measured: the harness then flags no
    honest run and lets such a stretch through; it has trained no step more than an honest run would)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return nullcontext() if load == "alone" else busy_cores()


def both(*edits):
    def edit(ws: Path) -> None:
        for one in edits:
            one(ws)
    return edit


def slowed_clock(factor: float):
    return before_main(f"import time\n_counter = time.perf_counter\ntime.perf_counter = lambda: _counter() / {factor}")


def scaled_progress(factor: float):
    """train.py sees its budget progress `factor` times too small: a budget stretched by `factor`."""
    return before_main(f"_progress = budget_progress\nbudget_progress = lambda *a: _progress(*a) / {factor}")


TRAIN_ON_AFTER_THE_HANDOFF = """
    import os
    from autoresearch.run.handoff import export_model
    model.train()
    for _ in range(40):  # keep training on fresh batches, then hand the better model off again
        loss = forward(x, y)
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        x, y, epoch = next(loader)
    model.eval()
    export_model(model, x, os.environ["AUTORESEARCH_HANDOFF"])
    tok_per_sec = timed_tokens / training_seconds if training_seconds else 0.0"""

OVER_SECONDS = r"over budget: 1\d\.\d s of training by the harness clock for a 10 s budget \((it went on at|allowed)"
OVER_TOKENS = r"over budget: [\d,]+ tokens served by the harness's count for a 40,000-token budget"
UNTIMED_FIRST_STEP = both(replace("UNTIMED_STEPS = 1 if COMPILE else 0", "UNTIMED_STEPS = 1"),
                          replace("        for _ in range(grad_accum_steps):",
                                  "        for _ in range(grad_accum_steps * (60 if step == 0 else 1)):"))
AFTER_THE_HANDOFF = replace("\n    tok_per_sec = timed_tokens / training_seconds if training_seconds else 0.0",
                            TRAIN_ON_AFTER_THE_HANDOFF)
ON_AFTER_THE_HANDOFF = Outcome("crash", "over budget: .*(batches served after the handoff|changed after its handoff)")

BUDGET = {
    "a clock slowed 1.15x": (slowed_clock(1.15), Outcome("crash", OVER_SECONDS)),  # the mild stretch of issue 23
    "a clock slowed 1.2x": (slowed_clock(1.2), Outcome("crash", OVER_SECONDS)),
    "a clock slowed 1.8x": (slowed_clock(1.8), Outcome("crash", OVER_SECONDS)),
    "a clock slowed 20x": (slowed_clock(20), Outcome(  # 200 s of training: stopped long before its timeout
        "crash", r"over budget: \d+\.\d s of training by the harness clock for a 10 s budget \(.*stopped by the harness")),
    "budget progress scaled down 1.15x": (scaled_progress(1.15), Outcome("crash", OVER_SECONDS)),
    "budget progress scaled down 1.6x": (scaled_progress(1.6), Outcome("crash", OVER_SECONDS)),
    "work moved into an untimed first step": (  # the template times an eager first step: this run does not
        UNTIMED_FIRST_STEP, Outcome("crash", "over budget: .* s of training by the harness clock for a 10 s budget")),
    "training after the handoff": (AFTER_THE_HANDOFF, ON_AFTER_THE_HANDOFF),
    "a private timer": (
        replace("        if done:",
                "        if time.time() - t_start > 2.0 * BUDGET:  # its own timer, not the budget's"),
        Outcome("crash", "over budget: .* s of training by the harness clock for a 10 s budget")),
}
TOKENS = {
    "budget progress scaled down 1.15x": (scaled_progress(1.15), Outcome("crash", OVER_TOKENS)),
    "budget progress scaled down 1.6x": (scaled_progress(1.6), Outcome("crash", OVER_TOKENS)),
    "work moved into an uncounted first step": (UNTIMED_FIRST_STEP, Outcome("crash", OVER_TOKENS)),
    "training after the handoff": (AFTER_THE_HANDOFF, ON_AFTER_THE_HANDOFF),
}
# under load, the cheats whose gain depends on the pace (the others are counted in batches)
LOADED = ["a clock slowed 1.15x", "a clock slowed 20x", "budget progress scaled down 1.15x",
          "budget progress scaled down 1.6x", "work moved into an untimed first step", "a private timer"]
CATALOG = ([("alone", "seconds", name) for name in BUDGET] + [("busy cores", "seconds", name) for name in LOADED]
           + [("alone", "tokens", name) for name in TOKENS] + [("busy cores", "tokens", "budget progress scaled down 1.15x")])


@pytest.mark.slow  # ~8 minutes of runs on 2 cores: in CI (CI=true runs the slow suite), or ./scripts/test.sh -m slow
@pytest.mark.parametrize("load,kind,name", CATALOG, ids=["-".join(case) for case in CATALOG])
def test_budget_cheat(request, monkeypatch, load, kind, name):
    ws = request.getfixturevalue("budget_ws" if kind == "seconds" else "tokens_ws")
    edit, expected = (BUDGET if kind == "seconds" else TOKENS)[name]
    with under(load, monkeypatch):
        result = _run_variant(ws, f"{name} ({load})", edit, expected)
    assert result.metrics.get("harness_training_seconds") is not None
    assert "[over budget]" in (ws / "results.tsv").read_text().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["seconds", "tokens"])
def test_honest_runs_under_load_are_within_their_budget(request, monkeypatch, kind):
    ws = request.getfixturevalue("budget_ws" if kind == "seconds" else "tokens_ws")
    with under("busy cores", monkeypatch):
        results = [run_experiment(ws, f"the incumbent again, every core busy ({i + 1})", allow_empty=True)
                   for i in range(3)]
    for result in results:
        assert result.status in ("keep", "discard") and "over_budget" not in result.metrics, result.reason
        assert result.metrics["harness_clock"] == "loader"
    assert not _marked_runs(ws)


def test_an_honest_run_is_not_over_budget_and_both_clocks_are_recorded(budget_ws):
    ledger = ledger_for(budget_ws)
    baseline = ledger.experiments()[0]
    ledger.close()
    metrics = baseline.metrics
    assert baseline.status == "keep" and "over_budget" not in metrics
    # train.py stops once the budget's end is nearer than half a step: within half a step of it either side
    assert 10 - metrics["harness_step_seconds"] <= metrics["training_seconds"] <= metrics["harness_training_seconds"] <= 11.5
    assert metrics["harness_clock"] == "loader" and metrics["harness_tokens"] > 0


@needs_bwrap
def test_training_cannot_read_the_validation_split(llm_ws):
    edit = before_main("import os\nprint(open(os.path.join(os.environ['AUTORESEARCH_DATA_DIR'], 'val.bin'), 'rb').read(16))")
    _run_variant(llm_ws, "reading the validation data while training", edit, Outcome("crash", "FileNotFoundError"))


def test_result_is_bound_to_code_data_and_environment(llm_ws):
    ledger = ledger_for(llm_ws)
    exp = ledger.get(1)
    ledger.close()
    provenance = exp.metrics["provenance"]
    assert provenance["commit"] == exp.commit
    assert provenance["frozen"]["prepare.py"] == hashlib.sha256((llm_ws / "prepare.py").read_bytes()).hexdigest()
    data = (llm_ws / ".autoresearch" / "data").resolve()
    assert provenance["data"]["val.bin"] == hashlib.sha256((data / "val.bin").read_bytes()).hexdigest()
    assert provenance["environment"]["torch"] and provenance["environment"]["sandbox"] == ("bubblewrap" if BWRAP else "none")


# ---------------------------------------------------------------------------

def _run_variant(ws: Path, name: str, edit, expected: Outcome):
    branch = git(ws, "rev-parse", "--abbrev-ref", "HEAD")
    head_before = git(ws, "rev-parse", "HEAD")
    frozen = {p: (ws / p).read_bytes() for p in ("prepare.py", "autoresearch.toml")}
    ledger = ledger_for(ws)
    n_before = len(ledger.experiments())
    ledger.close()

    edit(ws)
    result = run_experiment(ws, name)

    assert re.fullmatch(expected.status, result.status), f"{name}: {result.status} ({result.reason})"
    assert re.search(expected.reason, result.reason), f"{name}: reason {result.reason!r}"
    assert bool(result.metrics.get("invalid")) == expected.invalid, result.metrics.get("invalid")
    # the workspace, git and the record are intact
    assert git(ws, "rev-parse", "--abbrev-ref", "HEAD") == branch
    if result.status != "keep":
        assert git(ws, "rev-parse", "HEAD") == head_before
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""
    assert "planted" not in git(ws, "tag")
    assert {p: (ws / p).read_bytes() for p in frozen} == frozen
    ledger = ledger_for(ws)
    experiments = ledger.experiments()
    ledger.close()
    assert len(experiments) == n_before + 1 and experiments[-1].id == result.id
    assert all(e.status in ("keep", "discard", "crash") for e in experiments)
    table = pd.read_csv(ws / "results.tsv", sep="\t")
    assert list(table.status) == [e.status for e in experiments]
    assert git(ws, "cat-file", "-t", f"refs/autoresearch/attempts/{result.id:05d}") == "commit"
    assert not _marked_runs(ws), "a process of the run is still alive"
    return result


def _marked_runs(ws: Path) -> set[int]:
    """Live processes carrying any run's marker (RUN_MARKER in their environment) and working in `ws`."""
    pids = set()
    for pid in marked_processes(""):
        try:
            if not _is_zombie(pid) and Path(f"/proc/{pid}/cwd").resolve().is_relative_to(ws.resolve()):
                pids.add(pid)
        except OSError:
            continue
    return pids


def _is_zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and not _is_zombie(pid)


class _Listener:
    """A real TCP server on loopback that counts the connections it accepts."""

    def __enter__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.server.settimeout(0.2)
        self.port, self.accepted, self.stop = self.server.getsockname()[1], 0, threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
                self.accepted += 1
                conn.close()
            except OSError:
                continue

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI only: the project's setup must install bubblewrap")
def test_ci_has_a_working_bubblewrap():
    assert BWRAP, "scripts/setup.sh should have installed bubblewrap (apt install bubblewrap)"
