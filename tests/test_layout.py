"""The apps stack one way; this test reads every module's imports and keeps it so.

STYLE.md, "Dependencies point one way": `handlers` → `workflows` → `queues` → shared plumbing
(`eventhub.lib`), and the project's wiring (the rest of `eventhub`: settings, urls, wsgi/asgi, checks)
imports apps while no app imports it. A layer that reaches upwards cannot be read, tested or changed
without the layer above it, and two such reaches make an import cycle that only works while the import
order happens to be kind (a cycle between apps always needs an upward import, so this rule rules those
out). So `LAYERS` below is the whole rule: a module may import from its own layer and from the layers
listed before it, nothing listed after it. Third-party and stdlib imports are not checked.

Every import counts, wherever it hides: module level, function and method bodies (lazy imports hide the
same dependency), `if TYPE_CHECKING:` and `try` blocks, relative imports (resolved to absolute names;
`from . import x` names the submodule `pkg.x` when it exists) and `import_module("...")`,
`import_string("...")` or `__import__("...")` called with a literal string. Migrations are read too:
they name other apps by string only.

The second rule is no import cycle between project modules (a package's `__init__` is a module of its
own; an import names the module it imports, not the packages above it). `TYPE_CHECKING` imports take
part: the dependency is there even if Python never runs it.
"""

import ast
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Bottom → top. A module may import its own layer and the layers listed before it, never one listed
# after it. A module belongs to the longest entry its dotted name starts with (`eventhub.lib.bulk` to
# `eventhub.lib`, `eventhub.urls` to `eventhub`).
LAYERS: tuple[str, ...] = (
    "eventhub.lib",  # shared plumbing: imports no app and nothing of `eventhub` outside `eventhub.lib`
    "queues",  # a leaf app: configs, kinds, providers, internal queue, outbox, quarantine storage
    "workflows",  # the engine interface, the engines, workflow definitions and runs
    "handlers",  # event handlers, dispatch and the long-running side that calls it, the API
    "eventhub",  # project wiring: settings, urls, wsgi/asgi, apps, checks; no app imports it
)
PACKAGES: tuple[str, ...] = tuple(sorted({layer.split(".")[0] for layer in LAYERS}))
IMPORT_CALLS: frozenset[str] = frozenset({"import_module", "import_string", "__import__"})
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Import:
    """One module naming another: `source` imports `target` at `path:line`."""

    path: str
    line: int
    statement: str
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.statement}"


@dataclass(frozen=True)
class UpwardImport:
    """An import that points up the stack (or sideways into the wiring), and which rule it breaks."""

    edge: Import
    why: str

    def __str__(self) -> str:
        return f"{self.edge} — {self.why}"


@dataclass(frozen=True)
class Cycle:
    """Imports that lead from a module back to itself, in order (each edge's target is the next's source)."""

    edges: tuple[Import, ...]

    def __str__(self) -> str:
        chain = " → ".join([edge.source for edge in self.edges] + [self.edges[0].source])
        return "\n    ".join([f"import cycle {chain}:", *(str(edge) for edge in self.edges)])


# -- Reading the imports -----------------------------------------------------------------------------


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(root: Path, name: str) -> bool:
    """Whether `name` is a module or package of the project tree under `root`."""
    location = root.joinpath(*name.split("."))
    return location.with_suffix(".py").is_file() or location.is_dir()


def project_files(root: Path) -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted(path for path in (root / package).rglob("*.py") if "__pycache__" not in path.parts)


def resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module `from <level dots><name> import ...` names, written inside `module`."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    if level - 1 > len(package) or not base:
        raise ValueError(f"{'.' * level}{name or ''} climbs above the top of {module}")
    return ".".join(base + ([name] if name else []))


def from_targets(root: Path, node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    base = resolve_relative(module, is_package, node.level, node.module) if node.level else node.module or ""
    targets = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        target = submodule if alias.name != "*" and is_module(root, submodule) else base
        if target not in targets:
            targets.append(target)
    return targets


def call_target(node: ast.Call) -> str | None:
    """The module a literal `import_module(...)`, `import_string(...)` or `__import__(...)` loads."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in IMPORT_CALLS or not node.args:
        return None
    argument = node.args[0]
    if not isinstance(argument, ast.Constant) or not isinstance(argument.value, str):
        return None
    dotted = argument.value
    if dotted.startswith("."):
        return None  # relative to a runtime `package` argument: not resolvable by reading
    return dotted.rpartition(".")[0] if name == "import_string" else dotted


def node_targets(root: Path, node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return from_targets(root, node, module, is_package)
    if isinstance(node, ast.Call) and (target := call_target(node)):
        return [target]
    return []


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every import in the file, wherever it sits: `ast.walk` enters every block and body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module, is_package = module_name(root, path), path.name == "__init__.py"
    relative = path.relative_to(root).as_posix()
    return [
        Import(relative, node.lineno, ast.unparse(node), module, target)
        for node in ast.walk(tree)
        for target in node_targets(root, node, module, is_package)
    ]


def project_imports(root: Path) -> list[Import]:
    """Imports between project modules, in file and line order; third-party and stdlib left out."""
    found = [edge for path in project_files(root) for edge in imports_of(root, path)]
    return sorted(
        (edge for edge in found if edge.target.split(".")[0] in PACKAGES), key=lambda edge: (edge.path, edge.line)
    )


# -- Rule 1: imports point down the stack ------------------------------------------------------------


def layer_of(module: str) -> int:
    matches = [index for index, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + ".")]
    return max(matches, key=lambda index: len(LAYERS[index]))


def upward_imports(imports: list[Import]) -> list[UpwardImport]:
    found = []
    for edge in imports:
        own, theirs = layer_of(edge.source), layer_of(edge.target)
        if theirs > own:
            allowed = ", ".join(reversed(LAYERS[: own + 1]))
            why = f"{edge.target} is in layer {LAYERS[theirs]}, above {LAYERS[own]} (which may import {allowed})"
            found.append(UpwardImport(edge, why))
    return found


# -- Rule 2: no import cycle between modules ---------------------------------------------------------


def import_graph(root: Path, imports: list[Import]) -> dict[str, dict[str, Import]]:
    """source → target → the first line importing it; only targets that are files of the tree."""
    graph: dict[str, dict[str, Import]] = {}
    for edge in imports:
        if edge.target != edge.source and is_module(root, edge.target):
            graph.setdefault(edge.source, {}).setdefault(edge.target, edge)
    return graph


def shortest_path(graph: dict[str, dict[str, Import]], start: str, goal: str) -> list[Import] | None:
    came_by: dict[str, Import | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        if module == goal:
            path: list[Import] = []
            while (edge := came_by[module]) is not None:
                path.insert(0, edge)
                module = edge.source
            return path
        for target, edge in sorted(graph.get(module, {}).items()):
            if target not in came_by:
                came_by[target] = edge
                queue.append(target)
    return None


def rotated(edges: list[Import]) -> tuple[Import, ...]:
    """The same cycle started at its smallest module, so each cycle is reported once."""
    first = min(range(len(edges)), key=lambda index: edges[index].source)
    return tuple(edges[first:] + edges[:first])


def import_cycles(root: Path, imports: list[Import]) -> list[Cycle]:
    """For every import that lies on a cycle, the shortest cycle through it."""
    graph = import_graph(root, imports)
    cycles: dict[tuple[str, ...], Cycle] = {}
    for source, targets in sorted(graph.items()):
        for target, edge in sorted(targets.items()):
            back = shortest_path(graph, target, source)
            if back is not None:
                cycle = rotated([edge, *back])
                cycles.setdefault(tuple(step.source for step in cycle), Cycle(cycle))
    return [cycles[key] for key in sorted(cycles)]


def layout_problems(root: Path) -> list[UpwardImport | Cycle]:
    imports = project_imports(root)
    return [*upward_imports(imports), *import_cycles(root, imports)]


# -- The project ---------------------------------------------------------------------------------------


def test_it_reads_every_app_and_the_wiring():
    modules = {module_name(ROOT, path) for path in project_files(ROOT)}
    assert {"eventhub.settings", "handlers.dispatch", "workflows.models", "queues.providers.base"} <= modules
    assert any(module.startswith("queues.migrations.") for module in modules)


def test_every_import_points_down_the_stack_and_none_makes_a_cycle():
    problems = layout_problems(ROOT)
    assert not problems, f"{len(problems)} layout problems:\n" + "\n".join(str(problem) for problem in problems)


# -- The checker itself, on small trees ----------------------------------------------------------------


def tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` under `root`, each directory a package with an empty `__init__.py`."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        for parent in path.relative_to(root).parents:
            if parent != Path(".") and not (root / parent / "__init__.py").exists():
                (root / parent / "__init__.py").write_text("")
    return root


def located(problems: list[UpwardImport | Cycle]) -> list[str]:
    return [f"{problem.edge.path}:{problem.edge.line}" for problem in problems if isinstance(problem, UpwardImport)]


UPWARD_CASES = {
    "hidden in a function body": (
        {"queues/listener.py": "import json\n\n\ndef listen():\n    from handlers.dispatch import dispatch\n"
                               "    return dispatch\n",
         "handlers/dispatch.py": "def dispatch(): ...\n"},
        "queues/listener.py:5", "from handlers.dispatch import dispatch",
        "handlers.dispatch is in layer handlers, above queues",
    ),
    "in a TYPE_CHECKING block": (
        {"eventhub/lib/bulk.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                 "    from queues.models import QueueConfig\n",
         "queues/models.py": ""},
        "eventhub/lib/bulk.py:4", "from queues.models import QueueConfig",
        "queues.models is in layer queues, above eventhub.lib",
    ),
    "relative, resolving upward inside a try": (
        {"eventhub/lib/errors.py": "try:\n    from .. import checks\nexcept ImportError:\n    checks = None\n",
         "eventhub/checks.py": ""},
        "eventhub/lib/errors.py:2", "from .. import checks", "eventhub.checks is in layer eventhub, above eventhub.lib",
    ),
    "by a literal dotted path": (
        {"handlers/api/views.py": "from django.utils.module_loading import import_string\n\n"
                                  'view = import_string("eventhub.urls.view")\n',
         "eventhub/urls.py": ""},
        "handlers/api/views.py:3", "import_string('eventhub.urls.view')",
        "eventhub.urls is in layer eventhub, above handlers",
    ),
}


@pytest.mark.parametrize(("files", "where", "statement", "why"), UPWARD_CASES.values(), ids=UPWARD_CASES.keys())
def test_it_finds_an_upward_import(tmp_path, files, where, statement, why):
    problems = layout_problems(tree(tmp_path, files))
    assert located(problems) == [where]
    assert str(problems[0]).startswith(f"{where}: {statement} — {why}")


def test_it_finds_a_two_module_cycle_within_one_app(tmp_path):
    kinds = "from .providers.base import Provider\n"
    base = "class Provider:\n    def kind(self):\n        from queues.kinds import kind_of\n        return kind_of\n"
    root = tree(tmp_path, {"queues/kinds.py": kinds, "queues/providers/base.py": base})
    (cycle,) = layout_problems(root)
    assert isinstance(cycle, Cycle)
    assert [str(edge).split(": ")[0] for edge in cycle.edges] == ["queues/kinds.py:1", "queues/providers/base.py:3"]
    assert str(cycle).startswith("import cycle queues.kinds → queues.providers.base → queues.kinds:")


def test_it_resolves_from_dot_import_to_the_submodule(tmp_path):
    root = tree(tmp_path, {"workflows/a.py": "from . import b\n", "workflows/b.py": "from . import a\n"})
    (cycle,) = layout_problems(root)
    assert [edge.target for edge in cycle.edges] == ["workflows.b", "workflows.a"]


def test_it_passes_a_tree_whose_imports_point_down(tmp_path):
    root = tree(
        tmp_path,
        {
            "eventhub/lib/bulk.py": "from django.db import connection\n",
            "eventhub/lib/api.py": "from . import bulk\nfrom .bulk import connection\n",
            "queues/models.py": "from eventhub.lib.bulk import connection\n",
            "queues/migrations/0001_initial.py": 'dependencies = [("queues", "0001")]\n',
            "workflows/engine.py": "import queues.models\nfrom eventhub.lib import api\n",
            "handlers/dispatch.py": "def run():\n    from workflows.engine import queues\n    import requests\n",
            "handlers/api/views.py": "from ..dispatch import run\nfrom eventhub.lib.api import bulk\n",
            "eventhub/urls.py": "from handlers.api import views\nfrom .lib import api\n",
            "eventhub/settings.py": 'ROOT_URLCONF = "eventhub.urls"\n',
        },
    )
    assert len(project_imports(root)) == 10
    assert layout_problems(root) == []
