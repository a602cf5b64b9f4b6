"""The package's shape: one-way layers, no import cycle between subpackages, no library import of the
CLI, and every module named in docs/ARCHITECTURE.md.

Every ``.py`` under ``adlift/`` is parsed with ``ast`` (no import): every ``import`` / ``from ... import``
counts, including those inside functions and under ``TYPE_CHECKING``, and
``importlib.import_module("adlift....")`` with a literal name.

Layers (a module may import only from its own layer or lower ones):

    L0    errors, registry
    L1    scene, cameras, rotations, image_metrics, io  (and the package ``adlift`` itself)
    L2    render
    L3    editors
    L3.5  attacks        (attacks may import editors; editors never import attacks)
    L4    protect
    L5    evaluate
    L6    viewer, nerfstudio
    L7    commands, cli, __main__  (imported by nothing in the library)
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "adlift"
DOCS = REPO / "docs" / "ARCHITECTURE.md"

#: The layer of each top-level component ``adlift.<component>``; "" is the package ``adlift`` itself.
LAYERS: dict[str, float] = {
    "errors": 0, "registry": 0,
    "": 1, "scene": 1, "cameras": 1, "rotations": 1, "image_metrics": 1, "io": 1, "distributed": 1,
    "render": 2,
    "editors": 3, "attacks": 3.5,
    "protect": 4,
    "evaluate": 5,
    "viewer": 6, "nerfstudio": 6,
    "commands": 7, "cli": 7, "__main__": 7,
}  # fmt: skip
#: Components only the command line may import.
CLI_ONLY = {"commands", "cli", "__main__"}


def layer_name(value: float) -> str:
    return f"L{value:g}"


def module_name(path: Path, root: Path = REPO) -> str:
    """adlift/render/api.py -> adlift.render.api; adlift/render/__init__.py -> adlift.render."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def component(module: str) -> str:
    """The top-level component of a module: adlift.render.api -> "render"; adlift -> ""."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def library_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def imports_of(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, imported adlift module) for every import in ``path``, wherever it is in the file.

    ``from adlift.x import y`` counts as an import of ``adlift.x.y`` when ``y`` is a module of the
    package, else of ``adlift.x``; relative imports are resolved against the module's package."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "adlift"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "adlift":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if is_module(sub, root) else target))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.split(".")[0] == "adlift"
        ):
            found.append((node.lineno, node.args[0].value))
    return sorted(set(found))


def is_module(name: str, root: Path = REPO) -> bool:
    rel = Path(*name.split("."))
    return (root / rel.with_suffix(".py")).is_file() or (root / rel / "__init__.py").is_file()


def all_imports() -> list[tuple[str, int, str]]:
    """(importing file relative to the repository, line, imported module) over the whole package."""
    return [(str(p.relative_to(REPO)), line, target) for p in library_modules() for line, target in imports_of(p)]


# ------------------------------------------------------------------------------------------ the checks
def layer_violations() -> list[str]:
    problems = []
    for path in library_modules():
        src = component(module_name(path))
        if src not in LAYERS:
            problems.append(f"{path.relative_to(REPO)}: component adlift.{src} is not in the layer table of "
                            "tests/test_architecture.py (give it a layer there and in docs/ARCHITECTURE.md)")  # fmt: skip
            continue
        for line, target in imports_of(path):
            dst = component(target)
            if dst == src or dst not in LAYERS:
                continue
            if LAYERS[dst] > LAYERS[src]:
                problems.append(
                    f"{path.relative_to(REPO)}:{line} imports {target}: adlift.{src or '(package)'} "
                    f"({layer_name(LAYERS[src])}) may not import the higher layer adlift.{dst} "
                    f"({layer_name(LAYERS[dst])})"
                )
    return problems


def cli_imports() -> list[str]:
    return [
        f"{file}:{line} imports {target}: the library never imports the command line (adlift.commands, adlift.cli)"
        for file, line, target in all_imports()
        if component(target) in CLI_ONLY and component(module_name(REPO / file)) not in CLI_ONLY
    ]


def component_graph() -> dict[str, dict[str, list[str]]]:
    """component -> imported component -> ["file:line imports module", ...] (edges between components)."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for file, line, target in all_imports():
        src, dst = component(module_name(REPO / file)), component(target)
        if src != dst:
            graph[src][dst].append(f"{file}:{line} imports {target}")
    return graph


def import_cycles() -> list[str]:
    """One message per strongly connected set of components (Tarjan), naming the imports that close it."""
    graph = component_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(set(graph) | {w for edges in graph.values() for w in edges}):
        if v not in index:
            visit(v)
    messages = []
    for group in groups:
        edges = [f"adlift.{a or '(package)'} -> adlift.{b or '(package)'} ({graph[a][b][0]})"
                 for a in group for b in group if b in graph.get(a, {})]  # fmt: skip
        messages.append(f"import cycle between {', '.join('adlift.' + (g or '(package)') for g in group)}: "
                        + "; ".join(edges))  # fmt: skip
    return messages


def documented_paths(text: str) -> set[str]:
    """Module paths docs/ARCHITECTURE.md names: ``adlift/x/y.py`` anywhere, a bare ``y.py`` on a line
    that names the directory ``adlift/x/``, and a package ``adlift/x/`` (for its ``__init__.py``)."""
    found: set[str] = set()
    for line in text.splitlines():
        paths = re.findall(r"adlift/[\w/]*\w\.py", line)
        found.update(paths)
        dirs = {p.rpartition("/")[0] for p in paths} | set(re.findall(r"(adlift(?:/\w+)*)/(?![\w/]*\.py)", line))
        for d in dirs:
            found.add(f"{d}/__init__.py")
        if len(dirs) == 1:
            (d,) = dirs
            found.update(f"{d}/{name}" for name in re.findall(r"`(\w+\.py)`", line))
    return found


def undocumented_modules() -> list[str]:
    named = documented_paths(DOCS.read_text(encoding="utf-8"))
    return [f"{rel} is not named in docs/ARCHITECTURE.md" for p in library_modules()
            if (rel := str(p.relative_to(REPO))) not in named]  # fmt: skip


# -------------------------------------------------------------------------------------------- the tests
def test_every_component_has_a_layer_and_imports_only_lower_layers():
    problems = layer_violations()
    assert not problems, "layer violations:\n" + "\n".join(problems)


def test_no_import_cycle_between_subpackages():
    cycles = import_cycles()
    assert not cycles, "\n".join(cycles)


def test_the_library_never_imports_the_command_line():
    problems = cli_imports()
    assert not problems, "\n".join(problems)


def test_every_module_is_named_in_the_architecture_docs():
    missing = undocumented_modules()
    assert not missing, "\n".join(missing)


# ------------------------------------------------------------------------------------- the checker itself
def test_the_checker_sees_lazy_relative_and_dynamic_imports(tmp_path):
    pkg = tmp_path / "adlift"
    (pkg / "render").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "render" / "__init__.py").write_text("")
    (pkg / "render" / "api.py").write_text("")
    (pkg / "scene.py").write_text(
        "import importlib\n"
        "def f():\n    from adlift.render import api\n"
        "def g():\n    from .render.api import x\n"
        "def h():\n    return importlib.import_module('adlift.commands.protect')\n"
    )
    assert imports_of(pkg / "scene.py", tmp_path) == [
        (3, "adlift.render.api"), (5, "adlift.render.api"), (7, "adlift.commands.protect")
    ]  # fmt: skip


def test_documented_paths_reads_table_rows():
    text = "| `adlift/render/projection.py`, `sh.py` | ... |\n| `adlift/io/` | the readers |\n"
    named = documented_paths(text)
    assert {"adlift/render/projection.py", "adlift/render/sh.py", "adlift/io/__init__.py"} <= named


@pytest.mark.parametrize("name", ["render", "protect", "commands"])
def test_every_layer_component_exists(name):
    assert is_module(f"adlift.{name}")


def test_no_test_module_imports_another_test_module():
    """Shared test code lives in tests/conftest.py (fixtures) and tests/helpers.py (plain helpers)."""
    problems = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                last = name.split(".")[-1]
                if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not problems, "import shared test code from tests.helpers (or use a conftest fixture):\n" + "\n".join(
        sorted(set(problems))
    )
