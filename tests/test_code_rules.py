"""House rules the code itself must keep, checked on every test run."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "autoresearch"
MAX_LINES, MAX_PARAMETERS = 60, 6


def _library_files() -> list[Path]:
    """The package's own modules; the templates are files of the workspaces they make, not library code."""
    return [p for p in sorted(SRC.rglob("*.py")) if "templates" not in p.relative_to(SRC).parts]


def test_functions_are_short_and_take_few_parameters():
    too_big = []
    for path in _library_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                params = [a for a in args if a.arg not in ("self", "cls")]
                if lines > MAX_LINES or len(params) > MAX_PARAMETERS:
                    too_big.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {lines} lines, "
                                   f"{len(params)} parameters")
    assert not too_big, "functions over 60 lines or 6 parameters:\n" + "\n".join(too_big)


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_state_directory_is_spelled_in_one_place():
    spelled = [f"{path.relative_to(SRC)}:{node.lineno}" for path in _library_files()
               for node in _string_constants(ast.parse(path.read_text())) if ".autoresearch" in node.value]
    assert len(spelled) == 1 and spelled[0].startswith(f"store{Path('/')}workspace.py:"), spelled


def test_ruff_finds_nothing():
    """The lint settings of pyproject.toml (pyflakes, pycodestyle errors, sorted imports) hold everywhere."""
    import subprocess
    import sys

    root = SRC.parents[1]
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "benchmarks"],
                         cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
