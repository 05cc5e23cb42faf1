"""Find (and fix) unscoped QGIS enum members: ``QgsWkbTypes.Polygon`` → ``QgsWkbTypes.Type.Polygon``.

QGIS 4 (Qt 6, sip 6) reads enum members only through their enum, as PyQt6 does for Qt's own enums.
Run with the Python that has PyQGIS: ``python tests/tools/qgis_enum_names.py [--fix] huijiao_plugin``.
The Qt side of the same rule is checked against PyQt6 by ``qt6_names.py``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import qgis.core
import qgis.gui


def _enum_type_name(owner: object, attr: str) -> str | None:
    """``Type`` when ``owner.attr`` is a member of the enum ``owner.Type`` reached without it."""
    value = getattr(owner, attr, None)
    if value is None or isinstance(value, type) or callable(value):
        return None
    enum_type = type(value)
    name = enum_type.__name__
    if enum_type.__module__.startswith("qgis.") and getattr(owner, name, None) is enum_type and name != attr:
        return name
    return None


def check_file(path: Path) -> list[tuple[int, int, int, str, str]]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in {"qgis.core", "qgis.gui"}:
            module = qgis.core if node.module == "qgis.core" else qgis.gui
            for alias in node.names:
                if hasattr(module, alias.name):
                    imported[alias.asname or alias.name] = getattr(module, alias.name)
    findings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported:
            enum_name = _enum_type_name(imported[node.value.id], node.attr)
            if enum_name:
                text = ast.get_source_segment(source, node) or ""
                fix = f"{node.value.id}.{enum_name}.{node.attr}"
                findings.append((node.lineno, node.col_offset, node.end_col_offset, text, fix))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--fix", action="store_true")
    args = parser.parse_args(argv)
    total = 0
    for path in sorted(f for p in args.paths for f in ([p] if p.is_file() else p.rglob("*.py"))):
        if path.name == "resources_rc.py":
            continue
        findings = check_file(path)
        if args.fix and findings:
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            for line, col, end, text, fix in sorted(findings, reverse=True):
                if lines[line - 1][col:end] == text:
                    lines[line - 1] = lines[line - 1][:col] + fix + lines[line - 1][end:]
            path.write_text("".join(lines), encoding="utf-8")
            findings = check_file(path)
        for line, col, _end, text, fix in findings:
            print(f"{path}:{line}:{col + 1}: {text}: unscoped QGIS enum -> {fix}")
        total += len(findings)
    print(f"{total} unscoped QGIS enum use(s)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
