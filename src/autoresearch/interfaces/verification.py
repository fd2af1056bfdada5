"""A verification's result as lines of text (the CLI prints them; the report shows them)."""

from __future__ import annotations


def gain_text(interval: dict | None) -> str:
    if not interval:
        return "not measured (fewer than 2 runs on a side)"
    return f"{interval['gain']:+.6f} [{interval['low']:+.6f}, {interval['high']:+.6f}]"


def render(result: dict) -> list[str]:
    checked = result["checked"]
    lines = [f"record: {len(result['problems'])} problem(s) in {checked['experiments']} experiments, "
             f"{checked['runs']} runs, {checked['kept']} kept results checked"]
    lines += [f"  - {problem}" for problem in result["problems"]]
    if "gain" not in result:
        return lines
    metric, base, best = result["metric"], result["baseline"], result["best"]
    lines.append(f"re-measured: baseline {_who(base)} against best {_who(best)}, {result['runs_per_side']} runs each, "
                 "interleaved; gains positive when the best is better, with 95 % intervals")
    claimed = f"{result['reported_gain']:+.6f}" if result["reported_gain"] is not None else "-"
    lines.append(f"  {metric:<10} claimed {claimed:<10} re-measured {gain_text(result['gain']['val'])}")
    test = gain_text(result["gain"]["test"]) if result["test_split"] else "no held-out test split in this task"
    lines.append(f"  {'test':<10} {'':<18} re-measured {test}")
    for side in result["sides"]:
        failed = f", {len(side['failures'])} failed: {side['failures'][0]}" if side["failures"] else ""
        lines.append(f"  {side['label'][:40]:<40} {metric} {_values(side['val'])} test {_values(side['test'])}{failed}")
    if result["ablation"]:
        lines.append("ablation: what each kept change contributes to the best (its removal's loss)")
        lines += [f"  {a['label'][:60]:<60} {gain_text(a['val'])}" for a in result["ablation"]]
    return lines


def _who(side: dict) -> str:
    return f"#{side['id']} ({side['commit'][:7]})" if side["id"] else side["commit"][:7]


def _values(values: list[float]) -> str:
    return " ".join(f"{v:.6f}" for v in values) or "-"
