"""The package's layers: imports run one way (docs/INTERFACES.md, "Architecture").

The import graph is read from the source with ``ast`` (nothing is imported),
function-local imports included. The rule:

- every module of the package has a layer in :data:`LAYERS` (a new module without one fails);
- a module imports only modules of its own layer or of the layers below;
- nothing imports in a circle, function-local imports counted;
- a function-local import of the package's own modules is allowed only in the CLI (a fast
  ``--help``), or where it defers a heavy optional dependency (:data:`HEAVY`) that the imported
  module pulls in at its top, with the reason in a ``# deferred: ...`` comment on the line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "masked_gatys"

CORE, EYES, PIPELINES, APPS = 0, 1, 2, 3
LAYER_NAMES = {CORE: "L0 core", EYES: "L1 eye primitives", PIPELINES: "L2 pipelines", APPS: "L3 applications"}

#: module (or package prefix, ending in ".") -> layer; the one table of the rule
LAYERS = {
    # L0 core: never imports the eye domain, the pipelines or the CLI
    "masked_gatys": CORE,  # the package's lazy front door: loads its public names on first use
    "masked_gatys.errors": CORE,
    "masked_gatys.files": CORE,
    "masked_gatys.config": CORE,
    "masked_gatys.image": CORE,
    "masked_gatys.masks": CORE,
    "masked_gatys.mask_jitter": CORE,
    "masked_gatys.colour": CORE,
    "masked_gatys.encoder": CORE,
    "masked_gatys.functional": CORE,
    "masked_gatys.presets": CORE,
    "masked_gatys.objective": CORE,
    "masked_gatys.device": CORE,
    "masked_gatys.optim": CORE,
    "masked_gatys.optim.": CORE,  # the optim/ package's modules
    "masked_gatys.nets": CORE,
    "masked_gatys.checkpoints": CORE,
    "masked_gatys.sheet": CORE,
    "masked_gatys.manifests": CORE,
    "masked_gatys.distributed": CORE,
    # L1 eye primitives: the core and one another
    "masked_gatys.eyes": EYES,  # lazy exports, like the package's
    "masked_gatys.eyes.labels": EYES,
    "masked_gatys.eyes.drawing": EYES,
    "masked_gatys.eyes.layouts": EYES,
    "masked_gatys.eyes.looks": EYES,
    "masked_gatys.eyes.scene": EYES,
    "masked_gatys.eyes.render": EYES,
    "masked_gatys.eyes.pupil": EYES,
    "masked_gatys.eyes.parts": EYES,
    "masked_gatys.eyes.segment": EYES,
    "masked_gatys.eyes.gaze_report": EYES,
    "masked_gatys.eyes.features": EYES,
    "masked_gatys.eyes.datasets": EYES,
    "masked_gatys.eyes.styles": EYES,
    "masked_gatys.eyes.gaze": EYES,
    "masked_gatys.eyes.training_data": EYES,
    # L2 pipelines: the core and the eye primitives
    "masked_gatys.stylize": PIPELINES,
    "masked_gatys.stylize_masks": PIPELINES,
    "masked_gatys.purify": PIPELINES,
    "masked_gatys.purify_methods": PIPELINES,
    "masked_gatys.train": PIPELINES,
    "masked_gatys.bench": PIPELINES,
    "masked_gatys.bench.": PIPELINES,  # the bench/ package's modules, once it is one
    # L3 applications, on top of everything (the first two live in eyes/ but run the pipelines)
    "masked_gatys.eyes.experiment": APPS,
    "masked_gatys.eyes.demo": APPS,
    "masked_gatys.__main__": APPS,
    "masked_gatys.cli": APPS,
    "masked_gatys.cli.": APPS,
}

#: heavy optional dependencies a function-local import may defer (their import cost, or their
#: absence where they are optional extras)
HEAVY = ("scipy.ndimage", "scipy.io", "matplotlib", "sklearn")

#: where function-local imports of the package are the rule: the CLI keeps --help free of torch
LAZY_ALLOWED = ("masked_gatys.cli", "masked_gatys.cli.")


def layer_of(module: str) -> int | None:
    if module in LAYERS:
        return LAYERS[module]
    prefixes = [p for p in LAYERS if p.endswith(".") and module.startswith(p)]
    return LAYERS[max(prefixes, key=len)] if prefixes else None


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    local: bool
    text: str


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, known: set[str]) -> tuple[list[Edge], list[tuple[str, int, bool]]]:
    """Edges to the package's modules, and (external module, line, local) for the rest."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    edges: list[Edge] = []
    external: list[tuple[str, int, bool]] = []

    def add(name: str, node: ast.AST, local: bool) -> None:
        text = lines[node.lineno - 1]
        if name.split(".")[0] == "masked_gatys":
            while name not in known and "." in name:  # an attribute of a module: the module
                name = name.rsplit(".", 1)[0]
            edges.append(Edge(module, name, node.lineno, local, text))
        else:
            external.append((name, node.lineno, local))

    def walk(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, child, local)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(child, module, path.name == "__init__.py")
                if base == "__future__":
                    continue
                for alias in child.names:
                    full = f"{base}.{alias.name}"  # a submodule (scipy.ndimage) or a name in base
                    add(full if full in known or not base.startswith("masked_gatys") else base, child, local)
            walk(child, inner)

    walk(ast.parse(source), False)
    return [e for e in edges if e.target != module], external


def _graph() -> tuple[dict[str, list[Edge]], dict[str, list[tuple[str, int, bool]]]]:
    modules = _modules()
    known = set(modules)
    edges, external = {}, {}
    for name, path in modules.items():
        edges[name], external[name] = _imports(name, path, known)
    return edges, external


EDGES, EXTERNAL = _graph()


def _cycle(edges: dict[str, list[Edge]]) -> list[str] | None:
    """One import cycle (a list of modules, first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for edge in edges.get(node, []):
            if state.get(edge.target) == 1:
                return stack[stack.index(edge.target):] + [edge.target]
            if edge.target not in state:
                found = visit(edge.target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _heavy_modules() -> dict[str, str]:
    """Package modules that pull a HEAVY dependency in at their top (themselves or through the
    package modules they import at their top) -> that dependency."""
    heavy = {m: dep for m, ext in EXTERNAL.items() for dep in HEAVY
             for name, _, local in ext if not local and (name == dep or name.startswith(dep + "."))}
    changed = True
    while changed:
        changed = False
        for module, edges in EDGES.items():
            for edge in edges:
                if module not in heavy and not edge.local and edge.target in heavy:
                    heavy[module] = heavy[edge.target]
                    changed = True
    return heavy


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in EDGES if layer_of(m) is None)
    assert not missing, f"modules without a layer (add them to LAYERS and docs/INTERFACES.md): {missing}"


def test_imports_run_downwards() -> None:
    crossings = [f"{e.source} ({LAYER_NAMES[layer_of(e.source)]}) imports {e.target} "
                 f"({LAYER_NAMES[layer_of(e.target)]}) at line {e.line}"
                 for edges in EDGES.values() for e in edges
                 if layer_of(e.source) is not None and layer_of(e.target) is not None
                 and layer_of(e.target) > layer_of(e.source)]
    assert not crossings, "\n".join(crossings)


def test_no_import_cycle_counting_function_local_imports() -> None:
    cycle = _cycle(EDGES)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_function_local_imports_only_where_allowed() -> None:
    heavy = _heavy_modules()
    bad = []
    for module, edges in EDGES.items():
        if module in LAZY_ALLOWED or module.startswith(LAZY_ALLOWED[1]):
            continue
        for e in edges:
            if not e.local:
                continue
            if e.target in heavy and "# deferred:" in e.text:
                continue
            why = (f"defers {heavy[e.target]}: say so in a '# deferred: ...' comment" if e.target in heavy
                   else "import it at the top of the module")
            bad.append(f"{module}:{e.line} imports {e.target} in a function ({why})")
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------- the checker itself


def _edges_of(sources: dict[str, str], tmp_path: Path) -> dict[str, list[Edge]]:
    known = set(sources)
    out = {}
    for name, text in sources.items():
        path = tmp_path / f"{name.replace('.', '_')}.py"
        path.write_text(text, encoding="utf-8")
        out[name] = _imports(name, path, known)[0]
    return out


def test_the_checker_sees_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    edges = _edges_of({
        "masked_gatys.a": "from masked_gatys.b import f\n",
        "masked_gatys.b": "def f():\n    from masked_gatys import a\n    return a\n",
    }, tmp_path)
    assert [e.local for e in edges["masked_gatys.b"]] == [True]
    assert _cycle(edges) in (["masked_gatys.a", "masked_gatys.b", "masked_gatys.a"],
                             ["masked_gatys.b", "masked_gatys.a", "masked_gatys.b"])
    assert _cycle({"masked_gatys.a": edges["masked_gatys.a"], "masked_gatys.b": []}) is None


def test_the_checker_resolves_relative_and_attribute_imports(tmp_path: Path) -> None:
    edges = _edges_of({
        "masked_gatys.masks": "from .image import load\nfrom masked_gatys import nets\n",
        "masked_gatys.image": "", "masked_gatys.nets": "",
    }, tmp_path)
    assert sorted(e.target for e in edges["masked_gatys.masks"]) == ["masked_gatys.image", "masked_gatys.nets"]


def test_a_new_module_needs_a_layer() -> None:
    assert layer_of("masked_gatys.brand_new") is None
    assert layer_of("masked_gatys.cli.brand_new") == APPS  # the CLI's commands are all applications
    assert layer_of("masked_gatys.eyes.brand_new") is None


@pytest.mark.parametrize("module", ["masked_gatys.eyes.experiment", "masked_gatys.eyes.demo"])
def test_the_eye_applications_are_applications(module: str) -> None:
    """They live in eyes/ but run the pipelines: layer L3, not the eye primitives' L1."""
    assert layer_of(module) == APPS
    assert any(layer_of(e.target) == PIPELINES for e in EDGES[module])


def test_the_docs_give_every_module_its_layer() -> None:
    """docs/INTERFACES.md's "Architecture" section names every module under its layer."""
    text = (PACKAGE.parent / "docs" / "INTERFACES.md").read_text(encoding="utf-8")
    section = text[text.index("## Architecture"):]
    section = section[:section.find("\n## ", 4)] if "\n## " in section[4:] else section
    rows = {line.split("|")[1].strip(): line for line in section.splitlines()
            if line.startswith("| L")}
    for module, path in _modules().items():
        layer = layer_of(module)
        short = module.replace("masked_gatys.", "").replace("masked_gatys", "__init__")
        if short == "cli" or short.startswith("cli.") or short == "__main__":
            short = "cli/"
        elif short.split(".")[0] != "eyes" and (PACKAGE / short.split(".")[0]).is_dir():
            short = short.split(".")[0] + "/"  # a subpackage (bench/, optim/) is listed whole
        label = LAYER_NAMES[layer]
        assert f"`{short}`" in rows.get(label, ""), f"docs/INTERFACES.md: {short} is not listed under {label}"
