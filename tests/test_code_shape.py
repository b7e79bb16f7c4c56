"""The code stays readable: no module over 400 lines, no function over 60 (docstring included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "d2lv"
MODULES = sorted(SOURCE.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_module_and_function_sizes(module):
    text = module.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{module} has over {MAX_MODULE_LINES} lines: split it"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines in {module}: {long}"


def test_every_subpackage_says_what_it_is_for():
    for init in SOURCE.glob("*/__init__.py"):
        assert (ast.get_docstring(ast.parse(init.read_text())) or "").strip(), f"{init} needs a docstring"


#: Each subpackage's layer: a module imports only from lower layers or its own subpackage, so the
#: dependencies point one way (io <- stages <- merge <- evaluation/report <- query <- bench/synth <- configuration
#: <- cli/workflow); options (which names the config key of a bad value) stands on errors.
LAYERS = {
    "errors": 0, "options": 0.5, "device": 0, "io": 1,
    "local": 2, "descriptor": 2, "detect": 2, "pdq": 2,
    "merge": 3, "evaluation": 4, "report": 5, "query": 5.5, "bench": 6, "synth": 7, "configuration": 7.5,
    "workflow": 8, "cli": 8,
}


def _d2lv_imports(tree: ast.AST) -> set[str]:
    """The d2lv subpackages a module imports from, wherever the import statement is."""
    found = set()
    for node in ast.walk(tree):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "d2lv" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_dependencies_point_one_way(module):
    own = module.relative_to(SOURCE).parts[0].removesuffix(".py")
    if own == "__init__":
        return
    upward = {name for name in _d2lv_imports(ast.parse(module.read_text()))
              if name != own and LAYERS[name] >= LAYERS[own]}
    assert not upward, f"{module} (layer {LAYERS[own]}) imports from {sorted(upward)}"


RULES = sorted((SOURCE.parents[1] / "rules").glob("*.smk"))
MAX_RULE_FUNCTION_LINES = 20


def _smk_functions(text: str) -> dict[str, int]:
    """Name -> line count of each top-level ``def`` of a Snakemake file (to the next unindented line)."""
    lines, sizes = text.splitlines(), {}
    for start, line in enumerate(lines):
        if line.startswith("def "):
            end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()), len(lines))
            while not lines[end - 1].strip():
                end -= 1
            sizes[line[4:].split("(")[0]] = end - start
    return sizes


@pytest.mark.parametrize("rules", RULES, ids=lambda p: p.name)
def test_rules_declare_and_the_plan_plans(rules):
    """A rules file declares rules over d2lv.workflow.Plan: no loop and no function over 20 lines of its own."""
    text = rules.read_text()
    long = {name: n for name, n in _smk_functions(text).items() if n > MAX_RULE_FUNCTION_LINES}
    assert not long, f"functions over {MAX_RULE_FUNCTION_LINES} lines in {rules.name}: {long} (plan in d2lv.workflow)"
    code = [line.split("#")[0] for line in text.splitlines()]
    loops = [line.strip() for line in code if re.search(r"^\s*(for|while) |\bfor \w+(, \w+)* in\b", line)]
    assert not loops, f"{rules.name} loops over something ({loops}): that is planning, which d2lv.workflow.Plan does"


def test_the_rules_files_are_seen():
    assert {"common.smk", "local.smk", "merge.smk"} <= {path.name for path in RULES}
