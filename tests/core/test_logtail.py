"""explain_tail: a crashed run's log end cut to what explains it (the harness's own lines, tracebacks,
the first and last progress lines), at line boundaries."""

from __future__ import annotations

from autoresearch.core.curve import parse_progress
from autoresearch.core.logtail import explain_tail

# The end of the log a crash-fix request showed the model (tests/fixtures/model-transcripts/13.request.json,
# "The end of its log"): the last 4,000 characters, so its first line starts mid-word.
TIMEOUT_LOG = """\
p 00020 ( 20.5%) | loss 5.9385 | lrm 0.81 | dt 6452ms | tok/s 267 | mfu 4.2% | epoch 1
step 00021 ( 21.5%) | loss 5.9008 | lrm 0.80 | dt 8566ms | tok/s 266 | mfu 4.1% | epoch 1
step 00022 ( 22.5%) | loss 5.8591 | lrm 0.78 | dt 1931ms | tok/s 275 | mfu 4.3% | epoch 1
step 00023 ( 23.6%) | loss 5.7668 | lrm 0.77 | dt 7005ms | tok/s 276 | mfu 4.3% | epoch 1
step 00024 ( 24.6%) | loss 5.7250 | lrm 0.76 | dt 6896ms | tok/s 276 | mfu 4.3% | epoch 1
step 00025 ( 25.6%) | loss 5.6781 | lrm 0.75 | dt 8128ms | tok/s 275 | mfu 4.3% | epoch 1
step 00026 ( 26.6%) | loss 5.6377 | lrm 0.74 | dt 9100ms | tok/s 273 | mfu 4.3% | epoch 1
step 00027 ( 27.6%) | loss 5.5739 | lrm 0.73 | dt 9244ms | tok/s 271 | mfu 4.2% | epoch 1
step 00028 ( 28.7%) | loss 5.5184 | lrm 0.72 | dt 5077ms | tok/s 274 | mfu 4.3% | epoch 1
step 00029 ( 29.7%) | loss 5.4861 | lrm 0.71 | dt 5188ms | tok/s 277 | mfu 4.3% | epoch 1
step 00030 ( 30.7%) | loss 5.4570 | lrm 0.70 | dt 5264ms | tok/s 280 | mfu 4.4% | epoch 1
step 00031 ( 31.7%) | loss 5.4131 | lrm 0.69 | dt 9224ms | tok/s 277 | mfu 4.3% | epoch 1
step 00032 ( 32.8%) | loss 5.3846 | lrm 0.68 | dt 7258ms | tok/s 277 | mfu 4.3% | epoch 1
step 00033 ( 33.8%) | loss 5.3566 | lrm 0.67 | dt 2028ms | tok/s 284 | mfu 4.4% | epoch 1
step 00034 ( 34.8%) | loss 5.3208 | lrm 0.66 | dt 2150ms | tok/s 290 | mfu 4.5% | epoch 1
step 00035 ( 35.8%) | loss 5.3131 | lrm 0.65 | dt 8234ms | tok/s 288 | mfu 4.5% | epoch 1
step 00036 ( 36.9%) | loss 5.2794 | lrm 0.64 | dt 2120ms | tok/s 294 | mfu 4.6% | epoch 1
step 00037 ( 37.9%) | loss 5.2497 | lrm 0.63 | dt 1963ms | tok/s 300 | mfu 4.7% | epoch 1
step 00038 ( 38.9%) | loss 5.2298 | lrm 0.62 | dt 4221ms | tok/s 303 | mfu 4.7% | epoch 1
step 00039 ( 39.9%) | loss 5.1898 | lrm 0.61 | dt 4855ms | tok/s 305 | mfu 4.8% | epoch 1
step 00040 ( 41.0%) | loss 5.1866 | lrm 0.60 | dt 6877ms | tok/s 305 | mfu 4.8% | epoch 1
step 00041 ( 42.0%) | loss 5.1732 | lrm 0.59 | dt 4337ms | tok/s 308 | mfu 4.8% | epoch 1
step 00042 ( 43.0%) | loss 5.1644 | lrm 0.58 | dt 4696ms | tok/s 310 | mfu 4.8% | epoch 1
step 00043 ( 44.0%) | loss 5.1591 | lrm 0.57 | dt 4561ms | tok/s 312 | mfu 4.9% | epoch 1
step 00044 ( 45.1%) | loss 5.1611 | lrm 0.56 | dt 5836ms | tok/s 313 | mfu 4.9% | epoch 1
step 00045 ( 46.1%) | loss 5.1523 | lrm 0.55 | dt 6291ms | tok/s 313 | mfu 4.9% | epoch 1
step 00046 ( 47.1%) | loss 5.1214 | lrm 0.54 | dt 6485ms | tok/s 313 | mfu 4.9% | epoch 1
step 00047 ( 48.1%) | loss 5.1323 | lrm 0.53 | dt 4140ms | tok/s 316 | mfu 4.9% | epoch 1
step 00048 ( 49.2%) | loss 5.1390 | lrm 0.52 | dt 4460ms | tok/s 318 | mfu 5.0% | epoch 1
step 00049 ( 50.2%) | loss 5.1299 | lrm 0.51 | dt 4561ms | tok/s 320 | mfu 5.0% | epoch 1
step 00050 ( 51.2%) | loss 5.1176 | lrm 0.50 | dt 4419ms | tok/s 322 | mfu 5.0% | epoch 1
step 00051 ( 52.2%) | loss 5.1093 | lrm 0.49 | dt 9832ms | tok/s 318 | mfu 5.0% | epoch 1
step 00052 ( 53.2%) | loss 5.0924 | lrm 0.48 | dt 10737ms | tok/s 314 | mfu 4.9% | epoch 1
step 00053 ( 54.3%) | loss 5.0782 | lrm 0.47 | dt 4446ms | tok/s 316 | mfu 4.9% | epoch 1
step 00054 ( 55.3%) | loss 5.0514 | lrm 0.46 | dt 3982ms | tok/s 318 | mfu 5.0% | epoch 1
step 00055 ( 56.3%) | loss 5.0138 | lrm 0.45 | dt 2844ms | tok/s 322 | mfu 5.0% | epoch 1
step 00056 ( 57.3%) | loss 5.0011 | lrm 0.44 | dt 6652ms | tok/s 321 | mfu 5.0% | epoch 1
step 00057 ( 58.4%) | loss 4.9928 | lrm 0.43 | dt 12756ms | tok/s 316 | mfu 4.9% | epoch 1
step 00058 ( 59.4%) | loss 4.9724 | lrm 0.42 | dt 6527ms | tok/s 316 | mfu 4.9% | epoch 1
step 00059 ( 60.4%) | loss 4.9468 | lrm 0.41 | dt 8216ms | tok/s 314 | mfu 4.9% | epoch 1
step 00060 ( 61.4%) | loss 4.9548 | lrm 0.40 | dt 8931ms | tok/s 312 | mfu 4.9% | epoch 1
step 00061 ( 62.5%) | loss 4.9470 | lrm 0.39 | dt 5253ms | tok/s 313 | mfu 4.9% | epoch 1
step 00062 ( 63.5%) | loss 4.9286 | lrm 0.38 | dt 6674ms | tok/s 313 | mfu 4.9% | epoch 1
step 00063 ( 64.5%) | loss 4.9230 | lrm 0.37 | dt 5251ms | tok/s 314 | mfu 4.9% | epoch 1

[autoresearch] killed: the 420 s timeout"""


TRACEBACK = """\
Traceback (most recent call last):
  File "/ws/train.py", line 412, in <module>
    main()
  File "/ws/train.py", line 371, in main
    loss = model(x, y)
           ^^^^^^^^^^^
  File "/ws/.venv/lib/python3.12/site-packages/torch/nn/modules/module.py", line 1751, in _wrapped_call_impl
    return self._call_impl(*args, **kwargs)
  File "/ws/.venv/lib/python3.12/site-packages/torch/nn/modules/module.py", line 1762, in _call_impl
    return forward_call(*args, **kwargs)
  File "/ws/train.py", line 198, in forward
    x = block(x, cos, sin)
  File "/ws/.venv/lib/python3.12/site-packages/torch/nn/modules/module.py", line 1762, in _call_impl
    return forward_call(*args, **kwargs)
  File "/ws/train.py", line 151, in forward
    q = q.view(B, T, self.n_head, self.head_dim)
RuntimeError: shape '[4, 512, 6, 64]' is invalid for input of size 1048576"""


def progress(step: int, loss: float) -> str:
    return f"step {step:05d} ({step / 2:5.1f}%) | loss {loss:.4f} | lrm 1.00 | dt 640ms | tok/s 6,651 | mfu 3.1% | epoch 1"


def test_a_timeout_keeps_the_kill_and_the_first_and_last_progress_lines():
    lines = TIMEOUT_LOG.splitlines()
    assert lines[0].startswith("p 00020") and len(lines) == 46  # the real tail, cut mid-word
    shown = explain_tail(TIMEOUT_LOG)
    assert shown.endswith("[autoresearch] killed: the 420 s timeout")
    out = shown.splitlines()
    assert out[0] == "ste" + lines[0]  # the first progress line, whole again
    assert out[-4:-2] == lines[-4:-2]  # the last two progress lines
    assert "(... 41 progress lines ...)" in out
    assert sum(parse_progress(line) is not None for line in out) == 3
    assert len(shown) < len(TIMEOUT_LOG) / 5 and len(out) < 10


def test_a_traceback_is_kept_whole_after_thinned_progress():
    log = "\n".join([progress(i, 6 - i / 50) for i in range(1, 120)] + [TRACEBACK])
    shown = explain_tail(log)
    assert shown.endswith(TRACEBACK)
    out = shown.splitlines()
    assert out[:4] == [progress(1, 6 - 1 / 50), "(... 116 progress lines ...)", progress(118, 6 - 118 / 50),
                       progress(119, 6 - 119 / 50)]
    assert "earlier line" not in shown  # nothing cut at the top: it all fits


def test_repeats_collapse_and_lines_between_progress_lines_stay():
    warning = "UserWarning: TypedStorage is deprecated"
    log = "\n".join(["[autoresearch] device: cpu"] + [line for i in range(1, 30) for line in (progress(i, 5.0), warning)]
                    + ["Killed"])
    out = explain_tail(log).splitlines()
    assert out[0] == "[autoresearch] device: cpu" and out[-1] == "Killed"
    assert f"{warning} (repeated 26 times)" in out  # the copies between the dropped progress lines
    assert sum(parse_progress(line) is not None for line in out) == 3


def test_long_logs_are_cut_at_line_boundaries_with_a_note():
    log = "\n".join(f"warning {i}: something unusual happened in layer {i % 7}" for i in range(200))
    shown = explain_tail(log, max_lines=40, max_chars=4000)
    out = shown.splitlines()
    assert len(out) == 40 and out[0] == "(... 161 earlier lines cut ...)" and out[-1] == log.splitlines()[-1]
    assert set(out[1:]) <= set(log.splitlines())  # whole lines only
    short = explain_tail(log, max_chars=500)
    assert len(short) <= 500 and set(short.splitlines()[1:]) <= set(log.splitlines())
    assert short.splitlines()[0].startswith("(... ") and short.splitlines()[0].endswith(" earlier lines cut ...)")


def test_a_line_too_long_to_fit_keeps_its_end_from_a_whole_word():
    line = " ".join(f"word{i}" for i in range(2000))
    shown = explain_tail("first line\n" + line, max_chars=300)
    assert len(shown) <= 300 and shown.endswith("word1999")
    last = shown.splitlines()[-1]
    assert last.startswith("...word") and line.endswith(last[3:]) and f" {last[3:]}" in line


def test_short_logs_come_back_as_they_are():
    assert explain_tail("") == ""
    assert explain_tail("one line\nTraceback: boom") == "one line\nTraceback: boom"
