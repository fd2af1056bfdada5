"""The progress plot and the HTML report, from a workspace and from an original results.tsv."""

from __future__ import annotations

import pytest
from conftest import run_cli

from autoresearch.propose.search import RandomProposer
from autoresearch.study.study import StudyOptions, run_study

pytest.importorskip("matplotlib")
from autoresearch.interfaces.report import (  # noqa: E402
    ReportError,
    load_results,
    make_report,
    read_results_tsv,
    running_best,
)

ORIGINAL = """commit\tval_bpb\tmemory_gb\tstatus\tdescription
a1b2c3d\t0.997900\t44.0\tkeep\tbaseline
b2c3d4e\t0.993200\t44.2\tkeep\tincrease LR to 0.04
c3d4e5f\t1.005000\t44.0\tdiscard\tswitch to GeLU activation
d4e5f6g\t0.000000\t0.0\tcrash\tdouble model width (OOM)
e5f6g7h\t0.990100\t44.1\tkeep\tadd value embeddings
f6g7h8i\t0.991000\t44.1\tdiscard\tchange the seed
"""


def test_original_results_tsv_is_plotted_with_the_same_kept_points_and_best(tmp_path):
    path = tmp_path / "results.tsv"
    path.write_text(ORIGINAL)
    rows = read_results_tsv(path)
    assert [r.index for r in rows if r.status == "keep"] == [0, 1, 4]
    assert rows[3].metric is None  # the crash is not a point at 0.0
    assert running_best(rows) == [0.9979, 0.9932, 0.9932, 0.9932, 0.9901, 0.9901]
    out = run_cli("report", str(path), "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    png, svg, page = (tmp_path / "out" / name for name in ("progress.png", "progress.svg", "report.html"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and svg.read_text().lstrip().startswith("<?xml")
    text = page.read_text()
    assert "0.997900 → 0.990100" in text and "add value embeddings" in text and "<svg" in text
    assert text.index("increase LR to 0.04") < text.index("switch to GeLU")


def test_a_results_tsv_of_another_metric_is_read_by_its_second_columns_name(tmp_path):
    path = tmp_path / "results.tsv"
    path.write_text(ORIGINAL.replace("val_bpb", "val_loss", 1))
    results = load_results(path)
    assert results.metric == "val_loss" and running_best(results.rows)[-1] == 0.9901


def test_report_from_a_workspace_has_diffs_and_logs(tiny_workspace):
    run_study(tiny_workspace, [RandomProposer(seed=4)], StudyOptions(max_experiments=4))
    paths = make_report(tiny_workspace, tiny_workspace / "report")
    page = paths[2].read_text()
    assert page.count("<tr class=") == 4 and "<h4>diff</h4>" in page and "val_bpb:" in page


def test_bad_results_are_one_line_errors(tmp_path):
    bad = tmp_path / "results.tsv"
    bad.write_text("a\tb\n")
    with pytest.raises(ReportError, match="not a results.tsv"):
        make_report(bad, tmp_path / "out")
    out = run_cli("report", str(tmp_path / "missing.tsv"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1


def _like_the_original_h100_run(rows: int = 126) -> str:
    """A results.tsv shaped like the original's published H100 run: 0.9979 down to about 0.97 over
    the kept rows, discards around the best, one diverged discard at 3.2 bpb and one crash."""
    import random

    rng = random.Random(0)
    lines, best = ["commit\tval_bpb\tmemory_gb\tstatus\tdescription", "a000000\t0.997900\t44.0\tkeep\tbaseline"], 0.9979
    for i in range(1, rows):
        if i == 40:
            lines.append(f"c{i:06d}\t3.215000\t44.0\tdiscard\tlearning rate 10x (diverged)")
        elif i == 77:
            lines.append(f"c{i:06d}\t0.000000\t0.0\tcrash\tdouble the width (OOM)")
        elif rng.random() < 0.18:
            best -= rng.uniform(0.0005, 0.003)
            lines.append(f"c{i:06d}\t{best:.6f}\t44.1\tkeep\ttry a much longer description of change {i} to see cuts")
        else:
            lines.append(f"c{i:06d}\t{best + abs(rng.gauss(0.002, 0.004)):.6f}\t44.0\tdiscard\tchange {i}")
    return "\n".join(lines) + "\n"


def test_the_plot_zooms_to_where_everything_happens_and_marks_outliers_at_the_edge(tmp_path):
    from autoresearch.interfaces.report import short_label, zoom_range

    path = tmp_path / "results.tsv"
    path.write_text(_like_the_original_h100_run())
    rows = read_results_tsv(path)
    kept = [r.metric for r in rows if r.status == "keep"]
    low, high = zoom_range(rows)
    assert low < min(kept) and high > 0.9979  # the best and the baseline inside, with room
    assert high < 1.02 and high - low < 0.06  # the diverged 3.2 is not: it would flatten the rest
    assert sum(1 for r in rows if r.metric is not None and not low <= r.metric <= high) == 1
    assert short_label("try a much longer description of change 7 to see cuts [+3.1 sd]") == "try a much longer description…"
    assert short_label("add value embeddings [+3.1 sd, mean of 2 runs]") == "add value embeddings"
    out = run_cli("report", str(path), "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "progress.png").stat().st_size > 20_000
