"""The sandbox is the other side of the wire: neither side may import the other's code.

Only the CLI (and the demo it runs) may start the sandbox. A shared misunderstanding of Milvus or
Kubernetes could otherwise hide behind shared code.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[1] / "operator"
MAY_START_SANDBOX = {"milvus_rg_operator/cli.py", "milvus_rg_operator/demo.py"}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def sources(package: str) -> list[Path]:
    files = sorted((PACKAGES / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    return files


def test_sandbox_never_imports_the_operator() -> None:
    offenders = {
        str(path.relative_to(PACKAGES)): sorted(m for m in imported_modules(path) if m.startswith("milvus_rg_operator"))
        for path in sources("milvus_rg_sandbox")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_operator_imports_the_sandbox_only_from_the_cli() -> None:
    offenders = {
        str(path.relative_to(PACKAGES)): sorted(m for m in imported_modules(path) if m.startswith("milvus_rg_sandbox"))
        for path in sources("milvus_rg_operator")
        if str(path.relative_to(PACKAGES)) not in MAY_START_SANDBOX
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_is_pure() -> None:
    allowed_prefixes = ("milvus_rg_operator.core", "milvus_rg_operator.constants", "__future__")
    io_modules = {"kopf", "kubernetes", "pymilvus", "aiohttp", "grpc", "asyncio", "socket", "requests", "httpx"}
    for path in sources("milvus_rg_operator/core"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            assert top not in io_modules, f"{path.name} imports {module}: the core must stay free of I/O"
            if module.startswith("milvus_rg_operator"):
                assert module.startswith(allowed_prefixes), f"{path.name} imports {module}"
