"""`make package` steps produce a zip that passes the plugins.qgis.org rules; bad zips are refused."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests import package_check

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def good_zip(tmp_path_factory) -> Path:
    return package_check.stage(tmp_path_factory.mktemp("package"))


def test_staged_zip_passes(good_zip):
    assert package_check.check_zip(good_zip) == []
    with zipfile.ZipFile(good_zip) as archive:
        names = set(archive.namelist())
        assert "huijiao_plugin/metadata.txt" in names
        assert "huijiao_plugin/LICENSE" in names
        assert "huijiao_plugin/resources_rc.py" not in names  # no pyrcc in Qt 6: icons load by path
        assert "huijiao_plugin/i18n/huijiao_zh_CN.qm" in names
        assert archive.read("huijiao_plugin/metadata.txt") == (ROOT / "metadata.txt").read_bytes()
        assert not any("__pycache__" in n or n.endswith(".pyc") or n.endswith("ruff.toml") for n in names)
    assert good_zip.stat().st_size < package_check.MAX_BYTES


def test_command_line_exit_codes(good_zip, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "tests.package_check", str(good_zip)], cwd=ROOT,
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    bad = tmp_path / "bad.zip"
    rewrite(good_zip, bad, extra={"huijiao_plugin/__pycache__/plugin.cpython-311.pyc": b"\0"})
    refused = subprocess.run([sys.executable, "-m", "tests.package_check", str(bad)], cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 1
    assert "__pycache__" in refused.stderr


def rewrite(source: Path, target: Path, extra: dict[str, bytes] | None = None, drop: tuple[str, ...] = (),
            replace: dict[str, bytes] | None = None) -> Path:  # fmt: skip
    """Copy a zip, dropping members ending with ``drop``, replacing and adding members."""
    replace = replace or {}
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            if info.filename.endswith(drop) and drop:
                continue
            dst.writestr(info.filename, replace.get(info.filename, src.read(info.filename)))
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return target


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": {"huijiao_plugin/__pycache__/x.cpython-311.pyc": b"0"}}, "__pycache__"),
        ({"extra": {"huijiao_plugin/core/x.pyc": b"0"}}, ".pyc"),
        ({"extra": {"huijiao_plugin/.git/HEAD": b"ref"}}, ".git"),
        ({"extra": {"__MACOSX/huijiao_plugin/._x": b"0"}}, "one top folder"),
        ({"extra": {"huijiao_plugin/../evil.py": b"0"}}, "'..'"),
        ({"extra": {"/etc/evil.py": b"0"}}, "absolute path"),
        ({"drop": ("huijiao_plugin/LICENSE",)}, "LICENSE is missing"),
        (
            {"extra": {"huijiao_plugin/resources_rc.py": b"from PyQt5 import QtCore"}},
            "resources_rc.py is shipped",
        ),
        (
            {"replace": {"huijiao_plugin/metadata.txt": b"[general]\nqgisMaximumVersion=3.99\n"}},
            "qgisMaximumVersion",
        ),
        ({"replace": {"huijiao_plugin/metadata.txt": b"[general]\nsupportsQt6=True\n"}}, "supportsQt6"),
        ({"drop": (".qm",)}, ".qm is missing"),
        ({"replace": {"huijiao_plugin/metadata.txt": b"[general]\nname=x\n"}}, "'qgisMinimumVersion'"),
        ({"replace": {"huijiao_plugin/metadata.txt": b"name=x\n"}}, "metadata.txt"),
    ],
)
def test_bad_zips_are_refused(good_zip, tmp_path, change, message):
    bad = rewrite(good_zip, tmp_path / "bad.zip", **change)
    errors = package_check.check_zip(bad)
    assert errors, change
    assert any(message in e for e in errors), errors


def test_bad_top_folder_and_size(good_zip, tmp_path):
    renamed = tmp_path / "renamed.zip"
    with zipfile.ZipFile(good_zip) as src, zipfile.ZipFile(renamed, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename.replace("huijiao_plugin/", "1huijiao/", 1), src.read(info.filename))
    assert any("does not match" in e for e in package_check.check_zip(renamed))
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as dst:
        dst.writestr("huijiao_plugin/blob.bin", b"\1" * (package_check.MAX_BYTES + 1))
    assert any("more than 25 MB" in e for e in package_check.check_zip(big))


def test_metadata_rules():
    text = (ROOT / "metadata.txt").read_text(encoding="utf-8")
    assert package_check.check_metadata(text) == []
    assert any("author" in e for e in package_check.check_metadata(text.replace("author=", "author=a/b ")))
    assert any("True or False" in e for e in package_check.check_metadata(text.replace("=True", "=yes")))
    no_changelog = "\n".join(line for line in text.splitlines() if not line.startswith("changelog"))
    assert any("changelog" in e for e in package_check.check_metadata(no_changelog))
