"""Check (and optionally fix) Qt names against PyQt6, the way plugins.qgis.org's pyqgis4-checker does.

Run it with a Python that has PyQt6 (no QGIS needed)::

    python tests/tools/qt6_names.py huijiao_plugin            # report, exit 1 on findings
    python tests/tools/qt6_names.py --fix huijiao_plugin      # rewrite unscoped enums in place

It resolves every ``Name.attr[.attr…]`` whose ``Name`` is imported from ``qgis.PyQt``/``PyQt5``
against the PyQt6 class of that name. A member that exists in Qt 6 only inside an enum
(``Qt.AlignLeft``) is reported with its scoped spelling (``Qt.AlignmentFlag.AlignLeft``); Qt 5-only
calls (``exec_``, ``QFontMetrics.width``), classes gone in Qt 6 (``QRegExp``, ``QDesktopWidget``),
``PyQt5`` imports and ``resources_rc`` are reported too.
Only the standard library and PyQt6 are used, so it runs in a throwaway venv.
"""

from __future__ import annotations

import argparse
import ast
import enum
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

PYQT6_MODULES = (
    "QtCore",
    "QtGui",
    "QtWidgets",
    "QtNetwork",
    "QtTest",
    "QtXml",
    "QtSvg",
    "QtPrintSupport",
    "QtSql",
)
NOT_CLASSES = {"pyqtSignal", "pyqtSlot", "pyqtProperty", "QT_TRANSLATE_NOOP", "sip"}
QT5_ONLY_METHODS = {"exec_": "exec", "print_": "print"}


@dataclass
class Finding:
    path: Path
    line: int
    col: int
    end_col: int
    text: str
    message: str
    replacement: str | None = None

    def __str__(self) -> str:
        fix = f" -> {self.replacement}" if self.replacement else ""
        return f"{self.path}:{self.line}:{self.col + 1}: {self.text}: {self.message}{fix}"


def _pyqt6_class(name: str) -> object | None:
    for module_name in PYQT6_MODULES:
        try:
            module = importlib.import_module(f"PyQt6.{module_name}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    return None


def _enum_holding(owner: object, member: str) -> str | None:
    """The name of the enum inside ``owner`` that has ``member`` (Qt 6 scoped spelling)."""
    for attr in sorted(dir(owner)):
        value = getattr(owner, attr, None)
        if isinstance(value, type) and issubclass(value, enum.Enum) and member in value.__members__:
            return attr
    return None


def _chain(node: ast.Attribute) -> list[ast.AST]:
    parts: list[ast.AST] = []
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        parts.append(current)
        current = current.value
    parts.append(current)
    return list(reversed(parts))


def _qt_imports(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        qt_module = isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            ("qgis.PyQt.", "PyQt5.", "PyQt6.")
        )
        if qt_module:
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
    return names


def check_file(path: Path) -> list[Finding]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(path))
    lines = source.splitlines()
    findings: list[Finding] = []
    imported = _qt_imports(tree)

    def add(node: ast.AST, message: str, replacement: str | None = None) -> None:
        text = ast.get_source_segment(source, node) or lines[node.lineno - 1].strip()
        findings.append(
            Finding(path, node.lineno, node.col_offset, node.end_col_offset, text, message, replacement)
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("PyQt5"):
                add(node, "import through qgis.PyQt, not PyQt5")
            for alias in node.names:
                if alias.name == "resources_rc" or (node.module or "").endswith("resources_rc"):
                    add(node, "compiled resources are gone in Qt 6: load files by path")
                elif (
                    node.module.startswith(("qgis.PyQt.", "PyQt5."))
                    and alias.name not in NOT_CLASSES
                    and _pyqt6_class(alias.name) is None
                ):
                    add(node, f"{alias.name} does not exist in PyQt6")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.endswith("resources_rc"):
                    add(node, "compiled resources are gone in Qt 6: load files by path")
        elif isinstance(node, ast.Attribute) and node.attr in QT5_ONLY_METHODS:
            add(node, "Qt 5-only method", QT5_ONLY_METHODS[node.attr])
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "width"
        ):
            inner = node.func.value
            if (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Attribute)
                and inner.func.attr in {"fontMetrics", "QFontMetrics"}
            ):
                add(node, "QFontMetrics.width is gone in Qt 6", "horizontalAdvance")

    seen: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in seen:
            continue
        chain = _chain(node)
        for part in chain[1:]:
            seen.add(id(part))
        root = chain[0]
        if not isinstance(root, ast.Name) or root.id not in imported:
            continue
        owner = _pyqt6_class(imported[root.id])
        if owner is None:
            continue
        for index, part in enumerate(chain[1:], start=1):
            attr = part.attr  # type: ignore[attr-defined]
            if hasattr(owner, attr):
                owner = getattr(owner, attr)
                continue
            prefix = ".".join([root.id] + [p.attr for p in chain[1:index]])  # type: ignore[attr-defined]
            enum_name = _enum_holding(owner, attr)
            if enum_name:
                add(part, "unscoped enum (Qt 5 only)", f"{prefix}.{enum_name}.{attr}")
            else:
                add(part, f"{prefix}.{attr} does not exist in PyQt6")
            break
    return findings


def apply_fixes(path: Path, findings: list[Finding]) -> int:
    """Rewrite scoped enums and renamed methods in place (one line at a time, right to left)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    fixed = 0
    for finding in sorted(findings, key=lambda f: (f.line, f.col), reverse=True):
        if not finding.replacement:
            continue
        line = lines[finding.line - 1]
        if finding.message == "Qt 5-only method":
            new = line.replace(".exec_(", ".exec(").replace(".print_(", ".print(")
        elif finding.replacement == "horizontalAdvance":
            new = line.replace(").width(", ").horizontalAdvance(")
        else:
            segment = line[finding.col : finding.end_col]
            if segment != finding.text:
                continue
            new = line[: finding.col] + finding.replacement + line[finding.end_col :]
        if new != line:
            lines[finding.line - 1] = new
            fixed += 1
    path.write_text("".join(lines), encoding="utf-8")
    return fixed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--fix", action="store_true")
    args = parser.parse_args(argv)
    files = sorted(
        f
        for p in args.paths
        for f in ([p] if p.is_file() else p.rglob("*.py"))
        if f.name != "resources_rc.py"
    )
    total = 0
    for path in files:
        findings = check_file(path)
        if args.fix and findings:
            apply_fixes(path, findings)
            findings = check_file(path)
        for finding in findings:
            print(finding)
        total += len(findings)
    print(f"{total} Qt 5-only use(s) in {len(files)} file(s)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
