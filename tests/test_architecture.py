"""The arrows of the design, checked: no import cycles (TYPE_CHECKING imports included), and
the stand-in and the proxy never import each other (only cli and demo know both)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "proxy"
KNOW_BOTH = {"proxy.cli", "proxy.demo"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    module, found = _module(path), set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names]
            found |= {name for name in [base, *names] if name.startswith("proxy")}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("proxy")}
    return found


def graph() -> dict[str, set[str]]:
    modules = {_module(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {target for target in _imports(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_round_about() -> None:
    # Packages import their modules for re-export; count only module-to-module edges.
    edges = {name: {t for t in targets if not _is_package(t)} for name, targets in graph().items()}
    assert _cycle(edges) is None


def _is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()


def test_the_standin_and_the_proxy_never_import_each_other() -> None:
    for name, targets in graph().items():
        in_standin = name.startswith("proxy.standin")
        for target in targets:
            if in_standin:
                assert target.startswith("proxy.standin"), (name, target)
            elif target.startswith("proxy.standin"):
                assert name in KNOW_BOTH, (name, target)
