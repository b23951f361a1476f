"""The architecture rules `make arch-check` enforces (and `make test` runs):

- no import cycle between ari_app's subpackages (imports under TYPE_CHECKING
  count too: a cycle in the types is a cycle in the design);
- no module over MAX_LINES lines.

Prints each violation and exits 1; prints the dependency order and exits 0.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "ari_app"
MAX_LINES = 400


def unit_of(path: Path) -> str:
    """The subpackage a module belongs to; a top-level module is its own unit."""
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ari_app" and len(parts) > 1:
                out.add(parts[1])
    return out


def graph() -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        unit = unit_of(path)
        deps.setdefault(unit, set()).update(d for d in imports(path) if d != unit)
    return deps


def cycles(deps: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return found


def long_modules() -> list[tuple[Path, int]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            out.append((path, n))
    return out


def main() -> int:
    deps = graph()
    problems = [f"import cycle between subpackages: {' <-> '.join(c)}" for c in cycles(deps)]
    for unit in sorted(deps):
        for dep in sorted(deps[unit]):
            if unit in deps.get(dep, set()):
                problems.append(f"  {unit} imports {dep} and {dep} imports {unit}")
    problems += [f"{p.relative_to(ROOT.parent)}: {n} lines (at most {MAX_LINES})"
                 for p, n in long_modules()]
    if problems:
        print("\n".join(problems))
        return 1
    for unit in sorted(deps):
        print(f"{unit:14} -> {', '.join(sorted(deps[unit])) or '-'}")
    print(f"arch-check: {len(deps)} units, no import cycle, no module over {MAX_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
