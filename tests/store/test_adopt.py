"""`autoresearch adopt`: a training repository in a style that is not ours, run as it is: its own
flags as knobs, its own log lines as the metric, checkpoints written in place, its files untouched."""

from __future__ import annotations

import pytest
from adopt_repo import make_repo
from conftest import git, ledger_for, needs_bwrap, run_cli

ADOPT = ["adopt", "--command", "python train.py --steps=100", "--metric", "val_loss",
         "--metric-pattern", r"val loss ([0-9.]+)", "--knob", "lr float 0.03..3 log", "--knob", "smooth float 0.2..4",
         "--budget", "20", "--tag", "t"]


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "bigram")


def test_one_adopt_command_then_a_study_over_its_flags(repo):
    original = git(repo, "rev-parse", "HEAD")
    out = run_cli(*ADOPT, cwd=repo)
    assert out.returncode == 0, out.stderr
    assert "assumed: knob lr starts at 0.3, the script's own default" in out.stdout
    study = run_cli("run", "--provider", "random", "--seed", "2", "--max-experiments", "3", "--plain", cwd=repo)
    assert study.returncode == 0, study.stdout + study.stderr
    assert "val_loss is what each run reports of itself" in study.stdout
    ledger = ledger_for(repo)
    baseline, *candidates = ledger.experiments()
    ledger.close()
    log = (repo / baseline.log_path).read_text()
    assert baseline.status == "keep" and f"final | val loss {baseline.metric:.4f}" in log  # its own log line
    assert len(candidates) == 2 and all(c.status in ("keep", "discard") for c in candidates)
    tsv = (repo / "results.tsv").read_text().splitlines()  # named after its metric, not the templates' val_bpb
    assert tsv[0] == "commit\tval_loss\tmemory_gb\tstatus\tdescription" and len(tsv) == 4
    assert tsv[1].split("\t")[1] == f"{baseline.metric:.6f}"
    for c in candidates:  # a knob moved in knobs.toml, and the script saw it as its own flag
        assert "knobs.toml" in c.diff and "train.py" not in c.diff
        assert c.metric != baseline.metric  # the runs are deterministic: only the flag can have changed it
    assert (repo / ".autoresearch" / "slots" / "local" / "out" / "ckpt.npy").is_file()  # written in place
    assert not (repo / "out").exists()  # ... of the run's own checkout, never of the repository
    changed = git(repo, "diff", "--name-only", original, "HEAD").split()
    assert set(changed) <= {"autoresearch.toml", "program.md", ".gitignore", "knobs.toml"}
    assert git(repo, "diff", "--name-only", original, "HEAD", "--", "train.py", "prepare_data.py", "input.txt") == ""
    assert git(repo, "status", "--porcelain") == ""


def test_dry_run_prints_the_toml_and_changes_nothing(repo):
    out = run_cli(*ADOPT, "--dry-run", cwd=repo)
    assert out.returncode == 0, out.stderr
    assert 'command = ["{python}", "train.py", "--steps=100", "--lr={lr}", "--smooth={smooth}"]' in out.stdout
    assert 'metric_pattern = "val loss ([0-9.]+)"' in out.stdout
    assert not (repo / "autoresearch.toml").exists() and git(repo, "branch", "--show-current") == "main"


@pytest.mark.parametrize("change, message", [
    (["--metric-pattern", "val loss [0-9.]+"], "must have exactly one group around the number"),
    (["--metric-pattern", "val loss ("], "is not a regular expression"),
    (["--knob", "lr float 1..x"], "--knob lr: cannot read 'float 1..x'"),
    (["--knob", "lr float 0..1 log"], "a log range must start above 0"),
    (["--knob", "depth int 1..4"], "--knob depth: no default for it in train.py; give one: --knob 'depth=VALUE int 1..4'"),
])
def test_bad_adopt_input_is_one_line_that_says_what_to_fix(repo, change, message):
    args = list(ADOPT)
    if change[0] == "--knob":
        args += change  # one more knob
    else:
        args[args.index(change[0]) + 1] = change[1]
    out = run_cli(*args, cwd=repo)
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (repo / "autoresearch.toml").exists() and git(repo, "branch", "--show-current") == "main"


def test_a_metric_never_printed_stops_at_the_baseline_with_what_to_fix(repo):
    args = list(ADOPT)
    args[args.index("--metric-pattern") + 1] = r"val acc ([0-9.]+)"
    assert run_cli(*args, cwd=repo).returncode == 0
    out = run_cli("run", "--provider", "random", "--max-experiments", "5", "--plain", cwd=repo)
    assert "the run never printed a line matching metric_pattern 'val acc ([0-9.]+)' for val_loss" in out.stdout
    assert "the baseline crashed" in out.stdout
    ledger = ledger_for(repo)
    assert len(ledger.experiments()) == 1 and len(ledger.runs(1)) == 1  # at once: never retried
    ledger.close()


def test_a_knob_flag_the_command_does_not_use_is_refused_at_once(repo):
    assert run_cli(*ADOPT, cwd=repo).returncode == 0
    toml = repo / "autoresearch.toml"
    toml.write_text(toml.read_text().replace('smooth = "float 0.2..4"', 'smooth = "float 0.2..4"\nwd = "float 0..1"'))
    out = run_cli("run", "--provider", "random", "--max-experiments", "2", "--plain", cwd=repo)
    assert out.returncode != 0
    assert "[knobs] wd is a command-line flag but the command never uses {wd}" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@needs_bwrap
def test_a_run_writing_into_the_workspace_leaves_it_untouched_and_says_where(repo):
    (repo / "train.py").write_text((repo / "train.py").read_text() + (
        "\nfrom pathlib import Path\n"
        "Path('notes.txt').write_text('in my own checkout: fine')\n"
        "(Path.cwd().parents[2] / 'pwned.txt').write_text('into the repository itself')\n"))
    git(repo, "commit", "-qam", "writes where it should not")
    assert run_cli(*ADOPT, cwd=repo).returncode == 0
    out = run_cli("run", "--provider", "random", "--max-experiments", "1", "--plain", cwd=repo)
    assert f"the run may not write {repo / 'pwned.txt'} (Read-only file system)" in out.stdout
    assert not (repo / "pwned.txt").exists() and not (repo / "notes.txt").exists()
    assert git(repo, "status", "--porcelain") == ""


def test_a_knob_in_a_config_file_is_read_and_moved_where_it_lives():
    """`[knobs] name = {range, file}`: a constant of a config file (Python, or YAML's `name: value`)
    searched like a `# knob:` comment; the edit changes only its value."""
    import random

    from autoresearch.core.knobs import task_knobs
    from autoresearch.core.task import parse_task
    from autoresearch.propose.edits import knob_edit

    task = parse_task({"task": {"command": ["{python}", "train.py", "--lr={lr}"],
                                "editable": ["train.py", "knobs.toml", "config/small.py", "conf.yaml"]},
                       "budget": {"value": 10},
                       "knobs": {"lr": "float 1e-4..1e-1 log", "n_layer": {"range": "int 1..8", "file": "config/small.py"},
                                 "dropout": {"range": "float 0..0.5", "file": "conf.yaml"}}})
    files = {"train.py": "print('hi')\n", "knobs.toml": "lr = 0.003\n",
             "config/small.py": "n_embd = 128\nn_layer = 4  # layers\n", "conf.yaml": "model:\n  dropout: 0.1\n"}
    knobs = {k.name: k for k in task_knobs(files, task)}
    assert (knobs["lr"].current, knobs["lr"].path) == (0.003, "knobs.toml")
    assert (knobs["n_layer"].current, knobs["n_layer"].path, knobs["n_layer"].kind) == (4, "config/small.py", "int")
    assert (knobs["dropout"].current, knobs["dropout"].path) == (0.1, "conf.yaml")
    value = knobs["n_layer"].sample(random.Random(0), near=4)
    edit = knob_edit("train.py", knobs["n_layer"], value)
    assert edit.path == "config/small.py" and edit.search == "n_layer = 4  # layers"
    assert edit.replace == f"n_layer = {value}  # layers"
    assert knob_edit("x", knobs["dropout"], 0.25).replace == "  dropout: 0.25"
