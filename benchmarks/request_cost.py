"""What the model is sent, before and after the change to the request: an older commit against the working tree.

One measurement (`--measure openai|anthropic`, run with one tree's own src/ on the path): a workspace from the llm
template (cpu preset: the real train.py, program.md and prepare.py API) whose command is a one-second stub
(`stub_train.py`, frozen: it reads MATRIX_LR and DEPTH from train.py and prints progress lines and a summary whose
val_bpb is a smooth function of them plus noise seeded by AUTORESEARCH_SEED; no trusted evaluation, a tokens budget,
no sandbox), and a study of --experiments experiments (no pipelining) with the real SDK against the loopback
server of tests/llm_server.py (the working tree's copy for both trees, counting tokens as chars // 4 and reporting
prompt caching as each API does). Every answer is a valid SEARCH/REPLACE edit giving MATRIX_LR a new value.
Figures come from the server's side (requests, input tokens, cached and cache-written tokens; cost priced here with
genai-prices, alike for both trees) and from the ledger (its own count and cost). The shape of one request
(--shape-at, the 10th): its user message's size, the share of the whole request that is a prefix shared with the
previous request (what a prompt cache can serve), which facts it states, and its section headers.

The parent makes a git worktree of --rev, runs each (tree, wire format) as a subprocess and prints
`figure | before | after | after/before` per wire format, then the two request shapes side by side.

    python benchmarks/request_cost.py [--rev 7cc1f05] [--experiments 30] [--shape-at 10]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, tree_env, worktree_of

MODELS = {"openai": ("gpt-4.1", "openai"), "anthropic": ("claude-sonnet-4-5", "anthropic")}

STUB = '''import math, os, random, re, time
src = open("train.py").read()
def value(name, default):
    found = re.search(rf"^{name} = ([-0-9.e]+)", src, re.M)
    return float(found.group(1)) if found else default
lr, depth = value("MATRIX_LR", 0.04), value("DEPTH", 4)
rng = random.Random(int(os.environ.get("AUTORESEARCH_SEED") or 42))
bpb = 1.9 + 0.08 * math.log(lr / 0.03) ** 2 + 0.01 * abs(depth - 5) + rng.gauss(0, 0.004)
for step in range(1, 5):
    time.sleep(0.2)
    loss = 5.0 - step * 0.5 + (bpb - 1.9) * step / 4
    print(f"step {step:05d} ({25.0 * step:5.1f}%) | loss {loss:.4f} | tok/s 6,000", flush=True)
print(f"---\\nval_bpb: {bpb:.6f}\\ntraining_seconds: 1.0\\ntotal_seconds: 1.2\\npeak_vram_mb: 700.0")
print("num_params_M: 4.2\\ntokens_per_sec: 6000\\ndevice: cpu")
'''

FACTS = {"sequence length": r"sequence length", "vocabulary": r"vocabulary", "noise/sd": r"\bnoise\b|\bsd\b",
         "timeout": r"timeout", "tok/s": r"tok/s", "params": r"params", "margin/' sd'": r"\bmargin|\d sd\b",
         "Running right now": r"Running right now"}  # what the user message states (regexes, case-insensitive)


# --- one measurement, with one tree's own code ------------------------------------------------------------------

def stub_workspace(path: Path) -> Path:
    from autoresearch.store.templates import init_workspace

    ws = init_workspace(path, template="llm", preset="cpu", tag="bench")
    (ws / "stub_train.py").write_text(STUB)
    toml = ws / "autoresearch.toml"
    text = toml.read_text()
    text = text.replace('command = ["{python}", "train.py"]', 'command = ["{python}", "stub_train.py"]')
    text = text.replace('frozen = ["prepare.py", "autoresearch.toml"]',
                        'frozen = ["prepare.py", "autoresearch.toml", "stub_train.py"]')
    text = re.sub(r'^command = \["\{python\}", "-P", "prepare.py".*\n', "", text, flags=re.M)  # [evaluation]
    text = re.sub(r"^early_start = .*\n", "", text, flags=re.M)
    text = re.sub(r'^kind = "seconds".*\n', 'kind = "tokens"\n', text, flags=re.M)
    text = re.sub(r"^value = .*\n", "value = 500000\n", text, flags=re.M)
    text = re.sub(r"^timeout = .*\n", "timeout = 60\n", text, flags=re.M)
    text = text.replace('kind = "auto"', 'kind = "none"')
    toml.write_text(text + '\n[judge]\nrule = "noise"\n')
    subprocess.run(["git", "-C", str(ws), "add", "stub_train.py"], check=True)
    subprocess.run(["git", "-C", str(ws), "commit", "-qam", "benchmark: a one-second stub task"], check=True)
    return ws


def request_texts(body: dict) -> tuple[str, str]:
    """(system, user messages) of a request in either wire format, as plain text."""
    def texts(content) -> str:
        return content if isinstance(content, str) else "".join(b.get("text", "") for b in content or [])

    system = texts(body.get("system") or "")
    user = ""
    for message in body.get("messages") or []:
        if message.get("role") == "system":
            system += texts(message.get("content"))
        else:
            user += texts(message.get("content"))
    return system, user


def responder():
    values = (round(0.012 + 0.0011 * n, 5) for n in itertools.count())  # a new MATRIX_LR each answer

    def respond(body: dict):
        from llm_server import Reply

        system, user = request_texts(body)
        lines = re.findall(r"^MATRIX_LR = .*$", user, re.M)
        line = next((ln for ln in lines if "# knob" in ln), lines[-1] if lines else None)
        if line is None:
            raise ValueError("no MATRIX_LR line in the request")
        value = next(values)
        new = re.sub(r"= [^ #]+", f"= {value}", line, count=1)
        text = (f"DESCRIPTION: MATRIX_LR {value}\nREASONING: the Muon learning rate may be off its best.\n"
                f"<<<<<<< SEARCH train.py\n{line}\n=======\n{new}\n>>>>>>> REPLACE\n")
        return Reply(text, output_tokens=len(text) // 4)

    return respond


def shared_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def shape(bodies: list[dict], at: int, file_lines: set[str]) -> dict:
    """The `at`-th request (1-based): its user message and how much of it the previous request shares.
    What it states and its section headers are read from its lines that are no line of the workspace's files
    (train.py, prepare.py, program.md, the stub): what the harness writes, not the files it shows."""
    if len(bodies) < at:
        return {}
    system, user = request_texts(bodies[at - 1])
    before = "".join(request_texts(bodies[at - 2])) if at > 1 else ""
    whole = system + user
    own = [ln for ln in user.splitlines() if ln not in file_lines]  # the harness's words, not the files shown
    states = {name: re.search(pattern, "\n".join(own), re.I) is not None for name, pattern in FACTS.items()}
    headers = [ln for ln in own if ln.startswith("# ")]
    return {"user_tokens": len(user) // 4, "system_tokens": len(system) // 4,
            "cacheable_share": shared_prefix(whole, before) / len(whole) if whole else 0.0,
            "states": states, "headers": "\n".join(headers)[:300]}


def measure(wire: str, experiments: int, at: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))  # the working tree's server for both trees: the same token counting
    from genai_prices import Usage, calc_price
    from llm_server import ScriptedLLMServer

    import autoresearch
    from autoresearch.propose.llm import LLMProposer
    from autoresearch.propose.models import AnthropicChat, OpenAIChat
    from autoresearch.store.workspace import Workspace
    from autoresearch.study.study import StudyOptions, run_study

    class CountingServer(ScriptedLLMServer):
        """Keeps the usage block of every answer: what the API would have billed."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.usages: list[dict] = []

        def _usage(self, provider, body, reply):
            usage = super()._usage(provider, body, reply)
            self.usages.append(usage)
            return usage

    model, provider = MODELS[wire]
    with tempfile.TemporaryDirectory(prefix="ar-request-cost-") as tmp, \
            CountingServer(responder=responder(), count_tokens=True) as server:
        ws = stub_workspace(Path(tmp) / "ws")
        file_lines = {ln for f in ws.iterdir() if f.is_file() and f.suffix in (".py", ".md")
                      for ln in f.read_text().splitlines()}
        if wire == "openai":
            chat = OpenAIChat(model, base_url=server.base_url, api_key="x")
        else:
            os.environ["ANTHROPIC_API_KEY"] = "x"
            chat = AnthropicChat(model, base_url=server.anthropic_base_url)
        summary = run_study(ws, [LLMProposer(chat)], StudyOptions(max_experiments=experiments, pipeline=False))
        ledger = Workspace(ws).open_ledger()
        rows = [row if isinstance(row, dict) else vars(row) for row in ledger.proposals()]
        experiments_done = len(ledger.experiments())
        ledger.close()
    bodies = [r["json"] for r in server.requests if r["method"] == "POST"]
    tokens_in = cached = written = tokens_out = 0
    cost = cost_uncached = 0.0
    for usage in server.usages:  # priced one request at a time: prices can be tiered by a request's size
        if wire == "openai":
            read, wrote = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0), 0
            size = usage["prompt_tokens"]
        else:
            read, wrote = usage.get("cache_read_input_tokens", 0), usage.get("cache_creation_input_tokens", 0)
            size = usage["input_tokens"] + read + wrote
        out = usage.get("completion_tokens", usage.get("output_tokens", 0))
        tokens_in, cached, written, tokens_out = tokens_in + size, cached + read, written + wrote, tokens_out + out
        cost += float(calc_price(Usage(input_tokens=size, output_tokens=out, cache_read_tokens=read or None,
                                       cache_write_tokens=wrote or None), model_ref=model,
                                 provider_id=provider).total_price)
        cost_uncached += float(calc_price(Usage(input_tokens=size, output_tokens=out), model_ref=model,
                                          provider_id=provider).total_price)
    return {"autoresearch": autoresearch.__file__, "summary": str(summary)[:200],
            "figures": {"experiments in the ledger": experiments_done, "proposals in the ledger": len(rows),
                        "requests": len(bodies), "input tokens": tokens_in, "input tokens / request":
                        tokens_in / max(len(bodies), 1), "cached tokens": cached, "cache-written tokens": written,
                        "output tokens": tokens_out, "cost USD (genai-prices)": cost,
                        "cost USD without caching": cost_uncached,
                        "ledger cost USD": sum(r.get("cost_usd") or 0.0 for r in rows),
                        "ledger cached tokens": sum(r.get("tokens_cached", 0) or 0 for r in rows)},
            "shape": shape(bodies, at, file_lines)}


# --- the parent: both trees, both wire formats --------------------------------------------------------------------

def run_tree(tree: Path, wire: str, args: argparse.Namespace) -> dict:
    env = tree_env(tree)
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", wire, "--experiments",
                           str(args.experiments), "--shape-at", str(args.shape_at)],
                          env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{wire} in {tree} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["autoresearch"]).is_relative_to(tree / "src"), result["autoresearch"]
    return result


def fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:.4f}"
    return f"{value:,.0f}"


def report(results: dict, args: argparse.Namespace) -> None:
    for wire in MODELS:
        before, after = results["before", wire]["figures"], results["after", wire]["figures"]
        print(f"\n{wire} wire format ({MODELS[wire][0]}), {args.experiments} experiments")
        width = max(map(len, after)) + 2
        print(f"{'figure':<{width}}{'before':>14}{'after':>14}{'after/before':>14}")
        for key in after:
            b, a = before.get(key, 0), after[key]
            ratio = f"{a / b:.2f}x" if b else "-"
            print(f"{key:<{width}}{fmt(b):>14}{fmt(a):>14}{ratio:>14}")
    for wire in MODELS:
        before, after = results["before", wire]["shape"], results["after", wire]["shape"]
        print(f"\nrequest {args.shape_at}, {wire} wire format")
        if not before or not after:
            print("  (fewer requests than that)")
            continue
        rows = [("user message tokens", before["user_tokens"], after["user_tokens"]),
                ("system tokens", before["system_tokens"], after["system_tokens"]),
                ("shared prefix with request before", f"{before['cacheable_share']:.1%}",
                 f"{after['cacheable_share']:.1%}")]
        rows += [(f"harness text states {name}", fmt(before["states"][name]), fmt(after["states"][name])) for name in FACTS]
        for name, b, a in rows:
            print(f"  {name:<46}{str(b):>10}{str(a):>10}")
        left, right = before["headers"].splitlines(), after["headers"].splitlines()
        print(f"  section headers (first 300 characters):\n  {'before':<48}after")
        for b, a in itertools.zip_longest(left, right, fillvalue=""):
            print(f"  {b[:46]:<48}{a[:60]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="7cc1f05")
    parser.add_argument("--experiments", type=int, default=30)
    parser.add_argument("--shape-at", type=int, default=10, help="the request whose shape is shown (1-based)")
    parser.add_argument("--measure", choices=list(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.experiments, args.shape_at)))
        return
    results = {}
    with worktree_of(args.rev, "ar-req-before") as (rev, old):
        for wire in MODELS:
            for side, tree in (("before", old), ("after", ROOT)):
                results[side, wire] = result = run_tree(tree, wire, args)
                print(f"--- {side} ({tree}), {wire}: {result['summary']}", flush=True)
    print(f"before = {rev}, after = working tree of {ROOT}")
    report(results, args)


if __name__ == "__main__":
    main()
