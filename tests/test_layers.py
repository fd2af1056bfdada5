"""The layers of docs/design.md hold: each package imports only the ones above it, and `propose`
touches neither disk nor git (it imports nothing of store, run or execute).

Every import counts, also those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "autoresearch"
# from the top: each may import itself and those before it
LAYERS = ["core", "data", "store", "run", "execute", "propose", "study", "interfaces"]
# where a layer may not go although the order would allow it: proposers see values, never disk or git
FORBIDDEN = {"propose": {"data", "store", "run", "execute"}}


def imported_layers(source: str) -> list[tuple[int, str]]:
    """(line, layer) of every `autoresearch.<layer>` a module imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "autoresearch" and len(parts) > 1 and parts[1] in LAYERS:
                found.append((node.lineno, parts[1]))
    return found


def climbing(layer: str, source: str) -> list[str]:
    """The imports of a module of `layer` that climb (or go where it may not), as 'line: layer'."""
    rank = LAYERS.index(layer)
    return [f"{line}: imports autoresearch.{used}" for line, used in imported_layers(source)
            if LAYERS.index(used) > rank or used in FORBIDDEN.get(layer, ())]


def modules() -> list[tuple[str, Path]]:
    return [(layer, path) for layer in LAYERS for path in sorted((PACKAGE / layer).rglob("*.py"))]


@pytest.mark.parametrize("layer,path", modules(), ids=lambda v: str(v.relative_to(PACKAGE)) if isinstance(v, Path) else v)
def test_no_import_climbs_a_layer(layer, path):
    assert climbing(layer, path.read_text()) == [], f"{path.relative_to(PACKAGE)} climbs a layer"


def test_a_planted_climbing_import_is_caught():
    """The check itself can fail: a store module that imports the study, a proposer that reads git."""
    store = (PACKAGE / "store" / "ledger.py").read_text()
    assert climbing("store", store + "\nfrom autoresearch.study.study import Study\n")
    proposer = (PACKAGE / "propose" / "search.py").read_text()
    planted = proposer.replace('"""\n', '"""\n\ndef f():\n    from autoresearch.store import gitops\n', 1)
    assert climbing("propose", planted) == [f"{planted.splitlines().index('    from autoresearch.store import gitops') + 1}"
                                            ": imports autoresearch.store"]


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} - {"templates"}
    assert packages == set(LAYERS)
