"""House rules that keep the layers apart."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_core_never_imports_streamlit():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "core").rglob("*.py")
        if any(name.split(".")[0] == "streamlit" for name in _imports(path))
    ]
    assert offenders == []


def test_heavy_libraries_are_not_imported_when_core_is():
    import subprocess
    import sys

    heavy = "{'torch', 'transformers', 'modelscope'}"
    probe = f"import sys, core.services, core.rag.answer; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
