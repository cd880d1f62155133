"""The shape of the codebase, checked on its source: no import cycle (function-level imports included), no module
reaching into another module's private names, no function in kdjax/ longer than a screen."""
import ast
import os
import sys

import pytest
from packaging import requirements, utils

from tests import helpers

PACKAGES = ("kdjax", "experiments", "benchmarks", "configs", "tests")
MAX_FUNCTION_LINES = 60


def _sources(package):
    for directory, _, files in os.walk(os.path.join(helpers.REPO, package)):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, helpers.REPO), ast.parse(f.read())


def _module_name(path):
    name = path[:-3].replace(os.sep, ".")
    return name.removesuffix(".__init__")


def import_graph(package="kdjax") -> dict:
    """{module: modules of `package` it imports}, every import statement counted, at any depth of the module.
    `from pkg import sub` is an edge to the submodule `pkg.sub` when it is one, else to `pkg`."""
    trees = {_module_name(path): (path, tree) for path, tree in _sources(package)}
    graph = {}
    for module, (path, tree) in trees.items():
        base_package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = base_package.split(".")[:len(base_package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in trees else base for a in node.names)
        graph[module] = set()
        for target in targets:
            while target and target not in trees:
                target = target.rpartition(".")[0]
            if target and target != module:
                graph[module].add(target)
    return graph


def cycles(graph: dict) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_kdjax_has_no_import_cycle():
    assert cycles(import_graph("kdjax")) == []


def _private_uses(tree):
    """(line, text) of every `from m import _name` and `alias._name` where alias is an imported module."""
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(a.asname or a.name for a in node.names)
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            uses += [(node.lineno, f"from {node.module} import {a.name}") for a in node.names
                     if a.name.startswith("_") and not a.name.startswith("__")]
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and isinstance(node.value, ast.Name) and node.value.id in imported):
            uses.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return uses


def test_private_name_finder_finds_planted_uses():
    tree = ast.parse("import kdjax.data.sources as s\nfrom x import _y\nfrom kdjax import ops\ns._open()\n"
                     "ops._supported\nself._fine = 1\n")
    assert sorted(text for _, text in _private_uses(tree)) == ["from x import _y", "ops._supported", "s._open"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_uses_another_modules_private_names(package):
    found = [f"{path}:{line} {text}" for path, tree in _sources(package) for line, text in _private_uses(tree)]
    assert not found, found


def _body_lines(node) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def test_no_function_in_kdjax_is_longer_than_a_screen():
    long = [f"{path}:{node.lineno} {node.name} ({_body_lines(node)} lines)"
            for path, tree in _sources("kdjax") for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_FUNCTION_LINES]
    assert not long, long


def _module_level_imports(tree) -> set:
    """Top-level names of the packages a module imports when it is imported (its module-level statements)."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES)


def _install_requires() -> set:
    """setup.py's INSTALL_REQUIRES, as normalised distribution names."""
    tree = ast.parse(open(os.path.join(helpers.REPO, "setup.py"), encoding="utf-8").read())
    (requires,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "INSTALL_REQUIRES"]
    return {utils.canonicalize_name(requirements.Requirement(s).name) for s in ast.literal_eval(requires)}


def test_every_package_imported_at_module_level_is_an_install_requirement():
    """A fresh `pip install -e .` can import kdjax, its experiments and configs: whatever they import on loading
    comes from a distribution setup.py names (optional libraries are imported inside the functions that need them)."""
    from importlib import metadata
    distributions = metadata.packages_distributions()
    required = _install_requires()
    missing = []
    for package in ("kdjax", "experiments", "configs"):
        for path, tree in _sources(package):
            for name in _module_level_imports(tree):
                # an import name maps to the distributions that provide it: tensorflow to tensorflow-cpu
                provided = {utils.canonicalize_name(d) for d in distributions.get(name, [name])}
                if not provided & required:
                    missing.append(f"{path}: {name} (from {sorted(provided)})")
    assert not missing, missing


def test_install_requires_parser_reads_names_without_versions():
    assert {"jax", "scikit-learn", "orbax-checkpoint", "tensorflow-cpu"} <= _install_requires()
