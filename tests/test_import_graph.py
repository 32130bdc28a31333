"""The import graph of ``connector/`` has no circles, and the PAC layer stands below the
configuration.

Every ``import``/``from … import`` in every module is read with ``ast`` — at module level, in
functions and under ``TYPE_CHECKING`` alike (a lazy import is still an arrow a reader has to
follow) — and resolved to the module it names (``from pkg import name`` is an arrow to
``pkg.name`` when that is a module, else to ``pkg``). A package's ``__init__`` is not implied
by importing one of its modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "connector"


def modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [
                    f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in mods else prefix
                    for a in node.names
                ]
            deps.update(r for t in targets if (r := resolve(t)) is not None)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.add(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(comp)
    return found


def test_the_reader_finds_a_circle_it_is_shown():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_connector_has_no_import_cycles():
    graph = import_graph()
    assert "connector.adapters.base" in graph and "connector.cfdi.cadena" in graph
    found = cycles(graph)
    details = [sorted(f"{a} -> {b}" for a in comp for b in graph[a] if b in comp) for comp in found]
    assert found == [], details


def test_the_pac_layer_imports_nothing_from_the_configuration_or_the_daemon():
    """Drivers take plain settings; the configuration (and the CLI, ``connector.pac_cli``)
    builds them."""
    graph = import_graph()
    above = {"connector.config", "connector.daemon", "connector.pipeline", "connector.cli"}
    wrong = {
        (name, dep)
        for name, deps in graph.items()
        if name == "connector.pac" or name.startswith("connector.pac.")
        for dep in deps
        if any(dep == a or dep.startswith(a + ".") for a in above)
    }
    assert wrong == set()


def test_the_journal_records_import_no_backend_and_the_journal_nothing_above_it():
    """``journal.model`` is what a second backend (issue 16) shares with SQLite: no SQL in it;
    the journal as a whole stands on nothing else of ours."""
    graph = import_graph()
    journal = {n for n in graph if n == "connector.journal" or n.startswith("connector.journal.")}
    assert "connector.journal.model" in journal
    assert graph["connector.journal.model"] == set()
    source = (PACKAGE / "journal" / "model.py").read_text(encoding="utf-8")
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert not imported & {"sqlite3", "psycopg", "psycopg2", "pyodbc"}, imported
    assert {(n, d) for n in journal for d in graph[n] if d not in journal} == set()


def package_map() -> dict[str, set[str]]:
    """The rows of the package map at the top of docs/internals.md: module → what it may
    import (names relative to ``connector``; "—" for nothing)."""
    text = (ROOT / "docs" / "internals.md").read_text(encoding="utf-8")
    section = text.split("## Package map", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        assert name not in rows, f"{name} has two rows"
        rows[name] = {t.strip().strip("`") for t in cells[2].split(",") if t.strip() != "—"}
    return rows


def test_the_package_map_names_every_module_and_its_imports_stay_within_its_row():
    graph = import_graph()
    rows = package_map()

    def short(name: str) -> str:
        return name.removeprefix("connector.") if name != "connector" else "connector"

    names = {short(n) for n in graph}
    assert sorted(names - set(rows)) == [], (
        "modules without a row in the package map of docs/internals.md: add "
        "| `name` | what it does | what it may import | for each"
    )
    assert sorted(set(rows) - names) == [], "rows for modules that do not exist"

    def within(dep: str, allowed: set[str]) -> bool:
        return any(dep == a or dep.startswith(a + ".") for a in allowed)

    paths = modules()
    wrong = []
    for name, deps in graph.items():
        mine = short(name)
        # the modules of a package (connector.X.…) may import each other
        in_package = "." in mine or (name != "connector" and paths[name].name == "__init__.py")
        own = mine.split(".")[0] if in_package else None
        for dep in sorted(map(short, deps)):
            if own and (dep == own or dep.startswith(own + ".")):
                continue
            if not within(dep, rows[mine]):
                wrong.append(f"{mine} -> {dep}")
    assert wrong == [], (
        "imports the package map does not allow: move the import down, or widen the row in "
        "docs/internals.md if the layering allows it"
    )
