"""The benchmark's phases as code: a phase that imports ``bench.system`` never hides it behind a local of the same
name (Python then treats every use of ``system`` in that function as the local, and the phase fails before it
starts, as the webhooks and offboarding phases once did at the end of a 45-minute run)."""

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


def modules_importing_system():
    for path in sorted(BENCH.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.ImportFrom) and node.module == "bench" and any(a.name == "system" for a in node.names)
               for node in tree.body):
            yield pytest.param(tree, id=path.name)


@pytest.mark.parametrize("tree", modules_importing_system())
def test_no_function_of_a_phase_rebinds_the_system_module_as_a_local(tree):
    rebinding = [
        function.name for function in ast.walk(tree) if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Name) and node.id == "system" and isinstance(node.ctx, ast.Store)
    ]
    assert rebinding == []
