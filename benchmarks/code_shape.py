"""The shape of the code, for issue 24's before/after: the Study's attributes and methods, the longest
functions and the largest modules, and the record types defined in the package.

    python benchmarks/code_shape.py            # the working tree
    python benchmarks/code_shape.py --rev 7cc1f05   # a commit, read from git (nothing checked out)
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "src/autoresearch"


def sources(rev: str | None) -> dict[str, str]:
    """Every module of the package (templates excluded: they are the workspace's files)."""
    if rev is None:
        return {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / PACKAGE).rglob("*.py")
                if "/templates/" not in str(p)}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, PACKAGE], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{rev}:{n}"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout
            for n in names if n.endswith(".py") and "/templates/" not in n}


def study_shape(files: dict[str, str]) -> tuple[set[str], set[str]]:
    """Attributes (self.x = ... anywhere in the class) and methods of class Study."""
    tree = ast.parse(files[f"{PACKAGE}/study/study.py"])
    study = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Study")
    methods = {n.name for n in study.body if isinstance(n, ast.FunctionDef)}
    attributes = set()
    for node in ast.walk(study):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name) and leaf.value.id == "self":
                    attributes.add(leaf.attr)
    return attributes - methods, methods


def functions(files: dict[str, str]) -> list[tuple[int, str]]:
    found = []
    for name, text in files.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((node.end_lineno - node.lineno + 1, f"{name}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def record_types(files: dict[str, str]) -> list[str]:
    """Classes decorated @dataclass, by module."""
    found = []
    for name, text in files.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and any(
                    "dataclass" in ast.unparse(d) for d in node.decorator_list):
                found.append(f"{name.removeprefix(PACKAGE + '/')}:{node.name}")
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a commit to measure instead of the working tree")
    args = parser.parse_args()
    files = sources(args.rev)
    attributes, methods = study_shape(files)
    print(f"code at {args.rev or 'the working tree'}: {len(files)} modules, "
          f"{sum(t.count(chr(10)) for t in files.values())} lines")
    print(f"Study: {len(attributes)} attributes, {len(methods)} methods")
    print(f"  attributes: {', '.join(sorted(attributes))}")
    print(f"  methods: {', '.join(sorted(methods))}")
    print("longest functions (lines):")
    for length, where in functions(files)[:5]:
        print(f"  {length:4d}  {where}")
    print("largest modules (lines):")
    for name, text in sorted(files.items(), key=lambda kv: -kv[1].count("\n"))[:5]:
        print(f"  {text.count(chr(10)):4d}  {name}")
    records = record_types(files)
    print(f"dataclasses: {len(records)}")


if __name__ == "__main__":
    main()
