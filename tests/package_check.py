"""Validate a plugin zip against the plugins.qgis.org upload rules (conventions §9, §10).

    .venv/bin/python -m tests.package_check build/huijiao_plugin.zip     # exit 1 with messages if invalid
    .venv/bin/python -m tests.package_check --stage OUTDIR                # stage + zip like `make package`

Checks: one top folder matching ``^[A-Za-z][A-Za-z0-9-_]+$`` holding ``__init__.py``, ``metadata.txt``
(``[general]`` with every required key) and ``LICENSE``; no ``.pyc``, ``__pycache__``, ``.git``,
``__MACOSX``, ``..`` or absolute paths; at most 25 MB; the build products ``resources_rc.py`` and the
``.qm`` present. The URL reachability rule (HEAD < 400) needs the network and is only checked with
``--check-urls``.
"""

from __future__ import annotations

import argparse
import configparser
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "huijiao_plugin"
MAX_BYTES = 25 * 1024 * 1024
TOP_FOLDER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-_]+$")
REQUIRED_KEYS = (
    "name",
    "description",
    "version",
    "qgisMinimumVersion",
    "author",
    "email",
    "about",
    "tracker",
    "repository",
)
KEPT_LINES = ("version", "changelog", "experimental")
BOOLEAN_KEYS = ("experimental", "deprecated", "server")
FORBIDDEN_PARTS = ("__pycache__", ".git", "__MACOSX")
URL_KEYS = ("tracker", "repository", "homepage")


def check_metadata(text: str, names: set[str] | None = None, top: str = "") -> list[str]:
    """Errors of a metadata.txt (``names``: the zip's member names, to check that the icon exists)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        return [f"metadata.txt cannot be parsed: {exc}"]
    if not parser.has_section("general"):
        return ["metadata.txt has no [general] section"]
    general = parser["general"]
    errors = [
        f"metadata.txt: required key '{key}' is missing or empty"
        for key in REQUIRED_KEYS
        if not general.get(key, "").strip()
    ]
    for key in KEPT_LINES:
        if key not in general:
            errors.append(f"metadata.txt: keep the line '{key}=' (tools rewrite it)")
    minimum = general.get("qgisMinimumVersion", "").strip()
    if minimum and not re.fullmatch(r"3\.\d+(\.\d+)?", minimum):
        errors.append(f"metadata.txt: qgisMinimumVersion '{minimum}' is not a QGIS 3 version")
    # plugins.qgis.org: QGIS 4-ready means qgisMaximumVersion >= 4.0; supportsQt6 is deprecated
    maximum = general.get("qgisMaximumVersion", "").strip()
    if not re.fullmatch(r"[4-9]\.\d+(\.\d+)?", maximum):
        errors.append(f"metadata.txt: qgisMaximumVersion '{maximum}' must be 4.0 or later (QGIS 4 on Qt 6)")
    if "supportsQt6" in general:
        errors.append(
            "metadata.txt: drop supportsQt6 (deprecated; QGIS 4 readiness is read from qgisMaximumVersion)"
        )
    version = general.get("version", "").strip()
    if version and not re.fullmatch(r"\d+\.\d+(\.\d+)?([-.]?\w+)?", version):
        errors.append(f"metadata.txt: version '{version}' is not a version number")
    for key in BOOLEAN_KEYS:
        if key in general and general[key].strip() not in ("True", "False"):
            errors.append(f"metadata.txt: '{key}' must be True or False, not '{general[key]}'")
    if "/" in general.get("author", ""):
        errors.append("metadata.txt: 'author' must not contain '/'")
    email = general.get("email", "").strip()
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        errors.append(f"metadata.txt: email '{email}' is not an e-mail address")
    for key in URL_KEYS:
        value = general.get(key, "").strip()
        if value and not value.startswith(("http://", "https://")):
            errors.append(f"metadata.txt: '{key}' must be an http(s) URL")
    icon = general.get("icon", "").strip()
    if icon and names is not None and f"{top}/{icon}" not in names:
        errors.append(f"metadata.txt: icon '{icon}' is not in the package")
    return errors


def check_urls(text: str, timeout: float = 10.0) -> list[str]:
    """HEAD every tracker/repository/homepage URL (plugins.qgis.org requires a status below 400)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    errors = []
    for key in URL_KEYS:
        url = parser["general"].get(key, "").strip()
        if not url:
            continue
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
                status = response.status
        except Exception as exc:  # urllib raises HTTPError for >= 400 and URLError when unreachable
            errors.append(f"metadata.txt: {key} {url} does not answer HEAD below 400 ({exc})")
            continue
        if status >= 400:
            errors.append(f"metadata.txt: {key} {url} answers HEAD with {status}")
    return errors


def check_zip(path: Path, urls: bool = False) -> list[str]:
    """Every rule violation of the zip at ``path`` (an empty list means it is valid)."""
    path = Path(path)
    if not path.is_file():
        return [f"{path} does not exist"]
    errors = []
    size = path.stat().st_size
    if size > MAX_BYTES:
        errors.append(f"the zip is {size / 1048576:.1f} MB, more than 25 MB")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = archive.testzip()
            if bad is not None:
                errors.append(f"corrupt member in the zip: {bad}")
            metadata_bytes = None
            tops = set()
            for name in names:
                pure = PurePosixPath(name.replace("\\", "/"))
                if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
                    errors.append(f"absolute path in the zip: {name}")
                if ".." in pure.parts:
                    errors.append(f"'..' in a path of the zip: {name}")
                if any(part in FORBIDDEN_PARTS for part in pure.parts):
                    errors.append(f"forbidden entry in the zip: {name}")
                if name.endswith((".pyc", ".pyo")):
                    errors.append(f"compiled Python file in the zip: {name}")
                if pure.parts:
                    tops.add(pure.parts[0])
            if len(tops) != 1:
                errors.append(f"the zip must hold exactly one top folder, found: {sorted(tops)}")
                return errors
            top = tops.pop()
            if not TOP_FOLDER_RE.match(top):
                errors.append(f"the top folder '{top}' does not match {TOP_FOLDER_RE.pattern}")
            for required in ("__init__.py", "metadata.txt", "LICENSE"):
                if f"{top}/{required}" not in names:
                    errors.append(f"{top}/{required} is missing")
            if f"{top}/resources_rc.py" in names:
                errors.append(f"{top}/resources_rc.py is shipped: compiled resources do not exist in Qt 6")
            if not any(n.startswith(f"{top}/i18n/") and n.endswith(".qm") for n in names):
                errors.append(f"{top}/i18n/*.qm is missing (run `make qm`)")
            if f"{top}/metadata.txt" in names:
                metadata_bytes = archive.read(f"{top}/metadata.txt")
    except zipfile.BadZipFile as exc:
        return [f"{path} is not a zip file: {exc}"]
    if metadata_bytes is not None:
        try:
            text = metadata_bytes.decode("utf-8")
        except UnicodeDecodeError:
            errors.append("metadata.txt is not UTF-8")
        else:
            errors.extend(check_metadata(text, set(names), top))
            if urls and not errors:
                errors.extend(check_urls(text))
    return errors


# development files inside the package folder that are not shipped (screenshots are for the README)
STAGE_IGNORE = ("__pycache__", "*.pyc", "ruff.toml", "screenshots", "resources_rc.py", "*.qm")


def stage(out_dir: Path, repo: Path = ROOT) -> Path:
    """The steps of `make package` into ``out_dir`` (build products built there, not in the repo)."""
    out_dir = Path(out_dir)
    staged = out_dir / PLUGIN
    shutil.rmtree(staged, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(repo / PLUGIN, staged, ignore=shutil.ignore_patterns(*STAGE_IGNORE))
    shutil.copy2(repo / "metadata.txt", staged / "metadata.txt")
    shutil.copy2(repo / "LICENSE", staged / "LICENSE")
    (staged / "i18n").mkdir(exist_ok=True)
    subprocess.run(
        [
            "lrelease",
            "-silent",
            str(repo / "i18n" / "huijiao_zh_CN.ts"),
            "-qm",
            str(staged / "i18n" / "huijiao_zh_CN.qm"),
        ],
        check=True,
    )
    zip_path = out_dir / f"{PLUGIN}.zip"
    zip_path.unlink(missing_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(staged.rglob("*")):
            archive.write(file, file.relative_to(out_dir).as_posix())
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Validate a QGIS plugin zip against the plugins.qgis.org rules"
    )
    parser.add_argument("zip", nargs="?", type=Path, help="the zip to check")
    parser.add_argument(
        "--stage", type=Path, metavar="OUTDIR", help="stage and zip the plugin into OUTDIR first"
    )
    parser.add_argument("--check-urls", action="store_true", help="also HEAD tracker/repository/homepage")
    args = parser.parse_args(argv)
    zip_path = stage(args.stage) if args.stage else args.zip
    if zip_path is None:
        parser.error("give a zip or --stage OUTDIR")
    errors = check_zip(zip_path, urls=args.check_urls)
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    if errors:
        print(f"{zip_path}: {len(errors)} problem(s); plugins.qgis.org would refuse it", file=sys.stderr)
        return 1
    with zipfile.ZipFile(zip_path) as archive:
        count = len(archive.namelist())
    print(f"{zip_path}: OK ({count} entries, {zip_path.stat().st_size / 1024:.0f} KiB)")
    if not args.check_urls:
        print("note: tracker/repository/homepage reachability not checked (use --check-urls online)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
