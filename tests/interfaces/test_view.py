"""The live terminal view, rendered by rich into a recorded console."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from autoresearch.core.curve import parse_progress
from autoresearch.core.events import ExperimentFinished, Progress, RunStarted
from autoresearch.core.results import ExperimentResult
from autoresearch.interfaces.view import LiveView


def _progress(exp_id, line):
    point = parse_progress(line)
    return Progress(exp_id, point.step, point.fraction, point.loss, point.tokens_per_second)


def _finished(exp_id, status, metric, reason, description, sigma=None):
    return ExperimentFinished(ExperimentResult(exp_id, status, metric, None, reason, "c", "p", description,
                                               {"sigma": sigma} if sigma else {}, 1.0, Path("log")))


def test_view_shows_progress_results_best_and_noise():
    console = Console(file=io.StringIO(), force_terminal=True, width=120, record=True)
    with LiveView(60, console=console) as view:
        view(RunStarted(1, 1, "baseline", "p"))
        view(_progress(1, "step 00010 ( 20.0%) | loss 5.1234 | lrm 1.00 | dt 1200ms | tok/s 6,651 | mfu 50.0% | epoch 1"))
        view(_finished(1, "keep", 2.38, "baseline, runs 2.38 2.37 2.39", "baseline"))
        view(RunStarted(2, 1, "halve the batch", "p"))
        view(_progress(2, "step 00040 ( 55.5%) | loss 4.4000 | lrm 1.00 | dt 600ms | tok/s 6,500 | mfu 49.0% | epoch 1"))
        text = console.export_text()
        view(_finished(2, "discard", 2.39, "not better: gain -0.010000 = -1.2 sd (sigma 0.006000, 1 vs 3 runs)",
                       "halve the batch", sigma=0.006))
    text += console.export_text()
    assert "55.5% of the budget" in text and "step 40" in text and "loss 4.4000" in text and "6,500 tok/s" in text
    assert "best: #1 2.380000" in text and "baseline" in text
    assert "DISCARD" not in text and "discard" in text and "noise sd 0.006000" in text
    assert "val_bpb" in text


def test_view_names_the_tasks_metric():
    console = Console(file=io.StringIO(), force_terminal=True, width=120, record=True)
    with LiveView(60, console=console, metric="val_loss") as view:
        view(_finished(1, "keep", 2.38, "baseline", "baseline"))
    text = console.export_text()
    assert "val_loss" in text and "val_bpb" not in text


def test_cli_uses_the_live_view_on_a_terminal_and_plain_lines_otherwise(tiny_workspace):
    # a real pseudo-terminal: the CLI sees a TTY and draws the view
    main, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "autoresearch", "exp", "-m", "baseline"], cwd=tiny_workspace,
                            stdout=secondary, stderr=secondary, env={**os.environ, "COLUMNS": "120"})
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait()
    os.close(main)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and "autoresearch" in screen and "best: #1" in screen and "╭" in screen
    plain = subprocess.run([sys.executable, "-m", "autoresearch", "exp", "--allow-empty", "-m", "again"],
                           cwd=tiny_workspace, capture_output=True, text=True)
    assert "╭" not in plain.stdout and "experiment 2: DISCARD" in plain.stdout
