"""The layers of ``tar_core`` and ``tar_blender``: every import statement (module level and inside functions)
obeys the rules each package's docstring states, and no import cycle exists."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Package -> the tar_core packages it may import (besides itself and the bare ``tar_core`` root).
CORE_RULES = {
    "errors": set(),
    "util": {"errors"},
    "geometry": {"util", "errors"},
    "body_model": {"geometry", "util", "errors"},
    "motion_file": {"util", "errors"},
    "network": {"body_model", "geometry", "util", "errors"},
    "synthetic": {"body_model", "geometry", "motion_file", "util", "errors"},
    "capture": {"network", "body_model", "geometry", "motion_file", "util", "errors"},
    "training": {"network", "synthetic", "body_model", "geometry", "motion_file", "util", "errors"},
    "evaluation": {"capture", "network", "synthetic", "body_model", "geometry", "motion_file", "util", "errors"},
    "cli": {"capture", "training", "evaluation", "network", "synthetic", "body_model", "geometry", "motion_file",
            "util", "errors"},
    "__main__": {"cli"},
}
# Packages that must stay light: third-party imports they may use (the rest of stdlib is always allowed).
THIRD_PARTY = {"errors": set(), "util": set(), "motion_file": {"numpy"}}
# The add-on's pure logic the engine may share (one K -> Blender camera implementation for the renderer).
SHARED_LOGIC = {"synthetic": ("tar_blender.logic",)}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """Every imported module (absolute, resolved against the file's package), with its line number."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"  # ``from pkg import module`` imports the module
                is_module = (ROOT / sub.replace(".", "/")).with_suffix(".py").is_file() or (
                    ROOT / sub.replace(".", "/") / "__init__.py").is_file()
                found.append((sub if is_module else base, node.lineno))
    return found


def _graph(package: str) -> dict[str, list[tuple[str, int]]]:
    return {_module_name(p): _imports(p) for p in sorted((ROOT / package).rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    edges = {m: sorted({d for d, _ in deps if d in graph and d != m}) for m, deps in graph.items()}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_tar_core_or_tar_blender():
    for package in ("tar_core", "tar_blender"):
        assert _cycles(_graph(package)) == [], package


def test_cycle_finder_finds_a_cycle():
    graph = {"a": [("b", 1)], "b": [("c", 1)], "c": [("a", 1)], "d": [("a", 1)]}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_every_tar_core_package_has_a_rule_and_a_docstring_naming_what_it_may_import():
    layers = {_layer(m) for m in _graph("tar_core")} - {""}
    assert layers == set(CORE_RULES), layers ^ set(CORE_RULES)
    for p in sorted((ROOT / "tar_core").iterdir()):
        if (p / "__init__.py").is_file() and p.name != "__pycache__":
            doc = ast.get_docstring(ast.parse((p / "__init__.py").read_text())) or ""
            assert len(doc) > 60 and "import" in doc.lower(), f"{p.name}/__init__.py needs a docstring with its rules"


def test_tar_core_imports_follow_the_layers():
    bad = []
    for module, deps in _graph("tar_core").items():
        layer = _layer(module)
        if not layer:
            continue
        for dep, line in deps:
            top = dep.split(".")[0]
            if top == "tar_core":
                target = _layer(dep)
                if target and target != layer and target not in CORE_RULES[layer]:
                    bad.append(f"{module}:{line} imports {dep}")
            elif top == "tar_blender" and not dep.startswith(SHARED_LOGIC.get(layer, ("-",))):
                bad.append(f"{module}:{line} imports the add-on's {dep}")
            elif layer in THIRD_PARTY and top not in STDLIB and top not in THIRD_PARTY[layer]:
                bad.append(f"{module}:{line} imports third-party {dep}")
    assert bad == []


def test_tar_blender_never_imports_the_engine_and_its_logic_never_imports_bpy():
    bad = []
    for module, deps in _graph("tar_blender").items():
        is_logic = module.startswith("tar_blender.logic")
        for dep, line in deps:
            top = dep.split(".")[0]
            if top in ("torch", "tar_core"):
                bad.append(f"{module}:{line} imports {dep}")
            if is_logic and not (top in STDLIB or top == "numpy" or dep.startswith("tar_blender.logic")):
                bad.append(f"{module}:{line} (pure logic) imports {dep}")
    assert bad == []


@pytest.mark.parametrize("source, expected", [
    ("from tar_core.capture import pipeline\n", "tar_core.capture.pipeline"),
    ("def f():\n    from tar_core.training.train import train\n", "tar_core.training.train"),
    ("from ..errors import TarError\n", "tar_core.errors"),
])  # fmt: skip
def test_imports_inside_functions_and_relative_ones_are_read(source, expected):
    """A layer breach hidden in a function or written relatively is still seen."""
    probe = ROOT / "tar_core" / "geometry" / "probe.py"
    assert expected in [d for d, _ in _imports(probe, source)]


def test_the_command_line_starts_without_torch():
    """``python -m tar_core motion validate`` stays quick: the CLI imports heavy packages only inside commands."""
    code = ("import sys, tar_core.cli; tar_core.cli.build_parser(); "
            "print(sorted({'torch', 'cv2', 'mediapipe'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
